"""The C++ matmul kernel (csrc/gemm.cpp, through tinyllm.backend.cpu) against the reference.

Tolerance: a float32 dot product of length K carries a rounding error that grows like sqrt(K) * eps
relative to sum_p |a_ip b_pj| (a random walk of K roundings; the blocked sum is no worse). We allow
8 * sqrt(K) * eps32 * (|op(A)| @ |op(B)|) elementwise against a float64 product, a bound NumPy's own
float32 matmul meets, while a wrong or missing term is off by about |a_ip b_pj| itself, far above it.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinyllm.backend import cpu, reference

pytestmark = pytest.mark.skipif("matmul" not in cpu.native_kernels(), reason="tinyllm._C.matmul is not built")

EPS32 = np.finfo(np.float32).eps


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    """Every output the backend allocates starts as NaN, so an element the kernel skips shows up."""
    monkeypatch.setattr(cpu, "_empty", lambda shape, dtype=np.float32: np.full(shape, np.nan, dtype))


def check(a, b, trans_a=False, trans_b=False):
    got = cpu.matmul(a, b, trans_a, trans_b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = reference.matmul(a64, b64, trans_a, trans_b)
    bound = reference.matmul(np.abs(a64), np.abs(b64), trans_a, trans_b)
    K = a.shape[-2] if trans_a else a.shape[-1]
    assert got.dtype == np.float32 and got.shape == want.shape
    err = np.abs(got - want)
    tol = 8 * np.sqrt(K) * EPS32 * bound + 1e-30
    assert np.all(err <= tol), f"max error {err.max():.3g}, worst ratio to tolerance {(err / tol).max():.3g}"


def operands(rng, M, K, N, trans_a, trans_b, batch_a=(), batch_b=()):
    a = rng.standard_normal(batch_a + ((K, M) if trans_a else (M, K))).astype(np.float32)
    b = rng.standard_normal(batch_b + ((N, K) if trans_b else (K, N))).astype(np.float32)
    return a, b


TRANSPOSES = [(False, False), (True, False), (False, True), (True, True)]
# Awkward sizes around the micro-tiles (12 x 32 on AVX-512, 6 x 16 on AVX2) and the cache blocks
# (KC = 256, MC = 192, NC = 2048): ones, primes, one past a block, a K that spans several KC blocks,
# an N past NC, and sizes big enough for sgemm to split C between threads by rows or by columns.
SHAPES = [
    (1, 1, 1), (1, 3, 17), (3, 17, 1), (17, 127, 3), (127, 1, 127), (13, 257, 33),
    (64, 64, 64), (193, 70, 65), (31, 1000, 45), (5, 9, 2081), (300, 200, 500), (129, 384, 97),
    (24, 200, 1000),
]


@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_matmul_2d(M, K, N, trans_a, trans_b):
    rng = np.random.default_rng(M * 1000003 + K * 1009 + N)
    check(*operands(rng, M, K, N, trans_a, trans_b), trans_a, trans_b)


@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
def test_matmul_rows_times_weight(trans_a, trans_b):
    """(B, T, d) @ (d, n): the Linear layer's shape, one GEMM over all B*T rows (or per batch if trans_a)."""
    rng = np.random.default_rng(1)
    check(*operands(rng, 37, 48, 23, trans_a, trans_b, batch_a=(3,)), trans_a, trans_b)


@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
@pytest.mark.parametrize("batch_a,batch_b", [((5,), (5,)), ((2, 3), (3,)), ((1,), (4,)), ((4,), ())])
def test_matmul_batched_and_broadcast(batch_a, batch_b, trans_a, trans_b):
    rng = np.random.default_rng(2)
    check(*operands(rng, 19, 40, 33, trans_a, trans_b, batch_a, batch_b), trans_a, trans_b)


@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
def test_matmul_adds_a_bias_to_every_row(trans_a, trans_b):
    """A linear layer's y = x W^T + b: the bias (N,) on every row of C, batched or not."""
    rng = np.random.default_rng(3)
    a, b = operands(rng, 37, 48, 23, trans_a, trans_b, batch_a=(3,))
    bias = rng.standard_normal(23).astype(np.float32)
    np.testing.assert_allclose(cpu.matmul(a, b, trans_a, trans_b, bias), cpu.matmul(a, b, trans_a, trans_b) + bias,
                               rtol=1e-6, atol=1e-6)
    want = reference.matmul(a.astype(np.float64), b.astype(np.float64), trans_a, trans_b) + bias
    np.testing.assert_allclose(reference.matmul(a.astype(np.float64), b.astype(np.float64), trans_a, trans_b, bias), want)


def test_matmul_many_small_matrices():
    """A batch large enough that the kernel gives one matrix to each thread."""
    rng = np.random.default_rng(3)
    check(*operands(rng, 70, 64, 70, False, True, (16,), (16,)), False, True)


def test_matmul_non_contiguous_views():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((60, 90)).astype(np.float32)
    y = rng.standard_normal((3, 120, 50)).astype(np.float32)
    z = rng.standard_normal((120, 30)).astype(np.float32)
    check(x.T, y[1, ::2, :])            # a transposed view and a strided slice
    check(x[::3, 5:50], y[2, :45, ::2].T, trans_b=True)
    check(np.swapaxes(y, 1, 2)[:, :7], z[:, ::3])
    check(y[:, 3:40], x[:37, ::2].T, trans_a=True, trans_b=True)


def test_matmul_rejects_mismatched_shapes():
    c = np.empty((1, 4, 5), np.float32)
    with pytest.raises(ValueError, match="inner dimensions"):
        cpu._C.matmul(np.ones((1, 4, 3), np.float32), np.ones((1, 2, 5), np.float32), c, False, False)
    with pytest.raises(ValueError, match="c must be"):
        cpu._C.matmul(np.ones((1, 4, 3), np.float32), np.ones((1, 3, 6), np.float32), c, False, False)
    with pytest.raises(ValueError, match="batch"):
        cpu._C.matmul(np.ones((2, 4, 3), np.float32), np.ones((3, 3, 5), np.float32),
                      np.empty((2, 4, 5), np.float32), False, False)
    with pytest.raises(ValueError, match="3-D"):
        cpu._C.matmul(np.ones((4, 3), np.float32), np.ones((1, 3, 5), np.float32), c, False, False)


def run_with_isa(isa, code):
    """Runs `code` in a fresh Python whose kernels are capped at `isa` (TINYLLM_ISA), with tests/ on
    the path: how the AVX2 and portable kernels get tested on a CPU that has AVX-512."""
    env = dict(os.environ, TINYLLM_ISA=isa)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), env.get("PYTHONPATH", "")])
    prelude = f"from tinyllm import _C\nassert _C.simd_isa() == {isa!r}, _C.simd_isa()\n"
    run = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("isa", ["avx2", "generic"])
def test_matmul_lesser_instruction_sets(isa):
    run_with_isa(isa, """
        import numpy as np
        from test_kernel_matmul import check, operands
        rng = np.random.default_rng(5)
        for M, K, N in [(1, 3, 17), (17, 127, 3), (193, 300, 65), (24, 200, 1000)]:
            for ta in (False, True):
                for tb in (False, True):
                    check(*operands(rng, M, K, N, ta, tb), ta, tb)
    """)
