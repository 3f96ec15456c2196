"""Checkpoints are atomic, exact, and refuse broken files with a clear error."""
import numpy as np
import pytest

import tinyllm
import tinyllm.nn as nn
from tinyllm import checkpoint


def _model_and_optimizer():
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2))
    return model, tinyllm.optim.AdamW(model.parameters(), lr=1e-2)


def _step(model, opt, x):
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()


def test_resume_from_a_checkpoint_continues_exactly(tmp_path):
    x = tinyllm.randn(5, 3)
    model, opt = _model_and_optimizer()
    _step(model, opt, x)
    checkpoint.save_checkpoint(tmp_path, 1, model, opt, extra={"rng": "anything"})
    _step(model, opt, x)
    model2, opt2 = _model_and_optimizer()
    step, extra = checkpoint.load_checkpoint(checkpoint.latest_checkpoint(tmp_path), model2, opt2)
    assert step == 1 and extra == {"rng": "anything"}
    _step(model2, opt2, x)
    for (name, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


def test_latest_points_at_the_newest_checkpoint(tmp_path):
    model, opt = _model_and_optimizer()
    assert checkpoint.latest_checkpoint(tmp_path) is None
    checkpoint.save_checkpoint(tmp_path, 10, model, opt)
    checkpoint.save_checkpoint(tmp_path, 20, model, opt)
    assert checkpoint.latest_checkpoint(tmp_path).name == "step_000020"
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))  # no temporary leftovers


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    model, opt = _model_and_optimizer()
    for step in (5, 10, 100, 1000):  # 100 and 1000 sort after 5 and 10 only when zero-padded
        checkpoint.save_checkpoint(tmp_path, step, model, opt, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_000100", "step_001000"]
    assert checkpoint.latest_checkpoint(tmp_path).name == "step_001000"
    with pytest.raises(ValueError, match="keep must be at least 1"):
        checkpoint.save_checkpoint(tmp_path, 1001, model, opt, keep=0)


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = _model_and_optimizer()
    checkpoint.save_checkpoint(tmp_path, 1, model, opt)

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(checkpoint, "_split_optimizer_state", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(tmp_path, 2, model, opt)
    assert checkpoint.latest_checkpoint(tmp_path).name == "step_000001"
    assert not (tmp_path / "checkpoints" / "step_000002").exists()


def test_truncated_and_corrupted_files_give_clear_errors(tmp_path):
    model, opt = _model_and_optimizer()
    folder = checkpoint.save_checkpoint(tmp_path, 1, model, opt)
    weights = folder / checkpoint.MODEL_FILE
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ValueError, match="model.safetensors: not a valid safetensors file"):
        checkpoint.load_checkpoint(folder, model, opt)
    (folder / checkpoint.STATE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="state.json: corrupted"):
        checkpoint.load_checkpoint(folder, model, opt)
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        checkpoint.load_checkpoint(tmp_path, model)


def test_a_checkpoint_of_another_shape_is_refused(tmp_path):
    model, opt = _model_and_optimizer()
    folder = checkpoint.save_checkpoint(tmp_path, 1, model, opt)
    other = nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.Linear(5, 2))
    with pytest.raises(ValueError, match="0.weight"):
        checkpoint.load_checkpoint(folder, other)
