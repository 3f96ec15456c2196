"""The engine on the GPU: the same ops, modules, optimizer and GPT give on "cuda" (CuPy arrays, our
CUDA kernels) the values and gradients they give on "cpu" (NumPy, our C++ kernels), and devices
follow PyTorch's rules (.to(), device=..., the mixed-device error).

Tolerances, float32: the GPU sums in other orders than the CPU (cuBLASLt tiles, warp reductions),
so results differ by a few ulps per accumulation: ops and one GPT pass within 1e-4 relative
(gradients of sums over ~100-term products land near 1e-6..1e-5). Twenty AdamW steps let those
differences grow through the updates, so the losses are compared at 1e-4. bfloat16 autocast: the
matmul and attention operands are rounded to 8 bits of mantissa on both devices, but the products
are summed in other orders and rounded again, so the loss agrees to 1e-2.
"""
import dataclasses
import functools
import types

import numpy as np
import pytest

import tinyllm
from tinyllm.amp import autocast
from tinyllm.models import GPT, GPTConfig

cupy = pytest.importorskip("cupy")
from test_parity_torch import CASES  # noqa: E402
from tinyllm.backend import cuda as cuda_backend  # noqa: E402

pytestmark = pytest.mark.cuda

RTOL, ATOL = 1e-4, 1e-5

GPT2_TINY = GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=2, n_embd=128)  # head_dim 64: our attention kernel
LLAMA_TINY = GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=128, mlp_hidden=96,
                       pos_encoding="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_weights=False)
CONFIGS = pytest.mark.parametrize("config", [GPT2_TINY, LLAMA_TINY], ids=["gpt2", "llama"])


def on(device):
    """tinyllm, as the `lib` of the parity cases, with new tensors made on device."""
    names = ("nn", "where", "cat", "stack")
    return types.SimpleNamespace(**{n: getattr(tinyllm, n) for n in names}, tensor=functools.partial(tinyllm.tensor, device=device))


def run_case(device, fn, arrays):
    lib = on(device)
    inputs = [tinyllm.tensor(a, device=device, requires_grad=True) for a in arrays]
    out = fn(lib, tinyllm.nn.functional, *inputs)
    weights = np.random.default_rng(2).standard_normal(tuple(out.shape)).astype(np.float32)
    (out * tinyllm.tensor(weights, device=device)).sum().backward()
    assert out.device == device and all(t.grad.device == device for t in inputs)
    return out.detach().numpy(), [t.grad.numpy() for t in inputs]


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_on_gpu_matches_cpu(name):
    fn, shapes = CASES[name]
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    out, grads = run_case("cuda", fn, arrays)
    ref, ref_grads = run_case("cpu", fn, arrays)
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=RTOL, atol=ATOL)


def batch(config, B=3, T=20, seed=0):
    rng = np.random.default_rng(seed)
    idx, targets = rng.integers(0, config.vocab_size, (B, T)), rng.integers(0, config.vocab_size, (B, T))
    targets[1, 4:7] = -100
    return idx, targets


def forward_backward(model, device, idx, targets):
    model.zero_grad()
    logits, loss = model(tinyllm.tensor(idx, device=device), tinyllm.tensor(targets, device=device))
    loss.backward()
    return logits.detach().numpy(), loss.item(), {n: p.grad.numpy() for n, p in model.named_parameters()}


@CONFIGS
def test_gpt_logits_loss_and_gradients_on_gpu_match_cpu(config):
    model = GPT(config)
    idx, targets = batch(config)
    ref = forward_backward(model, "cpu", idx, targets)
    out = forward_backward(model.to("cuda"), "cuda", idx, targets)
    assert all(p.device == "cuda" for p in model.parameters())
    np.testing.assert_allclose(out[0], ref[0], rtol=RTOL, atol=ATOL)
    assert out[1] == pytest.approx(ref[1], rel=1e-5)
    for name, g in ref[2].items():
        np.testing.assert_allclose(out[2][name], g, rtol=RTOL, atol=1e-5 * np.abs(g).max(), err_msg=name)


