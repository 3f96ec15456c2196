"""Functions that make Tensors or combine them, named as in PyTorch."""
import numpy as np

from . import dtypes, random
from .backend.array import check_same_device, is_array, module_for, to_device
from .ops import shape
from .tensor import Tensor


def _shape(size):
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new Tensor holding a copy of data (lists, scalars, NumPy or CuPy arrays, or Tensors), on
    device (default: where data is; the host for Python data)."""
    data = data.data if isinstance(data, Tensor) else data
    return Tensor(data.copy() if is_array(data) else data, dtype=dtype, device=device, requires_grad=requires_grad)


def from_numpy(array):
    """A Tensor sharing memory with a NumPy array."""
    return Tensor._wrap(np.asarray(array))


def zeros(*size, dtype=dtypes.float32, device="cpu", requires_grad=False):
    return Tensor(module_for(device).zeros(_shape(size), dtypes.as_dtype(dtype)), requires_grad=requires_grad)


def ones(*size, dtype=dtypes.float32, device="cpu", requires_grad=False):
    return Tensor(module_for(device).ones(_shape(size), dtypes.as_dtype(dtype)), requires_grad=requires_grad)


def full(size, fill_value, dtype=dtypes.float32, device="cpu", requires_grad=False):
    return Tensor(module_for(device).full(tuple(size), fill_value, dtypes.as_dtype(dtype)), requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return zeros(*t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return ones(*t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def randn(*size, dtype=dtypes.float32, device="cpu", requires_grad=False):
    """Samples of the standard normal distribution, from the generator seeded by manual_seed."""
    return Tensor(random.normal(_shape(size), dtype=dtypes.as_dtype(dtype), device=device), requires_grad=requires_grad)


def rand(*size, dtype=dtypes.float32, device="cpu", requires_grad=False):
    """Samples of the uniform distribution on [0, 1)."""
    return Tensor(random.uniform(_shape(size), dtype=dtypes.as_dtype(dtype), device=device), requires_grad=requires_grad)


def randint(low, high, size, dtype=dtypes.int64, device="cpu"):
    return Tensor(random.generator(device).integers(low, high, size=tuple(size)).astype(dtypes.as_dtype(dtype)))


def arange(start, end=None, step=1, dtype=None, device="cpu"):
    """Evenly spaced values in [start, end): int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    ints = all(isinstance(v, int) for v in (start, end, step))
    default = dtypes.int64 if ints else dtypes.float32
    return Tensor(module_for(device).arange(start, end, step).astype(dtypes.as_dtype(dtype) if dtype else default))


def cat(tensors, dim=0):
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    dim = dim % tensors[0].ndim
    for t in tensors[1:]:
        if t.ndim != tensors[0].ndim or t.shape[:dim] + t.shape[dim + 1:] != tensors[0].shape[:dim] + tensors[0].shape[dim + 1:]:
            raise ValueError(f"cat: shapes {[tuple(x.shape) for x in tensors]} differ outside axis {dim}")
    return shape.Cat.apply(*tensors, dim=dim)


def stack(tensors, dim=0):
    """Join same-shaped tensors along a new axis."""
    tensors = list(tensors)
    if not tensors or any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack needs one or more tensors of one shape, got {[tuple(t.shape) for t in tensors]}")
    return shape.Stack.apply(*tensors, dim=dim % (tensors[0].ndim + 1))


def where(condition, input, other):
    """input where condition is true, else other (each broadcast against the rest)."""
    device = next((t.device for t in (input, other, condition) if isinstance(t, Tensor)), None)
    cond = condition.data if isinstance(condition, Tensor) else to_device(np.asarray(condition), device or "cpu")
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {cond.dtype}")
    a = input if isinstance(input, Tensor) else Tensor(input, dtype=getattr(other, "dtype", None), device=device)
    b = other if isinstance(other, Tensor) else Tensor(other, dtype=a.dtype, device=device)
    check_same_device((a.data, b.data, cond))
    return shape.Where.apply(a, b, cond=cond)
