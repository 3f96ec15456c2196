"""Fused scaled dot-product attention on the backend's attention kernels."""
from .. import backend
from ..autograd import Function


class ScaledDotProductAttention(Function):
    """O = softmax(Q K^T * scale + causal mask) V over (B, H, T, D) tensors, without storing the
    probabilities: forward saves only O and the row log-sum-exp L, and backward rebuilds P = exp(S - L):
    dV = P^T dO,  dS = P * (dO V^T - rowsum(dO * O)),  dQ = dS K * scale,  dK = dS^T Q * scale."""

    @staticmethod
    def forward(ctx, q, k, v, causal=False, scale=1.0):
        o, lse = backend.for_array(q).attention_forward(q, k, v, causal, scale)
        ctx.args = causal, scale
        ctx.save_for_backward(q, k, v, o, lse)
        return o

    @staticmethod
    def backward(ctx, grad):
        q, k, v, o, lse = ctx.saved
        return backend.for_array(grad).attention_backward(grad, q, k, v, o, lse, *ctx.args)
