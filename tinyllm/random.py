"""The random number generators behind randn, dropout and parameter initialisation.

One NumPy Generator draws on the host, seeded by `tinyllm.manual_seed`, so a run is reproducible; its
state can be saved and restored (`get_rng_state` / `set_rng_state`) for exact resume. Draws on the GPU
come from a CuPy Generator made from the same seed on first use, so a GPU run is reproducible too
(its numbers differ from the host's, as in PyTorch).
"""
import numpy as np

from . import dtypes
from .backend.array import as_device, cupy

_seed = None
_generator = np.random.default_rng()
_device_generator = None


def manual_seed(seed):
    """Reseed the global generators (as torch.manual_seed)."""
    global _seed, _generator, _device_generator
    _seed, _generator, _device_generator = seed, np.random.default_rng(seed), None


def generator(device="cpu"):
    """The generator that draws arrays on device (NumPy's and CuPy's have the same methods)."""
    global _device_generator
    if as_device(device) == "cpu":
        return _generator
    if _device_generator is None:
        _device_generator = cupy().random.default_rng(_seed)
    return _device_generator


def get_rng_state():
    return _generator.bit_generator.state


def set_rng_state(state):
    _generator.bit_generator.state = state


def normal(shape, mean=0.0, std=1.0, dtype=dtypes.float32, device="cpu"):
    draws = generator(device).standard_normal(shape, dtype=np.float32 if dtype != dtypes.float64 else np.float64)
    return (draws * std + mean).astype(dtype, copy=False)


def uniform(shape, low=0.0, high=1.0, dtype=dtypes.float32, device="cpu"):
    return generator(device).uniform(low, high, shape).astype(dtype, copy=False)
