"""Reductions over some axes (all of them when dim is None)."""
import numpy as np

from ..autograd import Function
from ..backend.array import array_module


def _regrow(grad, shape, dim, keepdim):
    """grad of a reduction's result, given back its reduced axes so it broadcasts against the input."""
    if dim is None:
        return np.broadcast_to(grad.reshape((1,) * len(shape)), shape)
    if not keepdim:
        grad = np.expand_dims(grad, dim)
    return np.broadcast_to(grad, shape)


class Sum(Function):
    """y = sum of x over dim;  dx = dy broadcast over the summed axes."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        ctx.args = x.shape, dim, keepdim
        return array_module(x).asarray(x.sum(axis=dim, keepdims=keepdim))

    @staticmethod
    def backward(ctx, grad):
        return _regrow(grad, *ctx.args).copy()


class Mean(Function):
    """y = mean of x over dim;  dx = dy / n broadcast over the n averaged elements."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        y = array_module(x).asarray(x.mean(axis=dim, keepdims=keepdim))
        ctx.args = x.shape, dim, keepdim
        ctx.count = x.size // max(y.size, 1) if x.size else 1
        return y

    @staticmethod
    def backward(ctx, grad):
        return _regrow(grad, *ctx.args) / grad.dtype.type(ctx.count)


class Max(Function):
    """y = max of x over dim;  dx = dy at the maximum (shared equally between tied maxima), 0 elsewhere."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        y = array_module(x).asarray(x.max(axis=dim, keepdims=keepdim))
        ctx.args = x.shape, dim, keepdim
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved
        at_max = x == _regrow(y, *ctx.args)
        share = at_max.sum(axis=ctx.args[1], keepdims=True)
        return _regrow(grad, *ctx.args) * at_max / share