def train(config, device, steps=20, amp_dtype=None):
    tinyllm.manual_seed(0)
    model = GPT(config).to(device)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
    losses = []
    for step in range(steps):
        idx, targets = batch(config, seed=step % 4)
        opt.zero_grad()
        with autocast(amp_dtype):
            _, loss = model(tinyllm.tensor(idx, device=device), tinyllm.tensor(targets, device=device))
        loss.backward()
        tinyllm.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
@CONFIGS
def test_training_on_gpu_matches_cpu(config, dropout):
    """With dropout both devices draw the same masks (one counter-based stream), the attention's inside
    the fused kernels on the GPU (head dim 64, 32 keys) and in the C++ kernel on the CPU."""
    config = dataclasses.replace(config, dropout=dropout)
    gpu, cpu = train(config, "cuda"), train(config, "cpu")
    assert gpu[-1] < gpu[0] - 0.3, "the model should learn the four batches"
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, err_msg=f"largest relative gap {np.max(np.abs(gpu / cpu - 1)):.2e}")


@pytest.mark.parametrize("amp_dtype", [tinyllm.bfloat16, tinyllm.float16])
def test_half_precision_autocast_training_on_gpu_matches_cpu(amp_dtype):
    # The GPU's kernels take both half types as they are (the CPU's upcast them to float32 first).
    assert cuda_backend.compute_dtype(amp_dtype) == amp_dtype
    gpu, cpu = train(GPT2_TINY, "cuda", steps=5, amp_dtype=amp_dtype), train(GPT2_TINY, "cpu", steps=5, amp_dtype=amp_dtype)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-2)


# ------------------------------------------------------------------------------------------------
# devices, PyTorch's way


def test_to_moves_and_casts_differentiably():
    x = tinyllm.randn(3, 4, requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and isinstance(y.data, cupy.ndarray) and x.to("cpu") is x
    (y * 2.0).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), 2.0, np.float32))
    z = x.detach().to("cuda", tinyllm.bfloat16)
    assert (z.device, z.dtype) == ("cuda", tinyllm.bfloat16)
    assert x.detach().cuda().cpu().device == "cpu" and x.to(z).dtype == tinyllm.bfloat16
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())
    assert y.detach()[0, 0].item() == x.detach()[0, 0].item() and y.detach().tolist() == x.detach().tolist()


def test_creation_on_the_gpu():
    for t in (tinyllm.zeros(2, 3, device="cuda"), tinyllm.ones(2, device="cuda"), tinyllm.full((2,), 7.0, device="cuda"),
              tinyllm.arange(5, device="cuda"), tinyllm.tensor([1.0, 2.0], device="cuda"), tinyllm.randn(4, device="cuda"),
              tinyllm.rand(4, device="cuda"), tinyllm.randint(0, 9, (4,), device="cuda"), tinyllm.zeros_like(tinyllm.ones(2, device="cuda"))):
        assert t.device == "cuda" and isinstance(t.data, cupy.ndarray)
    tinyllm.manual_seed(3)
    a = tinyllm.randn(1000, device="cuda").numpy()
    tinyllm.manual_seed(3)
    np.testing.assert_array_equal(a, tinyllm.randn(1000, device="cuda").numpy())
    assert abs(a.mean()) < 0.1 and abs(a.std() - 1) < 0.1


def test_mixing_devices_is_an_error():
    with pytest.raises(RuntimeError, match="expected all tensors on the same device, got cpu and cuda"):
        tinyllm.randn(3) + tinyllm.randn(3, device="cuda")
    with pytest.raises(RuntimeError, match="same device"):
        tinyllm.nn.functional.embedding(tinyllm.tensor([1, 2]), tinyllm.randn(4, 3, device="cuda"))


