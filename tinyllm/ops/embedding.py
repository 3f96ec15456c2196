"""Embedding lookup: rows of a weight matrix picked by integer ids."""
from .. import backend
from ..autograd import Function


class Embedding(Function):
    """y = W[idx];  dW = scatter-add of dy rows into the rows named by idx (ids may repeat)."""

    @staticmethod
    def forward(ctx, weight, idx):
        ctx.idx, ctx.num_embeddings = idx, weight.shape[0]
        return weight[idx]

    @staticmethod
    def backward(ctx, grad):
        rows = grad.reshape(-1, grad.shape[-1])
        return backend.for_array(grad).embedding_backward(rows, ctx.idx.reshape(-1), ctx.num_embeddings)
