"""LayerNorm and RMSNorm kernels (forward, backward) against reference.py.

Tolerances (float32, eps = 6e-8): y, mean, rstd and dx come from a few row sums of C <= 8192 terms
summed in SIMD lanes (NumPy sums pairwise), so rtol = 2e-5, atol = 1e-5. dx = rstd * (a difference
of O(|dy w|) terms), so its absolute rounding scales with rstd: atol = 1e-5 * max(1, rstd) (rstd is
1 / sqrt(eps) = 316 when C = 1 and the variance is 0). dw and db sum over N rows (accumulated per thread, in row order), where
the rounding of a float32 sum grows like sqrt(N) * eps: rtol = 1e-4, atol = 1e-4 at N <= 300.
"""
import numpy as np
import pytest

from kernel_checks import ROW_LENGTHS, native, non_contiguous, poisoned_outputs, randn, requires_native  # noqa: F401
from tinyllm.backend import cpu, reference

pytestmark = requires_native
TOL = dict(rtol=2e-5, atol=1e-5)
SUM_TOL = dict(rtol=1e-4, atol=1e-4)
SHAPES = [(1, C) for C in ROW_LENGTHS] + [(33, C) for C in ROW_LENGTHS[:-1]] + [(4, 5, 384), (300, 256)]


def assert_all_close(actual, expected, tols):
    for a, e, tol in zip(actual, expected, tols):
        np.testing.assert_allclose(a, e, **tol)


def dx_tol(rstd):
    return dict(rtol=2e-5, atol=1e-5 * max(1.0, float(np.max(rstd))))


