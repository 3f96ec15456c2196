"""The CUDA backend against the reference (float64, on the host) and against PyTorch CUDA.

Every kernel runs on random non-zero inputs of awkward shapes (1, 3, 17, 127, rows not a multiple of
the 16-byte vector, so both the vector and the scalar paths run), in float32, bfloat16 and float16, with its
outputs poisoned (NaN) first so an unwritten element fails. Errors are measured as
||out - ref|| / ||ref||:
- float32: 2e-5. The kernels compute in float32 (matmul without TF32); a few ulps of rounding over
  sums of up to ~50k terms land near 1e-6.
- bfloat16: 1e-2. Outputs are rounded to bfloat16 (relative step 2^-8 = 3.9e-3, so about 2e-3 in
  the norm); reductions accumulate in float32, so the error does not grow with the length.
- float16: 2e-3 (8 times finer steps than bfloat16's, the same float32 accumulation).
The reference sees the very bf16 values the kernel saw (upcast to float64).
"""
import numpy as np
import pytest

cupy = pytest.importorskip("cupy")

from tinyllm import dtypes  # noqa: E402
from tinyllm.backend import cuda, for_array, reference  # noqa: E402

pytestmark = pytest.mark.cuda

DTYPES = [np.float32, dtypes.bfloat16, np.float16]
TOL = {np.dtype(np.float32): 2e-5, dtypes.bfloat16: 1e-2, np.dtype(np.float16): 2e-3}
ROWS = [(1, 3), (17, 127), (3, 5, 768)]  # (..., C): odd lengths take the scalar path


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(cuda, "_empty", lambda shape, dtype=np.float32: cupy.full(shape, np.nan, dtype))


def rand(shape, dtype, scale=1.0, rng=np.random.default_rng(0)):
    return cupy.asarray((rng.standard_normal(shape) * scale).astype(np.float32)).astype(dtype)


def f64(x):
    return None if x is None else cupy.asnumpy(x).astype(np.float64)


def close(out, ref, tol):
    out = f64(out)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert np.isfinite(out).all() or not np.isfinite(ref).all(), "unwritten or non-finite output"
    err = np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30)
    assert err < tol, f"relative error {err:.2e} over {tol:.0e}"


def test_cupy_arrays_get_the_cuda_backend():
    assert for_array(cupy.zeros(2)) is cuda
    assert {"layernorm_forward", "cross_entropy_forward", "matmul", "adamw_update"} <= set(cuda.native_kernels())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROWS)
def test_layernorm(dtype, shape):
    x, w, b, dy = rand(shape, dtype, 2.0), rand(shape[-1:], dtype), rand(shape[-1:], dtype), rand(shape, dtype)
    x = x + 3.0  # a mean far from 0 exercises the two-pass variance
    y, mean, rstd = cuda.layernorm_forward(x, w, b, 1e-5)
    ry, rmean, rrstd = reference.layernorm_forward(f64(x), f64(w), f64(b), 1e-5)
    for o, r in ((y, ry), (mean, rmean), (rstd, rrstd)):
        close(o, r, TOL[np.dtype(dtype)])
    grads = cuda.layernorm_backward(dy, x, w, mean, rstd)
    for o, r in zip(grads, reference.layernorm_backward(f64(dy), f64(x), f64(w), rmean, rrstd)):
        close(o, r, TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROWS)
