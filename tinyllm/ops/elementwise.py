"""Elementwise arithmetic and math functions, with broadcasting undone in every backward."""
import numpy as np

from .. import backend
from ..autograd import Function, unbroadcast
from ..backend.array import device_of, to_device


class Add(Function):
    """c = a + b;  da = dc,  db = dc (each summed back to its input's shape)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return unbroadcast(grad, sa), unbroadcast(grad, sb)


class Sub(Function):
    """c = a - b;  da = dc,  db = -dc."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return unbroadcast(grad, sa), unbroadcast(-grad, sb)


class Mul(Function):
    """c = a * b;  da = dc * b,  db = dc * a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        da = unbroadcast(grad * b, a.shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(grad * a, b.shape) if ctx.needs_input_grad[-1] else None
        return da, db


class Div(Function):
    """c = a / b;  da = dc / b,  db = -dc * a / b^2."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        da = unbroadcast(grad / b, a.shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(-grad * a / (b * b), b.shape) if ctx.needs_input_grad[-1] else None
        return da, db


class Neg(Function):
    """y = -x;  dx = -dy."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    """c = a^b;  da = dc * b * a^(b-1),  db = dc * a^b * ln(a)."""

    @staticmethod
    def forward(ctx, a, b):
        c = a**b
        ctx.save_for_backward(a, b, c)
        return c

    @staticmethod
    def backward(ctx, grad):
        a, b, c = ctx.saved
        da = unbroadcast(grad * b * a ** (b - 1), a.shape) if ctx.needs_input_grad[0] else None
        db = None
        if ctx.needs_input_grad[-1]:
            db = unbroadcast(grad * c * np.log(np.where(a > 0, a, 1)), b.shape)
        return da, db


class Exp(Function):
    """y = e^x;  dx = dy * y."""

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return grad * y


class Log(Function):
    """y = ln x;  dx = dy / x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad / x


class Tanh(Function):
    """y = tanh x;  dx = dy * (1 - y^2)."""

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return grad * (1 - y * y)


class Sqrt(Function):
    """y = sqrt x;  dx = dy / (2 y)."""

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return grad / (2 * y)


class Abs(Function):
    """y = |x|;  dx = dy * sign(x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * np.sign(x)


class Relu(Function):
    """y = max(x, 0);  dx = dy where x > 0, else 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * (x > 0)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x);  dx = dy * y * (1 - y)."""

    @staticmethod
    def forward(ctx, x):
        y = 1 / (1 + np.exp(-x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return grad * y * (1 - y)


class LogSigmoid(Function):
    """y = log sigmoid(x) = min(x, 0) - log(1 + e^-|x|) (no overflow for large |x|);
    dx = dy * (1 - sigmoid(x)) = dy * sigmoid(-x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad / (1 + np.exp(x))


class Cast(Function):
    """y = x in another dtype (a copy);  dx = dy in x's dtype (no gradient to integer inputs)."""

    rounds_to_storage_dtype = False

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return backend.for_array(x).cast(x, dtype)

    @staticmethod
    def backward(ctx, grad):
        return backend.for_array(grad).cast(grad, ctx.dtype)


class ToDevice(Function):
    """y = x on another device (a copy between host and GPU);  dx = dy moved back to x's device."""

    @staticmethod
    def forward(ctx, x, device):
        ctx.device = device_of(x)
        return to_device(x, device)

    @staticmethod
    def backward(ctx, grad):
        return to_device(grad, ctx.device)