def layernorm_inputs(shape, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    C = shape[-1]
    return (randn(rng, *shape, scale=2.0) + np.float32(offset), randn(rng, C) + 1, randn(rng, C), randn(rng, *shape))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_layernorm_matches_reference(shape, bias):
    x, w, b, dy = layernorm_inputs(shape, sum(shape))
    b = b if bias else None
    with native("layernorm_forward", "layernorm_backward"):
        y, mean, rstd = cpu.layernorm_forward(x, w, b, 1e-5)
        grads = cpu.layernorm_backward(dy, x, w, mean, rstd)
    assert_all_close((y, mean, rstd), reference.layernorm_forward(x, w, b, 1e-5), [TOL] * 3)
    assert_all_close(grads, reference.layernorm_backward(dy, x, w, mean, rstd), [dx_tol(rstd), SUM_TOL, SUM_TOL])


@pytest.mark.parametrize("shape", SHAPES)
def test_rmsnorm_matches_reference(shape):
    x, w, _, dy = layernorm_inputs(shape, sum(shape))
    with native("rmsnorm_forward", "rmsnorm_backward"):
        y, rstd = cpu.rmsnorm_forward(x, w, 1e-6)
        grads = cpu.rmsnorm_backward(dy, x, w, rstd)
    assert_all_close((y, rstd), reference.rmsnorm_forward(x, w, 1e-6), [TOL] * 2)
    assert_all_close(grads, reference.rmsnorm_backward(dy, x, w, rstd), [dx_tol(rstd), SUM_TOL])


def test_layernorm_variance_survives_a_large_mean():
    """Rows of mean 1000 and std 2: sum(x^2)/C - mean^2 would cancel to garbage in float32. x itself
    is only stored to 6e-5 there, and NumPy's float32 mean is ~1e-4 off, so atol = 2e-4."""
    x, w, b, _ = layernorm_inputs((64, 384), 0, offset=1000.0)
    with native("layernorm_forward"):
        y, mean, rstd = cpu.layernorm_forward(x, w, b, 1e-5)
    assert_all_close((y, mean, rstd), reference.layernorm_forward(x, w, b, 1e-5), [dict(rtol=1e-4, atol=2e-4)] * 3)


@pytest.mark.parametrize("how", ["sliced", "transposed"])
def test_non_contiguous_inputs(how):
    x, w, b, dy = layernorm_inputs((40, 129), 3)
    y_ref, mean, rstd = reference.layernorm_forward(x, w, b, 1e-5)
    nc = lambda a: non_contiguous(a, how)  # noqa: E731
    with native("layernorm_forward", "layernorm_backward", "rmsnorm_forward", "rmsnorm_backward"):
        y = cpu.layernorm_forward(nc(x), non_contiguous(w), non_contiguous(b), 1e-5)[0]
        grads = cpu.layernorm_backward(nc(dy), nc(x), non_contiguous(w), non_contiguous(mean), non_contiguous(rstd))
        y_rms, rstd_rms = cpu.rmsnorm_forward(nc(x), non_contiguous(w), 1e-5)
        grads_rms = cpu.rmsnorm_backward(nc(dy), nc(x), non_contiguous(w), non_contiguous(rstd_rms))
    np.testing.assert_allclose(y, y_ref, **TOL)
    assert_all_close(grads, reference.layernorm_backward(dy, x, w, mean, rstd), [dx_tol(rstd), SUM_TOL, SUM_TOL])
    np.testing.assert_allclose(y_rms, reference.rmsnorm_forward(x, w, 1e-5)[0], **TOL)
    assert_all_close(grads_rms, reference.rmsnorm_backward(dy, x, w, rstd_rms), [dx_tol(rstd_rms), SUM_TOL])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_add_layernorm_matches_reference(shape, bias):
    """s = x + delta is exact (one float32 add); y, mean, rstd and the backward's dx = dres + ... as above."""
    x, w, b, dy = layernorm_inputs(shape, sum(shape))
    delta, dres = layernorm_inputs(shape, sum(shape) + 1)[::3]
    b = b if bias else None
    with native("add_layernorm_forward", "layernorm_backward"):
        s, y, mean, rstd = cpu.add_layernorm_forward(x, delta, w, b, 1e-5)
        grads = cpu.layernorm_backward(dy, s, w, mean, rstd, dres)
    np.testing.assert_array_equal(s, x + delta)
    assert_all_close((y, mean, rstd), reference.add_layernorm_forward(x, delta, w, b, 1e-5)[1:], [TOL] * 3)
    assert_all_close(grads, reference.layernorm_backward(dy, s, w, mean, rstd, dres), [dx_tol(rstd), SUM_TOL, SUM_TOL])


@pytest.mark.parametrize("shape", SHAPES)
def test_add_rmsnorm_matches_reference(shape):
    x, w, _, dy = layernorm_inputs(shape, sum(shape))
    delta, dres = layernorm_inputs(shape, sum(shape) + 1)[::3]
    with native("add_rmsnorm_forward", "rmsnorm_backward"):
        s, y, rstd = cpu.add_rmsnorm_forward(x, delta, w, 1e-6)
        grads = cpu.rmsnorm_backward(dy, s, w, rstd, dres)
    np.testing.assert_array_equal(s, x + delta)
    assert_all_close((y, rstd), reference.add_rmsnorm_forward(x, delta, w, 1e-6)[1:], [TOL] * 2)
    assert_all_close(grads, reference.rmsnorm_backward(dy, s, w, rstd, dres), [dx_tol(rstd), SUM_TOL])


@pytest.mark.parametrize("how", ["sliced", "transposed"])
def test_add_norms_take_non_contiguous_inputs(how):
    x, w, b, delta = layernorm_inputs((40, 129), 3)
    nc = lambda a: non_contiguous(a, how)  # noqa: E731
    with native("add_layernorm_forward", "add_rmsnorm_forward"):
        out = cpu.add_layernorm_forward(nc(x), nc(delta), non_contiguous(w), non_contiguous(b), 1e-5)
        out_rms = cpu.add_rmsnorm_forward(nc(x), nc(delta), non_contiguous(w), 1e-5)
    assert_all_close(out, reference.add_layernorm_forward(x, delta, w, b, 1e-5), [TOL] * 4)
    assert_all_close(out_rms, reference.add_rmsnorm_forward(x, delta, w, 1e-5), [TOL] * 3)
