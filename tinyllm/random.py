"""The random number generator behind randn, dropout and parameter initialisation.

One NumPy Generator, seeded by `tinyllm.manual_seed`, so a run is reproducible; its state can be
saved and restored (`get_rng_state` / `set_rng_state`) for exact resume.
"""
import numpy as np

from . import dtypes

_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed the global generator (as torch.manual_seed)."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator():
    return _generator


def get_rng_state():
    return _generator.bit_generator.state


def set_rng_state(state):
    _generator.bit_generator.state = state


def normal(shape, mean=0.0, std=1.0, dtype=dtypes.float32):
    return (_generator.standard_normal(shape, dtype=np.float32 if dtype != dtypes.float64 else np.float64) * std + mean).astype(dtype, copy=False)


def uniform(shape, low=0.0, high=1.0, dtype=dtypes.float32):
    return _generator.uniform(low, high, shape).astype(dtype, copy=False)
