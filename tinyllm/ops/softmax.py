"""softmax and log_softmax along any axis, on the backend's last-axis kernels."""
import numpy as np

from .. import backend
from ..autograd import Function


class _AlongAxis(Function):
    """Runs the last-axis kernels `<kernel>_forward` / `<kernel>_backward` along axis `dim`, by moving
    that axis last and back. Both backward passes need only the output y, so that is what is saved."""

    kernel = None

    @classmethod
    def forward(cls, ctx, x, dim=-1):
        ctx.dim = dim
        y = getattr(backend.for_array(x), cls.kernel + "_forward")(np.moveaxis(x, dim, -1))
        ctx.save_for_backward(y)
        return np.moveaxis(y, -1, dim)

    @classmethod
    def backward(cls, ctx, grad):
        (y,) = ctx.saved
        dx = getattr(backend.for_array(grad), cls.kernel + "_backward")(np.moveaxis(grad, ctx.dim, -1), y)
        return np.moveaxis(dx, -1, ctx.dim)


class Softmax(_AlongAxis):
    """y = exp(x) / sum exp(x) along dim;  dx = y * (dy - sum(dy * y))."""

    kernel = "softmax"


class LogSoftmax(_AlongAxis):
    """y = x - logsumexp(x) along dim;  dx = dy - exp(y) * sum(dy)."""

    kernel = "log_softmax"
