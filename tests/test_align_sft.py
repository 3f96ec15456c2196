"""SFT: the loss counts the assistant's tokens only, and a run resumes exactly."""
import json

import numpy as np
import pytest

pytest.importorskip("tinyllm._C", reason="the tokenizer needs the compiled module")

from align_runs import pretrained_run, resume_matches_a_whole_run, reverse_task, write_jsonl  # noqa: E402
from run_checks import gpu_run_matches_cpu_run  # noqa: E402
from tinyllm import cli  # noqa: E402
from tinyllm.align.data import IGNORE, encode_example, pad_batch  # noqa: E402
from tinyllm.align.sft import SFTConfig, SFTRun, sft  # noqa: E402
from tinyllm.align.template import encode_chat  # noqa: E402
from tinyllm.sample import load_run_model  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return pretrained_run(tmp_path_factory.mktemp("align"))


@pytest.fixture(scope="module")
def chat_data(base):
    tasks = reverse_task(24)
    train = write_jsonl(base.parent / "sft.jsonl", [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": a}]}
                                                    for p, a, _ in tasks[:16]])
    val = write_jsonl(base.parent / "sft_val.jsonl", [{"instruction": p, "output": a} for p, a, _ in tasks[16:]])
    return train, val


def config(base, chat_data, out, **changes):
    train, val = chat_data
    values = dict(base=str(base), data=str(train), val=str(val), out=str(out), batch_size=4, max_steps=6, warmup_steps=2,
                  eval_interval=3, eval_batches=2, checkpoint_interval=3, lr=1e-2)
    return SFTConfig(**{**values, **changes})


def test_the_sft_loss_is_the_mean_cross_entropy_of_the_assistant_tokens_only(base, chat_data, tmp_path):
    run = SFTRun(config(base, chat_data, tmp_path / "run"))
    model, tokenizer = run.model, run.tokenizer
    chats = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "reverse king"},
              {"role": "assistant", "content": "gnik"}],
             [{"role": "user", "content": "reverse night"}, {"role": "assistant", "content": "thgin"},
              {"role": "user", "content": "and day"}, {"role": "assistant", "content": "yad"}]]
    inputs, targets = pad_batch([encode_example(tokenizer, c, 32) for c in chats])
    loss = run._loss(inputs, targets)
    logits, full_loss = model(inputs, targets)  # the same loss, the head run at every position
    logits = logits.detach().numpy().astype(np.float64)
    nll = []
    for row, chat in enumerate(chats):  # by hand: -log softmax at each assistant token, from encode_chat's mask
        ids, mask = encode_chat(tokenizer, chat)
        for t in np.flatnonzero(mask):
            z = logits[row, t - 1]
            nll.append(np.log(np.exp(z - z.max()).sum()) + z.max() - z[ids[t]])
    replies = [len(tokenizer.encode(m["content"])) + 1 for c in chats for m in c if m["role"] == "assistant"]  # + <|end|>
    assert (targets != IGNORE).sum() == len(nll) == sum(replies)
    np.testing.assert_allclose(loss.item(), np.mean(nll), rtol=1e-5)
    np.testing.assert_allclose(full_loss.item(), np.mean(nll), rtol=1e-5)


def test_an_sft_run_resumes_to_the_same_weights_and_loads_as_a_chat_model(base, chat_data, tmp_path, monkeypatch):
    rows = resume_matches_a_whole_run(SFTRun, sft, lambda out: config(base, chat_data, out), tmp_path, monkeypatch)
    assert "val_loss" in rows[2] and "val_loss" in rows[5]
    model, tokenizer = load_run_model(tmp_path / "whole")
    assert model.config.vocab_size == tokenizer.vocab_size == 304 and tokenizer.token_to_id("<|end|>") == 303


@pytest.mark.cuda
def test_an_sft_run_on_the_gpu_matches_the_same_run_on_the_cpu(base, chat_data, tmp_path):
    gpu_run_matches_cpu_run(sft, lambda out, **device: config(base, chat_data, out, **device), tmp_path,
                            ("loss", "grad_norm", "val_loss"))


def test_sft_from_the_command_line(base, chat_data, tmp_path):
    train, val = chat_data
    out = tmp_path / "cli"
    args = ["sft", "--base", str(base), "--data", str(train), "--val", str(val), "--out", str(out), "--max-steps", "2",
            "--batch-size", "2", "--eval-interval", "2", "--checkpoint-interval", "2", "--no-progress"]
    assert cli.main(args) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["sft"]["max_steps"] == 2 and saved["sft"]["base"] == str(base) and saved["model"]["vocab_size"] == 304
    (tmp_path / "bad.jsonl").write_text('{"messages": []}\n{"instruction": "hi", "output": 3}\n')
    assert cli.main(["sft", "--base", str(base), "--data", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "x")]) == 1