def test_module_to_keeps_the_parameters_so_the_optimizer_still_works():
    model = tinyllm.nn.Linear(4, 3)
    opt = tinyllm.optim.AdamW(model.parameters(), lr=0.1)
    weight = model.weight
    before = weight.detach().numpy().copy()
    assert model.cuda() is model and model.weight is weight and weight.device == "cuda"
    model(tinyllm.randn(2, 4, device="cuda")).sum().backward()
    opt.step()
    assert weight.device == "cuda" and not np.allclose(weight.detach().numpy(), before)
    model.to("cpu")
    assert weight.device == "cpu" and weight.grad.device == "cpu"


def test_dropout_on_the_gpu_draws_the_cpus_masks():
    """One counter-based stream serves both devices: the same seed gives the same masks, forward and
    backward (which draws its mask again from the forward's key)."""
    values = np.random.default_rng(0).standard_normal((8, 1250)).astype(np.float32)
    out = {}
    for device in ("cpu", "cuda"):
        tinyllm.manual_seed(1)
        x = tinyllm.tensor(values, device=device, requires_grad=True)
        y = tinyllm.nn.functional.dropout(x, 0.25)
        (y * y).sum().backward()
        out[device] = y.detach().numpy(), x.grad.numpy()
    np.testing.assert_array_equal(out["cuda"][0], out["cpu"][0])
    np.testing.assert_array_equal(out["cuda"][1], out["cpu"][1])
    kept = out["cuda"][0] != 0
    np.testing.assert_allclose(out["cuda"][1], np.where(kept, 2 * out["cuda"][0] / 0.75, 0.0), rtol=1e-6)
    assert abs(1 - kept.mean() - 0.25) < 0.03


def test_attention_with_dropout_on_the_gpu_draws_the_cpus_masks():
    rng = np.random.default_rng(1)
    q, k, v, do = (rng.standard_normal((2, 4, 33, 16)).astype(np.float32) for _ in range(4))
    out = {}
    for device in ("cpu", "cuda"):
        tinyllm.manual_seed(2)
        qt, kt, vt = (tinyllm.tensor(a, device=device, requires_grad=True) for a in (q, k, v))
        o = tinyllm.nn.functional.scaled_dot_product_attention(qt, kt, vt, dropout_p=0.2, is_causal=True)
        (o * tinyllm.tensor(do, device=device)).sum().backward()
        out[device] = [o.detach().numpy(), qt.grad.numpy(), kt.grad.numpy(), vt.grad.numpy()]
    for got, want in zip(out["cuda"], out["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_grad_scaler_finds_inf_on_the_gpu():
    p = tinyllm.nn.Parameter(tinyllm.ones(3, device="cuda"))
    opt = tinyllm.optim.SGD([p], lr=0.1)
    scaler = tinyllm.amp.GradScaler(init_scale=4.0)
    p.grad = tinyllm.tensor([4.0, float("inf"), 0.0], device="cuda")
    assert scaler.step(opt) is False
    np.testing.assert_array_equal(p.detach().numpy(), np.ones(3, np.float32))


# ------------------------------------------------------------------------------------------------
# bad ids: found on the device, raised at the next read on the host


def test_ids_out_of_range_raise_at_the_next_read_on_the_host():
    F = tinyllm.nn.functional
    weight = tinyllm.randn(10, 4, device="cuda")
    out = F.embedding(tinyllm.tensor(np.array([[1, 12]]), device="cuda"), weight)  # no wait for the device here
    with pytest.raises(IndexError, match=r"embedding: ids must be in \[0, 10\), got min 1 and max 12"):
        out.sum().item()
    assert np.isfinite(out.sum().item()), "reported once"
    with pytest.raises(IndexError, match=r"got min 0 and max 10"):
        F.embedding(tinyllm.tensor(np.array([0, 10]), device="cuda"), weight).tolist()
    logits = tinyllm.randn(3, 5, device="cuda")
    assert np.isfinite(F.cross_entropy(logits, tinyllm.tensor(np.array([0, -100, 4]), device="cuda")).item())
    loss = F.cross_entropy(logits, tinyllm.tensor(np.array([0, 5, 4]), device="cuda"))
    with pytest.raises(IndexError, match=r"cross_entropy: targets must be in \[0, 5\) or ignore_index=-100"):
        loss.numpy()
