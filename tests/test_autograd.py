"""The autograd engine's contract: accumulation, graph freeing, no_grad, detach, dtypes."""
import numpy as np
import pytest

import tinyllm


def test_gradients_accumulate_across_backward_calls():
    x = tinyllm.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_a_tensor_used_twice_gets_both_gradients():
    x = tinyllm.tensor([2.0], requires_grad=True)
    y = x * x + x  # x feeds Mul twice and Add once
    y.backward(tinyllm.tensor([1.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2 * 2.0 + 1])


def test_saved_activations_are_freed_after_backward():
    x = tinyllm.tensor([0.5, 1.5], requires_grad=True)
    y = x.exp()
    node = y._node
    y.sum().backward()
    assert node.ctx._saved == ()
    with pytest.raises(RuntimeError, match="second time"):
        y.sum().backward()


def test_retain_graph_allows_a_second_backward():
    x = tinyllm.tensor([0.5, 1.5], requires_grad=True)
    y = x.exp().sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([0.5, 1.5]), rtol=1e-6)


def test_no_grad_records_nothing_and_detach_cuts_the_graph():
    x = tinyllm.tensor([1.0], requires_grad=True)
    with tinyllm.no_grad():
        y = x * 2
    assert not y.requires_grad and y._node is None
    z = (x * 2).detach()
    assert not z.requires_grad and z.is_leaf
    assert tinyllm.is_grad_enabled()


def test_no_grad_works_as_a_decorator():
    @tinyllm.no_grad()
    def f(x):
        return x * 2
    assert not f(tinyllm.tensor([1.0], requires_grad=True)).requires_grad


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = tinyllm.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


def test_broadcast_gradient_has_the_input_shape():
    a = tinyllm.randn(4, 1, 3, requires_grad=True)
    b = tinyllm.randn(5, 1, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (4, 1, 3) and b.grad.shape == (5, 1)
    np.testing.assert_allclose(b.grad.numpy(), np.broadcast_to(a.data.sum(axis=(0, 2)).sum(), (5, 1)), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_storage_computes_in_float32_and_stores_half(dtype):
    x = tinyllm.randn(4, 8).to(dtype).requires_grad_()
    w = tinyllm.randn(8, 3).to(dtype).requires_grad_()
    y = tinyllm.nn.functional.gelu(x @ w)
    assert y.dtype == tinyllm.dtypes.as_dtype(dtype)
    y.sum().backward()
    assert x.grad.dtype == x.dtype and w.grad.dtype == w.dtype
    ref = x.data.astype(np.float32) @ w.data.astype(np.float32)
    np.testing.assert_allclose(y.data.astype(np.float32), tinyllm.backend.reference.gelu_forward(ref), rtol=2e-2, atol=2e-2)


def test_cast_passes_gradients_back_in_the_source_dtype():
    x = tinyllm.randn(3, requires_grad=True)
    y = x.double() * 2.0
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_clear_errors():
    with pytest.raises(RuntimeError, match="non-scalar"):
        tinyllm.randn(3, requires_grad=True).exp().backward()
    with pytest.raises(TypeError, match="floating-point"):
        tinyllm.tensor([1, 2], requires_grad=True)
    with pytest.raises(ValueError, match="don't fit"):
        tinyllm.randn(2, 3) @ tinyllm.randn(4, 5)
    with pytest.raises(ValueError, match="can't reshape"):
        tinyllm.randn(2, 3).reshape(4, 2)
    with pytest.raises(RuntimeError, match="in place"):
        tinyllm.randn(3, requires_grad=True).zero_()


def test_a_float32_operand_promotes_a_half_result_to_float32():
    residual = tinyllm.randn(2, 4)
    update = tinyllm.randn(2, 4).bfloat16()
    assert (residual + update).dtype == np.float32
    assert (update + update).dtype == tinyllm.bfloat16
    loss = tinyllm.nn.functional.cross_entropy(tinyllm.randn(3, 5).half(), tinyllm.tensor([0, 1, 2]))
    assert loss.dtype == np.float32


def test_slices_add_their_gradients_in_place_without_touching_shared_ones():
    """GetItem's gradient (an IndexedGrad) is added into a buffer of autograd's own: several slices of
    one tensor sum correctly, and a gradient array that another tensor still holds (Add gives both
    its inputs the same one; w is processed after the slice here) is copied before a slice goes in."""
    x = tinyllm.tensor(np.arange(4.0, dtype=np.float32), requires_grad=True)
    w0 = tinyllm.tensor(np.zeros(4, np.float32), requires_grad=True)
    u, w = x * 1.0, w0 * 1.0
    loss = (u + w).sum() + (u[:2] * 2.0).sum() + (w * 3.0).sum() + (u[1:] * 3.0).sum() + u[tinyllm.tensor([0, 0])].sum()
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1 + 2 + 2, 1 + 2 + 3, 1 + 3, 1 + 3])
    np.testing.assert_array_equal(w0.grad.numpy(), np.full(4, 4.0, np.float32))


class SplitScale(tinyllm.autograd.Function):
    """Two results, a = 2x and b = 3x, and a count of backward calls with the gradients they got."""
    calls = []

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 2 * x, 3 * x

    @staticmethod
    def backward(ctx, da, db):
        ctx.saved  # raises once the graph is freed
        SplitScale.calls.append((da, db))
        return (0 if da is None else 2 * da) + (0 if db is None else 3 * db)


def test_a_tuple_returning_forward_gives_a_tuple_of_tensors_of_one_node():
    a, b = SplitScale.apply(tinyllm.tensor([1.0, 2.0], requires_grad=True))
    assert a._node is b._node and (a._output, b._output) == (0, 1)
    np.testing.assert_allclose(b.detach().numpy(), [3.0, 6.0])


def test_a_multi_output_node_runs_once_with_every_result_gradient_summed():
    SplitScale.calls.clear()
    x = tinyllm.tensor([1.0, 2.0], requires_grad=True)
    a, b = SplitScale.apply(x)
    (a * 5 + b * 7 + a).sum().backward()  # a used twice, and after b in the graph
    assert len(SplitScale.calls) == 1
    np.testing.assert_allclose(x.grad.numpy(), [2 * 6 + 3 * 7] * 2)


def test_a_result_without_gradient_is_given_as_none():
    SplitScale.calls.clear()
    x = tinyllm.tensor([1.0, 2.0], requires_grad=True)
    a, b = SplitScale.apply(x)
    b.sum().backward()
    (da, db), = SplitScale.calls
    assert da is None and db is not None
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_a_multi_output_node_frees_its_saved_arrays_and_accumulates_across_calls():
    x = tinyllm.tensor([1.0, 2.0], requires_grad=True)
    a, b = SplitScale.apply(x)
    (a + b).sum().backward(retain_graph=True)
    a.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0 + 2.0] * 2)
    with pytest.raises(RuntimeError, match="second time"):
        b.sum().backward()
