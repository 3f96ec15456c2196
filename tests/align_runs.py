"""A tiny pretrained run and tiny chat data, for the SFT and DPO tests."""
import json

import numpy as np

from tinyllm.data.prepare import PrepareConfig, run_prepare
from tinyllm.train import TrainConfig, train

WORDS = "the king queen lord lady speak love night day sword crown fair foul heart blood sleep dream".split()
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32}


def pretrained_run(folder):
    """A 1-layer GPT trained for 2 steps on random words, in folder/base."""
    rng = np.random.default_rng(0)
    corpus = folder / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"play{i}.txt").write_text("\n\n".join(" ".join(rng.choice(WORDS, 40)) + "." for _ in range(8)))
    run_prepare(PrepareConfig(out=folder / "data", inputs=(str(corpus),), vocab_size=300, progress=False), command="test")
    train(TrainConfig(data=str(folder / "data"), out=str(folder / "base"), model="small", model_overrides=TINY,
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
