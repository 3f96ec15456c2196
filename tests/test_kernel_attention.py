"""The C++ attention kernels (csrc/attention.cpp, through tinyllm.backend.cpu) against the reference.

Tolerance: the reference runs in float64 on the same float32 inputs. Our float32 errors come from
dot products of length D <= 80 and sums over S <= 200 keys (each ~sqrt(n) * eps32 ~ 1e-6 relative
to the magnitudes involved) and from the vectorised exp (~2 ulp); measured errors are ~1e-6. We allow
3e-5 relative to the largest magnitude of each output, 10x over the expected error, while a masking,
tiling or indexing bug moves values by ~1e-1.
"""
import numpy as np
import pytest

from tinyllm.backend import cpu, reference
from test_kernel_matmul import run_with_isa

pytestmark = pytest.mark.skipif("attention_forward" not in cpu.native_kernels(),
                                reason="tinyllm._C attention kernels are not built")

TOL = 3e-5


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    """Every output the backend allocates starts as NaN, so an element the kernel skips shows up."""
    monkeypatch.setattr(cpu, "_empty", lambda shape, dtype=np.float32: np.full(shape, np.nan, dtype))


def assert_close(got, want, name):
    assert got.dtype == np.float32 and got.shape == want.shape, name
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    assert err <= TOL * scale, f"{name}: max error {err:.3g} > {TOL * scale:.3g}"


def inputs(seed, B, H, T, S, D, Dv=None):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, H, T, D)).astype(np.float32)
    k = rng.standard_normal((B, H, S, D)).astype(np.float32)
    v = rng.standard_normal((B, H, S, Dv or D)).astype(np.float32)
    do = rng.standard_normal((B, H, T, Dv or D)).astype(np.float32)
    return q, k, v, do


def check(q, k, v, do, causal, dropout_args=None):
    scale = 1.0 / np.sqrt(q.shape[-1])
    o, lse = cpu.attention_forward(q, k, v, causal, scale, dropout_args)
    f64 = [x.astype(np.float64) for x in (q, k, v, do)]
    o_ref, lse_ref = reference.attention_forward(*f64[:3], causal, scale, dropout_args)
    assert_close(o, o_ref, "o")
    assert_close(lse, lse_ref, "lse")
    grads = cpu.attention_backward(do, q, k, v, o, lse, causal, scale, dropout_args)
    grads_ref = reference.attention_backward(f64[3], *f64[:3], o_ref, lse_ref, causal, scale, dropout_args)
    for name, got, want in zip(("dq", "dk", "dv"), grads, grads_ref):
        assert_close(got, want, name)


# (B, H, T, S, D): single rows, primes, T past one and several 64-row query blocks with a partial
# last block, D in {1, 16, 64, 80}, and S > T (queries at the end of a longer key sequence).
SHAPES = [
    (1, 1, 1, 1, 16), (2, 3, 17, 17, 16), (1, 2, 127, 127, 64), (1, 1, 200, 200, 80),
    (3, 1, 65, 65, 1), (2, 1, 3, 40, 64), (1, 2, 70, 131, 16),
]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("B,H,T,S,D", SHAPES)
def test_attention(B, H, T, S, D, causal):
    check(*inputs(B * 1000 + T * 10 + S + D, B, H, T, S, D), causal)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("B,H,T,S,D", [(2, 3, 17, 17, 16), (1, 2, 70, 131, 16), (2, 1, 3, 40, 64)])
def test_attention_with_dropout(B, H, T, S, D, causal):
    """The kernels draw the reference's dropout factors for every probability (the reference's counter
    layout: element ((b * H + h) * T + i) * S + j, rows not aligned to the four words of a counter)."""
    check(*inputs(B + T + S, B, H, T, S, D), causal, dropout_args=(0.25, 2**40 + 9, 2**32 + 3, None))


