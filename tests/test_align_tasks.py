"""The demonstration tasks: lines parsed from plays, reproducible files, checkers that tell the right
answer from the wrong one, evaluation lines kept out of training, and greedy answers scored."""
import json
import re
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("tinyllm._C", reason="the tokenizer needs the compiled module")

import tinyllm  # noqa: E402
from align_runs import made_up_plays  # noqa: E402
from tinyllm.align import tasks  # noqa: E402
from tinyllm.align.template import END, add_chat_tokens, encode_prompt  # noqa: E402
from tinyllm.models.gpt import GPT, GPTConfig  # noqa: E402
from tinyllm.tokenizer import BPETokenizer  # noqa: E402

FILES = ("sft_train.jsonl", "sft_val.jsonl", "dpo_train.jsonl", "dpo_val.jsonl", "eval.jsonl")
@pytest.fixture(scope="module")
def texts():
    return made_up_plays()


@pytest.fixture(scope="module")
def built(texts, tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks")
    counts = tasks.build_datasets(out, seed=0, n_train=160, n_val=40, n_eval=48, texts=texts)
    return out, counts


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_spoken_lines_keep_speeches_and_drop_directions_headings_and_odd_lines():
    play = ("HAMLET\n\nPERSONS REPRESENTED.\n\nHamlet, Prince. Horatio, his friend. Cordelia. Cornwall.\n\n"
            "ACT I.\n\nScene I. Elsinore. A platform.\n\n[Enter Hamlet.]\n\n"
            "Ham.\nWho's there?\n[Aside.] Stand, ho!\nAnd what of 1602 -- or this?\nNay, answer me: stand.\n\n"
            "Cor.\nNothing, my lord.\n\nLYSANDER\nKeep promise, love.\n\nHam. and Hor.\nWe swear.\n")
    lines = list(tasks.spoken_lines("Hamlet", play))
    assert [(line.speaker, line.text) for line in lines] == [
        ("Hamlet", "Who's there?"), ("Hamlet", "Nay, answer me: stand."),  # "Ham" expands to the one name it starts
        ("Cor", "Nothing, my lord."),  # Cordelia or Cornwall: left as it is
        ("Lysander", "Keep promise, love.")]
    assert lines[1].words == ["Nay", "answer", "me", "stand"]


def test_play_titles_and_normalized_answers():
    assert tasks.play_title("henry_iv_part_1_gut") == "Henry IV Part 1"
    assert tasks.play_title("the_taming_of_the_shrew_gut") == "The Taming of the Shrew"
    assert tasks.normalize("  Nay,  ANSWER me! ") == "nay answer me"


def test_build_writes_every_file_with_the_fields_and_counts_asked_for(built):
    out, counts = built
    assert counts == {"sft_train.jsonl": 160, "dpo_train.jsonl": 160, "sft_val.jsonl": 40, "dpo_val.jsonl": 40,
                      "eval.jsonl": 48}
    sft, dpo, ev = _read(out / "sft_train.jsonl"), _read(out / "dpo_train.jsonl"), _read(out / "eval.jsonl")
    assert [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
    assert set(dpo[0]) == {"prompt", "chosen", "rejected", "task"} and dpo[0]["prompt"][-1]["role"] == "user"
    assert set(ev[0]) == {"messages", "answer", "task"} and ev[0]["messages"][-1]["role"] == "user"
    assert {r["task"] for r in ev} == set(tasks.TASKS), "every family is evaluated"
    per_family = Counter(r["task"] for r in ev).values()
    assert max(per_family) - min(per_family) <= 1, "the families take turns"
    assert [r["messages"] for r in sft] == [r["prompt"] + [{"role": "assistant", "content": r["chosen"]}] for r in dpo]


def test_the_same_seed_gives_the_same_files_and_another_seed_others(texts, built, tmp_path):
    out, _ = built
    tasks.build_datasets(tmp_path / "again", seed=0, n_train=160, n_val=40, n_eval=48, texts=texts)
    tasks.build_datasets(tmp_path / "other", seed=1, n_train=160, n_val=40, n_eval=48, texts=texts)
    for name in FILES:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
        assert (tmp_path / "other" / name).read_bytes() != (out / name).read_bytes()


def test_checkers_accept_the_chosen_answer_and_reject_the_rejected_one(built):
    out, _ = built
    pairs = _read(out / "dpo_train.jsonl") + _read(out / "dpo_val.jsonl")
    for pair in pairs:
        check = tasks.TASKS[pair["task"]].check
        assert check(pair["chosen"], pair["chosen"]), pair
        assert check(f" {pair['chosen'].upper()}.", pair["chosen"]), "case and punctuation don't count"
        assert not check(pair["rejected"], pair["chosen"]), pair
        assert not check("", pair["chosen"])


def _fill(task, answer):
    """What an answer sentence says, "Nay" of "The first word is Nay."."""
    return re.fullmatch(re.escape(tasks.TASKS[task].reply).replace(r"\{\}", "(.*)"), answer).group(1)


def test_the_wrong_answers_are_the_plausible_near_misses(built):
    out, _ = built
    for pair in _read(out / "dpo_train.jsonl"):
        question = pair["prompt"][-1]["content"]
        chosen, rejected = _fill(pair["task"], pair["chosen"]), _fill(pair["task"], pair["rejected"])
        line = question.split("? ")[-1]
        if pair["task"] == "count_words":
            assert abs(int(chosen) - int(rejected)) == 1 and int(chosen) == len(line.split())
        elif pair["task"] == "first_word":
            assert line.split()[:2] == [chosen, rejected]
        elif pair["task"] == "last_word":
            assert [w.strip(".,;:!?") for w in line.split()[-2:]] == [rejected, chosen]
        elif pair["task"] == "reverse_words":
            words = question.split(": ")[1].split()
            assert chosen.split() == words[::-1] and sorted(rejected.split()) == sorted(words)
        elif pair["task"] == "line_kind":
            assert chosen == {"?": "a question", "!": "an exclamation", ".": "a statement"}[line[-1]] != rejected
        else:
            assert f" {chosen}" in question and f" {rejected}" in question, "both are among the options the prompt names"


def test_the_words_an_answer_copies_are_the_prompts_tokens(built, tokenizer):
    """A word of the answer follows a space, as in the prompt, so it is the same BPE token there."""
    out, _ = built
    for pair in _read(out / "dpo_train.jsonl")[:40]:
        if pair["task"] in ("count_words", "line_kind"):  # answers in words of their own
            continue
        prompt, answer = (tokenizer.encode(text) for text in (pair["prompt"][-1]["content"], pair["chosen"]))
        word = tokenizer.encode(" " + _fill(pair["task"], pair["chosen"]).split()[-1].strip(".,;:!?"))
        assert _contains(prompt, word) and _contains(answer, word), pair


def _contains(ids, part):
    return any(ids[i:i + len(part)] == part for i in range(len(ids)))


def test_validation_and_evaluation_lines_never_appear_in_training(texts, built):
    out, _ = built
    lines = tasks.corpus_lines(texts)
    held_out = {split: [tasks.normalize(line.text) for line in lines if tasks.split_of(line) == split
                        and len(line.words) >= 6]  # a shorter made-up line may turn up inside another by chance
                for split in ("val", "eval")}
    train = " | ".join(tasks.normalize(json.dumps(r["messages"])) for r in _read(out / "sft_train.jsonl"))
    evaluated = " | ".join(tasks.normalize(json.dumps(r["messages"])) for r in _read(out / "eval.jsonl"))
    assert min(map(len, held_out.values())) > 5
    assert not [text for texts_ in held_out.values() for text in texts_ if text in train]
    assert sum(text in evaluated for text in held_out["eval"]) > 3, "the evaluation asks about evaluation lines"


def test_texts_without_speakers_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="no line that fits the tasks"):
        tasks.build_datasets(tmp_path, texts={"Sonnets": "Shall I compare thee to a summer's day?\n" * 50})


@pytest.fixture(scope="module")
def tokenizer(texts):
    return add_chat_tokens(BPETokenizer.train(list(texts.values()), 320, special_tokens=["<|endoftext|>"]))


def test_answer_accuracy_scores_each_answer_with_its_task_checker(built, tokenizer, monkeypatch):
    """A stand-in for generate answers the first question of each task wrongly and the others rightly
    (with spaces and punctuation around, which the checkers ignore)."""
    out, _ = built
    records = _read(out / "eval.jsonl")
    prompts = [tuple(encode_prompt(tokenizer, r["messages"])) for r in records]
    firsts = {}
    for r, prompt in zip(records, prompts):
        firsts.setdefault(r["task"], prompt)
    scripted = {prompt: r["answer"] + (" not" if prompt in firsts.values() else "!") for r, prompt in zip(records, prompts)}
    end = tokenizer.token_to_id(END)

    def fake_generate(model, prompts, max_new_tokens, **sampling):
        assert sampling["temperature"] == 0 and sampling["stop_tokens"] == (end,)
        assert len({len(p) for p in prompts}) == 1, "one batch holds prompts of one length"
        answers = [tokenizer.encode(" " + scripted[tuple(p)] + " ") + [end] for p in prompts]
        width = max(map(len, answers)) + 1  # a finished row is padded with its stop token, as generate does
        return tinyllm.tensor(np.array([list(p) + a + [end] * (width - len(a)) for p, a in zip(prompts, answers)]))

    monkeypatch.setattr(tasks, "generate", fake_generate)
    scores = tasks.answer_accuracy(None, tokenizer, records)
    right = [prompt not in firsts.values() for prompt in prompts]
    expected = {t: np.mean([ok for ok, r in zip(right, records) if r["task"] == t]) for t in tasks.TASKS}
    assert scores == pytest.approx({"overall": np.mean(right), **expected})
    assert 0 < min(expected.values()) and max(expected.values()) < 1


def test_answer_accuracy_names_a_bad_record():
    with pytest.raises(ValueError, match="eval record 1: .* got fields \\['answer', 'messages'\\]"):
        tasks.answer_accuracy(None, None, [{"messages": [], "answer": "", "task": "first_word"},
                                           {"messages": [], "answer": ""}])


def test_model_answers_in_batches_equal_one_at_a_time(built, tokenizer):
    out, _ = built
    conversations = [r["messages"] for r in _read(out / "eval.jsonl")[:12]]
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=16))
    with tinyllm.no_grad():
        for p in model.parameters():  # larger weights than GPT-2's init, so greedy answers vary
            if p.ndim == 2:
                p.normal_(0.0, 0.5)
    batched = tasks.model_answers(model, tokenizer, conversations, max_new_tokens=6)
    alone = [tasks.model_answers(model, tokenizer, [c], max_new_tokens=6)[0] for c in conversations]
    assert batched == alone
    assert len(set(batched)) > 3, "the test needs a model whose answers differ"
    sampled = [tasks.model_answers(model, tokenizer, conversations, max_new_tokens=6, temperature=1.0, seed=s) for s in (3, 3, 4)]
    assert sampled[0] == sampled[1] and sampled[0] != sampled[2] and sampled[0] != batched


def test_wrong_answers_of_takes_the_models_own_mistakes_first(built, monkeypatch):
    """Greedy answer if wrong, else the first wrong sample, else the task's made-up wrong answer."""
    out, _ = built
    records = _read(out / "dpo_val.jsonl")[:3]
    right = [r["chosen"] for r in records]
    scripted = iter([["nonsense", right[1], right[2]],  # greedy, all three records: the first is wrong
                     ["also wrong", right[2]],          # first sample, the two left: the second is wrong
                     [right[2]]])                       # second sample, the third: right again
    calls = []

    def answers(model, tokenizer, conversations, max_new_tokens=24, temperature=0.0, seed=None):
        calls.append((len(conversations), temperature))
        return next(scripted)

    monkeypatch.setattr(tasks, "model_answers", answers)
    pairs = tasks.wrong_answers_of(None, None, records, samples=2)
    assert calls == [(3, 0.0), (2, 1.0), (1, 1.0)]
    assert [p["rejected"] for p in pairs] == ["nonsense", "also wrong", records[2]["rejected"]]
    assert [p["rejected_by"] for p in pairs] == ["model", "model", "task"]
    assert all(p["prompt"] == r["prompt"] and p["chosen"] == r["chosen"] for p, r in zip(pairs, records))
