"""DPO training: sequence log-probabilities over the answer only, log 2 at step 0, exact resume."""
import json
import math
import shutil

import numpy as np
import pytest

pytest.importorskip("tinyllm._C", reason="the tokenizer needs the compiled module")

from align_runs import pretrained_run, resume_matches_a_whole_run, reverse_task, write_jsonl  # noqa: E402
from run_checks import gpu_run_matches_cpu_run  # noqa: E402
from tinyllm import cli  # noqa: E402
from tinyllm.align.data import encode_pair, pad_batch  # noqa: E402
from tinyllm.align.dpo_train import DPOConfig, DPORun, dpo  # noqa: E402
from tinyllm.align.logprobs import sequence_logps, token_kl  # noqa: E402
from tinyllm.align.sft import load_chat_model  # noqa: E402
from tinyllm.align.template import encode_chat  # noqa: E402
from tinyllm.creation import tensor  # noqa: E402

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return pretrained_run(tmp_path_factory.mktemp("align"))


@pytest.fixture(scope="module")
def pairs(base):
    tasks = reverse_task(24)
    records = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in tasks]
    records[0]["prompt"] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": tasks[0][0]}]
    return write_jsonl(base.parent / "pairs.jsonl", records[:16]), write_jsonl(base.parent / "pairs_val.jsonl", records[16:])


@pytest.fixture(scope="module")
def sft_with_dropout(base):
    """A copy of the base run whose model has dropout 0.5."""
    run = shutil.copytree(base, base.parent / "with_dropout")
    values = json.loads((run / "config.json").read_text())
    values["model"]["dropout"] = 0.5
    (run / "config.json").write_text(json.dumps(values))
    return run


def config(base, pairs, out, **changes):
    values = dict(sft=str(base), data=str(pairs[0]), val=str(pairs[1]), out=str(out), batch_size=4, max_steps=6,
                  warmup_steps=2, eval_interval=3, eval_batches=1, checkpoint_interval=3, lr=1e-2)
    return DPOConfig(**{**values, **changes})


def test_sequence_logps_sum_the_log_probabilities_of_the_answer_tokens_only(base):
    model, tok = load_chat_model(base)
    prompt, chosen, rejected = [{"role": "user", "content": "reverse night"}], [{"role": "assistant", "content": "thgin"}], \
        [{"role": "assistant", "content": "night night"}]
    inputs, targets = pad_batch(list(encode_pair(tok, prompt, chosen, rejected, 32)))
    logits, _ = model(inputs)
    got = sequence_logps(model, inputs, targets).detach().numpy()
    z = logits.detach().numpy().astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    start = len(encode_chat(tok, prompt)[0])
    for row, answer in enumerate((chosen, rejected)):
        ids, _ = encode_chat(tok, prompt + answer)
        answer_ids = tok.encode(answer[0]["content"]) + [tok.token_to_id("<|end|>")]
        assert ids[start + 1:start + 1 + len(answer_ids)].tolist() == answer_ids
        expected = sum(logp[row, t - 1, ids[t]] for t in range(start + 1, start + 1 + len(answer_ids)))  # not the marker
        np.testing.assert_allclose(got[row], expected, rtol=1e-5)


