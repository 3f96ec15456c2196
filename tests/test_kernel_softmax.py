"""Softmax and log-softmax kernels (forward, backward) against reference.py.

Tolerances (float32, eps = 6e-8): exp is a polynomial good to 2 ulp, and each row's sum runs in SIMD
lanes where NumPy sums pairwise, a relative difference of about sqrt(C) * eps (5e-6 at C = 8192).
So rtol = 2e-5; atol = 1e-6 covers entries that are differences of O(1) terms (dy - sum(dy * y)).
"""
import numpy as np
import pytest

from kernel_checks import ROW_LENGTHS, native, non_contiguous, poisoned_outputs, randn, requires_native  # noqa: F401
from tinyllm.backend import cpu, reference

pytestmark = requires_native
TOL = dict(rtol=2e-5, atol=1e-6)
KINDS = ["softmax", "log_softmax"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(1, C) for C in ROW_LENGTHS] + [(17, C) for C in ROW_LENGTHS] + [(2, 3, 129)])
def test_matches_reference(kind, shape):
    rng = np.random.default_rng(sum(shape))
    x, dy = randn(rng, *shape, scale=3.0), randn(rng, *shape)
    fwd, bwd = f"{kind}_forward", f"{kind}_backward"
    with native(fwd, bwd):
        y = getattr(cpu, fwd)(x)
        dx = getattr(cpu, bwd)(dy, y)
    np.testing.assert_allclose(y, getattr(reference, fwd)(x), **TOL)
    np.testing.assert_allclose(dx, getattr(reference, bwd)(dy, y), **TOL)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["sliced", "transposed"])
def test_non_contiguous_inputs(kind, how):
    rng = np.random.default_rng(1)
    x, dy = randn(rng, 33, 127, scale=3.0), randn(rng, 33, 127)
    fwd, bwd = f"{kind}_forward", f"{kind}_backward"
    y_ref = getattr(reference, fwd)(x)
    with native(fwd, bwd):
        y = getattr(cpu, fwd)(non_contiguous(x, how))
        dx = getattr(cpu, bwd)(non_contiguous(dy, how), non_contiguous(y_ref, how))
    np.testing.assert_allclose(y, y_ref, **TOL)
    np.testing.assert_allclose(dx, getattr(reference, bwd)(dy, y_ref), **TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_extreme_logits(kind):
    """Huge logits must not overflow (the row max is subtracted first), and -inf (a masked entry)
    must give probability 0."""
    rng = np.random.default_rng(2)
    x = randn(rng, 4, 300, scale=1e4)
    x[1] += 1e30
    x[2, ::3] = -np.inf
    x[3] = 88.0
    fwd = f"{kind}_forward"
    with native(fwd):
        y = getattr(cpu, fwd)(x)
    y_ref = getattr(reference, fwd)(x)
    assert np.isfinite(y[np.isfinite(y_ref)]).all()
    np.testing.assert_allclose(y, y_ref, **TOL)


def test_bad_arguments_raise_clear_errors():
    from tinyllm import _C
    x = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"softmax_forward: y must be a float32 array of shape \(4, 5\), got shape \(4, 6\)"):
        _C.softmax_forward(x, np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match="x must be a float32 array .* got dtype float64"):
        _C.softmax_forward(x.astype(np.float64), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        _C.softmax_forward(np.zeros((5, 4), np.float32).T, np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="x must have 2 axes"):
        _C.softmax_forward(np.zeros(5, np.float32), np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match="y is an output and must be writable"):
        y = np.zeros((4, 5), np.float32)
        y.flags.writeable = False
        _C.softmax_forward(x, y)
