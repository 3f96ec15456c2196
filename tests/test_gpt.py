"""The GPT against the same model written in plain PyTorch, on the same weights: logits, loss and
every parameter's gradient, for the GPT-2 and the Llama architecture; plus init, the optimizer
groups, the config checks and a tiny model that learns a batch by heart."""
import math

import numpy as np
import pytest

import tinyllm
from tinyllm.models import GPT, GPTConfig

torch = pytest.importorskip("torch")
from torch_gpt import TorchGPT  # noqa: E402

GPT2_TINY = GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=4, n_embd=32)
LLAMA_TINY = GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, mlp_hidden=48,
                       pos_encoding="rope", rope_theta=500.0, norm="rmsnorm", norm_eps=1e-6, mlp="swiglu", bias=False,
                       tie_weights=False)


@pytest.mark.parametrize("config", [GPT2_TINY, LLAMA_TINY], ids=["gpt2", "llama"])
def test_forward_and_backward_match_pytorch(config):
    ours = GPT(config)
    theirs = TorchGPT(config)
    state = ours.state_dict()
    assert set(state) == set(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v.data) for k, v in state.items()})
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, config.vocab_size, (3, 11)), rng.integers(0, config.vocab_size, (3, 11))
    targets[1, 4:7] = -100

    logits, loss = ours(tinyllm.tensor(idx), tinyllm.tensor(targets))
    loss.backward()
    their_logits, their_loss = theirs(torch.tensor(idx), torch.tensor(targets))
    their_loss.backward()

    np.testing.assert_allclose(logits.data, their_logits.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss.item(), their_loss.item(), rtol=1e-6)
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        g = their_params[name].grad.numpy()
        np.testing.assert_allclose(p.grad.data, g, rtol=1e-4, atol=1e-6 * np.abs(g).max(), err_msg=name)


def test_loss_is_none_without_targets():
    logits, loss = GPT(GPT2_TINY)(np.zeros((2, 5), np.int64))
    assert logits.shape == (2, 5, 37) and loss is None


def test_learned_positions_stop_at_block_size():
    with pytest.raises(ValueError, match="block_size"):
        GPT(GPT2_TINY)(np.zeros((1, 17), np.int64))


def test_gpt2_initialisation():
    config = GPTConfig(vocab_size=300, block_size=16, n_layer=8, n_head=4, n_embd=64)
    model = GPT(config)
    params = dict(model.named_parameters())
    assert "lm_head.weight" not in params and model.lm_head.weight is model.transformer.wte.weight  # tied: counted once
    assert np.std(params["transformer.h.0.mlp.c_fc.weight"].data) == pytest.approx(0.02, rel=0.05)
    assert np.std(params["transformer.h.3.attn.c_proj.weight"].data) == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert np.std(params["transformer.wte.weight"].data) == pytest.approx(0.02, rel=0.05)
    assert not params["transformer.h.0.attn.c_attn.bias"].data.any()
    assert (params["transformer.h.0.ln_1.weight"].data == 1).all()
    assert model.num_parameters() == sum(p.size for p in (q.data for q in params.values()))


def test_weight_decay_only_on_linear_matrices():
    for config in (GPT2_TINY, LLAMA_TINY):
        model = GPT(config)
        opt = model.configure_optimizers(weight_decay=0.1, lr=1e-3, betas=(0.9, 0.95))
        names = {id(p): n for n, p in model.named_parameters()}
        decayed = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
        plain = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
        assert decayed | plain == set(names.values()) and not decayed & plain
        expected = {n for n in names.values() if n.endswith("weight") and (".attn." in n or ".mlp." in n)}
        if not config.tie_weights:
            expected.add("lm_head.weight")
        assert decayed == expected


def test_presets_and_config_checks():
    small = GPTConfig.from_preset("small")
    assert (small.vocab_size, small.n_embd, small.n_layer, small.n_head, small.block_size) == (8192, 256, 4, 4, 128)
    assert GPTConfig.from_preset("llama").n_kv_head == 4 and GPTConfig(mlp="swiglu", n_embd=768).mlp_hidden == 2048
    with pytest.raises(ValueError, match="unknown preset"):
        GPTConfig.from_preset("gpt5")
    with pytest.raises(ValueError, match="n_kv_head"):
        GPTConfig(n_head=4, n_kv_head=3, n_embd=32)
    with pytest.raises(ValueError, match="norm"):
        GPTConfig(norm="batchnorm")


def test_tiny_model_overfits_a_batch():
    config = GPTConfig(vocab_size=16, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = GPT(config)
    idx = np.random.default_rng(0).integers(0, 16, (2, 17))
    opt = model.configure_optimizers(weight_decay=0.0, lr=1e-2, betas=(0.9, 0.95))
    for _ in range(50):
        opt.zero_grad()
        _, loss = model(idx[:, :-1], idx[:, 1:])
        loss.backward()
        opt.step()
    assert loss.item() < 0.01  # from ln(16) = 2.8