def test_sequence_logps_has_the_gradient_of_the_direct_sum(base):
    model, tok = load_chat_model(base)
    pairs = [encode_pair(tok, [{"role": "user", "content": p}], [{"role": "assistant", "content": c}],
                         [{"role": "assistant", "content": r}], 32) for p, c, r in reverse_task(2, seed=1)]
    inputs, targets = pad_batch([e for pair in pairs for e in pair])
    weights = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    (sequence_logps(model, inputs, targets) * tensor(weights)).sum().backward()
    sparse = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
    model.zero_grad()
    logits, _ = model(inputs)  # the same weighted sum, from every position's logits
    logp = logits - logits.exp().sum(dim=-1, keepdim=True).log()
    picked = np.where(targets != -100, 1.0, 0.0)[..., None] * (np.arange(logits.shape[-1]) == np.maximum(targets, 0)[..., None])
    (logp * tensor((picked * weights[:, None, None]).astype(np.float32))).sum().backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(sparse[name], p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


def test_token_kl_is_zero_for_equal_models_and_matches_a_direct_sum():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    assert token_kl(p, p) == pytest.approx(0.0, abs=1e-12)
    P, Q = (np.exp(x) / np.exp(x).sum(-1, keepdims=True) for x in (p, q))
    assert token_kl(p, q) == pytest.approx(np.mean((P * np.log(P / Q)).sum(-1)))


def test_the_first_step_has_loss_exactly_log_2_zero_rewards_and_kl(base, pairs, tmp_path):
    run = DPORun(config(base, pairs, tmp_path / "first"))
    row = run.forward_backward()  # policy == reference, on the same batch
    assert row["loss"] == pytest.approx(math.log(2), rel=1e-7)
    assert row["rewards/chosen"] == row["rewards/rejected"] == row["rewards/margins"] == row["kl"] == 0.0
    assert row["rewards/accuracies"] == 0.5  # every pair a tie
    np.testing.assert_array_equal(run.pair_logps(run.model, run.val_pairs), run.pair_logps(run.reference, run.val_pairs))


def test_the_policy_trains_without_the_sft_models_dropout_unless_told_to_keep_it(sft_with_dropout, pairs, tmp_path):
    run = DPORun(config(sft_with_dropout, pairs, tmp_path / "off"))
    assert run.model.config.dropout == 0.0
    row = run.forward_backward()
    assert row["loss"] == pytest.approx(math.log(2), rel=1e-7) and row["rewards/chosen"] == row["kl"] == 0.0  # policy == reference
    kept = DPORun(config(sft_with_dropout, pairs, tmp_path / "kept", disable_dropout=False))
    assert kept.model.config.dropout == 0.5
    row = kept.forward_backward()
    assert row["rewards/chosen"] != 0.0 and row["kl"] > 0.0  # dropout's noise in the rewards


def test_pair_logps_are_measured_without_dropout_and_keep_the_models_mode(sft_with_dropout, pairs, tmp_path):
    run = DPORun(config(sft_with_dropout, pairs, tmp_path / "kept", disable_dropout=False))
    assert run.model.training
    np.testing.assert_array_equal(run.pair_logps(run.model, run.val_pairs), run.pair_logps(run.reference, run.val_pairs))
    assert run.model.training


def test_rpo_adds_alpha_times_the_chosen_answers_nll_per_token(base, pairs, tmp_path):
    run = DPORun(config(base, pairs, tmp_path / "rpo", rpo_alpha=0.5))
    batch = run.train_pairs[:4]
    loss, row = run._loss(batch)
    inputs, targets = pad_batch([c for c, _ in batch])
    chosen_logps = sequence_logps(run.model, inputs, targets).detach().numpy()
    expected_nll = -chosen_logps.sum() / (targets != -100).sum()
    assert row["nll_loss"] == pytest.approx(expected_nll, rel=1e-5)
    assert loss.item() == pytest.approx(math.log(2) + 0.5 * expected_nll, rel=1e-6)  # policy == reference: DPO's part is log 2
    with pytest.raises(ValueError, match="rpo-alpha"):
        DPORun(config(base, pairs, tmp_path / "bad", rpo_alpha=-1.0))


def test_a_dpo_run_resumes_to_the_same_weights_and_logs_the_preference_metrics(base, pairs, tmp_path, monkeypatch):
    rows = resume_matches_a_whole_run(DPORun, dpo, lambda out: config(base, pairs, out), tmp_path, monkeypatch)
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "kl", "val_loss",
                "val_rewards/accuracies", "val_kl"):
        assert key in rows[5]


@pytest.mark.cuda
def test_a_dpo_run_on_the_gpu_matches_the_same_run_on_the_cpu(base, pairs, tmp_path):
    gpu_run_matches_cpu_run(dpo, lambda out, **device: config(base, pairs, out, **device), tmp_path,
                            ("loss", "nll_loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "kl", "grad_norm",
                             "val_loss", "val_rewards/margins"))


def test_dpo_from_the_command_line(base, pairs, tmp_path):
    out = tmp_path / "cli"
    args = ["dpo", "--sft", str(base), "--data", str(pairs[0]), "--out", str(out), "--max-steps", "1", "--batch-size", "2",
            "--beta", "0.5", "--loss-type", "ipo", "--no-progress"]
    assert cli.main(args) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["dpo"]["beta"] == 0.5 and saved["dpo"]["loss_type"] == "ipo" and saved["dpo"]["disable_dropout"]
    assert cli.main(args + ["--keep-dropout", "--out", str(tmp_path / "kept")]) == 0
    assert not json.loads((tmp_path / "kept" / "config.json").read_text())["dpo"]["disable_dropout"]
    assert cli.main(args[:-1] + ["--loss-type", "hinge", "--out", str(tmp_path / "x")]) == 1
