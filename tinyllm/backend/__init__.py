"""Backends: one kernel contract (reference.py defines it), several implementations.

`for_array(x)` picks the backend that owns an array: the CUDA backend for CuPy arrays, the C++ CPU
backend for NumPy arrays (each falls back to the reference definitions for kernels or dtypes it
lacks). Set TINYLLM_BACKEND=reference to run NumPy arrays on the pure-NumPy definitions, e.g. to
compare a result against them. CuPy is optional and never imported here: an array can only be a
CuPy array once the caller has imported CuPy (array.py says which device an array is on).
"""
import functools
import os

from . import cpu, reference
from .array import device_of

_FORCED = os.environ.get("TINYLLM_BACKEND", "").lower()
if _FORCED not in ("", "cpu", "reference"):
    raise ValueError(f"TINYLLM_BACKEND must be 'cpu' or 'reference', got {_FORCED!r}")


def for_array(x):
    """The backend module whose kernels run on array x."""
    if device_of(x) == "cuda":
        return _cuda_backend()
    return reference if _FORCED == "reference" else cpu


@functools.cache
def _cuda_backend():
    """backend/cuda.py, imported on first use (it imports CuPy). Cached: every op asks for its backend,
    and a `from . import cuda` per call costs more than some kernels take to queue."""
    from . import cuda

    return cuda
