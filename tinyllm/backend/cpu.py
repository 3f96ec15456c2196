"""The CPU backend: the kernel contract of reference.py, served by our C++ kernels in tinyllm._C.

Each function here has the signature of its reference twin. It prepares plain buffers for the C++
side (float32, C-contiguous, 2-D rows or the 3-D/4-D shapes the kernel states), allocates the outputs
and calls the kernel, which writes into them. Where the compiled module or a kernel is missing, or
the dtype is not float32 (float64 gradient checks, say), the call falls back to the reference
explicitly; `native_kernels()` tells which kernels run compiled.
"""
import warnings

import numpy as np

from . import reference

try:
    from .. import _C
except ImportError as err:  # the build is optional: say so once, then run on NumPy
    _C = None
    warnings.warn(
        f"tinyllm: the compiled CPU kernels (tinyllm._C) are not available ({err}); running every "
        "kernel on the pure-NumPy reference backend, which is correct but slower. Build them with "
        "`pip install -e .` (needs a C++17 compiler).",
        RuntimeWarning,
        stacklevel=2,
    )

CONTRACT = (
    "matmul", "softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward",
    "layernorm_forward", "layernorm_backward", "rmsnorm_forward", "rmsnorm_backward",
    "add_layernorm_forward", "add_rmsnorm_forward", "gelu_forward", "gelu_backward", "silu_forward", "silu_backward",
    "attention_forward", "attention_backward", "rope_forward", "rope_backward", "cross_entropy_forward", "cross_entropy_backward",
    "embedding_backward", "adamw_update", "dropout",
)


compute_dtype = reference.compute_dtype  # the C++ kernels are float32: half storage is upcast first
# No C++ kernels for these (cheap on the CPU, or the host's own business):
add_bias_, sum_rows, grad_norm, clip_grads_ = reference.add_bias_, reference.sum_rows, reference.grad_norm, reference.clip_grads_
unscale_grads_ = reference.unscale_grads_
cast, contiguous, check_ids, raise_pending_errors = reference.cast, reference.contiguous, reference.check_ids, reference.raise_pending_errors


def _empty(shape, dtype=np.float32):
    """Output allocation. Tests replace it with a NaN-filled allocator to catch unwritten outputs."""
    return np.empty(shape, dtype)


def _kernel(name, *arrays):
    """The compiled kernel `name` when it exists and every array is float32, else None."""
    fn = getattr(_C, name, None)
    if fn is None or any(a.dtype != np.float32 for a in arrays if a is not None):
        return None
    return fn


def native_kernels():
    """Names of the contract's kernels that run in C++ (the rest run in reference.py)."""
    return [name for name in CONTRACT if getattr(_C, name, None) is not None]


def _rows(x):
    """x as a C-contiguous (rows, last-axis) matrix."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


# ----------------------------------------------------------------------------------------------
# matmul


def matmul(a, b, trans_a=False, trans_b=False, bias=None):
    kernel = _kernel("matmul", a, b)
    if kernel is None or a.ndim < 2 or b.ndim < 2:
        return reference.matmul(a, b, trans_a, trans_b, bias)
    M, K = (a.shape[-1], a.shape[-2]) if trans_a else (a.shape[-2], a.shape[-1])
    N = b.shape[-2] if trans_b else b.shape[-1]
    if b.ndim == 2 and not trans_a:
        # (..., M, K) @ (K, N): one GEMM over all rows of a.
        c = _empty((int(np.prod(a.shape[:-1])), N))
        kernel(np.ascontiguousarray(a).reshape(1, -1, K), np.ascontiguousarray(b)[None], c[None], False, trans_b)
        c = c.reshape(*a.shape[:-1], N)
    else:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a3 = np.ascontiguousarray(np.broadcast_to(a, batch + a.shape[-2:])).reshape(-1, *a.shape[-2:])
        b_shared = b.ndim == 2
        b3 = np.ascontiguousarray(b)[None] if b_shared else \
            np.ascontiguousarray(np.broadcast_to(b, batch + b.shape[-2:])).reshape(-1, *b.shape[-2:])
        c = _empty((a3.shape[0], M, N))
        kernel(a3, b3, c, trans_a, trans_b)
        c = c.reshape(*batch, M, N)
    if bias is not None:
        add_bias_(c, bias)
    return c


# ----------------------------------------------------------------------------------------------
# softmax


def softmax_forward(x):
    kernel = _kernel("softmax_forward", x)
    if kernel is None:
        return reference.softmax_forward(x)
    y = _empty(x.shape)
    kernel(_rows(x), y.reshape(-1, x.shape[-1]))
    return y


def softmax_backward(dy, y):
    kernel = _kernel("softmax_backward", dy, y)
    if kernel is None:
        return reference.softmax_backward(dy, y)
    dx = _empty(y.shape)
    kernel(_rows(dy), _rows(y), dx.reshape(-1, y.shape[-1]))
    return dx


def log_softmax_forward(x):
    kernel = _kernel("log_softmax_forward", x)
    if kernel is None:
        return reference.log_softmax_forward(x)
    y = _empty(x.shape)
    kernel(_rows(x), y.reshape(-1, x.shape[-1]))
    return y


def log_softmax_backward(dy, y):
    kernel = _kernel("log_softmax_backward", dy, y)
    if kernel is None:
        return reference.log_softmax_backward(dy, y)
    dx = _empty(y.shape)
    kernel(_rows(dy), _rows(y), dx.reshape(-1, y.shape[-1]))
    return dx


# ----------------------------------------------------------------------------------------------
# normalisation


def layernorm_forward(x, w, b, eps):
    kernel = _kernel("layernorm_forward", x, w, b)
    if kernel is None:
        return reference.layernorm_forward(x, w, b, eps)
    y, mean, rstd = _empty(x.shape), _empty(x.shape[:-1]), _empty(x.shape[:-1])
    bias = None if b is None else np.ascontiguousarray(b)
    kernel(_rows(x), np.ascontiguousarray(w), bias, float(eps), y.reshape(-1, x.shape[-1]), mean.reshape(-1), rstd.reshape(-1))
    return y, mean, rstd


def add_layernorm_forward(x, delta, w, b, eps):
    kernel = _kernel("add_layernorm_forward", x, delta, w, b)
    if kernel is None or x.shape != delta.shape:
        return reference.add_layernorm_forward(x, delta, w, b, eps)
    C = x.shape[-1]
    s, y, mean, rstd = _empty(x.shape), _empty(x.shape), _empty(x.shape[:-1]), _empty(x.shape[:-1])
    bias = None if b is None else np.ascontiguousarray(b)
    kernel(_rows(x), _rows(delta), np.ascontiguousarray(w), bias, float(eps), s.reshape(-1, C), y.reshape(-1, C),
           mean.reshape(-1), rstd.reshape(-1))
    return s, y, mean, rstd


def _add_residual(dx, dres):
    """dx += dres, in place on the kernel's own output (the C++ backward does not take dres)."""
    if dres is not None:
        dx += dres
    return dx


