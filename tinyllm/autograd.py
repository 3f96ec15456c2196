"""Reverse-mode automatic differentiation.

Every differentiable operation is a `Function` with a `forward(ctx, *arrays)` that computes the
result from plain arrays and a `backward(ctx, grad)` that turns the gradient of the result into the
gradients of the inputs. `Function.apply` runs forward on Tensors and, when a gradient is needed,
records a `Node` on the output: the function, its context (what forward saved) and its input Tensors.

`backward` walks those nodes from the loss in reverse topological order, adds up each Tensor's
gradient from all its uses, hands it to the node's backward, frees what the node saved, and
accumulates the gradients of leaf Tensors (parameters) into `.grad`.

An op may have several results: a forward that returns a tuple of arrays gives a tuple of Tensors,
all made by one Node (each knows its place, `Tensor._output`). Its backward then takes one gradient
per result, `backward(ctx, *grads)`, and a result that received no gradient (unused, or not
differentiable) is given as None. The node runs once, after every use of every one of its results.

float16/bfloat16 inputs are upcast to the dtype their backend computes in (float32 on the CPU;
bfloat16 stays bfloat16 on the GPU, whose kernels accumulate in float32), and when every floating input of
an op is of one half dtype its result is rounded back to it (a float32 input promotes the result to
float32, as in PyTorch); gradients return in each input's dtype. So no op knows about half precision.

The Tensor inputs of one op must share a device (NumPy arrays, or CuPy arrays on the GPU); the arrays
an op creates come from its inputs' array library, so ops need not know about devices either.
"""
import contextlib
import threading

import numpy as np

from . import backend, dtypes
from .backend.array import array_module, check_same_device, is_array

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.previous = is_grad_enabled()
        _state.grad_enabled = self.enabled

    def __exit__(self, *exc):
        _state.grad_enabled = self.previous
        return False


def no_grad():
    """Context manager and decorator: no graph is recorded inside (for evaluation and updates)."""
    return _GradMode(False)


def enable_grad():
    return _GradMode(True)


