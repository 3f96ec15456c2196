"""Data types. A Tensor stores float32 (the default), float64, float16 or bfloat16, or integer/bool
data for indices and masks. float16 and bfloat16 are storage formats: ops compute in float32 and
round the result back (as mixed-precision training does). bfloat16 comes from ml_dtypes, the
NumPy extension type that JAX and CuPy share.
"""
import ml_dtypes
import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
bfloat16 = np.dtype(ml_dtypes.bfloat16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

# PyTorch-style aliases.
float = float32
double = float64
half = float16
long = int64

_HALF = (float16, bfloat16)


def as_dtype(dtype):
    """A NumPy dtype from a tinyllm/NumPy dtype or its name ("float32", "bfloat16", ...)."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        return bfloat16
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}; expected one of float32, float64, float16, bfloat16, int64, bool") from None


def is_floating(dtype):
    """float16/32/64 or bfloat16 (whose NumPy kind is "V", a user-defined type). Asked for every
    input and result of every op, so kept to a cheap test rather than np.issubdtype."""
    return dtype.kind == "f" or dtype == bfloat16


def compute_dtype(dtype):
    """The dtype kernels compute in for data stored as `dtype`: float32 for the half types."""
    return float32 if dtype in _HALF else dtype
