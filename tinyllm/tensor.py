"""Tensor: an n-dimensional array with a gradient, shaped like PyTorch's.

A Tensor wraps an array (`.data`): a NumPy array on the host ("cpu") or a CuPy array on an NVIDIA
GPU ("cuda"); `.to(device)` moves it, differentiably. When `requires_grad` is set, every op records how it was made
(see autograd.py) so that `.backward()` can fill `.grad` of the leaves. Methods mirror PyTorch's
names and argument order; each differentiable one is a thin call into an op of tinyllm/ops/.
"""
import collections

import numpy as np

from . import autograd, backend, dtypes, random
from .backend.array import array_module, as_device, check_same_device, device_of, is_array, is_device_name, to_device
from .ops import elementwise, reduce, shape

MaxResult = collections.namedtuple("max", ["values", "indices"])


class Tensor:
    __array_priority__ = 1000  # NumPy defers to Tensor in `ndarray * Tensor`

    def __init__(self, data, dtype=None, requires_grad=False, device=None):
        array = _as_array(data, dtype, device)
        if requires_grad and not dtypes.is_floating(array.dtype):
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {array.dtype}")
        self.data = array
        self.requires_grad = requires_grad
        self.grad = None
        self._node, self._output = None, 0  # the op that made it, and which of that op's results it is

    @classmethod
    def _wrap(cls, array, requires_grad=False):
        """A Tensor around an array that is already of a valid dtype (no copy, no checks)."""
        t = Tensor.__new__(Tensor)
        t.data, t.requires_grad, t.grad, t._node, t._output = array, requires_grad, None, None, 0
        return t

    # ------------------------------------------------------------------ attributes
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        """"cpu" or "cuda": where the data lives."""
        return device_of(self.data)

    @property
    def is_leaf(self):
        return self._node is None

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self):
        return self.data.ndim

    def numel(self):
        return self.data.size

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        device = ", device='cuda'" if self.device == "cuda" else ""
        host = to_device(self.data, "cpu")
        body = np.array2string(host.astype(np.float64) if self.dtype == dtypes.bfloat16 else host, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{device}{grad})"

    # ------------------------------------------------------------------ conversion
    # Reading data on the host waits for the device; its input errors found so far are raised first.
    def numpy(self):
        """The data as a NumPy array: the same memory on the host, a copy from the GPU."""
        if self.requires_grad:
            raise RuntimeError("can't call numpy() on a Tensor that requires grad; use tensor.detach().numpy()")
        backend.for_array(self.data).raise_pending_errors()
        return to_device(self.data, "cpu")

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        backend.for_array(self.data).raise_pending_errors()
        return self.data.reshape(()).item()

    def tolist(self):
        backend.for_array(self.data).raise_pending_errors()
        return self.data.tolist()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def to(self, *args, device=None, dtype=None):
        """This tensor on another device and/or in another dtype, as in PyTorch: to("cuda"),
        to(tinyllm.bfloat16), to("cuda", "bfloat16"), to(other_tensor). Differentiable (the gradient
        moves and casts back); self when nothing changes, else a copy."""
        device, dtype = device_and_dtype(args, device, dtype)
        t = self
        if dtype is not None and dtype != t.dtype:
            t = elementwise.Cast.apply(t, dtype=dtype)
        if device is not None and device != t.device:
            t = elementwise.ToDevice.apply(t, device=device)
        return t

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def half(self):
        return self.to(dtypes.float16)

    def bfloat16(self):
        return self.to(dtypes.bfloat16)

    def long(self):
        return self.to(dtypes.int64)

    def contiguous(self):
        return self

    def clone(self):
        return elementwise.Cast.apply(self, dtype=self.dtype)

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into the .grad of every leaf that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no graph was recorded)")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() needs a gradient argument for a non-scalar tensor of shape {self.shape}")
            gradient = array_module(self.data).ones_like(self.data)
        else:
            gradient = _as_array(gradient, self.dtype, self.device)
            if gradient.shape != self.shape:
                raise ValueError(f"gradient has shape {gradient.shape}, expected {self.shape}")
        autograd.backward(self, gradient, retain_graph=retain_graph)

    def _accumulate_grad(self, g):
        if self.grad is None:
            self.grad = Tensor._wrap(backend.for_array(g).cast(g, self.dtype))  # a copy: g may be shared
        else:
            self.grad.data += g

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not dtypes.is_floating(self.dtype):
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = requires_grad
        return self

    # ------------------------------------------------------------------ in-place updates (no graph)
    def _inplace(self, array):
        if self.requires_grad and self.is_leaf and autograd.is_grad_enabled():
            raise RuntimeError("a leaf tensor that requires grad can't be changed in place; wrap the update in tinyllm.no_grad()")
        self.data[...] = array
        return self

    def zero_(self):
        return self._inplace(0)

    def fill_(self, value):
        return self._inplace(value)

    def copy_(self, src):
        src = _as_array(src, self.dtype, self.device)
        if np.broadcast_shapes(src.shape, self.shape) != self.shape:
            raise ValueError(f"copy_: source of shape {src.shape} does not fit a tensor of shape {self.shape}")
        return self._inplace(src)

    def normal_(self, mean=0.0, std=1.0):
        return self._inplace(random.normal(self.shape, mean, std, self.dtype, self.device))

    def uniform_(self, a=0.0, b=1.0):
        return self._inplace(random.uniform(self.shape, a, b, self.dtype, self.device))

    def __setitem__(self, index, value):
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError("item assignment on a tensor that requires grad is not differentiable; use no_grad() or where()")
        self.data[_index(index)] = _as_array(value, self.dtype, self.device) if isinstance(value, Tensor) or is_array(value) else value

    # ------------------------------------------------------------------ arithmetic
    def _other(self, other):
        return other if isinstance(other, Tensor) else Tensor._wrap(_as_array(other, _scalar_dtype(self, other), self.device))

    def __add__(self, other):
        return elementwise.Add.apply(self, self._other(other))

    def __radd__(self, other):
        return elementwise.Add.apply(self._other(other), self)

    def __sub__(self, other):
        return elementwise.Sub.apply(self, self._other(other))

    def __rsub__(self, other):
        return elementwise.Sub.apply(self._other(other), self)

    def __mul__(self, other):
        return elementwise.Mul.apply(self, self._other(other))

    def __rmul__(self, other):
        return elementwise.Mul.apply(self._other(other), self)

    def __truediv__(self, other):
        return elementwise.Div.apply(self, self._other(other))

    def __rtruediv__(self, other):
        return elementwise.Div.apply(self._other(other), self)

    def __neg__(self):
        return elementwise.Neg.apply(self)

    def __pow__(self, exponent):
        return elementwise.Pow.apply(self, self._other(exponent))

    def __rpow__(self, base):
        return elementwise.Pow.apply(self._other(base), self)

    def __matmul__(self, other):
        from .ops.matmul import matmul
        return matmul(self, self._other(other))

    def __rmatmul__(self, other):
        from .ops.matmul import matmul
        return matmul(self._other(other), self)

    add, sub, mul, div, pow, matmul = __add__, __sub__, __mul__, __truediv__, __pow__, __matmul__

    def exp(self):
        return elementwise.Exp.apply(self)

    def log(self):
        return elementwise.Log.apply(self)

    def tanh(self):
        return elementwise.Tanh.apply(self)

    def sqrt(self):
        return elementwise.Sqrt.apply(self)

    def abs(self):
        return elementwise.Abs.apply(self)

    def relu(self):
        return elementwise.Relu.apply(self)

    def sigmoid(self):
        return elementwise.Sigmoid.apply(self)

    # ------------------------------------------------------------------ comparisons (no gradient)
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        if is_array(other):
            check_same_device((self.data, other))
        return Tensor._wrap(array_module(self.data).asarray(op(self.data, other)))

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    __hash__ = object.__hash__

    def __invert__(self):
        if self.dtype != dtypes.bool_:
            raise TypeError(f"~ needs a bool tensor, got {self.dtype}")
        return Tensor._wrap(~self.data)

    def __and__(self, other):
        return self._compare(other, np.logical_and)

    def __or__(self, other):
        return self._compare(other, np.logical_or)

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.data.reshape(()))

    # ------------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False):
        return reduce.Sum.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        return reduce.Mean.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def max(self, dim=None, keepdim=False):
        """max() -> the largest value; max(dim) -> (values, indices), as in PyTorch."""
        values = reduce.Max.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)
        if dim is None:
            return values
        return MaxResult(values, self.argmax(dim, keepdim))

    def argmax(self, dim=None, keepdim=False):
        return Tensor._wrap(array_module(self.data).asarray(self.data.argmax(axis=dim, keepdims=keepdim)))

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape):
        return shape_op(shape, self)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        s = self.shape
        end = end_dim % self.ndim if self.ndim else 0
        return self.reshape(*s[:start_dim], -1, *s[end + 1:]) if self.ndim else self.reshape(1)

    def transpose(self, dim0, dim1):
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return shape.Permute.apply(self, dims=tuple(axes))

    def permute(self, *dims):
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return shape.Permute.apply(self, dims=tuple(d % self.ndim for d in dims))

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def unsqueeze(self, dim):
        dim = dim % (self.ndim + 1)
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(*(n for n in self.shape if n != 1))
        dim = dim % self.ndim
        return self.reshape(*self.shape[:dim], *self.shape[dim + 1:]) if self.shape[dim] == 1 else self

    def expand(self, *sizes):
        sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        lead = len(sizes) - self.ndim
        target = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(sizes))
        return shape.Expand.apply(self, shape=target)

    def __getitem__(self, index):
        return shape.GetItem.apply(self, index=_index(index))

    def masked_fill(self, mask, value):
        return shape.MaskedFill.apply(self, mask=_as_array(mask, device=self.device), value=value)

    def softmax(self, dim):
        from .nn import functional
        return functional.softmax(self, dim)

    def log_softmax(self, dim):
        from .nn import functional
        return functional.log_softmax(self, dim)