def layernorm_backward(dy, x, w, mean, rstd, dres=None):
    kernel = _kernel("layernorm_backward", dy, x, w, mean, rstd)
    if kernel is None:
        return reference.layernorm_backward(dy, x, w, mean, rstd, dres)
    C = x.shape[-1]
    dx, dw, db = _empty(x.shape), _empty((C,)), _empty((C,))
    kernel(_rows(dy), _rows(x), np.ascontiguousarray(w), np.ascontiguousarray(mean).reshape(-1),
           np.ascontiguousarray(rstd).reshape(-1), dx.reshape(-1, C), dw, db)
    return _add_residual(dx, dres), dw, db


def rmsnorm_forward(x, w, eps):
    kernel = _kernel("rmsnorm_forward", x, w)
    if kernel is None:
        return reference.rmsnorm_forward(x, w, eps)
    y, rstd = _empty(x.shape), _empty(x.shape[:-1])
    kernel(_rows(x), np.ascontiguousarray(w), float(eps), y.reshape(-1, x.shape[-1]), rstd.reshape(-1))
    return y, rstd


def add_rmsnorm_forward(x, delta, w, eps):
    kernel = _kernel("add_rmsnorm_forward", x, delta, w)
    if kernel is None or x.shape != delta.shape:
        return reference.add_rmsnorm_forward(x, delta, w, eps)
    C = x.shape[-1]
    s, y, rstd = _empty(x.shape), _empty(x.shape), _empty(x.shape[:-1])
    kernel(_rows(x), _rows(delta), np.ascontiguousarray(w), float(eps), s.reshape(-1, C), y.reshape(-1, C), rstd.reshape(-1))
    return s, y, rstd


def rmsnorm_backward(dy, x, w, rstd, dres=None):
    kernel = _kernel("rmsnorm_backward", dy, x, w, rstd)
    if kernel is None:
        return reference.rmsnorm_backward(dy, x, w, rstd, dres)
    C = x.shape[-1]
    dx, dw = _empty(x.shape), _empty((C,))
    kernel(_rows(dy), _rows(x), np.ascontiguousarray(w), np.ascontiguousarray(rstd).reshape(-1), dx.reshape(-1, C), dw)
    return _add_residual(dx, dres), dw


# ----------------------------------------------------------------------------------------------
# activations


def gelu_forward(x, approximate="none"):
    kernel = _kernel("gelu_forward", x)
    if kernel is None:
        return reference.gelu_forward(x, approximate)
    y = _empty(x.shape)
    kernel(np.ascontiguousarray(x).reshape(-1), approximate == "tanh", y.reshape(-1))
    return y


def gelu_backward(dy, x, approximate="none"):
    kernel = _kernel("gelu_backward", dy, x)
    if kernel is None:
        return reference.gelu_backward(dy, x, approximate)
    dx = _empty(x.shape)
    kernel(np.ascontiguousarray(dy).reshape(-1), np.ascontiguousarray(x).reshape(-1), approximate == "tanh", dx.reshape(-1))
    return dx


