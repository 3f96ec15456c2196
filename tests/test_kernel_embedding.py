"""Embedding backward (a scatter-add) against reference.py.

Each row of dW receives its dy rows in the order of n, as np.add.at adds them, so the result must
be bitwise equal to the reference, however many threads run and however often an index repeats.
"""
import numpy as np
import pytest

from kernel_checks import native, non_contiguous, poisoned_outputs, randn, requires_native  # noqa: F401
from tinyllm.backend import cpu, reference

pytestmark = requires_native


def check(dy, idx, num_embeddings):
    with native("embedding_backward"):
        dw = cpu.embedding_backward(dy, idx, num_embeddings)
    np.testing.assert_array_equal(dw, reference.embedding_backward(dy, idx, num_embeddings))


@pytest.mark.parametrize("N, D, V", [(1, 1, 1), (3, 17, 5), (127, 3, 1000), (4096, 384, 8192), (2048, 64, 3)])
def test_matches_reference(N, D, V):
    rng = np.random.default_rng(N + D + V)
    check(randn(rng, N, D), rng.integers(0, V, N), V)


def test_repeated_indices_and_batched_shapes():
    """Every token the same index (all adds land on one row) and (B, T) indices with (B, T, D) dy."""
    rng = np.random.default_rng(1)
    check(randn(rng, 4096, 64), np.full(4096, 7), 8192)
    idx = rng.integers(0, 50, (8, 128))
    idx[:, ::2] = 3
    check(randn(rng, 8, 128, 96), idx, 50)


def test_non_contiguous_dy():
    rng = np.random.default_rng(2)
    dy, idx = randn(rng, 300, 40), rng.integers(0, 20, 300)
    check(non_contiguous(dy), idx, 20)
    check(non_contiguous(dy, "transposed"), idx, 20)


def test_out_of_range_index_raises():
    with pytest.raises(ValueError, match=r"idx\[1\] = 9 is not in \[0, 9\)"):
        cpu.embedding_backward(np.zeros((2, 4), np.float32), np.array([0, 9]), 9)