def test_rmsnorm(dtype, shape):
    x, w, dy = rand(shape, dtype), rand(shape[-1:], dtype), rand(shape, dtype)
    y, rstd = cuda.rmsnorm_forward(x, w, 1e-6)
    ry, rrstd = reference.rmsnorm_forward(f64(x), f64(w), 1e-6)
    close(y, ry, TOL[np.dtype(dtype)])
    close(rstd, rrstd, TOL[np.dtype(dtype)])
    for o, r in zip(cuda.rmsnorm_backward(dy, x, w, rstd), reference.rmsnorm_backward(f64(dy), f64(x), f64(w), rrstd)):
        close(o, r, TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype,delta_dtype", [(d, d) for d in DTYPES] + [(np.float32, dtypes.bfloat16)])
@pytest.mark.parametrize("shape", ROWS)
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_add_norm(monkeypatch, norm, dtype, delta_dtype, shape):
    """s = x + delta rounded to x's dtype, exactly; y = norm(s) of that very s (the reference
    normalises the stored s); the backward adds dres into dx. A bfloat16 delta into a float32 x is
    autocast's case: a bf16 sublayer output added to the float32 residual stream."""
    rng = np.random.default_rng(1)  # its own stream: the later tests' inputs stay what they were
    x, w, b, dy, dres = (rand(n, dtype, rng=rng) for n in (shape, shape[-1:], shape[-1:], shape, shape))
    delta = rand(shape, delta_dtype, rng=rng)
    for name in ("add_layernorm_forward", "add_rmsnorm_forward", "layernorm_backward", "rmsnorm_backward"):
        monkeypatch.setattr(cuda._fallback, name, None)  # each call must run our kernel
    if norm == "layernorm":
        s, y, mean, rstd = cuda.add_layernorm_forward(x, delta, w, b, 1e-5)
        ry, rmean, rrstd = reference.layernorm_forward(f64(s), f64(w), f64(b), 1e-5)
        outs, refs = (y, mean, rstd), (ry, rmean, rrstd)
        outs += cuda.layernorm_backward(dy, s, w, mean, rstd, dres)
        refs += reference.layernorm_backward(f64(dy), f64(s), f64(w), rmean, rrstd, f64(dres))
    else:
        s, y, rstd = cuda.add_rmsnorm_forward(x, delta, w, 1e-6)
        ry, rrstd = reference.rmsnorm_forward(f64(s), f64(w), 1e-6)
        outs, refs = (y, rstd), (ry, rrstd)
        outs += cuda.rmsnorm_backward(dy, s, w, rstd, dres)
        refs += reference.rmsnorm_backward(f64(dy), f64(s), f64(w), rrstd, f64(dres))
    assert s.dtype == x.dtype and cupy.array_equal(s, (x.astype(np.float32) + delta.astype(np.float32)).astype(dtype))
    for o, r in zip(outs, refs):
        close(o, r, TOL[np.dtype(dtype)])


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROWS + [(4, 1), (5, 17), (5, 1000), (3, 1025), (6, 2048), (4, 4096), (2, 5000),
                                   (2, 50304)])
def test_softmax(log, dtype, shape):
    # Rows of 1 .. 4096: one warp per row, except 1025 (odd lengths take the scalar path, which
    # holds up to 1024 in registers, so a block per row); 5000 and 50304: a block per row.
    fwd, bwd = ("log_softmax_forward", "log_softmax_backward") if log else ("softmax_forward", "softmax_backward")
    x, dy = rand(shape, dtype, 3.0), rand(shape, dtype)
    y = getattr(cuda, fwd)(x)
    ry = getattr(reference, fwd)(f64(x))
    close(y, ry, TOL[np.dtype(dtype)])
    # The backward is checked on the kernel's own y, so that only the backward's error counts.
    close(getattr(cuda, bwd)(dy, y), getattr(reference, bwd)(f64(dy), f64(y)), TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,V", [(1, 3), (17, 127), (9, 50304)])
def test_cross_entropy(dtype, N, V):
    logits = rand((N, V), dtype, 4.0)
    targets = cupy.asarray(np.random.default_rng(1).integers(0, V, N))
    targets[N // 2] = -100  # one ignored row
    losses, lse = cuda.cross_entropy_forward(logits, targets)
    rl, rlse = reference.cross_entropy_forward(f64(logits), cupy.asnumpy(targets))
    assert losses.dtype == lse.dtype == np.float32
    close(losses, rl, 2e-5)  # float32 statistics whatever the storage
    close(lse, rlse, 2e-5)
    dl = rand((N,), np.float32)
    dlogits = cuda.cross_entropy_backward(dl, logits, targets, lse)
    close(dlogits, reference.cross_entropy_backward(f64(dl), f64(logits), cupy.asnumpy(targets), rlse),
          TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3,), (17, 127), (4, 1024, 3)])
