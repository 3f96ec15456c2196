"""tinyllm: a GPT built from scratch on NumPy, with a hand-written autograd and our own kernels.

The API follows PyTorch's names, so `import tinyllm as torch` gets a PyTorch user most of the way.
"""
from . import backend, dtypes
from .autograd import enable_grad, is_grad_enabled, no_grad
from .creation import arange, cat, from_numpy, full, ones, ones_like, rand, randint, randn, stack, tensor, where, zeros, zeros_like
from .dtypes import bfloat16, bool_, double, float16, float32, float64, half, int32, int64, long
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import Tensor

from . import nn, optim  # noqa: E402  (they build on the names above)

__version__ = "0.1.0"
