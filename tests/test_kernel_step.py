"""The kernels of a training step's end on the CPU backend, against PyTorch: the bias forward and
backward of a linear layer (add_bias_, sum_rows), loss scaling's unscale and inf/NaN check, the
global gradient norm and clipping, the multi-tensor AdamW (against the per-tensor one), and the id checks of embedding and cross-entropy.
The CUDA versions are tested against the same reference in test_cuda_step.py.
"""
import numpy as np
import pytest

import tinyllm
from tinyllm.backend import cpu, reference

torch = pytest.importorskip("torch")


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 1), (17, 127), (64, 768)])
def test_bias_forward_and_backward_match_torch(shape):
    rng = np.random.default_rng(0)
    x, b = randn(rng, *shape), randn(rng, shape[-1])
    np.testing.assert_allclose(cpu.sum_rows(x), torch.tensor(x).sum(0).numpy(), rtol=1e-5, atol=1e-5)
    y = x.copy()
    cpu.add_bias_(y, b)
    np.testing.assert_array_equal(y, (torch.tensor(x) + torch.tensor(b)).numpy())


def test_unscale_grads_matches_torch_and_keeps_a_nonfinite_flag():
    rng = np.random.default_rng(3)
    grads = [randn(rng, n) * 1024 for n in (1, 3, 17, 1000)]
    theirs, their_flag = [torch.tensor(g) for g in grads], torch.zeros(())
    found = np.zeros((), np.float32)
    cpu.unscale_grads_(grads, 1 / 1024, found)
    torch._amp_foreach_non_finite_check_and_unscale_(theirs, their_flag, torch.tensor(1 / 1024))
    assert float(found) == float(their_flag) == 0.0
    for g, t in zip(grads, theirs):
        np.testing.assert_array_equal(g, t.numpy())
    grads[2][5] = np.inf
    cpu.unscale_grads_(grads, 0.5, found)
    assert float(found) == 1.0 and np.isinf(grads[2][5])
    cpu.unscale_grads_(grads[:1], 0.5, found)  # finite gradients leave the flag as it was
    assert float(found) == 1.0


def test_grad_norm_and_clip_match_torch():
    rng = np.random.default_rng(1)
    grads = [randn(rng, n) for n in (1, 3, 17, 1000)]
    theirs = [torch.zeros(len(g), requires_grad=True) for g in grads]
    for p, g in zip(theirs, grads):
        p.grad = torch.tensor(g)
    their_norm = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    norm = cpu.grad_norm(grads)
    assert norm.shape == () and norm.dtype == np.float32
    assert float(norm) == pytest.approx(float(their_norm), rel=1e-6)
    cpu.clip_grads_(grads, norm, 1.0)
    for g, p in zip(grads, theirs):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-6)


def test_a_nonfinite_norm_makes_the_gradients_nan_as_in_torch():
    grads = [np.array([1.0, np.nan], np.float32), np.ones(3, np.float32)]
    cpu.clip_grads_(grads, cpu.grad_norm(grads), 1.0)
    assert np.isnan(grads[1]).all()


def test_adamw_update_multi_is_the_per_tensor_update():
    rng = np.random.default_rng(2)
    sizes = (1, 3, 17, 127)
    params, grads = [randn(rng, n) for n in sizes], [randn(rng, n) for n in sizes]
    ms, vs = [np.zeros(n, np.float32) for n in sizes], [np.zeros(n, np.float32) for n in sizes]
    ref = [[a.copy() for a in arrays] for arrays in (params, ms, vs)]
    hyper = dict(lr=1e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, step=3)
    cpu.adamw_update_multi(params, grads, ms, vs, **hyper)
    for i in range(len(sizes)):
        reference.adamw_update(ref[0][i], grads[i], ref[1][i], ref[2][i], **hyper)
    for ours, theirs in zip((params, ms, vs), ref):
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


def test_capturable_adamw_counts_its_steps_like_the_plain_one():
    """capturable=True keeps the step count on the parameters' device as well; on the CPU that is a
    NumPy scalar, and the updates must be the same as without it."""
    results = []
    for capturable in (False, True):
        tinyllm.manual_seed(0)
        model = tinyllm.nn.Linear(5, 3)
        opt = tinyllm.optim.AdamW(model.parameters(), lr=0.1, capturable=capturable)
        for _ in range(3):
            opt.zero_grad()
            model(tinyllm.ones(2, 5)).sum().backward()
            opt.step()
        results.append(model.weight.detach().numpy().copy())
        assert {s["step"] for s in opt.state.values()} == {3}
    np.testing.assert_array_equal(*results)


def test_ids_out_of_range_raise_on_the_cpu():
    with pytest.raises(IndexError, match=r"embedding: ids must be in \[0, 4\)"):
        tinyllm.nn.functional.embedding(tinyllm.tensor([0, 4]), tinyllm.randn(4, 3))
    with pytest.raises(IndexError, match=r"cross_entropy: targets must be in \[0, 3\) or ignore_index=-100"):
        tinyllm.nn.functional.cross_entropy(tinyllm.randn(2, 3), tinyllm.tensor([-100, 3]))
    tinyllm.nn.functional.cross_entropy(tinyllm.randn(2, 3), tinyllm.tensor([-100, 2]))  # ignored ids are fine
