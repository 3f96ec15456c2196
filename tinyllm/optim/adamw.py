"""AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient."""
import numpy as np

from .. import backend
from ..backend.array import is_capturing
from .optimizer import Optimizer


class AdamW(Optimizer):
    """p <- p * (1 - lr*wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    p <- p - lr * m_hat / (sqrt(v_hat) + eps), with the bias corrections m_hat = m / (1 - b1^t) and
    v_hat = v / (1 - b2^t). One fused kernel call per parameter group (and step count) does all of
    it in place: on the GPU a single launch over all the group's tensors.

    capturable=True keeps each group's step count t and learning rate on the parameters' device as well,
    so that a step captured in a CUDA graph (tinyllm.cuda_graph) uses the right ones at every replay, as
    torch.optim.AdamW(capturable=True) with a Tensor lr does: t is counted there by the step itself,
    and the learning rate is copied there from group["lr"] before each replay (write_learning_rates),
    so a schedule that sets group["lr"] between steps works the same captured or not."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, capturable=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"AdamW: invalid hyper-parameters lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self.capturable = capturable
        self._device_steps = {}  # group index -> its step count, a 0-d float32 array on the parameters' device
        self._device_lrs = {}    # group index -> its learning rate, a 0-d float64 array there

    def step(self):
        for index, group in enumerate(self.param_groups):
            by_step = {}  # parameters that missed steps (no gradient) have a count of their own
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(id(p), {})
                if not state:
                    state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
                state["step"] += 1
                by_step.setdefault(state["step"], []).append((p, state))
            if self.capturable and len(by_step) > 1:
                raise RuntimeError("AdamW(capturable=True) needs every parameter of a group to get a gradient at every step")
            for step, members in by_step.items():
                beta1, beta2 = group["betas"]
                backend.for_array(members[0][0].data).adamw_update_multi(
                    [p.data for p, _ in members], [p.grad.data for p, _ in members], [s["exp_avg"] for _, s in members],
                    [s["exp_avg_sq"] for _, s in members],
                    self._learning_rate(index, members[0][0].data) if self.capturable else group["lr"], beta1, beta2,
                    group["eps"], group["weight_decay"],
                    self._step_count(index, step, members[0][0].data) if self.capturable else step)

    def _step_count(self, group, step, like):
        """The group's step count as a device scalar, incremented there (by a kernel a graph captures)."""
        if group not in self._device_steps:
            self._device_steps[group] = np.full_like(like, step - 1, shape=(), dtype=np.float32)
        count = self._device_steps[group]
        count += 1
        return count

    def _learning_rate(self, group, like):
        """The group's learning rate as a device scalar, which a captured step reads at replay. Written
        from group["lr"] here, unless this step is being captured: a write recorded in the graph would
        put the capture's learning rate back at every replay (write_learning_rates writes it then)."""
        if group not in self._device_lrs:
            self._device_lrs[group] = np.full_like(like, self.param_groups[group]["lr"], shape=(), dtype=np.float64)
        elif not is_capturing(like):
            self._device_lrs[group].fill(self.param_groups[group]["lr"])
        return self._device_lrs[group]

    def write_learning_rates(self):
        """Copy each group's lr to its device scalar (tinyllm.cuda_graph does before each replay)."""
        for group, lr in self._device_lrs.items():
            lr.fill(self.param_groups[group]["lr"])

    def count_replayed_step(self, steps=1):
        """A replayed graph ran step() without Python: advance the host's step counts (what state_dict
        saves) as step() would have (steps=-1 undoes the count of a captured, not run, step())."""
        for _, p, state in self._params_with_grad():
            state["step"] += steps
