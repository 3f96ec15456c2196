"""Gradient utilities."""
import numpy as np

from .. import backend
from ..backend.array import array_module
from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their global norm is at most max_norm; return the norm before clipping.

    total = (sum over all gradient elements of |g|^p)^(1/p); every g is multiplied by
    min(1, max_norm / (total + 1e-6)), as torch.nn.utils.clip_grad_norm_ does. Everything stays on the
    gradients' device: the 2-norm is one multi-tensor kernel and the scaling another, which read the
    total there, so the host never waits for the device (unless error_if_nonfinite asks it to).
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad.data for p in params if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    kernels, xp, norm_type = backend.for_array(grads[0]), array_module(grads[0]), float(norm_type)
    if norm_type == 2.0:
        total = kernels.grad_norm(grads)
    elif norm_type == float("inf"):
        total = xp.asarray(xp.stack([xp.abs(g).max() for g in grads]).max(), dtype=np.float32)
    else:
        total = xp.asarray(sum((xp.abs(g.astype(np.float64)) ** norm_type).sum() for g in grads) ** (1.0 / norm_type),
                           dtype=np.float32)
    if error_if_nonfinite and not np.isfinite(float(total)):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is non-finite ({float(total)}), so it can't be clipped")
    kernels.clip_grads_(grads, total, max_norm)
    return Tensor._wrap(total)