@pytest.mark.parametrize("kind", ["gelu", "gelu_tanh", "silu"])
def test_activation(kind, dtype, shape):
    x, dy = rand(shape, dtype, 3.0), rand(shape, dtype)
    extra = () if kind == "silu" else ("tanh" if kind == "gelu_tanh" else "none",)
    name = kind.replace("_tanh", "")
    close(getattr(cuda, name + "_forward")(x, *extra), getattr(reference, name + "_forward")(f64(x), *extra),
          TOL[np.dtype(dtype)])
    close(getattr(cuda, name + "_backward")(dy, x, *extra),
          getattr(reference, name + "_backward")(f64(dy), f64(x), *extra), TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3,), (17, 127), (4, 1024, 3)])  # n not a multiple of 4: the scalar path
@pytest.mark.parametrize("seed, offset", [(12345, 7), (2**63 + 5, 2**32 - 3)])
def test_dropout_is_the_reference_bit_for_bit(dtype, shape, seed, offset):
    """The same Philox words and the same float32 product, rounded once to the storage dtype."""
    x = rand(shape, dtype)
    np.testing.assert_array_equal(cupy.asnumpy(cuda.dropout(x, 0.3, seed, offset)),
                                  reference.dropout(cupy.asnumpy(x), 0.3, seed, offset))
    shift = cupy.asarray(np.uint64(1000))  # a captured step's offsets: offset + the device counter
    np.testing.assert_array_equal(cupy.asnumpy(cuda.dropout(x, 0.3, seed, offset, shift)),
                                  reference.dropout(cupy.asnumpy(x), 0.3, seed, offset + 1000))
    strided = cupy.asarray(np.random.default_rng(1).standard_normal((2 * x.size,)).astype(np.float32)).astype(dtype)[::2]
    np.testing.assert_array_equal(cupy.asnumpy(cuda.dropout(strided, 0.3, seed, offset)),
                                  reference.dropout(cupy.asnumpy(strided), 0.3, seed, offset))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,D,V", [(1, 3, 5), (300, 127, 17), (4096, 768, 1000)])
def test_embedding_backward_is_exact_and_deterministic(dtype, N, D, V):
    dy = rand((N, D), dtype)
    idx = cupy.asarray(np.random.default_rng(2).integers(0, V, N))
    dw = cuda.embedding_backward(dy, idx, V)
    close(dw, reference.embedding_backward(f64(dy), cupy.asnumpy(idx), V), TOL[np.dtype(dtype)])
    assert (cuda.embedding_backward(dy, idx, V) == dw).all()  # the same bits every run


