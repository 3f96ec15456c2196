"""The training loop end to end on a tiny prepared corpus: exact resume, the loss scaler, the CLI."""
import json
import re

import numpy as np
import pytest

pytest.importorskip("tinyllm._C", reason="the tokenizer needs the compiled module")

from run_checks import gpu_run_matches_cpu_run, interrupted_and_resumed  # noqa: E402
from tinyllm import cli  # noqa: E402
from tinyllm.data.prepare import PrepareConfig, run_prepare  # noqa: E402
from tinyllm.train import Run, TrainConfig, load_config_file, read_metrics, train  # noqa: E402

WORDS = np.array("the king queen lord lady speak love night day sword crown fair foul heart blood sleep dream "
                 "thou thee thy art hath doth good ill death life".split())
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for i in range(6):
        paragraphs = ["ACT " + str(i) + ". " + " ".join(rng.choice(WORDS, 40)) + "." for _ in range(8)]
        (folder / f"play{i}.txt").write_text("\n\n".join(paragraphs))
    out = folder.parent / "prepared"
    run_prepare(PrepareConfig(out=out, inputs=(str(folder),), vocab_size=300, progress=False), command="test")
    return out


def config(data, out, **changes):
    values = dict(data=str(data), out=str(out), model="small", model_overrides=TINY, batch_size=4, max_steps=6,
                  warmup_steps=2, eval_interval=3, eval_batches=2, checkpoint_interval=3, lr=1e-2)
    return TrainConfig(**{**values, **changes})


def test_a_resumed_run_gives_the_same_losses_as_an_uninterrupted_one(data, tmp_path, monkeypatch):
    train(config(data, tmp_path / "whole", model_overrides={**TINY, "dropout": 0.1}), progress=False, log=lambda *a: None)
    whole = read_metrics(tmp_path / "whole" / "metrics.jsonl")

    resumed = interrupted_and_resumed(Run, train, config(data, tmp_path / "resumed", model_overrides={**TINY, "dropout": 0.1}),
                                      monkeypatch)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(whole, resumed):
        assert a["loss"] == b["loss"] and a["grad_norm"] == b["grad_norm"] and a.get("val_loss") == b.get("val_loss")


