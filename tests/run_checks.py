"""Checks every kind of training run (pretraining, SFT, DPO) is held to: a crash and a resume, and the
same run on the GPU."""
import pathlib

import numpy as np
import pytest

from tinyllm.train import read_metrics

QUIET = dict(log=lambda *a: None, progress=False)


def interrupted_and_resumed(trainer_class, train_fn, config, monkeypatch):
    """Train config's run with a crash in its step 5, then start it again (it resumes from the step-3
    checkpoint); returns its metrics rows."""
    real_step = trainer_class.train_step

    def crash_after_step_4(self):
        if self.step == 4:
            raise KeyboardInterrupt
        return real_step(self)
    monkeypatch.setattr(trainer_class, "train_step", crash_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        train_fn(config, **QUIET)
    monkeypatch.setattr(trainer_class, "train_step", real_step)
    train_fn(config, **QUIET)
    return read_metrics(pathlib.Path(config.out) / "metrics.jsonl")


def gpu_run_matches_cpu_run(train_fn, make_config, tmp_path, keys, rtol=1e-4, atol=1e-6):
    """The same run on the host and on the GPU: each step's metrics in keys agree to rtol / atol (the
    GPU's kernels sum in other orders than the host's), and the GPU run's checkpoint loads as a host model."""
    from tinyllm.sample import load_run_model
    for device in ("cpu", "cuda"):
        train_fn(make_config(tmp_path / device, device=device), **QUIET)
    cpu, gpu = (read_metrics(tmp_path / device / "metrics.jsonl") for device in ("cpu", "cuda"))
    assert [r["step"] for r in gpu] == [r["step"] for r in cpu]
    for key in keys:
        np.testing.assert_allclose([r.get(key, np.nan) for r in gpu], [r.get(key, np.nan) for r in cpu], rtol=rtol, atol=atol,
                                   err_msg=key)
    model, _ = load_run_model(tmp_path / "cuda")
    assert all(p.device == "cpu" for p in model.parameters())
