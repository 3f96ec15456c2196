"""Tensor: an n-dimensional array with a gradient, shaped like PyTorch's.

A Tensor wraps a NumPy array (`.data`). When `requires_grad` is set, every op records how it was made
(see autograd.py) so that `.backward()` can fill `.grad` of the leaves. Methods mirror PyTorch's
names and argument order; each differentiable one is a thin call into an op of tinyllm/ops/.
"""
import collections

import numpy as np

from . import autograd, dtypes, random
from .ops import elementwise, reduce, shape

MaxResult = collections.namedtuple("max", ["values", "indices"])


class Tensor:
    __array_priority__ = 1000  # NumPy defers to Tensor in `ndarray * Tensor`

    def __init__(self, data, dtype=None, requires_grad=False):
        array = _as_array(data, dtype)
        if requires_grad and not dtypes.is_floating(array.dtype):
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {array.dtype}")
        self.data = array
        self.requires_grad = requires_grad
        self.grad = None
        self._node = None

    @classmethod
    def _wrap(cls, array, requires_grad=False):
        """A Tensor around an array that is already of a valid dtype (no copy, no checks)."""
        t = Tensor.__new__(Tensor)
        t.data, t.requires_grad, t.grad, t._node = array, requires_grad, None, None
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
        return "cpu"

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
        body = np.array2string(np.asarray(self.data, dtype=np.float64) if self.dtype == dtypes.bfloat16 else self.data,
                               separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{grad})"

    # ------------------------------------------------------------------ conversion
    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("can't call numpy() on a Tensor that requires grad; use tensor.detach().numpy()")
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def to(self, dtype):
        """A copy in another dtype (differentiable between floating dtypes)."""
        return elementwise.Cast.apply(self, dtype=dtypes.as_dtype(dtype))

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
            gradient = np.ones_like(self.data)
        else:
            gradient = _as_array(gradient.data if isinstance(gradient, Tensor) else gradient, self.dtype)
            if gradient.shape != self.shape:
                raise ValueError(f"gradient has shape {gradient.shape}, expected {self.shape}")
        autograd.backward(self, gradient, retain_graph=retain_graph)

    def _accumulate_grad(self, g):
        if self.grad is None:
            self.grad = Tensor._wrap(np.array(g, dtype=self.dtype, copy=True))
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
        src = src.data if isinstance(src, Tensor) else np.asarray(src)
        if np.broadcast_shapes(src.shape, self.shape) != self.shape:
            raise ValueError(f"copy_: source of shape {src.shape} does not fit a tensor of shape {self.shape}")
        return self._inplace(src)

    def normal_(self, mean=0.0, std=1.0):
        return self._inplace(random.normal(self.shape, mean, std, self.dtype))

    def uniform_(self, a=0.0, b=1.0):
        return self._inplace(random.uniform(self.shape, a, b, self.dtype))

    def __setitem__(self, index, value):
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError("item assignment on a tensor that requires grad is not differentiable; use no_grad() or where()")
        self.data[_index(index)] = value.data if isinstance(value, Tensor) else value

    # ------------------------------------------------------------------ arithmetic
    def _other(self, other):
        return other if isinstance(other, Tensor) else Tensor._wrap(_as_array(other, _scalar_dtype(self, other)))

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
        return Tensor._wrap(np.asarray(op(self.data, other)))

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
        indices = np.argmax(self.data, axis=dim)
        return MaxResult(values, Tensor._wrap(np.expand_dims(indices, dim) if keepdim else indices))

    def argmax(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._wrap(np.asarray(np.argmax(self.data)))
        return Tensor._wrap(np.argmax(self.data, axis=dim, keepdims=keepdim))

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
        mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        return shape.MaskedFill.apply(self, mask=mask, value=value)

    def softmax(self, dim):
        from .nn import functional
        return functional.softmax(self, dim)

    def log_softmax(self, dim):
        from .nn import functional
        return functional.log_softmax(self, dim)


def shape_op(shape_args, t):
    new = tuple(shape_args[0]) if len(shape_args) == 1 and isinstance(shape_args[0], (tuple, list)) else shape_args
    return shape.Reshape.apply(t, shape=tuple(int(n) for n in new))


def _as_array(data, dtype=None):
    """data as a NumPy array of a Tensor dtype: float32 by default for floats, int64 for ints."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtypes.as_dtype(dtype))
    array = np.asarray(data)
    if array.dtype == np.float64 and not isinstance(data, np.ndarray):
        return array.astype(dtypes.float32)  # Python floats become float32, as in PyTorch
    if array.dtype.kind in "iu" and not isinstance(data, np.ndarray):
        return array.astype(dtypes.int64)
    if array.dtype.kind not in "fiub" and array.dtype != dtypes.bfloat16:
        raise TypeError(f"can't make a tensor from data of dtype {array.dtype}")
    return array


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
