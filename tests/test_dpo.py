"""The DPO loss and its gradient against a direct NumPy computation and against PyTorch."""
import math

import numpy as np
import pytest

import tinyllm
from tinyllm.align import dpo_loss

torch = pytest.importorskip("torch")


def _logps(seed, n=6):
    """Four sequence log-probability vectors (policy chosen/rejected, reference chosen/rejected)."""
    return [-np.abs(np.random.default_rng(seed + i).standard_normal(n)) * 20 for i in range(4)]


def _numpy_dpo(pc, pr, rc, rr, beta, label_smoothing, loss_type):
    """Losses and d(sum of losses)/d(policy chosen, policy rejected), written out by hand."""
    z = (pc - pr) - (rc - rr)
    sig = lambda t: 1 / (1 + np.exp(-t))
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * np.log(sig(beta * z)) - label_smoothing * np.log(sig(-beta * z))
        dz = -(1 - label_smoothing) * beta * sig(-beta * z) + label_smoothing * beta * sig(beta * z)
    else:
        losses = (z - 1 / (2 * beta)) ** 2
        dz = 2 * (z - 1 / (2 * beta))
    return losses, dz, -dz


def _ours(arrays, **kw):
    tensors = [tinyllm.tensor(a, dtype="float64", requires_grad=i < 2) for i, a in enumerate(arrays)]
    losses, chosen, rejected = dpo_loss(*tensors, **kw)
    losses.sum().backward()
    return losses.data, tensors[0].grad.data, tensors[1].grad.data, chosen, rejected


def _torch(arrays, beta, label_smoothing, loss_type):
    """TRL's dpo_loss formula, in PyTorch."""
    pc, pr, rc, rr = (torch.tensor(a, requires_grad=i < 2) for i, a in enumerate(arrays))
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        F = torch.nn.functional
        losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    else:
        losses = (logits - 1 / (2 * beta)) ** 2
    losses.sum().backward()
    return losses.detach().numpy(), pc.grad.numpy(), pr.grad.numpy()


@pytest.mark.parametrize("beta, label_smoothing, loss_type", [(0.1, 0.0, "sigmoid"), (0.5, 0.2, "sigmoid"), (0.1, 0.0, "ipo"), (1.0, 0.0, "ipo")])
def test_dpo_loss_and_gradient(beta, label_smoothing, loss_type):
    arrays = _logps(int(beta * 10) + len(loss_type))
    losses, d_chosen, d_rejected, chosen_rewards, rejected_rewards = _ours(arrays, beta=beta, label_smoothing=label_smoothing, loss_type=loss_type)
    expected = _numpy_dpo(*arrays, beta, label_smoothing, loss_type)
    for ours, ref in zip((losses, d_chosen, d_rejected), expected):
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    for ours, theirs in zip((losses, d_chosen, d_rejected), _torch(arrays, beta, label_smoothing, loss_type)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(chosen_rewards.data, beta * (arrays[0] - arrays[2]))
    np.testing.assert_allclose(rejected_rewards.data, beta * (arrays[1] - arrays[3]))
    assert not chosen_rewards.requires_grad and not rejected_rewards.requires_grad


def test_the_loss_is_log_2_when_policy_equals_reference():
    chosen, rejected = _logps(3)[:2]
    losses, *_ = dpo_loss(*(tinyllm.tensor(a) for a in (chosen, rejected, chosen, rejected)))
    np.testing.assert_allclose(losses.data, math.log(2), rtol=1e-6)


def test_bad_arguments_are_refused():
    t = tinyllm.zeros(2)
    with pytest.raises(ValueError, match="loss_type"):
        dpo_loss(t, t, t, t, loss_type="hinge-ish")
    with pytest.raises(ValueError, match="beta > 0"):
        dpo_loss(t, t, t, t, beta=0.0)
