"""Inverted dropout: zero each element with probability p and scale the survivors by 1 / (1 - p)."""
from .. import random
from ..autograd import Function
from ..backend.array import device_of


class Dropout(Function):
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p);  dx = dy * m / (1 - p)."""

    @staticmethod
    def forward(ctx, x, p=0.5):
        mask = (random.generator(device_of(x)).random(x.shape, dtype="float32") >= p).astype(x.dtype) / (1.0 - p)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved
        return grad * mask
