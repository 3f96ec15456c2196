"""Cross-entropy fused with log-softmax (forward, backward) against reference.py.

Tolerances (float32, eps = 6e-8): lse is m + log(sum of V exps), summed in SIMD lanes where NumPy
sums pairwise, a relative difference ~sqrt(V) * eps; a loss lse - x[t] then carries lse's absolute
error, ~1e-6 for |lse| ~ 10 (or ~1e-3 with logits of 1e4). rtol = 2e-5, atol = 2e-6 at unit scale.
"""
import numpy as np
import pytest

from kernel_checks import native, non_contiguous, poisoned_outputs, randn, requires_native  # noqa: F401
from tinyllm.backend import cpu, reference

pytestmark = requires_native
TOL = dict(rtol=2e-5, atol=2e-6)


def check(logits, targets, ignore_index=-100, tol=TOL, seed=0):
    dlosses = randn(np.random.default_rng(seed), len(targets))
    with native("cross_entropy_forward", "cross_entropy_backward"):
        losses, lse = cpu.cross_entropy_forward(logits, targets, ignore_index)
        dlogits = cpu.cross_entropy_backward(dlosses, logits, targets, lse, ignore_index)
    ref_losses, ref_lse = reference.cross_entropy_forward(logits, targets, ignore_index)
    np.testing.assert_allclose(losses, ref_losses, **tol)
    np.testing.assert_allclose(lse, ref_lse, **tol)
    np.testing.assert_allclose(dlogits, reference.cross_entropy_backward(dlosses, logits, targets, lse, ignore_index), **tol)
    return losses, dlogits


@pytest.mark.parametrize("N, V", [(1, 1), (1, 3), (3, 17), (17, 127), (64, 8192)])
def test_matches_reference_with_ignored_rows(N, V):
    rng = np.random.default_rng(N + V)
    logits, targets = randn(rng, N, V, scale=3.0), rng.integers(0, V, N)
    targets[::3] = -100
    losses, dlogits = check(logits, targets)
    assert (losses[::3] == 0).all() and (dlogits[::3] == 0).all()


def test_custom_ignore_index_int32_targets_and_non_contiguous_logits():
    rng = np.random.default_rng(1)
    logits = randn(rng, 40, 300, scale=3.0)
    targets = rng.integers(0, 300, 40).astype(np.int32)
    targets[5:9] = 7
    check(non_contiguous(logits), targets, ignore_index=7)
    check(non_contiguous(logits, "transposed"), targets, ignore_index=7)


def test_every_row_ignored():
    logits = randn(np.random.default_rng(2), 8, 50)
    losses, dlogits = check(logits, np.full(8, -100))
    assert not losses.any() and not dlogits.any()


def test_large_logits_do_not_overflow():
    """Logits of 1e4 and a row shifted by 1e30: the max is subtracted before exp. lse and the losses
    are then ~1e4 (~1e30), so their absolute rounding is that much larger."""
    rng = np.random.default_rng(3)
    logits, targets = randn(rng, 6, 8192, scale=1e4), rng.integers(0, 8192, 6)
    logits[2] += 1e30
    losses, dlogits = check(logits, targets, tol=dict(rtol=2e-5, atol=1e-2))
    assert np.isfinite(losses).all() and np.isfinite(dlogits).all()


def test_out_of_range_target_raises():
    logits = np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError, match=r"targets\[1\] = 5 is not in \[0, 5\)"):
        cpu.cross_entropy_forward(logits, np.array([0, 5, -100]))
