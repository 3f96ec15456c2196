"""Linear and Embedding layers."""
import math

from .. import random
from . import functional as F
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features), initialised U(-1/sqrt(in), 1/sqrt(in)) as in PyTorch."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = Parameter(random.uniform((out_features, in_features), -bound, bound))
        self.bias = Parameter(random.uniform((out_features,), -bound, bound)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A (num_embeddings, embedding_dim) table of vectors looked up by id, initialised N(0, 1) as in PyTorch."""

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(random.normal((num_embeddings, embedding_dim)))

    def forward(self, ids):
        return F.embedding(ids, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"
