"""LayerNorm and RMSNorm over the last axis, on the backend's fused kernels."""
from .. import backend
from ..autograd import Function


class LayerNorm(Function):
    """y = (x - mean) * rstd * w + b;  dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w,
    dw = sum(dy * xhat),  db = sum(dy)  (sums over all rows)."""

    @staticmethod
    def forward(ctx, x, weight, bias=None, eps=1e-5):
        y, mean, rstd = backend.for_array(x).layernorm_forward(x, weight, bias, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, rstd = ctx.saved
        dx, dw, db = backend.for_array(grad).layernorm_backward(grad, x, weight, mean, rstd)
        return (dx, dw, db)[: len(ctx.needs_input_grad)]


class RMSNorm(Function):
    """y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps);  dx = rstd * (g - xhat * mean(g * xhat)),
    g = dy * w, xhat = x * rstd;  dw = sum(dy * xhat)."""

    @staticmethod
    def forward(ctx, x, weight, eps=1e-6):
        y, rstd = backend.for_array(x).rmsnorm_forward(x, weight, eps)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, rstd = ctx.saved
        return backend.for_array(grad).rmsnorm_backward(grad, x, weight, rstd)