def test_fused_attention_with_dropout_draws_what_the_composed_ops_draw():
    """F.scaled_dot_product_attention with dropout (the fused kernel) against the same attention
    composed of matmul, softmax, dropout and matmul, from the same seed: the same masks, so the same
    output and gradients (to float32 rounding; a mask that differs moves them by ~1)."""
    import tinyllm
    import tinyllm.nn.functional as F

    qv, kv, vv, dov = inputs(11, 2, 3, 37, 37, 16)
    results = []
    for fused in (True, False):
        tinyllm.manual_seed(5)
        q, k, v = (tinyllm.tensor(a, requires_grad=True) for a in (qv, kv, vv))
        if fused:
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=0.3, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) * 0.25
            scores = scores.masked_fill(np.arange(37)[None, :] > np.arange(37)[:, None], -np.inf)
            o = F.dropout(F.softmax(scores, dim=-1), 0.3) @ v
        (o * tinyllm.tensor(dov)).sum().backward()
        results.append([o.detach().numpy(), q.grad.numpy(), k.grad.numpy(), v.grad.numpy()])
    for name, got, want in zip(("o", "dq", "dk", "dv"), *results):
        assert_close(got, want, name)


def test_attention_more_queries_than_keys():
    """Non-causal T > S, and a value width different from the query width."""
    check(*inputs(1, 2, 2, 33, 20, 16, Dv=24), causal=False)


def test_attention_non_contiguous_inputs():
    """q, k, v as the model makes them: (B, T, H, D) activations viewed as (B, H, T, D)."""
    rng = np.random.default_rng(2)
    qkv = rng.standard_normal((2, 37, 3, 4, 16)).astype(np.float32)  # (B, T, qkv, H, D)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    do = rng.standard_normal((2, 37, 4, 16)).astype(np.float32).transpose(0, 2, 1, 3)
    check(q, k, v, do, causal=True)


def test_attention_rows_that_see_no_key():
    """Causal with T > S: query i < T - S sees no key. We define o = 0, lse = -inf, dq = 0 there
    (the reference's softmax over nothing is NaN); every other row matches the reference."""
    q, k, v, do = inputs(3, 1, 2, 10, 6, 16)
    scale = 0.25
    o, lse = cpu.attention_forward(q, k, v, True, scale)
    dq, dk, dv = cpu.attention_backward(do, q, k, v, o, lse, True, scale)
    blind = 10 - 6
    assert np.all(o[:, :, :blind] == 0) and np.all(lse[:, :, :blind] == -np.inf) and np.all(dq[:, :, :blind] == 0)
    # The rows that see keys are the same problem as the last 6 queries alone against the 6 keys.
    sl = (slice(None), slice(None), slice(blind, None))
    o_ref, lse_ref = reference.attention_forward(q[sl], k, v, True, scale)
    assert_close(o[sl], o_ref, "o")
    assert_close(lse[sl], lse_ref, "lse")
    for name, got, want in zip(("dq", "dk", "dv"), (dq[sl], dk, dv),
                               reference.attention_backward(do[sl], q[sl], k, v, o_ref, lse_ref, True, scale)):
        assert_close(got, want, name)


def test_attention_rejects_mismatched_shapes():
    q = np.zeros((1, 2, 5, 8), np.float32)
    o, lse = np.empty((1, 2, 5, 8), np.float32), np.empty((1, 2, 5), np.float32)
    with pytest.raises(ValueError, match=r"k must have shape \(1, 2, 7, 8\)"):
        cpu._C.attention_forward(q, np.zeros((1, 2, 7, 4), np.float32), np.zeros((1, 2, 7, 8), np.float32),
                                 True, 1.0, o, lse)
    with pytest.raises(ValueError, match="lse must have shape"):
        cpu._C.attention_forward(q, q, q, True, 1.0, o, np.empty((1, 2, 4), np.float32))
    with pytest.raises(ValueError, match="dv must have shape"):
        cpu._C.attention_backward(q, q, q, q, o, lse, True, 1.0, np.empty_like(q), np.empty_like(q),
                                  np.empty((1, 2, 5, 7), np.float32))


@pytest.mark.parametrize("isa", ["avx2", "generic"])
def test_attention_lesser_instruction_sets(isa):
    run_with_isa(isa, """
        from test_kernel_attention import check, inputs
        for causal in (True, False):
            check(*inputs(7, 1, 2, 70, 131, 16), causal)
            check(*inputs(8, 2, 1, 67, 67, 80), causal)
    """)
