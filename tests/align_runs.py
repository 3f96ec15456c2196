"""A tiny pretrained run, tiny chat data and made-up plays, for the alignment tests."""
import json
import random

import numpy as np

from run_checks import QUIET, interrupted_and_resumed
from tinyllm.data.prepare import PrepareConfig, run_prepare
from tinyllm.train import TrainConfig, train

WORDS = "the king queen lord lady speak love night day sword crown fair foul heart blood sleep dream".split()
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32}


def pretrained_run(folder, **model_changes):
    """A 1-layer GPT (TINY, with model_changes) trained for 2 steps on random words, in folder/base."""
    rng = np.random.default_rng(0)
    corpus = folder / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"play{i}.txt").write_text("\n\n".join(" ".join(rng.choice(WORDS, 40)) + "." for _ in range(8)))
    run_prepare(PrepareConfig(out=folder / "data", inputs=(str(corpus),), vocab_size=300, progress=False), command="test")
    train(TrainConfig(data=str(folder / "data"), out=str(folder / "base"), model="small", model_overrides={**TINY, **model_changes},
                      batch_size=4, max_steps=2, warmup_steps=1, eval_interval=2, eval_batches=1, checkpoint_interval=2),
          log=lambda *a: None, progress=False)
    return folder / "base"


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def reverse_task(n, seed=0):
    """(prompt, right answer, wrong answer) triples: reverse a word."""
    rng = np.random.default_rng(seed)
    words = rng.choice(WORDS, n)
    return [(f"reverse {w}", w[::-1], w) for w in words]


def resume_matches_a_whole_run(trainer_class, train_fn, make_config, tmp_path, monkeypatch):
    """Train 6 steps straight, and 6 steps with a crash after step 4 and a resume (from the step-3
    checkpoint); the final weights must be identical. Returns the resumed run's metrics rows."""
    from tinyllm.checkpoint import latest_checkpoint, load_tensors
    train_fn(make_config(tmp_path / "whole"), **QUIET)
    rows = interrupted_and_resumed(trainer_class, train_fn, make_config(tmp_path / "resumed"), monkeypatch)
    whole, resumed = (load_tensors(latest_checkpoint(tmp_path / r) / "model.safetensors") for r in ("whole", "resumed"))
    assert whole.keys() == resumed.keys()
    for name in whole:
        np.testing.assert_array_equal(whole[name], resumed[name])
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    return rows


PLAY_WORDS = ("crown sword night king queen love death ghost heaven earth blood honour grave tears rose "
              "storm sea moon star fool duke lord lady heart soul eye hand word time day").split()


def made_up_plays(n_plays=3, speakers=("Anna", "Boris", "Clara"), lines_each=60, seed=0):
    """Plays in the corpus's layout (speaker's name alone on a line, then the speech), of made-up lines
    of 3 to 10 distinct words, so every task has lines to use in every split."""
    rng = random.Random(seed)
    plays = {}
    for p in range(n_plays):
        blocks = [f"THE PLAY OF {p}\n\nPERSONS: {', '.join(speakers)}.\n\nACT I."]
        for i in range(lines_each):
            words = rng.sample(PLAY_WORDS, rng.randint(3, 10))
            words[0] = words[0].capitalize()
            blocks.append(f"{speakers[i % len(speakers)].upper()}.\n{' '.join(words)}.")
        plays[f"Play {'ABC'[p]}"] = "\n\n".join(blocks) + "\n"
    return plays
