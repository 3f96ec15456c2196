"""The training step on the GPU: its kernels (strided copies, casts, linear bias, RoPE, loss scaling's unscale,
global gradient norm, clipping, multi-tensor AdamW) against the reference and PyTorch, the whole GPT's logits and every gradient
against PyTorch CUDA, and a step captured in a CUDA graph against the same step run eagerly.

Tolerances as in test_cuda_kernels.py (||out - ref|| / ||ref||): float32 2e-5, bfloat16 1e-2. The GPT
against PyTorch runs in float32 with TF32 off on both sides: 1e-4 (sums in other orders, through two
layers and a cross-entropy). The captured step runs the same kernels on the same data as the eager
one, so its losses agree to 1e-6.
"""
import dataclasses

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
torch = pytest.importorskip("torch")

import tinyllm  # noqa: E402
import tinyllm.cuda_graph  # noqa: E402
from tinyllm import dtypes  # noqa: E402
from tinyllm.backend import cuda, reference  # noqa: E402
from tinyllm.models import GPT, GPTConfig  # noqa: E402
from test_cuda_kernels import DTYPES, TOL, close, f64, rand  # noqa: E402
from torch_gpt import TorchGPT  # noqa: E402

pytestmark = pytest.mark.cuda
if not torch.cuda.is_available():
    pytest.skip("PyTorch sees no GPU", allow_module_level=True)


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(cuda, "_empty", lambda shape, dtype=np.float32: cupy.full(shape, np.nan, dtype))


# ------------------------------------------------------------------------------------------------
# kernels

# Sizes: 1, odd (scalar path), a multiple of the vector, and more than one 65536-element chunk.
SIZES = [1, 3, 17, 127, 768, 70001, 2 * 65536 + 8]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (17, 127), (5000, 768), (1000, 3)])
def test_bias_forward_and_backward(dtype, shape):
    x, b = rand(shape, dtype), rand(shape[-1:], dtype)
    close(cuda.sum_rows(x), reference.sum_rows(f64(x)), TOL[np.dtype(dtype)])
    close(cuda.sum_rows(x), torch.from_dlpack(x).double().sum(0).cpu().numpy(), TOL[np.dtype(dtype)])
    y, ref = x.copy(), f64(x)
    cuda.add_bias_(y, b)
    reference.add_bias_(ref, f64(b))
    close(y, ref, TOL[np.dtype(dtype)])
    close(y, (torch.from_dlpack(x) + torch.from_dlpack(b)).double().cpu().numpy(), TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", ["transpose12", "transpose_last", "slice", "reversed", "broadcast", "odd"])
def test_contiguous_copies_strided_views_exactly(dtype, view):
    x = rand((2, 24, 3, 64), dtype)
    views = {"transpose12": lambda: x.transpose(0, 2, 1, 3), "transpose_last": lambda: x.transpose(0, 1, 3, 2),
             "slice": lambda: x[:, 1:20:2, 1:], "reversed": lambda: x[::-1, :, :, ::-1],
             "broadcast": lambda: cupy.broadcast_to(x[:1, :1], (4, 5, 3, 64)), "odd": lambda: rand((3, 5, 7), dtype)[:, :, 1:]}
    v = views[view]()
    out = cuda.contiguous(v)
    assert out.flags.c_contiguous and out.shape == v.shape
    np.testing.assert_array_equal(cupy.asnumpy(out).view(np.uint8), cupy.asnumpy(cupy.ascontiguousarray(v)).view(np.uint8))


@pytest.mark.parametrize("shape", [(1,), (3, 17), (127, 8), (5000, 768)])
def test_cast_is_astype_bit_for_bit(shape):
    """Both ways between float32 and bfloat16, rounding to nearest even as astype (ml_dtypes) does."""
    x = rand(shape, np.float32, 100.0)
    down = cuda.cast(x, dtypes.bfloat16)
    assert down.dtype == dtypes.bfloat16
    np.testing.assert_array_equal(cupy.asnumpy(down).view(np.uint16), cupy.asnumpy(x).astype(dtypes.bfloat16).view(np.uint16))
    up = cuda.cast(down, np.float32)
    np.testing.assert_array_equal(cupy.asnumpy(up), cupy.asnumpy(down).astype(np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (3, 17), (70001,)])
def test_cast_to_the_same_dtype_is_a_new_copy(dtype, shape):
    x = rand(shape, dtype, 100.0)
    y = cuda.cast(x, dtype)
    assert y.dtype == x.dtype and y.shape == x.shape and (x.size == 0 or y.data.ptr != x.data.ptr)
    np.testing.assert_array_equal(cupy.asnumpy(y), cupy.asnumpy(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 2), (3, 17, 8), (2, 3, 17, 64), (1, 4, 33, 128)])
