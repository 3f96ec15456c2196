"""Cross-entropy fused with log-softmax, on the backend's kernels."""
import numpy as np

from .. import backend
from ..autograd import Function
from ..backend.array import array_module


class CrossEntropy(Function):
    """loss_n = logsumexp(z_n) - z_n[t_n] over (N, V) logits z and targets t, reduced by mean (over the
    rows whose target is not ignore_index), sum, or none;
    dz_n = dloss_n * (softmax(z_n) - onehot(t_n)), zero for ignored rows.

    The loss is float32 (float64 for float64 logits) whatever the logits' storage: the kernels read
    bfloat16 logits as they are and accumulate in float32, so no float32 copy of the logits is made."""

    rounds_to_storage_dtype = False

    @staticmethod
    def forward(ctx, logits, targets, ignore_index=-100, reduction="mean"):
        losses, lse = backend.for_array(logits).cross_entropy_forward(logits, targets, ignore_index)
        count = (targets != ignore_index).sum()  # an array, so the GPU need not wait for the host here
        ctx.args = ignore_index, reduction, count
        ctx.save_for_backward(logits, targets, lse)
        if reduction == "none":
            return losses
        total = losses.sum(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):  # every row ignored: the mean is nan, as in PyTorch
            return array_module(logits).asarray(total / count if reduction == "mean" else total, dtype=losses.dtype)

    @staticmethod
    def backward(ctx, grad):
        logits, targets, lse = ctx.saved
        ignore_index, reduction, count = ctx.args
        if reduction == "none":
            dlosses = grad
        else:
            scale = grad / np.maximum(count, 1).astype(grad.dtype) if reduction == "mean" else grad
            dlosses = array_module(logits).zeros(targets.shape, lse.dtype) + scale
        return backend.for_array(grad).cross_entropy_backward(dlosses, logits, targets, lse, ignore_index)
