"""GELU (exact and tanh) and SiLU kernels (forward, backward) against reference.py.

The oracle is the reference evaluated in float64 and rounded to float32: the float32 reference is
itself up to 3e-6 off where 1 + erf(.), 1 + tanh(.) or 1 - sigmoid(.) cancel, more than our kernels,
which avoid the last two. Tolerances: exp is good to 2 ulp, so rtol = 1e-5; erf is good to 5e-7
absolute, and for x << 0 GELU's output x * (1 + erf(x / sqrt 2)) / 2 keeps only that absolute
accuracy (in any float32 evaluation), so atol = 2e-6, about |x| / 2 times erf's error.
"""
import numpy as np
import pytest

from kernel_checks import native, non_contiguous, poisoned_outputs, randn, requires_native  # noqa: F401
from tinyllm.backend import cpu, reference

pytestmark = requires_native
TOL = dict(rtol=1e-5, atol=2e-6)
SIZES = [1, 3, 17, 127, 4099, 1 << 18]
ACTIVATIONS = [  # (name, extra positional arguments of both kernels)
    ("gelu", ("none",)),
    ("gelu", ("tanh",)),
    ("silu", ()),
]


def check(name, extra, x, dy):
    fwd, bwd = f"{name}_forward", f"{name}_backward"
    with native(fwd, bwd):
        y = getattr(cpu, fwd)(x, *extra)
        dx = getattr(cpu, bwd)(dy, x, *extra)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        np.testing.assert_allclose(y, getattr(reference, fwd)(x64, *extra).astype(np.float32), **TOL)
        np.testing.assert_allclose(dx, getattr(reference, bwd)(dy64, x64, *extra).astype(np.float32), **TOL)


@pytest.mark.parametrize("name, extra", ACTIVATIONS)
@pytest.mark.parametrize("n", SIZES)
def test_matches_reference(name, extra, n):
    rng = np.random.default_rng(n)
    check(name, extra, randn(rng, n, scale=3.0), randn(rng, n))


@pytest.mark.parametrize("name, extra", ACTIVATIONS)
def test_non_contiguous_multi_axis_inputs(name, extra):
    rng = np.random.default_rng(1)
    x, dy = randn(rng, 4, 33, 65, scale=3.0), randn(rng, 4, 33, 65)
    check(name, extra, non_contiguous(x), non_contiguous(dy))
    check(name, extra, x.transpose(2, 0, 1), dy.transpose(2, 0, 1))


@pytest.mark.parametrize("name, extra", ACTIVATIONS)
def test_extreme_inputs(name, extra):
    """Large |x| saturates (exp overflows to inf or underflows to 0) without producing NaN."""
    x = np.array([-1e30, -200.0, -88.0, -30.0, -10.0, -1e-30, 0.0, 1e-30, 10.0, 30.0, 88.0, 200.0, 1e30], np.float32)
    check(name, extra, x, np.ones_like(x))
    assert not np.isnan(getattr(cpu, f"{name}_backward")(np.ones_like(x), x, *extra)).any()
