"""Fused scaled dot-product attention on the backend's attention kernels."""
from .. import backend, random
from ..autograd import Function


class ScaledDotProductAttention(Function):
    """O = softmax(Q K^T * scale + causal mask) V over (B, H, T, D) tensors, without storing the
    probabilities: forward saves only O and the row log-sum-exp L, and backward rebuilds P = exp(S - L):
    dV = P^T dO,  dS = P * (dO V^T - rowsum(dO * O)),  dQ = dS K * scale,  dK = dS^T Q * scale.

    With dropout_p > 0, O = (P * Z) V where Z is dropout's factor for each element of P, drawn from
    the dropout stream as dropout(P) would be and drawn again in backward (nothing stored):
    dV = (P * Z)^T dO and dS = P * ((dO V^T) * Z - rowsum(dO * O))."""

    @staticmethod
    def forward(ctx, q, k, v, causal=False, scale=1.0, dropout_p=0.0):
        dropout_args = None
        if dropout_p > 0.0:
            dropout_args = (dropout_p, *random.dropout_key(q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2]))
        o, lse = backend.for_array(q).attention_forward(q, k, v, causal, scale, dropout_args)
        ctx.args = causal, scale, dropout_args
        ctx.save_for_backward(q, k, v, o, lse)
        return o

    @staticmethod
    def backward(ctx, grad):
        q, k, v, o, lse = ctx.saved
        return backend.for_array(grad).attention_backward(grad, q, k, v, o, lse, *ctx.args)
