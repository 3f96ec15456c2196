"""Activation functions that have a kernel of their own (GELU, SiLU); see elementwise.py for the rest."""
from .. import backend
from ..autograd import Function


class GELU(Function):
    """y = x * Phi(x) (exact, with erf) or its tanh approximation;
    dx = dy * (Phi(x) + x * phi(x)), or the derivative of the tanh form (see backend/reference.py)."""

    @staticmethod
    def forward(ctx, x, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        ctx.approximate = approximate
        ctx.save_for_backward(x)
        return backend.for_array(x).gelu_forward(x, approximate)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return backend.for_array(grad).gelu_backward(grad, x, ctx.approximate)


class SiLU(Function):
    """y = x * sigmoid(x);  dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.for_array(x).silu_forward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return backend.for_array(grad).silu_backward(grad, x)