class Context:
    """What a Function's forward leaves for its backward."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()
        self._freed = False

    def save_for_backward(self, *arrays):
        self._saved = arrays

    @property
    def saved(self):
        if self._freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time: its saved activations were freed "
                "after the first backward. Call .backward(retain_graph=True) the first time if you need it twice.")
        return self._saved

    def free(self):
        self._saved = ()
        self._freed = True


class Node:
    """One recorded application of a Function: the graph edge from its n_outputs results to its inputs."""

    __slots__ = ("function", "ctx", "inputs", "n_outputs")

    def __init__(self, function, ctx, inputs, n_outputs):
        self.function, self.ctx, self.inputs, self.n_outputs = function, ctx, inputs, n_outputs


class Function:
    """Base class of differentiable ops. Subclasses define static forward(ctx, ...) and backward(ctx, grad).

    backward returns one gradient (an array or None) per Tensor argument of forward, in order. A forward
    that returns a tuple of arrays makes a tuple of Tensors; its backward is backward(ctx, *grads), one
    gradient per result, None for a result that got none.
    """

    rounds_to_storage_dtype = True  # results of float16/bfloat16 inputs are rounded back to that dtype

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        from .tensor import Tensor

        inputs = [a for a in args if isinstance(a, Tensor)]
        if len(inputs) > 1:
            check_same_device(t.data for t in inputs)
        needs = tuple(t.requires_grad for t in inputs)
        ctx = Context(needs)
        floating = [t.dtype for t in inputs if dtypes.is_floating(t.dtype)]
        out_dtype = floating[0] if floating and all(d == floating[0] and d in dtypes._HALF for d in floating) else None
        arrays = [_upcast(a.data) if isinstance(a, Tensor) else a for a in args]
        out = cls.forward(ctx, *arrays, **kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        if out_dtype is not None and cls.rounds_to_storage_dtype:  # no copy when the op already returned that dtype
            outs = tuple(o.astype(out_dtype, copy=False) if dtypes.is_floating(o.dtype) else o for o in outs)
        recording = is_grad_enabled() and any(needs)
        results = tuple(Tensor._wrap(o, requires_grad=recording and dtypes.is_floating(o.dtype)) for o in outs)
        if any(r.requires_grad for r in results):
            node = Node(cls, ctx, inputs, len(results))
            for i, r in enumerate(results):
                if r.requires_grad:
                    r._node, r._output = node, i
        return results if isinstance(out, tuple) else results[0]


class IndexedGrad:
    """A gradient that is zero but at x[index], where it is `values` (what GetItem's backward returns).

    backward adds it into the input's gradient buffer in place (a scatter-add for integer index
    arrays, which may name one element twice) instead of materialising zeros for every slice.
    """

    def __init__(self, index, values, shape, dtype):
        self.index, self.values, self.shape, self.dtype = index, values, tuple(shape), dtype

    def add_into(self, buffer):
        parts = self.index if isinstance(self.index, tuple) else (self.index,)
        if any(isinstance(i, list) or (is_array(i) and i.dtype != np.bool_) for i in parts):
            array_module(buffer).add.at(buffer, self.index, self.values)
        else:
            buffer[self.index] += self.values


def _upcast(array):
    """The array in the dtype its backend computes in: float32 for half storage on the CPU, while the
    CUDA backend takes bfloat16 as it is (its kernels accumulate in float32 themselves). Every other
    dtype is computed as stored everywhere (asked for every array of every op, so that comes first)."""
    if array.dtype not in dtypes._HALF:
        return array
    wanted = backend.for_array(array).compute_dtype(array.dtype)
    return array if wanted == array.dtype else array.astype(wanted)


def _key(tensor):
    """Where backward keeps a Tensor's gradient: by its Node and place among the Node's results, so the
    results of one op are found together; by the Tensor itself for a leaf."""
    return id(tensor) if tensor._node is None else (id(tensor._node), tensor._output)


def _topological_order(root):
    """The Nodes and leaf Tensors reachable from root (a Tensor), each after every Node that uses it
    (iterative DFS)."""
    start = root if root._node is None else root._node
    order, visited, stack = [], set(), [(start, False)]
    while stack:
        item, expanded = stack.pop()
        if expanded:
            order.append(item)
            continue
        if id(item) in visited:
            continue
        visited.add(id(item))
        stack.append((item, True))
        if isinstance(item, Node):
            stack.extend((t if t._node is None else t._node, False) for t in item.inputs if t.requires_grad)
    return reversed(order)


def backward(root, grad, retain_graph=False):
    """Accumulate d(root)/d(leaf) * grad into every leaf's .grad."""
    grads = {_key(root): grad}
    owned = set()  # keys whose gradient buffer was made here (so may be added into in place)
    for item in _topological_order(root):
        if not isinstance(item, Node):  # a leaf: accumulate, in its own dtype, across backward calls
            g = grads.pop(id(item), None)
            if g is not None:
                item._accumulate_grad(g)
            continue
        node = item
        out_grads = [grads.pop((id(node), i), None) for i in range(node.n_outputs)]
        if all(g is None for g in out_grads):
            continue
        input_grads = node.function.backward(node.ctx, *(None if g is None else _upcast(g) for g in out_grads))
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if len(input_grads) != len(node.inputs):
            raise RuntimeError(f"{node.function.__name__}.backward returned {len(input_grads)} gradients "
                               f"for {len(node.inputs)} inputs")
        if not retain_graph:
            node.ctx.free()
        for t, tg in zip(node.inputs, input_grads):
            if tg is None or not t.requires_grad:
                continue
            if tg.shape != t.shape:
                raise RuntimeError(f"{node.function.__name__}.backward gave a gradient of shape {tg.shape} "
                                   f"for an input of shape {t.shape}")
            key = _key(t)
            if isinstance(tg, IndexedGrad):
                if key not in owned:  # a buffer of our own: zeros, or a copy of a gradient others may hold
                    held = grads.get(key)
                    grads[key] = array_module(tg.values).zeros(t.shape, t.dtype) if held is None else held.astype(t.dtype)
                    owned.add(key)
                tg.add_into(grads[key])
                continue
            if tg.dtype != t.dtype:
                tg = backend.for_array(tg).cast(tg, t.dtype)
            if key in grads:
                grads[key] = grads[key] + tg
                owned.add(key)
            else:
                grads[key] = tg


def unbroadcast(grad, shape):
    """Sum grad over the axes that broadcasting added or stretched, so it takes `shape` again."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