def shape_op(shape_args, t):
    new = tuple(shape_args[0]) if len(shape_args) == 1 and isinstance(shape_args[0], (tuple, list)) else shape_args
    return shape.Reshape.apply(t, shape=tuple(int(n) for n in new))


def device_and_dtype(args, device=None, dtype=None):
    """(device, dtype) from the arguments of to(): device names, dtypes and a Tensor (both of its)."""
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif is_device_name(arg):
            device = arg
        else:
            dtype = arg
    return (None if device is None else as_device(device)), (None if dtype is None else dtypes.as_dtype(dtype))


def _as_array(data, dtype=None, device=None):
    """data as an array of a Tensor dtype on device (None: where data is, the host for Python data):
    float32 by default for Python floats, int64 for Python ints."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        array = array_module(data).asarray(data, dtype=dtypes.as_dtype(dtype))
    else:
        array = array_module(data).asarray(data)
        if array.dtype == np.float64 and not is_array(data):
            array = array.astype(dtypes.float32)  # Python floats become float32, as in PyTorch
        elif array.dtype.kind in "iu" and not is_array(data):
            array = array.astype(dtypes.int64)
        elif array.dtype.kind not in "fiub" and array.dtype != dtypes.bfloat16:
            raise TypeError(f"can't make a tensor from data of dtype {array.dtype}")
    return array if device is None else to_device(array, device)


def _scalar_dtype(tensor, other):
    """A Python scalar takes the tensor's dtype (1.5 * a float16 tensor stays float16), as in PyTorch."""
    if isinstance(other, (int, float)) and not isinstance(other, bool):
        if dtypes.is_floating(tensor.dtype) or isinstance(other, int):
            return tensor.dtype
        return dtypes.float32
    return None


def _dims(dim, ndim):
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return tuple(sorted(d % ndim for d in dims))


def _index(index):
    """A Tensor index (or Tensors inside a tuple index) as NumPy arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index
