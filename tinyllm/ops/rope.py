"""Rotary position embedding (RoPE, Su et al. 2021) on the backend's rope kernels."""
from .. import backend
from ..autograd import Function


class RoPE(Function):
    """y = x rotated pairwise by angle t * theta_i at position t, in the "rotate_half" layout of Llama:
    with x = [x1, x2] (halves of the last axis), y1 = x1 cos - x2 sin,  y2 = x2 cos + x1 sin.
    The rotation is orthogonal, so dx is dy rotated back: dx1 = dy1 cos + dy2 sin,  dx2 = dy2 cos - dy1 sin.
    cos and sin (T, D/2) are constants, not inputs that get a gradient."""

    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return backend.for_array(x).rope_forward(x, cos, sin)

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved
        return backend.for_array(grad).rope_backward(grad, cos, sin)
