"""Gradient utilities."""
import numpy as np

from ..backend.array import array_module
from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their global norm is at most max_norm; return the norm before clipping.

    total = (sum over all gradient elements of |g|^p)^(1/p); every g is multiplied by
    min(1, max_norm / (total + 1e-6)), as torch.nn.utils.clip_grad_norm_ does. The sum stays on the
    gradients' device until one read of the total at the end.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad.data for p in params if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    xp, norm_type = array_module(grads[0]), float(norm_type)
    if norm_type == float("inf"):
        total = float(xp.stack([xp.abs(g).max() for g in grads]).max())
    else:
        total = float(sum((xp.abs(g.astype(np.float64)) ** norm_type).sum() for g in grads)) ** (1.0 / norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is non-finite ({total}), so it can't be clipped")
    coef = min(1.0, max_norm / (total + 1e-6))
    if coef < 1.0:
        for g in grads:
            g *= coef
    return Tensor(xp.asarray(total, dtype=grads[0].dtype))
