"""The CUDA backend against PyTorch CUDA on the same device and the same values (passed by DLPack),
at the GPT-2 124M row length and vocabulary. Tolerances as in test_cuda_kernels.py: PyTorch and we
both compute in float32, so float32 agrees to ~1e-6 and bfloat16 to its output rounding."""
import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
torch = pytest.importorskip("torch")

from tinyllm import dtypes  # noqa: E402
from tinyllm.backend import cuda  # noqa: E402

pytestmark = pytest.mark.cuda
F = torch.nn.functional
CASES = [(np.float32, torch.float32, 2e-5), (dtypes.bfloat16, torch.bfloat16, 1e-2), (np.float16, torch.float16, 2e-3)]


def rand(shape, dtype, rng=np.random.default_rng(0)):
    return cupy.asarray(rng.standard_normal(shape).astype(np.float32)).astype(dtype)


def t(x):
    return torch.from_dlpack(x)


def close(ours, theirs, tol):
    ours, theirs = t(ours).double(), theirs.detach().double()
    err = ((ours - theirs).norm() / theirs.norm()).item()
    assert err < tol, f"relative error {err:.2e} over {tol:.0e}"


@pytest.mark.parametrize("dtype,tdtype,tol", CASES)
def test_layernorm_matches_torch(dtype, tdtype, tol):
    x, w, b, dy = rand((8, 1024, 768), dtype), rand((768,), dtype), rand((768,), dtype), rand((8, 1024, 768), dtype)
    tx, tw, tb = (t(a).clone().requires_grad_() for a in (x, w, b))
    ty = F.layer_norm(tx, (768,), tw, tb, 1e-5)
    ty.backward(t(dy))
    y, mean, rstd = cuda.layernorm_forward(x, w, b, 1e-5)
    close(y, ty, tol)
    for ours, theirs in zip(cuda.layernorm_backward(dy, x, w, mean, rstd), (tx.grad, tw.grad, tb.grad)):
        close(ours, theirs, tol)


@pytest.mark.parametrize("dtype,tdtype,tol", CASES)
def test_cross_entropy_matches_torch(dtype, tdtype, tol):
    logits = rand((64, 50304), dtype)
    targets = cupy.asarray(np.random.default_rng(1).integers(0, 50304, 64))
    tl = t(logits).clone().requires_grad_()
    loss = F.cross_entropy(tl.float(), t(targets), reduction="sum")
    loss.backward()
    losses, lse = cuda.cross_entropy_forward(logits, targets)
    assert abs(float(losses.sum()) - loss.item()) < 1e-4 * abs(loss.item())
    close(cuda.cross_entropy_backward(cupy.ones(64, np.float32), logits, targets, lse), tl.grad, tol)


@pytest.mark.parametrize("dtype,tdtype,tol", CASES)
def test_softmax_gelu_match_torch(dtype, tdtype, tol):
    x = rand((4096, 3072), dtype)
    close(cuda.softmax_forward(x), F.softmax(t(x).float(), -1), tol)
    close(cuda.gelu_forward(x, "tanh"), F.gelu(t(x).float(), approximate="tanh"), tol)
    close(cuda.gelu_forward(x), F.gelu(t(x).float()), tol)


@pytest.mark.parametrize("gemm", ["cublaslt", "ours"])
def test_matmul_matches_torch(monkeypatch, gemm):
    monkeypatch.setattr(cuda, "GEMM", gemm)
    x, w = rand((16, 1024, 768), dtypes.bfloat16), rand((2304, 768), dtypes.bfloat16)
    close(cuda.matmul(x, w, False, True), t(x) @ t(w).T, 1e-2)


def test_adamw_matches_torch_fused():
    p, g = rand((1 << 20,), np.float32), rand((1 << 20,), np.float32)
    tp = t(p).clone().requires_grad_()
    opt = torch.optim.AdamW([tp], lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=True)
    tp.grad = t(g).clone()
    opt.step()
    m, v = cupy.zeros_like(p), cupy.zeros_like(p)
    cuda.adamw_update(p, g, m, v, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1)
    close(p, tp, 2e-6)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("dtype,tdtype,tol", CASES)
def test_attention_matches_sdpa(dtype, tdtype, tol, D, causal):
    """Forward and gradients against scaled_dot_product_attention: in the same half dtype (what the
    benchmark races), in float64 for float32 (PyTorch's float32 SDPA may use TF32-like kernels)."""
    B, H, T = 2, 3, 1000
    q, k, v, do = (rand((B, H, T, D), dtype) for _ in range(4))
    ref_dtype = torch.float64 if dtype == np.float32 else tdtype
    tq, tk, tv = (t(a).to(ref_dtype).requires_grad_() for a in (q, k, v))
    to = F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
    to.backward(t(do).to(ref_dtype))
    o, lse = cuda.attention_forward(q, k, v, causal, D ** -0.5)
    close(o, to, tol)
    grads = cuda.attention_backward(do, q, k, v, o, lse, causal, D ** -0.5)
    for ours, theirs in zip(grads, (tq.grad, tk.grad, tv.grad)):
        close(ours, theirs, 2 * tol)
