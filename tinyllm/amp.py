"""Mixed precision: autocast of matrix products to a low-precision dtype, and dynamic loss scaling.

Under `autocast(dtype)`, linear layers cast their input and weight to dtype (bfloat16 or float16)
through differentiable casts: the products see low-precision operands while the parameters, the
optimizer state and the gradients that reach them stay float32 ("master weights"). Backends that
compute in low precision get their speed from it; the CPU backend upcasts the operands again and
computes in float32, so there it reproduces the rounding, not the speed.

Dynamic loss scaling for float16 training (as torch.amp.GradScaler):

float16 gradients underflow to zero below ~6e-8, so the loss is multiplied by a large scale before
backward and the gradients are divided by it before the optimizer step. If any gradient came out inf
or NaN, the scale was too large: the step is skipped and the scale halved. After `growth_interval`
good steps in a row the scale is doubled again, so it hovers just under the overflow point.
"""
import contextlib
import threading

import numpy as np

from . import backend, dtypes
from .backend.array import array_module

_state = threading.local()


def autocast_dtype():
    """The dtype matrix products are cast to, or None outside autocast."""
    return getattr(_state, "dtype", None)


@contextlib.contextmanager
def autocast(dtype):
    """Run matrix products in `dtype` (None or float32: no casting) inside the block."""
    dtype = None if dtype is None else dtypes.as_dtype(dtype)
    if dtype is not None and dtype not in (dtypes.bfloat16, dtypes.float16, dtypes.float32):
        raise ValueError(f"autocast dtype must be bfloat16, float16 or float32, got {dtype}")
    previous, _state.dtype = autocast_dtype(), (None if dtype == dtypes.float32 else dtype)
    try:
        yield
    finally:
        _state.dtype = previous


class GradScaler:
    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000, enabled=True):
        self.scale_value, self.growth_factor, self.backoff_factor = float(init_scale), growth_factor, backoff_factor
        self.growth_interval, self.enabled = growth_interval, enabled
        self.good_steps = 0
        self.skipped_steps = 0
        self._found_inf = None

    def scale(self, loss):
        return loss * self.scale_value if self.enabled else loss

    def unscale_(self, optimizer):
        """Divide every gradient by the scale and note whether any is inf or NaN: one multi-tensor
        kernel on the GPU (backend unscale_grads_), and one read of its flag from the gradients' device."""
        if not self.enabled or self._found_inf is not None:
            return
        grads = [p.grad.data for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        self._found_inf = False
        if grads:
            found_inf = array_module(grads[0]).zeros((), np.float32)
            backend.for_array(grads[0]).unscale_grads_(grads, 1.0 / self.scale_value, found_inf)
            self._found_inf = bool(found_inf)

    def step(self, optimizer):
        """optimizer.step() unless the gradients overflowed; returns False when the step was skipped."""
        if not self.enabled:
            optimizer.step()
            return True
        self.unscale_(optimizer)
        if self._found_inf:
            self.skipped_steps += 1
            return False
        optimizer.step()
        return True

    def update(self):
        """Back off after an overflow, grow after growth_interval clean steps."""
        if not self.enabled:
            return
        if self._found_inf:
            self.scale_value *= self.backoff_factor
            self.good_steps = 0
        else:
            self.good_steps += 1
            if self.good_steps == self.growth_interval:
                self.scale_value *= self.growth_factor
                self.good_steps = 0
        self._found_inf = None

    def state_dict(self):
        return {"scale": self.scale_value, "good_steps": self.good_steps, "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state):
        self.scale_value, self.good_steps, self.skipped_steps = float(state["scale"]), state["good_steps"], state["skipped_steps"]
