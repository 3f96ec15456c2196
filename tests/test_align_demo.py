"""The alignment demonstration end to end on a tiny base and made-up plays: every stage measured and
saved, a second call resumes to the same figures, bad settings refused before any work."""
import json

import pytest

pytest.importorskip("tinyllm._C", reason="the tokenizer needs the compiled module")

from align_runs import made_up_plays, pretrained_run  # noqa: E402
from tinyllm import cli  # noqa: E402
from tinyllm.align import tasks  # noqa: E402
from tinyllm.align.demo import align_demo  # noqa: E402

LOOP = dict(max_steps=2, batch_size=4, warmup_steps=1, eval_interval=2, checkpoint_interval=2)
SETTINGS = dict(sft=dict(LOOP, lr=1e-3, min_lr=1e-4), dpo=dict(LOOP, lr=1e-4, min_lr=1e-5, beta=0.1, rpo_alpha=1.0))
N_VAL = 9


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return pretrained_run(tmp_path_factory.mktemp("demo"), block_size=256)


def task_data(out):
    """The demo's task files, from made-up plays (the demo makes them from Shakespeare when absent)."""
    tasks.build_datasets(out / "data", seed=0, n_train=36, n_val=N_VAL, n_eval=18, texts=made_up_plays())
    return out


def run_demo(base, out, **changes):
    lines = []
    return align_demo(base, out, log=lines.append, progress=False, **{**SETTINGS, **changes}), lines


def test_the_demo_measures_every_stage_saves_the_figures_and_resumes_to_them(base, tmp_path):
    out = task_data(tmp_path / "demo")
    results, lines = run_demo(base, out)
    for stage in ("base", "sft", "dpo"):
        assert set(results[stage]) == {"overall", *tasks.TASKS}
        assert all(0 <= accuracy <= 1 for accuracy in results[stage].values())
    assert results["preference_before"]["val_rewards/accuracies"] == 0.5  # policy = reference
    assert 0 <= results["preference_after"]["val_rewards/accuracies"] <= 1
    dpo_pairs = SETTINGS["dpo"]["max_steps"] * SETTINGS["dpo"]["batch_size"]
    assert sum(results["rejected_by"]["dpo_train.jsonl"].values()) == dpo_pairs
    assert sum(results["rejected_by"]["dpo_val.jsonl"].values()) == N_VAL
    assert results["sft_seconds"] > 0 and results["dpo_seconds"] > 0 and results["device"] == "cpu"
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert "held-out preference accuracy" in lines[-1] and "SFT + DPO" in lines[-1]  # the table

    logged = {stage: (out / stage / "metrics.jsonl").read_text() for stage in ("sft", "dpo")}
    again, _ = run_demo(base, out)  # every stage finished: nothing is trained again
    assert {stage: (out / stage / "metrics.jsonl").read_text() for stage in ("sft", "dpo")} == logged
    for key in ("base", "sft", "dpo", "preference_after", "preference_after_by_task", "preference_after_task_pairs"):
        assert again[key] == results[key], key


def test_the_made_up_wrong_answers_train_dpo_when_asked(base, tmp_path):
    results, _ = run_demo(base, task_data(tmp_path / "task"), rejected="task")
    assert "rejected_by" not in results and "preference_after_task_pairs" not in results
    assert set(results["preference_after_by_task"]) == {"overall", *tasks.TASKS}


def test_bad_settings_are_refused_before_any_work(base, tmp_path):
    with pytest.raises(ValueError, match="rejected must be 'model'.*got 'bogus'"):
        run_demo(base, tmp_path / "a", rejected="bogus")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        run_demo(base, tmp_path / "b", device="gpu")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert cli.main(["align-demo", "--base", str(base), "--out", str(tmp_path / "c"), "--device", "gpu"]) == 1


@pytest.mark.cuda
def test_the_demo_on_the_gpu_trains_as_on_the_cpu(base, tmp_path):
    """On the made-up pairs, which no greedy answer decides (the tiny model's near-ties could go either
    way in another float rounding), the losses and rewards agree."""
    on_cpu, _ = run_demo(base, task_data(tmp_path / "cpu"), rejected="task")
    on_gpu, _ = run_demo(base, task_data(tmp_path / "gpu"), rejected="task", device="cuda")
    assert on_gpu["device"] == "cuda" and set(on_gpu["dpo"]) == set(on_cpu["dpo"])
    assert on_gpu["sft_val_loss"] == pytest.approx(on_cpu["sft_val_loss"], rel=1e-4)
    for key, value in on_cpu["preference_after"].items():
        assert on_gpu["preference_after"][key] == pytest.approx(value, rel=1e-3, abs=1e-5), key
