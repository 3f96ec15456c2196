"""softmax and log_softmax along any axis, on the backend's last-axis kernels."""
import numpy as np

from .. import backend
from ..autograd import Function


class Softmax(Function):
    """y = exp(x) / sum exp(x) along dim;  dx = y * (dy - sum(dy * y))."""

    @staticmethod
    def forward(ctx, x, dim=-1):
        ctx.dim = dim
        y = backend.for_array(x).softmax_forward(np.moveaxis(x, dim, -1))
        ctx.save_for_backward(y)
        return np.moveaxis(y, -1, dim)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        dx = backend.for_array(grad).softmax_backward(np.moveaxis(grad, ctx.dim, -1), y)
        return np.moveaxis(dx, -1, ctx.dim)


class LogSoftmax(Function):
    """y = x - logsumexp(x) along dim;  dx = dy - exp(y) * sum(dy)."""

    @staticmethod
    def forward(ctx, x, dim=-1):
        ctx.dim = dim
        y = backend.for_array(x).log_softmax_forward(np.moveaxis(x, dim, -1))
        ctx.save_for_backward(y)
        return np.moveaxis(y, -1, dim)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        dx = backend.for_array(grad).log_softmax_backward(np.moveaxis(grad, ctx.dim, -1), y)
        return np.moveaxis(dx, -1, ctx.dim)
