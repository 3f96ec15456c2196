"""Ops that move, select or combine elements without arithmetic: their backward routes gradients back."""
import numpy as np

from .. import backend
from ..autograd import Function, IndexedGrad, unbroadcast
from ..backend.array import array_module, is_array


def _reshape(x, shape):
    """x with a new shape: a view of a contiguous x, else a contiguous copy by the backend's kernel
    (transposed gradients of attention land here; CuPy's own copy of them is slow)."""
    return (x if x.flags.c_contiguous else backend.for_array(x).contiguous(x)).reshape(shape)


class Reshape(Function):
    """y = x viewed with a new shape;  dx = dy viewed with x's shape."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        try:
            return _reshape(x, shape)
        except ValueError:
            raise ValueError(f"can't reshape a tensor of shape {x.shape} ({x.size} elements) to {shape}") from None

    @staticmethod
    def backward(ctx, grad):
        return _reshape(grad, ctx.shape)


class Permute(Function):
    """y = x with its axes reordered by dims;  dx = dy with the inverse order."""

    @staticmethod
    def forward(ctx, x, dims):
        if sorted(dims) != list(range(x.ndim)):
            raise ValueError(f"permute needs a reordering of the {x.ndim} axes, got {dims}")
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad):
        return grad.transpose(tuple(np.argsort(ctx.dims).tolist()))


class Expand(Function):
    """y = x broadcast to shape (a view);  dx = dy summed over the broadcast axes."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.shape)


class GetItem(Function):
    """y = x[index] (slices, integers, masks, index arrays);  dx = zeros with dy added at the indexed places.

    Integer index arrays can pick one element several times, so their gradient is a scatter-add.
    backward returns dx as an IndexedGrad (dy and the index): autograd adds it into x's gradient in
    place, so slicing q, k and v out of one qkv tensor costs one zero-filled gradient, not three
    plus their sum.
    """

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        try:
            return array_module(x).asarray(x[index])
        except IndexError as err:
            raise IndexError(f"index {index!r} is out of range for a tensor of shape {x.shape}: {err}") from None

    @staticmethod
    def backward(ctx, grad):
        return IndexedGrad(ctx.index, grad, ctx.shape, ctx.dtype)


class Cat(Function):
    """y = the inputs joined along dim;  each dx is its slice of dy."""

    @staticmethod
    def forward(ctx, *xs, dim=0):
        ctx.dim, ctx.sizes = dim, [x.shape[dim] for x in xs]
        return np.concatenate(xs, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.split(grad, np.cumsum(ctx.sizes)[:-1].tolist(), axis=ctx.dim))


class Stack(Function):
    """y = the inputs stacked along a new axis dim;  each dx is its index of dy along dim."""

    @staticmethod
    def forward(ctx, *xs, dim=0):
        ctx.dim = dim
        return np.stack(xs, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.moveaxis(grad, ctx.dim, 0))


class Where(Function):
    """y = a where cond else b;  da = dy where cond,  db = dy where not cond."""

    @staticmethod
    def forward(ctx, a, b, cond):
        ctx.cond, ctx.shapes = cond, (a.shape, b.shape)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        zero = array_module(grad).zeros((), grad.dtype)
        sa, sb = ctx.shapes
        return unbroadcast(np.where(ctx.cond, grad, zero), sa), unbroadcast(np.where(ctx.cond, zero, grad), sb)


class MaskedFill(Function):
    """y = x with value where mask is true;  dx = dy where mask is false, else 0."""

    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.mask, ctx.shape = mask, x.shape
        return np.where(mask, array_module(x).asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(np.where(ctx.mask, array_module(grad).zeros((), grad.dtype), grad), ctx.shape)
