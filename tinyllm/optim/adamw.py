"""AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient."""
import numpy as np

from .. import backend
from .optimizer import Optimizer


class AdamW(Optimizer):
    """p <- p * (1 - lr*wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    p <- p - lr * m_hat / (sqrt(v_hat) + eps), with the bias corrections m_hat = m / (1 - b1^t) and
    v_hat = v / (1 - b2^t). One fused kernel per parameter does all of it in place."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"AdamW: invalid hyper-parameters lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self):
        for group, p, state in self._params_with_grad():
            if not state:
                state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
            state["step"] += 1
            beta1, beta2 = group["betas"]
            backend.for_array(p.data).adamw_update(
                p.data, p.grad.data, state["exp_avg"], state["exp_avg_sq"], group["lr"], beta1, beta2,
                group["eps"], group["weight_decay"], state["step"])