@pytest.mark.cuda
def test_a_gpu_run_trains_as_the_cpu_run_and_resumes(data, tmp_path, monkeypatch):
    """With dropout: both devices draw the same masks, and the GPU run's resume draws the ones it would have."""
    dropout = {**TINY, "dropout": 0.1}
    gpu_run_matches_cpu_run(train, lambda out, **device: config(data, out, model_overrides=dropout, **device), tmp_path,
                            ("loss", "grad_norm", "val_loss"))
    resumed = interrupted_and_resumed(Run, train, config(data, tmp_path / "resumed", model_overrides=dropout, device="cuda"),
                                      monkeypatch)
    whole = read_metrics(tmp_path / "cuda" / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for key in ("loss", "grad_norm", "val_loss"):
        np.testing.assert_allclose([r.get(key, 0) for r in resumed], [r.get(key, 0) for r in whole], rtol=1e-5, err_msg=key)


@pytest.mark.cuda
def test_a_run_replayed_from_a_cuda_graph_trains_as_the_eager_one_and_resumes(data, tmp_path, monkeypatch):
    """Two micro-batches a step and dropout: the graph's steps (the first after a start or resume runs
    eagerly, the next is captured, the rest replay it) give the eager GPU run's metrics, and a crash
    and resume the same again."""
    same = dict(model_overrides={**TINY, "dropout": 0.1}, tokens_per_step=128, device="cuda")
    train(config(data, tmp_path / "eager", **same), progress=False, log=lambda *a: None)
    train(config(data, tmp_path / "graph", cuda_graph=True, **same), progress=False, log=lambda *a: None)
    resumed = interrupted_and_resumed(Run, train, config(data, tmp_path / "resumed", cuda_graph=True, **same), monkeypatch)
    eager, graph = (read_metrics(tmp_path / name / "metrics.jsonl") for name in ("eager", "graph"))
    assert [r["step"] for r in graph] == [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    assert all(r["tokens"] == 128 for r in graph)
    for key in ("loss", "grad_norm", "val_loss"):
        for rows in (graph, resumed):
            np.testing.assert_allclose([r.get(key, 0) for r in rows], [r.get(key, 0) for r in eager], rtol=1e-5, err_msg=key)


def test_cuda_graph_is_refused_where_it_cannot_run(data, tmp_path):
    with pytest.raises(ValueError, match="cuda_graph needs device cuda and dtype float32 or bfloat16, got device cpu"):
        Run(config(data, tmp_path / "r", cuda_graph=True))
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--cuda-graph", "--no-progress"]) == 1


def test_a_gpu_run_where_there_is_none_is_refused_clearly(data, tmp_path):
    from tinyllm.backend.array import cupy
    with pytest.raises(ValueError, match="unknown device 'tpu'; expected 'cpu' or 'cuda'"):
        Run(config(data, tmp_path / "r", device="tpu"))
    try:
        cupy()
    except RuntimeError as err:
        with pytest.raises(RuntimeError, match=re.escape(str(err))):
            Run(config(data, tmp_path / "r", device="cuda"))
    else:
        pytest.skip("this machine has a GPU")


def test_a_run_trained_on_the_gpu_is_evaluated_on_the_host(data, tmp_path, capsys):
    """`tinyllm eval` runs on the CPU unless told otherwise, wherever the run was trained (its
    config.json says cuda here, as a GPU run's does)."""
    run = tmp_path / "gpu-run"
    train(config(data, run, max_steps=3), progress=False, log=lambda *a: None)
    saved = json.loads((run / "config.json").read_text())
    saved["train"]["device"] = "cuda"
    (run / "config.json").write_text(json.dumps(saved))
    assert cli.main(["eval", "--run", str(run)]) == 0
    assert "bits per byte" in capsys.readouterr().out


def test_the_loss_scaler_skips_a_step_with_inf_gradients_and_recovers(data, tmp_path, monkeypatch):
    from tinyllm.tensor import Tensor
    real_backward, real_step, lines = Tensor.backward, Run.train_step, []

    def step_with_an_inf_gradient_at_step_2(self):
        if self.step != 1:
            return real_step(self)
        first = next(iter(self.model.parameters()))

        def backward_then_overflow(tensor, *args, **kwargs):
            real_backward(tensor, *args, **kwargs)
            first.grad.data.flat[0] = np.inf
        monkeypatch.setattr(Tensor, "backward", backward_then_overflow)
        try:
            return real_step(self)
        finally:
            monkeypatch.setattr(Tensor, "backward", real_backward)
    monkeypatch.setattr(Run, "train_step", step_with_an_inf_gradient_at_step_2)
    train(config(data, tmp_path / "fp16", dtype="float16"), progress=False, log=lines.append)
    rows = read_metrics(tmp_path / "fp16" / "metrics.jsonl")
    assert [r["skipped"] for r in rows] == [False, True, False, False, False, False]
    assert any("step 2: inf/NaN gradients, step skipped; loss scale now 32768" in line for line in lines)
    assert all(np.isfinite(r["loss"]) for r in rows)


def test_train_eval_sample_from_the_command_line(data, tmp_path, capsys):
    run = tmp_path / "cli"
    (tmp_path / "train.toml").write_text(f'data = "{data}"\nbatch_size = 4\nmax_steps = 3\neval_interval = 3\n'
                                         'eval_batches = 1\ncheckpoint_interval = 3\n')
    args = ["train", "--config", str(tmp_path / "train.toml"), "--out", str(run), "--no-progress",
            "--set", "n_layer=1", "--set", "n_embd=16", "--set", "n_head=2", "--set", "block_size=16"]
    assert cli.main(args) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["max_steps"] == 3 and saved["model"]["n_embd"] == 16 and saved["model"]["vocab_size"] == 300
    assert (run / "loss.png").is_file() and len(read_metrics(run / "metrics.jsonl")) == 3
    assert cli.main(["eval", "--run", str(run)]) == 0
    assert "bits per byte" in capsys.readouterr().out
    assert cli.main(["sample", "--run", str(run), "--prompt", "the king", "--max-new-tokens", "5", "--seed", "0"]) == 0
    assert capsys.readouterr().out.startswith("the king")


def test_bad_configuration_is_refused_clearly(data, tmp_path):
    (tmp_path / "bad.json").write_text('{"data": "x", "learning_rate": 1}')
    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['learning_rate'\]"):
        TrainConfig.from_dict(load_config_file(tmp_path / "bad.json"), where="bad.json")
    assert cli.main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 1
    assert cli.main(["eval", "--run", str(tmp_path / "not-a-run")]) == 1
