"""LayerNorm and RMSNorm layers over the last axis."""
import numpy as np

from . import functional as F
from .module import Module
from .parameter import Parameter


def _size(normalized_shape):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) != 1:
        raise ValueError(f"tinyllm norms normalise the last axis only: normalized_shape must have one entry, got {shape}")
    return shape[0]


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        self.normalized_shape, self.eps = (_size(normalized_shape),), eps
        n = self.normalized_shape[0]
        self.weight = Parameter(np.ones(n, np.float32)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(n, np.float32)) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def add_norm(self, x, delta):
        """(s, self(s)) with s = x + delta, in one fused op (a pre-norm block's residual add and this norm)."""
        return F.add_layer_norm(x, delta, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class RMSNorm(Module):
    def __init__(self, normalized_shape, eps=None, elementwise_affine=True):
        super().__init__()
        self.normalized_shape, self.eps = (_size(normalized_shape),), eps
        self.weight = Parameter(np.ones(self.normalized_shape[0], np.float32)) if elementwise_affine else None

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def add_norm(self, x, delta):
        """(s, self(s)) with s = x + delta, in one fused op (see LayerNorm.add_norm)."""
        return F.add_rms_norm(x, delta, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"
