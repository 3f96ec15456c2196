"""Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay."""
from .optimizer import Optimizer


class SGD(Optimizer):
    """d = g + wd * p;  with momentum: buf <- mu * buf + (1 - dampening) * d (buf = d at the first step),
    d = d + mu * buf (Nesterov) or buf;  p <- p - lr * d. As torch.optim.SGD."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: invalid hyper-parameters lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov))

    def step(self):
        for group, p, state in self._params_with_grad():
            d = p.grad.data
            if group["weight_decay"]:
                d = d + group["weight_decay"] * p.data
            mu = group["momentum"]
            if mu:
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = d.copy()
                else:
                    buf = state["momentum_buffer"]
                    buf *= mu
                    buf += (1 - group["dampening"]) * d
                buf = state["momentum_buffer"]
                d = d + mu * buf if group["nesterov"] else buf
            p.data -= group["lr"] * d
