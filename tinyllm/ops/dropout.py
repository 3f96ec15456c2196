"""Inverted dropout: zero each element with probability p and scale the survivors by 1 / (1 - p)."""
from .. import backend, random
from ..autograd import Function


class Dropout(Function):
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p);  dx = dy * m / (1 - p).

    m is a function of the dropout stream's (seed, offset) (random.py), so backward draws it again
    from the key the forward used instead of keeping an activation-sized mask."""

    @staticmethod
    def forward(ctx, x, p=0.5):
        ctx.p, ctx.key = p, random.dropout_key(x.size)
        return backend.for_array(x).dropout(x, p, *ctx.key)

    @staticmethod
    def backward(ctx, grad):
        return backend.for_array(grad).dropout(grad, ctx.p, *ctx.key)
