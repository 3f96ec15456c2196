"""A tiny pretrained run and tiny chat data, for the SFT and DPO tests."""
import json

import numpy as np
import pytest

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


def resume_matches_a_whole_run(trainer_class, train_fn, make_config, tmp_path, monkeypatch):
    """Train 6 steps straight, and 6 steps with a crash after step 4 and a resume (from the step-3
    checkpoint); the final weights must be identical. Returns the resumed run's metrics rows."""
    from tinyllm.checkpoint import latest_checkpoint, load_tensors
    from tinyllm.train import read_metrics
    quiet = dict(log=lambda *a: None, progress=False)
    train_fn(make_config(tmp_path / "whole"), **quiet)
    real_step = trainer_class.train_step

    def crash_after_step_4(self):
        if self.step == 4:
            raise KeyboardInterrupt
        return real_step(self)
    monkeypatch.setattr(trainer_class, "train_step", crash_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        train_fn(make_config(tmp_path / "resumed"), **quiet)
    monkeypatch.setattr(trainer_class, "train_step", real_step)
    train_fn(make_config(tmp_path / "resumed"), **quiet)
    whole, resumed = (load_tensors(latest_checkpoint(tmp_path / r) / "model.safetensors") for r in ("whole", "resumed"))
    assert whole.keys() == resumed.keys()
    for name in whole:
        np.testing.assert_array_equal(whole[name], resumed[name])
    rows = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    return rows


def gpu_run_matches_cpu_run(train_fn, make_config, tmp_path, keys, rtol=1e-4, atol=1e-6):
    """The same run on the host and on the GPU: each step's metrics in keys agree to rtol / atol (the
    GPU's kernels sum in other orders than the host's), and the GPU run's checkpoint loads as a host model."""
    from tinyllm.sample import load_run_model
    from tinyllm.train import read_metrics
    for device in ("cpu", "cuda"):
        train_fn(make_config(tmp_path / device, device=device), log=lambda *a: None, progress=False)
    cpu, gpu = (read_metrics(tmp_path / device / "metrics.jsonl") for device in ("cpu", "cuda"))
    assert [r["step"] for r in gpu] == [r["step"] for r in cpu]
    for key in keys:
        np.testing.assert_allclose([r.get(key, np.nan) for r in gpu], [r.get(key, np.nan) for r in cpu], rtol=rtol, atol=atol,
                                   err_msg=key)
    model, _ = load_run_model(tmp_path / "cuda")
    assert all(p.device == "cpu" for p in model.parameters())
