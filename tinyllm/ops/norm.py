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



class AddLayerNorm(Function):
    """s = x + delta, y = layernorm(s): a pre-norm block's residual add and its next norm in one pass.

    Two results, so two incoming gradients: s goes on along the residual stream (ds) and y into the
    next sublayer (dy). s feeds y, so d(s) = ds + LayerNorm's dx of dy, and the add hands that to both
    inputs: dx = ddelta = ds + rstd * (g - mean(g) - shat * mean(g * shat)), g = dy * w,
    shat = (s - mean) * rstd;  dw = sum(dy * shat),  db = sum(dy).  Either of ds, dy may be None."""

    @staticmethod
    def forward(ctx, x, delta, weight, bias=None, eps=1e-5):
        s, y, mean, rstd = backend.for_array(x).add_layernorm_forward(x, delta, weight, bias, eps)
        ctx.save_for_backward(s, weight, mean, rstd)
        return s, y

    @staticmethod
    def backward(ctx, ds, dy):
        s, weight, mean, rstd = ctx.saved
        dx, dw, db = (ds, None, None) if dy is None else backend.for_array(dy).layernorm_backward(dy, s, weight, mean, rstd, ds)
        return (dx, dx, dw, db)[: len(ctx.needs_input_grad)]


class AddRMSNorm(Function):
    """s = x + delta, y = rmsnorm(s): AddLayerNorm's fusion for RMSNorm.
    dx = ddelta = ds + rstd * (g - shat * mean(g * shat)), g = dy * w, shat = s * rstd;  dw = sum(dy * shat)."""

    @staticmethod
    def forward(ctx, x, delta, weight, eps=1e-6):
        s, y, rstd = backend.for_array(x).add_rmsnorm_forward(x, delta, weight, eps)
        ctx.save_for_backward(s, weight, rstd)
        return s, y

    @staticmethod
    def backward(ctx, ds, dy):
        s, weight, rstd = ctx.saved
        dx, dw = (ds, None) if dy is None else backend.for_array(dy).rmsnorm_backward(dy, s, weight, rstd, ds)
        return dx, dx, dw
