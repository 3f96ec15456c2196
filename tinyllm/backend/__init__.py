"""Backends: one kernel contract (reference.py defines it), several implementations.

`for_array(x)` picks the backend that owns an array: the C++ CPU backend for NumPy arrays (which
falls back to the reference for kernels or dtypes it lacks). Set TINYLLM_BACKEND=reference to run
everything on the pure-NumPy definitions, e.g. to compare a result against them.
"""
import os

from . import cpu, reference

_FORCED = os.environ.get("TINYLLM_BACKEND", "").lower()
if _FORCED not in ("", "cpu", "reference"):
    raise ValueError(f"TINYLLM_BACKEND must be 'cpu' or 'reference', got {_FORCED!r}")


def for_array(x):
    """The backend module whose kernels run on array x."""
    return reference if _FORCED == "reference" else cpu