@pytest.mark.parametrize("grad_dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 1 << 20])
def test_adamw(grad_dtype, n):
    p, m, v, g = rand((n,), np.float32), rand((n,), np.float32), rand((n,), np.float32) ** 2, rand((n,), grad_dtype)
    rp, rm, rv = f64(p), f64(m), f64(v)
    reference.adamw_update(rp, f64(g), rm, rv, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7)
    cuda.adamw_update(p, g, m, v, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7)
    for o, r in ((p, rp), (m, rm), (v, rv)):
        close(o, r, 2e-6)


def test_hopper_gets_the_wgmma_gemm():
    if cupy.cuda.Device().compute_capability != "90":
        pytest.skip("the wgmma GEMM is for compute capability 9.0 (H100, H200)")
    assert cuda._cuda.matmul_wgmma_available(), "built without sm_90a, or the driver loaded the sm_90 cubin"


GEMMS = [  # (a shape, b shape, trans_a, trans_b)
    ((17, 33), (33, 9), False, False),
    ((64, 136), (200, 136), False, True),
    ((136, 64), (136, 200), True, False),
    ((40, 24), (56, 40), True, True),
    ((2, 3, 129, 64), (64, 72), False, False),
    ((5, 72, 48), (5, 200, 48), False, True),
    ((3, 1, 64, 40), (4, 64, 56), True, False),
    # More tiles than SMs (the persistent loop), ragged M, N and K, in the three layouts of a Linear
    # layer's forward (x @ w^T), input gradient (dy @ w) and weight gradient (dy^T @ x).
    ((2056, 200), (2312, 200), False, True),
    ((2056, 200), (200, 2312), False, False),
    ((200, 2056), (200, 2312), True, False),
    ((4096, 136), (4096, 264), True, False),  # few tiles, long K: split-K on the Hopper kernel
    ((64, 136), (202, 136), False, True),  # C rows of 404 bytes, which TMA can't store: mma.sync serves
]


@pytest.mark.parametrize("gemm", ["cublaslt", "ours", "ours-mma.sync"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(GEMMS)))
def test_matmul(monkeypatch, gemm, dtype, case):
    # "ours" is the wgmma kernel on an H100/H200 build with sm_90a, the mma.sync kernel elsewhere.
    sa, sb, ta, tb = GEMMS[case]
    monkeypatch.setattr(cuda, "GEMM", gemm.split("-")[0])
    monkeypatch.setenv("TINYLLM_CUDA_MMA_SYNC", "1" if gemm == "ours-mma.sync" else "0")
    a, b = rand(sa, dtype), rand(sb, dtype)
    close(cuda.matmul(a, b, ta, tb), reference.matmul(f64(a), f64(b), ta, tb), TOL[np.dtype(dtype)])


# A linear layer's bias: in cuBLASLt's epilogue for one GEMM over the rows of a (the forward's x @ w^T),
# added after the product elsewhere (our GEMM, batched products).
@pytest.mark.parametrize("gemm", ["cublaslt", "ours"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sa,sb,ta,tb", [((2, 3, 129, 64), (72, 64), False, True), ((2056, 200), (2312, 200), False, True),
                                         ((17, 33), (33, 9), False, False), ((5, 72, 48), (5, 200, 48), False, True)])
def test_matmul_with_bias(monkeypatch, gemm, dtype, sa, sb, ta, tb):
    monkeypatch.setattr(cuda, "GEMM", gemm)
    a, b = rand(sa, dtype), rand(sb, dtype)
    N = sb[-2] if tb else sb[-1]
    bias = rand((N,), dtype, scale=10.0)  # large, so that a bias added twice or not at all shows
    want = reference.matmul(f64(a), f64(b), ta, tb, f64(bias))
    close(cuda.matmul(a, b, ta, tb, bias), want, TOL[np.dtype(dtype)])


# Attention: our kernels serve float32 (CUDA cores, exact expf: 2e-5 like every float32 kernel) and
# bfloat16 / float16 (tensor cores: P and dS are rounded to the storage type before their matrix
# products, so about one rounding step of relative error: bf16 2^-8, fp16 2^-11; 1e-2 and 2e-3 for
# the outputs, twice that for the gradients, which go through two such products). The (T, S) pairs
# cover 1 query (one key would make dQ and dK exactly 0, leaving no relative error to measure), tile
# remainders (17, 127, 1000), fewer queries than keys (a KV-cache block) and more.
ATTN_SHAPES = [(1, 3, 64), (17, 17, 64), (127, 127, 128), (5, 33, 128), (130, 130, 64), (64, 200, 128),
               (200, 64, 64), (1000, 1000, 64), (1000, 1000, 128)]


def test_hopper_gets_the_wgmma_attention_kernels(monkeypatch):
    if cupy.cuda.Device().compute_capability != "90":
        pytest.skip("the wgmma attention kernels are for compute capability 9.0 (H100, H200)")
    monkeypatch.delenv("TINYLLM_CUDA_MMA_SYNC", raising=False)
    assert cuda._cuda.attention_uses_wgmma(), "built without sm_90a, or the driver loaded the sm_90 cubin"
    monkeypatch.setenv("TINYLLM_CUDA_MMA_SYNC", "1")
    assert not cuda._cuda.attention_uses_wgmma()


# "ours" runs the wgmma kernels on an H100/H200 build with sm_90a, mma.sync elsewhere; "mma.sync"
# forces the mma.sync kernel (the sm_80 path), so a Hopper machine tests both.
@pytest.mark.parametrize("kernel", ["ours", "mma.sync"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,S,D", ATTN_SHAPES)
def test_attention(monkeypatch, kernel, causal, dtype, T, S, D):
    if kernel == "mma.sync" and dtype == np.float32:
        pytest.skip("float32 runs the CUDA-core kernels either way")
    monkeypatch.setenv("TINYLLM_CUDA_MMA_SYNC", "1" if kernel == "mma.sync" else "0")
    if causal and T > S:
        pytest.skip("queries before the first key see nothing: their softmax is undefined (NaN in the reference)")
    q, k, v, do = rand((2, 3, T, D), dtype), rand((2, 3, S, D), dtype), rand((2, 3, S, D), dtype), rand((2, 3, T, D), dtype)
    scale, tol = D ** -0.5, TOL[np.dtype(dtype)]
    o, lse = cuda.attention_forward(q, k, v, causal, scale)
    ro, rlse = reference.attention_forward(f64(q), f64(k), f64(v), causal, scale)
    assert o.dtype == q.dtype and lse.dtype == np.float32
    close(o, ro, tol)
    close(lse, rlse, 2e-5)
    grads = cuda.attention_backward(do, q, k, v, o, lse, causal, scale)
    # The reference backward gets our o: delta = rowsum(dO * O) is then the one the kernel used.
    for g, r in zip(grads, reference.attention_backward(f64(do), f64(q), f64(k), f64(v), f64(o), rlse, causal, scale)):
        assert g.dtype == q.dtype
        close(g, r, 2 * tol)


# Dropout's shapes: key counts a multiple of 4 run our kernels (tile remainders, several key and query
# tiles, fewer queries than keys); 37 keys run the CuPy fallback.
DROPOUT_SHAPES = [(256, 256, 64), (130, 132, 64), (200, 256, 128), (64, 320, 128), (37, 37, 64)]


@pytest.mark.parametrize("kernel", ["ours", "mma.sync"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,S,D", DROPOUT_SHAPES)
def test_attention_with_dropout(monkeypatch, kernel, causal, dtype, T, S, D):
    """Attention with dropout against the reference's, also when the offset comes partly from a device
    counter (a captured step's)."""
    if kernel == "mma.sync" and dtype == np.float32:
        pytest.skip("float32 runs the CUDA-core kernels either way")
    monkeypatch.setenv("TINYLLM_CUDA_MMA_SYNC", "1" if kernel == "mma.sync" else "0")
    q, k, v, do = rand((2, 3, T, D), dtype), rand((2, 3, S, D), dtype), rand((2, 3, S, D), dtype), rand((2, 3, T, D), dtype)
    scale, tol = D ** -0.5, TOL[np.dtype(dtype)]
    for shift, host_offset in ((None, 7), (cupy.asarray(np.uint64(1000)), 1007)):
        o, lse = cuda.attention_forward(q, k, v, causal, scale, (0.25, 99, 7, shift))
        ro, rlse = reference.attention_forward(f64(q), f64(k), f64(v), causal, scale, (0.25, 99, host_offset, None))
        close(o, ro, tol)
        close(lse, rlse, tol)
        grads = cuda.attention_backward(do, q, k, v, o, lse, causal, scale, (0.25, 99, 7, shift))
        for g, r in zip(grads, reference.attention_backward(f64(do), f64(q), f64(k), f64(v), f64(o), rlse, causal, scale,
                                                            (0.25, 99, host_offset, None))):
            close(g, r, 2 * tol)


def _one_hot(B, H, n, D, c, dtype):
    """(B, H, n, D) with a 1 at row c D + d, column d: picks rows c D.. c D + D - 1 of what it multiplies."""
    return cupy.asarray(np.broadcast_to(np.eye(n, D, -c * D, dtype=np.float32), (B, H, n, D))).astype(dtype)


@pytest.mark.parametrize("kernel", ["ours", "mma.sync"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,S,D", DROPOUT_SHAPES[:4])
def test_attention_dropout_draws_the_references_mask(monkeypatch, kernel, causal, dtype, T, S, D):
    """Element by element: with q = 0 each visible probability is 1 / (keys visible), so
    - V one-hot over keys cD..cD + D - 1: each output is one probability times its dropout factor, and
      O's nonzeros are the mask reference.dropout draws over those keys;
    - dO one-hot over queries: dV = (P Z)^T dO is the mask of those queries, transposed;
    - K one-hot, V = 1: dQ = scale dS K is dS = P (dP Z - delta) of those keys, element by element."""
    if kernel == "mma.sync" and dtype == np.float32:
        pytest.skip("float32 runs the CUDA-core kernels either way")
    monkeypatch.setenv("TINYLLM_CUDA_MMA_SYNC", "1" if kernel == "mma.sync" else "0")
    B, H, scale, drop = 2, 3, D ** -0.5, (0.3, 2**40 + 17, 2**33 + 5, None)
    keep = reference.dropout_uniforms(B * H * T * S, *drop[1:3]).reshape(B, H, T, S) >= np.float32(drop[0])
    visible = (not causal) | (np.arange(S)[None, :] <= np.arange(T)[:, None] + S - T)
    q, k, v, do = cupy.zeros((B, H, T, D), dtype), rand((B, H, S, D), dtype), rand((B, H, S, D), dtype), rand((B, H, T, D), dtype)
    o, lse = cuda.attention_forward(q, k, v, causal, scale, drop)
    kept, kept_t = np.zeros((B, H, T, S), bool), np.zeros((B, H, T, S), bool)
    for c in range((S + D - 1) // D):
        keys = slice(c * D, min(S, c * D + D))
        picked, _ = cuda.attention_forward(q, k, _one_hot(B, H, S, D, c, dtype), causal, scale, drop)
        kept[..., keys] = cupy.asnumpy(picked != 0)[..., :keys.stop - keys.start]
    for c in range((T + D - 1) // D):
        queries = slice(c * D, min(T, c * D + D))
        _, _, dv = cuda.attention_backward(_one_hot(B, H, T, D, c, dtype), q, k, v, o, lse, causal, scale, drop)
        kept_t[..., queries, :] = np.swapaxes(cupy.asnumpy(dv != 0), -1, -2)[..., :queries.stop - queries.start, :]
    np.testing.assert_array_equal(kept, keep & visible)
    np.testing.assert_array_equal(kept_t, keep & visible)
    rtol = {np.dtype(np.float32): 1e-5, dtypes.bfloat16: 3e-2, np.dtype(np.float16): 5e-3}[np.dtype(dtype)]
    ones = cupy.ones((B, H, S, D), dtype)
    for c in range((S + D - 1) // D):
        k1 = _one_hot(B, H, S, D, c, dtype)
        o1, lse1 = cuda.attention_forward(q, k1, ones, causal, scale, drop)
        dq, _, _ = cuda.attention_backward(do, q, k1, ones, o1, lse1, causal, scale, drop)
        want, _, _ = reference.attention_backward(f64(do), f64(q), f64(k1), f64(ones), f64(o1), f64(lse1), causal, scale,
                                                  drop)
        np.testing.assert_allclose(f64(dq), want, rtol=rtol, atol=rtol * np.abs(want).max())


def test_attention_dropout_runs_our_kernels(monkeypatch):
    """Dropout over a multiple of 4 keys never builds the T x S matrix of the CuPy fallback."""
    def fallback(*args, **kwargs):
        raise AssertionError("the CuPy fallback ran")

    monkeypatch.setattr(cuda._fallback, "attention_forward", fallback)
    monkeypatch.setattr(cuda._fallback, "attention_backward", fallback)
    for dtype in DTYPES:
        q = rand((1, 2, 64, 64), dtype)
        o, lse = cuda.attention_forward(q, q, q, True, 0.125, (0.1, 3, 0, None))
        cuda.attention_backward(q, q, q, q, o, lse, True, 0.125, (0.1, 3, 0, None))


def test_attention_kernels_are_native():
    assert {"attention_forward", "attention_backward"} <= set(cuda.native_kernels())


def test_float64_runs_the_cupy_fallback():
    x, w = rand((4, 9), np.float64), rand((9,), np.float64)
    y, _, _ = cuda.layernorm_forward(x, w, None, 1e-5)
    assert y.dtype == np.float64
    close(y, reference.layernorm_forward(f64(x), f64(w), None, 1e-5)[0], 1e-12)
