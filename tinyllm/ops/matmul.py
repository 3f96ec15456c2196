"""Matrix products: @ and linear layers, on the backend's matmul kernel."""
from .. import backend
from ..autograd import Function, unbroadcast


class MatMul(Function):
    """C = A @ B (batched, broadcast);  dA = dC @ B^T,  dB = A^T @ dC (summed over broadcast batch axes)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return backend.for_array(a).matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        kernels = backend.for_array(grad)
        da = db = None
        if ctx.needs_input_grad[0]:
            da = unbroadcast(kernels.matmul(grad, b, trans_b=True), a.shape)
        if ctx.needs_input_grad[1]:
            if b.ndim == 2:  # one shared matrix: fold every batch row into a single GEMM
                db = kernels.matmul(a.reshape(-1, a.shape[-1]), grad.reshape(-1, grad.shape[-1]), trans_a=True)
            else:
                db = unbroadcast(kernels.matmul(a, grad, trans_a=True), b.shape)
        return da, db


def matmul(a, b):
    """a @ b with NumPy's rules, including 1-D operands (promoted to a matrix, then squeezed)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul needs operands with at least one dimension; use * for scalars")
    if a.ndim == 1:
        return matmul(a.reshape(1, -1), b).squeeze(-2)
    if b.ndim == 1:
        return matmul(a, b.reshape(-1, 1)).squeeze(-1)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} don't fit "
                         f"(a's last axis {a.shape[-1]} != b's second-to-last {b.shape[-2]})")
    return MatMul.apply(a, b)


class Linear(Function):
    """y = x W^T + b, W of shape (out, in);  dx = dy W,  dW = dy^T x,  db = sum over rows of dy."""

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        return backend.for_array(x).matmul(x, weight, trans_b=True, bias=bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved
        kernels = backend.for_array(grad)
        rows = grad.reshape(-1, grad.shape[-1])
        dx = kernels.matmul(grad, weight) if ctx.needs_input_grad[0] else None
        dw = kernels.matmul(rows, x.reshape(-1, x.shape[-1]), trans_a=True) if ctx.needs_input_grad[1] else None
        if len(ctx.needs_input_grad) == 2:
            return dx, dw
        return dx, dw, kernels.sum_rows(rows) if ctx.needs_input_grad[2] else None
