"""Every differentiable op's backward against central finite differences in float64."""
import numpy as np
import pytest

import tinyllm
import tinyllm.nn.functional as F
from gradcheck import gradcheck, leaf

_ANGLES = np.outer(np.arange(4), [1.0, 0.3, 0.05])  # RoPE angles t * theta_i for 4 positions, D = 6


def _add_norm_inputs():
    return leaf(2, 3, 6), leaf(2, 3, 6, seed=7), leaf(6), leaf(6, seed=8)


def _seeded(fn, *args, **kwargs):
    """fn with the dropout stream restarted first: every call draws the same masks, so finite
    differences see one function."""
    tinyllm.manual_seed(0)
    return fn(*args, **kwargs)


CASES = {
    # elementwise, with broadcasting in both directions
    "add": (lambda a, b: a + b, lambda: (leaf(3, 4), leaf(4))),
    "sub": (lambda a, b: a - b, lambda: (leaf(3, 1), leaf(2, 1, 4))),
    "mul": (lambda a, b: a * b, lambda: (leaf(2, 3, 4), leaf(3, 1))),
    "div": (lambda a, b: a / b, lambda: (leaf(3, 4), leaf(4, low=0.5, high=2.0))),
    "neg": (lambda a: -a, lambda: (leaf(5),)),
    "pow_scalar": (lambda a: a**3, lambda: (leaf(2, 3),)),
    "pow_tensor": (lambda a, b: a**b, lambda: (leaf(2, 3, low=0.5, high=2.0), leaf(3, low=-1.0, high=2.0))),
    "exp": (lambda a: a.exp(), lambda: (leaf(2, 3),)),
    "log": (lambda a: a.log(), lambda: (leaf(2, 3, low=0.2, high=3.0),)),
    "tanh": (lambda a: a.tanh(), lambda: (leaf(2, 3),)),
    "sqrt": (lambda a: a.sqrt(), lambda: (leaf(2, 3, low=0.2, high=3.0),)),
    "relu": (lambda a: F.relu(a), lambda: (leaf(4, 5),)),
    "sigmoid": (lambda a: F.sigmoid(a), lambda: (leaf(4, 5),)),
    "logsigmoid": (lambda a: F.logsigmoid(a * 20.0), lambda: (leaf(4, 5),)),
    # reductions
    "sum_all": (lambda a: a.sum(), lambda: (leaf(3, 4),)),
    "sum_dim": (lambda a: a.sum(dim=1, keepdim=True), lambda: (leaf(2, 3, 4),)),
    "mean_dims": (lambda a: a.mean(dim=(0, 2)), lambda: (leaf(2, 3, 4),)),
    "max_all": (lambda a: a.max(), lambda: (leaf(3, 4),)),
    "max_dim": (lambda a: a.max(dim=-1).values, lambda: (leaf(3, 4),)),
    # shapes and indexing
    "reshape": (lambda a: a.reshape(4, 6) * leaf(4, 6, seed=9).detach(), lambda: (leaf(2, 3, 4),)),
    "transpose": (lambda a: a.transpose(0, 2), lambda: (leaf(2, 3, 4),)),
    "permute": (lambda a: a.permute(2, 0, 1), lambda: (leaf(2, 3, 4),)),
    "expand": (lambda a: a.expand(3, 2, 4), lambda: (leaf(2, 1),)),
    "slice": (lambda a: a[1:, ::2], lambda: (leaf(3, 5),)),
    "index_repeat": (lambda a: a[np.array([0, 2, 0, 0])], lambda: (leaf(3, 2),)),
    "index_mask": (lambda a: a[a.detach().numpy() > 0], lambda: (leaf(4, 3),)),
    "cat": (lambda a, b: tinyllm.cat([a, b, a], dim=1), lambda: (leaf(2, 3), leaf(2, 1))),
    "stack": (lambda a, b: tinyllm.stack([a, b], dim=1), lambda: (leaf(2, 3), leaf(2, 3, seed=5))),
    "where": (lambda a, b: tinyllm.where(a.detach() > 0, a, b), lambda: (leaf(3, 4), leaf(4))),
    "masked_fill": (lambda a: a.masked_fill(np.triu(np.ones((4, 4), bool), 1), -3.0), lambda: (leaf(2, 4, 4),)),
    "clone": (lambda a: a.clone() * 2.0, lambda: (leaf(3),)),
    # matmul and linear
    "matmul_2d": (lambda a, b: a @ b, lambda: (leaf(3, 4), leaf(4, 5))),
    "matmul_batched_shared": (lambda a, b: a @ b, lambda: (leaf(2, 3, 4), leaf(4, 5))),
    "matmul_broadcast": (lambda a, b: a @ b, lambda: (leaf(2, 1, 3, 4), leaf(3, 4, 2))),
    "matmul_vector": (lambda a, b: a @ b, lambda: (leaf(4), leaf(2, 4, 3))),
    "linear": (lambda x, w, b: F.linear(x, w, b), lambda: (leaf(2, 3, 4), leaf(5, 4), leaf(5))),
    "linear_nobias": (lambda x, w: F.linear(x, w), lambda: (leaf(3, 4), leaf(2, 4))),
    # the GPT ops
    "softmax": (lambda a: F.softmax(a, dim=-1), lambda: (leaf(3, 5),)),
    "softmax_dim0": (lambda a: F.softmax(a, dim=0), lambda: (leaf(3, 5),)),
    "log_softmax": (lambda a: F.log_softmax(a, dim=1), lambda: (leaf(2, 4, 3),)),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (6,), w, b), lambda: (leaf(2, 3, 6), leaf(6), leaf(6))),
    "layer_norm_plain": (lambda x: F.layer_norm(x, 6), lambda: (leaf(4, 6),)),
    "rms_norm": (lambda x, w: F.rms_norm(x, (5,), w, eps=1e-6), lambda: (leaf(3, 5), leaf(5))),
    # the residual add fused with the next norm: two results, gradients into both, or into one only
    "add_layer_norm_both": (lambda x, d, w, b: tinyllm.stack(F.add_layer_norm(x, d, 6, w, b)), _add_norm_inputs),
    "add_layer_norm_y_only": (lambda x, d, w, b: F.add_layer_norm(x, d, 6, w, b)[1], _add_norm_inputs),
    "add_layer_norm_s_only": (lambda x, d: F.add_layer_norm(x, d, 6)[0], lambda: _add_norm_inputs()[:2]),
    "add_layer_norm_nobias": (lambda x, d, w: tinyllm.stack(F.add_layer_norm(x, d, 6, w)), lambda: _add_norm_inputs()[:3]),
    "add_layer_norm_s_reused": (lambda x, d: (lambda s, y: s * y + s)(*F.add_layer_norm(x, d, 6)), lambda: _add_norm_inputs()[:2]),
    "add_rms_norm_both": (lambda x, d, w: tinyllm.stack(F.add_rms_norm(x, d, 6, w, eps=1e-6)), lambda: _add_norm_inputs()[:3]),
    "add_rms_norm_y_only": (lambda x, d, w: F.add_rms_norm(x, d, 6, w, eps=1e-6)[1], lambda: _add_norm_inputs()[:3]),
    "gelu": (lambda a: F.gelu(a), lambda: (leaf(3, 4),)),
    "gelu_tanh": (lambda a: F.gelu(a, approximate="tanh"), lambda: (leaf(3, 4),)),
    "silu": (lambda a: F.silu(a), lambda: (leaf(3, 4),)),
    "embedding": (lambda w: F.embedding(tinyllm.tensor([[1, 3, 1], [0, 1, 2]]), w), lambda: (leaf(4, 3),)),
    "cross_entropy_mean": (lambda z: F.cross_entropy(z, tinyllm.tensor([1, 0, 3, 2, -100])), lambda: (leaf(5, 4),)),
    "cross_entropy_sum": (lambda z: F.cross_entropy(z, tinyllm.tensor([1, 0, 3]), reduction="sum"), lambda: (leaf(3, 4),)),
    "cross_entropy_none": (lambda z: F.cross_entropy(z, tinyllm.tensor([[1, 0], [2, 2]]), reduction="none"), lambda: (leaf(2, 3, 2),)),
    "sdpa_causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                    lambda: (leaf(1, 2, 4, 3), leaf(1, 2, 4, 3, seed=7), leaf(1, 2, 4, 3, seed=8))),
    "sdpa_full_3d": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.7),
                     lambda: (leaf(2, 3, 2), leaf(2, 5, 2, seed=7), leaf(2, 5, 3, seed=8))),
    "sdpa_causal_kv_longer": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                              lambda: (leaf(1, 1, 2, 3), leaf(1, 1, 5, 3, seed=7), leaf(1, 1, 5, 3, seed=8))),
    "sdpa_causal_dropout": (lambda q, k, v: _seeded(F.scaled_dot_product_attention, q, k, v, dropout_p=0.3, is_causal=True),
                            lambda: (leaf(1, 2, 5, 3), leaf(1, 2, 5, 3, seed=7), leaf(1, 2, 5, 3, seed=8))),
    "sdpa_masked": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=np.array([[True, False, True]] * 2)),
                    lambda: (leaf(1, 2, 2), leaf(1, 3, 2, seed=7), leaf(1, 3, 2, seed=8))),
    "rope": (lambda x: F.rope(x, np.cos(_ANGLES), np.sin(_ANGLES)), lambda: (leaf(2, 3, 4, 6),)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_matches_finite_differences(name):
    fn, make_inputs = CASES[name]
    gradcheck(fn, *make_inputs())


def test_dropout_backward_uses_the_forward_mask():
    x = leaf(50, 4)
    y = F.dropout(x, p=0.3, training=True)
    y.sum().backward()
    kept = y.data != 0
    np.testing.assert_allclose(x.grad.data, kept / 0.7)
    assert 0.5 < kept.mean() < 0.9


def test_gradcheck_catches_a_wrong_backward(monkeypatch):
    """The checker itself fails on a backward that is off by a factor."""
    from tinyllm.ops import elementwise
    monkeypatch.setattr(elementwise.Tanh, "backward", staticmethod(lambda ctx, g: 1.01 * g * (1 - ctx.saved[0] ** 2)))
    with pytest.raises(AssertionError):
        gradcheck(lambda a: a.tanh(), leaf(3))
