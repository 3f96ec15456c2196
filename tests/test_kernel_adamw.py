"""The fused AdamW update against reference.py, and against torch.optim.AdamW.

The kernel runs PyTorch's order of operations with the same float32 roundings (and no fused
multiply-adds), so it must agree with the NumPy reference exactly, bit for bit, over several steps.
"""
import numpy as np
import pytest

from kernel_checks import native, poisoned_outputs, randn, requires_native  # noqa: F401
from tinyllm.backend import cpu, reference

pytestmark = requires_native
HYPER = dict(lr=3e-3, beta1=0.9, beta2=0.95, eps=1e-8)


def state(n, seed):
    rng = np.random.default_rng(seed)
    return randn(rng, n), np.zeros(n, np.float32), np.zeros(n, np.float32)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("n", [1, 3, 17, 127, 100_003])
def test_bitwise_equal_to_reference_over_steps(n, weight_decay):
    ours, ref = state(n, n), state(n, n)
    rng = np.random.default_rng(0)
    for step in range(1, 6):
        grad = randn(rng, n, scale=10.0 ** rng.uniform(-4, 1))
        with native("adamw_update"):
            cpu.adamw_update(ours[0], grad, ours[1], ours[2], weight_decay=weight_decay, step=step, **HYPER)
        reference.adamw_update(ref[0], grad, ref[1], ref[2], weight_decay=weight_decay, step=step, **HYPER)
        for a, b in zip(ours, ref):
            np.testing.assert_array_equal(a, b)


def test_matches_torch_adamw():
    """Against PyTorch itself: 5 steps, within a few float32 ulps (PyTorch's vector kernels may
    contract a multiply and an add where NumPy rounds twice)."""
    torch = pytest.importorskip("torch")
    n, rng = 10_007, np.random.default_rng(1)
    p, m, v = state(n, 1)
    tp = torch.nn.Parameter(torch.from_numpy(p.copy()))
    opt = torch.optim.AdamW([tp], lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]), eps=HYPER["eps"], weight_decay=0.1)
    for step in range(1, 6):
        grad = randn(rng, n)
        cpu.adamw_update(p, grad, m, v, weight_decay=0.1, step=step, **HYPER)
        tp.grad = torch.from_numpy(grad)
        opt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-6, atol=1e-7)