def silu_forward(x):
    kernel = _kernel("silu_forward", x)
    if kernel is None:
        return reference.silu_forward(x)
    y = _empty(x.shape)
    kernel(np.ascontiguousarray(x).reshape(-1), y.reshape(-1))
    return y


def silu_backward(dy, x):
    kernel = _kernel("silu_backward", dy, x)
    if kernel is None:
        return reference.silu_backward(dy, x)
    dx = _empty(x.shape)
    kernel(np.ascontiguousarray(dy).reshape(-1), np.ascontiguousarray(x).reshape(-1), dx.reshape(-1))
    return dx


def _dropout_kernel_args(dropout_args):
    """The kernels' dropout arguments (p, scale, seed, offset) from the contract's (p, seed, offset, shift);
    the shift, a device counter of captured CUDA graphs, never comes with host arrays."""
    if dropout_args is None:
        return ()
    p, seed, offset, _ = dropout_args
    return float(p), float(reference.dropout_scale(p)), seed, offset


def dropout(x, p, seed, offset, offset_shift=None):
    kernel = _kernel("dropout", x)
    if kernel is None:
        return reference.dropout(x, p, seed, offset, offset_shift)
    y = _empty(x.shape)
    kernel(np.ascontiguousarray(x).reshape(-1), *_dropout_kernel_args((p, seed, offset, offset_shift)), y.reshape(-1))
    return y


# ----------------------------------------------------------------------------------------------
# attention: (B, H, T, D) tensors


def attention_forward(q, k, v, causal, scale, dropout_args=None):
    kernel = _kernel("attention_forward", q, k, v)
    if kernel is None:
        return reference.attention_forward(q, k, v, causal, scale, dropout_args)
    o, lse = _empty(q.shape[:-1] + v.shape[-1:]), _empty(q.shape[:-1])
    kernel(np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v), bool(causal), float(scale), o, lse,
           *_dropout_kernel_args(dropout_args))
    return o, lse


def attention_backward(do, q, k, v, o, lse, causal, scale, dropout_args=None):
    kernel = _kernel("attention_backward", do, q, k, v, o, lse)
    if kernel is None:
        return reference.attention_backward(do, q, k, v, o, lse, causal, scale, dropout_args)
    dq, dk, dv = _empty(q.shape), _empty(k.shape), _empty(v.shape)
    c = np.ascontiguousarray
    kernel(c(do), c(q), c(k), c(v), c(o), c(lse), bool(causal), float(scale), dq, dk, dv, *_dropout_kernel_args(dropout_args))
    return dq, dk, dv


# ----------------------------------------------------------------------------------------------
# rotary position embedding: x (..., T, D), cos and sin (T, D/2)


def rope_forward(x, cos, sin):
    return reference.rope_forward(x, cos, sin)  # no C++ kernel yet: the reference, explicitly


def rope_backward(dy, cos, sin):
    return reference.rope_backward(dy, cos, sin)


# ----------------------------------------------------------------------------------------------
# cross-entropy: (N, V) logits, (N,) int64 targets


def cross_entropy_forward(logits, targets, ignore_index=-100):
    kernel = _kernel("cross_entropy_forward", logits)
    if kernel is None:
        return reference.cross_entropy_forward(logits, targets, ignore_index)
    losses, lse = _empty(logits.shape[:1]), _empty(logits.shape[:1])
    kernel(np.ascontiguousarray(logits), np.ascontiguousarray(targets, dtype=np.int64), int(ignore_index), losses, lse)
    return losses, lse


def cross_entropy_backward(dlosses, logits, targets, lse, ignore_index=-100):
    kernel = _kernel("cross_entropy_backward", dlosses, logits, lse)
    if kernel is None:
        return reference.cross_entropy_backward(dlosses, logits, targets, lse, ignore_index)
    dlogits = _empty(logits.shape)
    c = np.ascontiguousarray
    kernel(c(dlosses), c(logits), c(targets, dtype=np.int64), c(lse), int(ignore_index), dlogits)
    return dlogits


# ----------------------------------------------------------------------------------------------
# embedding


def embedding_backward(dy, idx, num_embeddings):
    kernel = _kernel("embedding_backward", dy)
    if kernel is None:
        return reference.embedding_backward(dy, idx, num_embeddings)
    dw = _empty((num_embeddings, dy.shape[-1]))
    kernel(_rows(dy), np.ascontiguousarray(idx, dtype=np.int64).reshape(-1), dw)
    return dw


# ----------------------------------------------------------------------------------------------
# optimizer


def adamw_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step):
    kernel = _kernel("adamw_update", param, grad, exp_avg, exp_avg_sq)
    buffers = (param, grad, exp_avg, exp_avg_sq)
    if kernel is None or not all(a.flags.c_contiguous for a in buffers):
        return reference.adamw_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step)
    kernel(*(a.reshape(-1) for a in buffers), float(lr), float(beta1), float(beta2), float(eps), float(weight_decay), int(step))


def adamw_update_multi(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step):
    """One C++ call per tensor: the per-launch cost that the GPU's multi-tensor kernel saves is small here."""
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        adamw_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step)