def test_rope_forward_and_backward(dtype, shape):
    """Against the reference and a rotate_half RoPE written in PyTorch (as Hugging Face's Llama)."""
    T, D = shape[-2:]
    x, cos, sin = rand(shape, dtype), rand((T, D // 2), dtype), rand((T, D // 2), dtype)
    tol = TOL[np.dtype(dtype)]
    tx, tc, ts = (torch.from_dlpack(a).double() for a in (x, cos, sin))
    c2, s2 = torch.cat([tc, tc], -1), torch.cat([ts, ts], -1)
    rotate_half = lambda t: torch.cat([-t[..., D // 2:], t[..., :D // 2]], -1)
    close(cuda.rope_forward(x, cos, sin), reference.rope_forward(f64(x), f64(cos), f64(sin)), tol)
    close(cuda.rope_forward(x, cos, sin), (tx * c2 + rotate_half(tx) * s2).cpu().numpy(), tol)
    close(cuda.rope_backward(x, cos, sin), reference.rope_backward(f64(x), f64(cos), f64(sin)), tol)
    assert "rope_forward" in cuda.native_kernels() and "rope_backward" in cuda.native_kernels()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nonfinite", [None, np.inf, np.nan])
def test_unscale_grads_matches_the_reference_and_torch(dtype, nonfinite):
    """170 tensors, more than one launch's 160, with the non-finite value (if any) in the second launch.
    PyTorch's kernel (float32 and float16 only) also computes in float32 and rounds once to the storage
    dtype: the same bits."""
    grads = [rand((SIZES[i % len(SIZES)],), dtype) for i in range(170)]
    if nonfinite is not None:
        grads[165][SIZES[165 % len(SIZES)] // 2] = nonfinite
    expected = [f64(g) / 1024 for g in grads]
    theirs, their_flag = [torch.from_dlpack(g).clone() for g in grads], torch.zeros((), device="cuda")
    found = cupy.zeros((), np.float32)
    cuda.unscale_grads_(grads, 1 / 1024, found)
    assert float(found) == (0.0 if nonfinite is None else 1.0)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(f64(g), e, rtol=TOL[np.dtype(dtype)], atol=1e-7)  # float16's subnormals
    if dtype != dtypes.bfloat16:
        torch._amp_foreach_non_finite_check_and_unscale_(theirs, their_flag, torch.tensor(1 / 1024, device="cuda"))
        assert float(their_flag) == float(found)
        for g, t in zip(grads, theirs):
            np.testing.assert_array_equal(f64(g), t.double().cpu().numpy())
    cuda.unscale_grads_(grads[:3], 1.0, found)  # finite gradients leave the flag as it was
    assert float(found) == (0.0 if nonfinite is None else 1.0)
    assert "unscale_grads" in dir(cuda._cuda)


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_norm_and_clip(dtype):
    grads = [rand((n,), dtype) for n in SIZES] + [rand((3, 5), dtype)]
    norm = cuda.grad_norm(grads)
    ref = reference.grad_norm([f64(g) for g in grads])
    close(norm, ref, 1e-5)  # float32 accumulation over ~270k terms
    theirs = [torch.from_dlpack(g).float().clone().requires_grad_() for g in grads]
    for p, g in zip(theirs, grads):
        p.grad = torch.from_dlpack(g).float().clone()
    their_norm = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    before = [f64(g) for g in grads]
    cuda.clip_grads_(grads, norm, 1.0)
    assert float(norm) == pytest.approx(float(their_norm), rel=1e-5)
    for g, b, p in zip(grads, before, theirs):
        close(g, b / (float(ref) + 1e-6), TOL[np.dtype(dtype)])
        close(g, p.grad.double().cpu().numpy(), TOL[np.dtype(dtype)])


def test_clip_leaves_small_gradients_alone():
    grads = [rand((100,), np.float32, 1e-3)]
    before = f64(grads[0])
    cuda.clip_grads_(grads, cuda.grad_norm(grads), 1.0)
    np.testing.assert_array_equal(f64(grads[0]), before)


@pytest.mark.parametrize("grad_dtype", DTYPES)
@pytest.mark.parametrize("scalars_on_device", [False, True])
def test_adamw_update_multi_matches_per_tensor_and_torch(grad_dtype, scalars_on_device):
    """scalars_on_device: the step count (float32) and learning rate (float64) as device scalars, as a
    captured step passes them."""
    count = 170  # more than one launch's 160 tensors
    sizes = [SIZES[i % len(SIZES)] for i in range(count)]
    params = [rand((n,), np.float32) for n in sizes]
    grads = [rand((n,), grad_dtype) for n in sizes]
    ms, vs = [rand((n,), np.float32, 0.1) for n in sizes], [cupy.abs(rand((n,), np.float32, 0.01)) for n in sizes]
    ref = [[f64(a) for a in arrays] for arrays in (params, ms, vs)]
    theirs = [[torch.from_dlpack(a).clone() for a in arrays] for arrays in (params, ms, vs)]
    hyper = dict(beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    step, lr = (cupy.asarray(7.0, np.float32), cupy.asarray(1e-3, np.float64)) if scalars_on_device else (7, 1e-3)
    cuda.adamw_update_multi(params, grads, ms, vs, lr=lr, **hyper, step=step)
    reference.adamw_update_multi(*ref[:1], [f64(g) for g in grads], *ref[1:], lr=1e-3, **hyper, step=7)
    torch._fused_adamw_(*theirs[:1], [torch.from_dlpack(g).float() for g in grads], *theirs[1:], [],
                        [torch.tensor(7.0, device="cuda") for _ in sizes], lr=1e-3, beta1=0.9, beta2=0.95, weight_decay=0.1,
                        eps=1e-8, amsgrad=False, maximize=False)
    # Over each whole list: a one-element tensor's relative error is that of one value, which can sit
    # near 0 while its update's rounding does not (seen: 4e-5 on a size-1 parameter).
    for ours, refs, torch_side in zip((params, ms, vs), ref, theirs):
        flat = cupy.concatenate([o.ravel() for o in ours])
        close(flat, np.concatenate([r.ravel() for r in refs]), TOL[np.dtype(np.float32)])
        close(flat, torch.cat([t.ravel() for t in torch_side]).double().cpu().numpy(), TOL[np.dtype(np.float32)])


# ------------------------------------------------------------------------------------------------
# the whole GPT against PyTorch CUDA

GPT2_TINY = GPTConfig(vocab_size=96, block_size=40, n_layer=2, n_head=2, n_embd=128)
LLAMA_TINY = GPTConfig(vocab_size=96, block_size=40, n_layer=2, n_head=4, n_kv_head=2, n_embd=128, mlp_hidden=96,
                       pos_encoding="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_weights=False)


@pytest.mark.parametrize("config", [GPT2_TINY, LLAMA_TINY], ids=["gpt2", "llama"])
def test_gpt_logits_and_every_gradient_match_pytorch_cuda(config, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    ours = GPT(config)
    theirs = TorchGPT(config)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    ours.to("cuda")
    theirs.to("cuda")
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, config.vocab_size, (3, 37)), rng.integers(0, config.vocab_size, (3, 37))
    targets[1, 5:9] = -100
    logits, loss = ours(tinyllm.tensor(idx, device="cuda"), tinyllm.tensor(targets, device="cuda"))
    loss.backward()
    their_logits, their_loss = theirs(torch.tensor(idx, device="cuda"), torch.tensor(targets, device="cuda"))
    their_loss.backward()
    close(logits.data, their_logits.detach().double().cpu().numpy(), 1e-4)
    assert loss.item() == pytest.approx(their_loss.item(), rel=1e-5)
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad.data, their_params[name].grad.double().cpu().numpy(), 1e-4)


# ------------------------------------------------------------------------------------------------
# the step captured in a CUDA graph


def _run(captured, steps=6, config=GPT2_TINY, seed=0):
    tinyllm.manual_seed(seed)
    model = GPT(config).to("cuda")
    opt = model.configure_optimizers(0.1, 3e-3, (0.9, 0.95), capturable=True)
    rng = np.random.default_rng(1)
    batches = [(rng.integers(0, config.vocab_size, (4, 32)), rng.integers(0, config.vocab_size, (4, 32))) for _ in range(4)]
    idx, targets = tinyllm.tensor(batches[0][0], device="cuda"), tinyllm.tensor(batches[0][1], device="cuda")

    def step():
        opt.zero_grad()
        with tinyllm.amp.autocast(tinyllm.bfloat16):
            _, loss = model(idx, targets)
        loss.backward()
        tinyllm.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        return loss

    def next_batch(i):  # the inputs, and a learning rate that changes every step (a schedule)
        idx.data[...], targets.data[...] = (cupy.asarray(a) for a in batches[i % 4])
        for group in opt.param_groups:
            group["lr"] = 3e-3 * (1 - i / steps)

    warmup = 2
    losses = []
    for i in range(warmup):  # the same warm-up steps on both sides
        next_batch(i)
        losses.append(step().item())
    fn = tinyllm.cuda_graph.capture(step, warmup=0, optimizers=[opt]) if captured else step
    for i in range(warmup, steps):
        next_batch(i)
        losses.append(fn().item())
    return np.array(losses), model, opt


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_captured_step_trains_like_the_eager_step(dropout):
    """Losses and weights agree step for step, with the learning rate set anew before each step: the
    replays read it from the device, where each replay first writes the param group's value. With
    dropout, each replay draws the masks the eager step draws (its counter offsets are on the device too)."""
    config = dataclasses.replace(GPT2_TINY, dropout=dropout)
    eager, eager_model, eager_opt = _run(captured=False, config=config)
    graphed, graphed_model, graphed_opt = _run(captured=True, config=config)
    assert graphed[-1] < graphed[0], "the model should learn"
    np.testing.assert_allclose(graphed, eager, rtol=1e-6)
    for (name, a), b in zip(eager_model.named_parameters(), graphed_model.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-6, atol=1e-7, err_msg=name)
    steps = {s["step"] for s in graphed_opt.state.values()}
    assert steps == {s["step"] for s in eager_opt.state.values()} == {6}
