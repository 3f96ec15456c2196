"""The CUDA backend: the kernel contract of reference.py on CuPy arrays, served by our CUDA kernels
in tinyllm._cuda (cuda/*.cu).

Each function has the signature of its reference twin. It checks shapes and dtypes, makes the
inputs C-contiguous, allocates the outputs with CuPy (so memory comes from CuPy's pool) and calls
the kernel with plain device pointers and CuPy's current stream, so the work is ordered with CuPy's
and is captured by a CUDA graph like any other launch on that stream.

Dtypes: the kernels store float32, bfloat16 or float16 and compute in float32.
Outputs have the input's dtype, except the statistics a backward pass needs (layernorm's mean and
rstd, cross-entropy's losses and lse, attention's lse), which are float32 whatever the storage. AdamW keeps float32 parameters and state;
its gradient may be half precision. Anything else (float64, mixed dtypes, a kernel we have not written
yet) runs the explicit CuPy fallback at the end of this file, and `native_kernels()` tells which
kernels run compiled.
"""
import math
import os
import types
import warnings

import cupy
import numpy as np

from .. import dtypes
from . import reference
from .cpu import CONTRACT  # the kernel names of the contract, listed once

try:
    from .. import _cuda
except ImportError as err:  # the build is optional: say so once, then run on CuPy
    _cuda = None
    warnings.warn(
        f"tinyllm: the CUDA kernels (tinyllm._cuda) are not available ({err}); CuPy arrays run on "
        "the CuPy fallbacks, which are correct but slower. Build them with nvcc on the PATH.",
        RuntimeWarning,
        stacklevel=2,
    )

# Contract names served by a differently named entry of tinyllm._cuda.
_ENTRY = {"log_softmax_forward": "softmax_forward", "log_softmax_backward": "softmax_backward",
          "rope_forward": "rope", "rope_backward": "rope"}

F32 = np.dtype(np.float32)
_CODES = {F32: 0, dtypes.bfloat16: 1, dtypes.float16: 2}  # the dtype codes of cuda/kernels.h

# Which GEMM serves matmul: "cublaslt" (NVIDIA's, through cuBLASLt) or "ours" (cuda/matmul.cu,
# bf16 only; other cases go to cuBLASLt). The benchmark times both.
GEMM = os.environ.get("TINYLLM_CUDA_GEMM", "cublaslt")
_WORKSPACE_BYTES = 32 << 20


def compute_dtype(dtype):
    """bfloat16 and float16 reach the kernels as they are (they load half precision and accumulate in
    float32)."""
    return dtype


def native_kernels():
    """Names of the contract's kernels that run our CUDA code (the rest run the CuPy fallbacks)."""
    return [name for name in CONTRACT if _cuda is not None and hasattr(_cuda, _ENTRY.get(name, name))]


def _empty(shape, dtype=F32):
    """Output allocation. Tests replace it with a NaN-filled allocator to catch unwritten outputs."""
    return cupy.empty(shape, dtype)


def _stream():
    return cupy.cuda.get_current_stream().ptr


def _code(name, *arrays):
    """The dtype code when the kernel `name` exists and the arrays share a supported dtype, else None."""
    if _cuda is None or not hasattr(_cuda, _ENTRY.get(name, name)):
        return None
    kinds = {a.dtype for a in arrays if a is not None}
    return _CODES.get(kinds.pop()) if len(kinds) == 1 else None


def _c(x, dtype=None):
    return contiguous(x) if dtype is None or x.dtype == dtype else cupy.ascontiguousarray(x, dtype=dtype)


def contiguous(x):
    """x as a C-contiguous array; strided float32/bfloat16/float16 arrays of up to 4 dimensions are copied by
    our kernel (cuda/copy.cu), which moves attention's transposes 3-4 times faster than CuPy's copy."""
    if x.flags.c_contiguous:
        return x
    code = _CODES.get(x.dtype)
    if _cuda is None or code is None or not 1 <= x.ndim <= 4 or any(s % x.itemsize for s in x.strides):
        return cupy.ascontiguousarray(x)
    y = _empty(x.shape, x.dtype)
    _cuda.strided_copy(x.data.ptr, y.data.ptr, list(x.shape), [s // x.itemsize for s in x.strides], code, _stream())
    return y


def _rows(x):
    """x as a C-contiguous (rows, last-axis) matrix."""
    return _c(x).reshape(-1, x.shape[-1])


def _ptr(x):
    return 0 if x is None else x.data.ptr


# ----------------------------------------------------------------------------------------------
# matmul


def _workspace():
    """The GEMMs' scratch space (cuBLASLt's, and our split-K's), one per device, from CuPy's pool."""
    dev = cupy.cuda.runtime.getDevice()
    if dev not in _workspace.buffers:
        _workspace.buffers[dev] = cupy.empty(_WORKSPACE_BYTES, np.uint8)
    return _workspace.buffers[dev]


_workspace.buffers = {}


def _batched(x, batch):
    """(x as a C-contiguous stack of matrices over `batch`, the stride between them: 0 if shared)."""
    if x.ndim == 2:
        return _c(x), 0
    if x.shape[:-2] != batch:
        x = cupy.broadcast_to(x, batch + x.shape[-2:])
    x = _c(x)
    return x, x.shape[-1] * x.shape[-2]


def _biased(c, bias):
    if bias is not None:
        add_bias_(c, bias)
    return c


def matmul(a, b, trans_a=False, trans_b=False, bias=None):
    """With a bias (N,) of C's dtype over one GEMM (2-D b, a not transposed), cuBLASLt adds it in its
    epilogue; otherwise add_bias_ adds it after the product."""
    code = _code("matmul", a, b)
    if code is None or a.ndim < 2 or b.ndim < 2:
        return _biased(_fallback.matmul(a, b, trans_a, trans_b), bias)
    M, K = (a.shape[-1], a.shape[-2]) if trans_a else (a.shape[-2], a.shape[-1])
    Kb, N = (b.shape[-1], b.shape[-2]) if trans_b else (b.shape[-2], b.shape[-1])
    if K != Kb:
        raise ValueError(f"matmul: inner dimensions differ, {a.shape} and {b.shape} (trans {trans_a}, {trans_b})")
    if b.ndim == 2 and not trans_a:  # (..., M, K) @ (K, N): one GEMM over all rows of a
        (a3, sa), (b3, sb) = (_c(a), 0), (_c(b), 0)
        batch, rows, shape = 1, math.prod(a.shape[:-1]), (*a.shape[:-1], N)
    else:
        lead = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        (a3, sa), (b3, sb) = _batched(a, lead), _batched(b, lead)
        batch, rows, shape = math.prod(lead), M, (*lead, M, N)
    c = _empty(shape, a.dtype)
    args = (a3.data.ptr, b3.data.ptr, c.data.ptr, batch, rows, N, K, trans_a, trans_b, sa, sb, rows * N, code)
    ws = _workspace()
    if GEMM == "ours" and _cuda.matmul_supported(*args):
        _cuda.matmul(*args, ws.data.ptr, ws.nbytes, _stream())
        return _biased(c, bias)
    if not _cuda.have_cublaslt():
        return _biased(_fallback.matmul(a, b, trans_a, trans_b), bias)
    epilogue = (bias is not None and batch == 1 and bias.dtype == c.dtype and bias.shape == (N,)
                and bias.flags.c_contiguous and bias.data.ptr % 16 == 0)
    _cuda.matmul_cublaslt(*args, bias.data.ptr if epilogue else 0, ws.data.ptr, ws.nbytes, _stream())
    return c if epilogue else _biased(c, bias)


def cast(x, dtype):
    """A new array: our cast kernel between float32/bfloat16/float16, a device-to-device copy when the
    dtype stays (queued in a few microseconds, where CuPy's astype takes ~20), else CuPy's astype."""
    dtype = np.dtype(dtype)
    if not x.flags.c_contiguous:
        return x.astype(dtype, copy=True)
    if x.dtype == dtype:
        y = _empty(x.shape, dtype)
        y.data.copy_from_device_async(x.data, x.nbytes)
        return y
    src, dst = _CODES.get(x.dtype), _CODES.get(dtype)
    if _cuda is None or src is None or dst is None:
        return x.astype(dtype, copy=True)
    y = _empty(x.shape, dtype)
    _cuda.cast(x.data.ptr, y.data.ptr, x.size, src, dst, _stream())
    return y


def add_bias_(y, bias):
    code = _code("add_bias", y, bias)
    if code is None or not y.flags.c_contiguous or bias.shape != y.shape[-1:]:
        y += bias  # CuPy, in place (the fallbacks' upcast would add to a copy)
        return
    b = _c(bias)
    _cuda.add_bias(y.data.ptr, b.data.ptr, y.size // max(y.shape[-1], 1), y.shape[-1], code, _stream())


def sum_rows(x):
    code = _code("sum_rows", x)
    if code is None or x.ndim != 2 or x.size == 0:
        return _fallback.sum_rows(x)
    x = _c(x)
    N, C = x.shape
    out = _empty((C,), x.dtype)
    scratch = cupy.empty(_cuda.sum_rows_scratch_floats(N, C), F32)
    _cuda.sum_rows(x.data.ptr, out.data.ptr, scratch.data.ptr, N, C, code, _stream())
    return out


# ----------------------------------------------------------------------------------------------
# softmax


def _softmax(name, x, log):
    code = _code(name, x)
    if code is None:
        return getattr(_fallback, name)(x)
    y = _empty(x.shape, x.dtype)
    x2 = _rows(x)
    _cuda.softmax_forward(x2.data.ptr, y.data.ptr, x2.shape[0], x2.shape[1], log, code, _stream())
    return y


def _softmax_grad(name, dy, y, log):
    code = _code(name, dy, y)
    if code is None:
        return getattr(_fallback, name)(dy, y)
    dx = _empty(y.shape, y.dtype)
    dy2, y2 = _rows(dy), _rows(y)
    _cuda.softmax_backward(dy2.data.ptr, y2.data.ptr, dx.data.ptr, y2.shape[0], y2.shape[1], log, code, _stream())
    return dx


def softmax_forward(x):
    return _softmax("softmax_forward", x, False)


def softmax_backward(dy, y):
    return _softmax_grad("softmax_backward", dy, y, False)


def log_softmax_forward(x):
    return _softmax("log_softmax_forward", x, True)


def log_softmax_backward(dy, y):
    return _softmax_grad("log_softmax_backward", dy, y, True)


# ----------------------------------------------------------------------------------------------
# normalisation


def layernorm_forward(x, w, b, eps):
    code = _code("layernorm_forward", x, w, b)
    if code is None:
        return _fallback.layernorm_forward(x, w, b, eps)
    x2, w, b = _rows(x), _c(w), None if b is None else _c(b)
    y, mean, rstd = _empty(x.shape, x.dtype), _empty(x.shape[:-1]), _empty(x.shape[:-1])
    _cuda.layernorm_forward(x2.data.ptr, w.data.ptr, _ptr(b), y.data.ptr, mean.data.ptr, rstd.data.ptr,
                            x2.shape[0], x2.shape[1], float(eps), code, _stream())
    return y, mean, rstd


def _delta_code(x, delta):
    """delta's dtype code for the add_ norms, which write s = x + delta in x's dtype: None unless that is
    the sum's dtype (delta of x's dtype, or a bfloat16 sublayer output into a float32 residual stream)."""
    if x.shape != delta.shape or np.promote_types(x.dtype, delta.dtype) != x.dtype:
        return None
    return _CODES.get(delta.dtype)


def add_layernorm_forward(x, delta, w, b, eps):
    code, delta_code = _code("add_layernorm_forward", x, w, b), _delta_code(x, delta)
    if code is None or delta_code is None:
        return _fallback.add_layernorm_forward(x, delta, w, b, eps)
    x2, d2, w, b = _rows(x), _rows(delta), _c(w), None if b is None else _c(b)
    s, y, mean, rstd = _empty(x.shape, x.dtype), _empty(x.shape, x.dtype), _empty(x.shape[:-1]), _empty(x.shape[:-1])
    _cuda.add_layernorm_forward(x2.data.ptr, d2.data.ptr, w.data.ptr, _ptr(b), s.data.ptr, y.data.ptr, mean.data.ptr,
                                rstd.data.ptr, x2.shape[0], x2.shape[1], float(eps), code, delta_code, _stream())
    return s, y, mean, rstd


def layernorm_backward(dy, x, w, mean, rstd, dres=None):
    code = _code("layernorm_backward", dy, x, w, dres)
    if code is None or mean.dtype != F32 or rstd.dtype != F32:
        return _fallback.layernorm_backward(dy, x, w, mean, rstd, dres)
    dy2, x2, w, mean, rstd = _rows(dy), _rows(x), _c(w), _c(mean), _c(rstd)
    dres = None if dres is None else _rows(dres)
    N, C = x2.shape
    dx, dw, db = _empty(x.shape, x.dtype), _empty((C,), w.dtype), _empty((C,), w.dtype)
    scratch = cupy.empty(_cuda.norm_backward_scratch_floats(N, C), F32)
    _cuda.layernorm_backward(dy2.data.ptr, x2.data.ptr, w.data.ptr, mean.data.ptr, rstd.data.ptr, _ptr(dres), dx.data.ptr,
                             dw.data.ptr, db.data.ptr, scratch.data.ptr, N, C, code, _stream())
    return dx, dw, db


def rmsnorm_forward(x, w, eps):
    code = _code("rmsnorm_forward", x, w)
    if code is None:
        return _fallback.rmsnorm_forward(x, w, eps)
    x2, w = _rows(x), _c(w)
    y, rstd = _empty(x.shape, x.dtype), _empty(x.shape[:-1])
    _cuda.rmsnorm_forward(x2.data.ptr, w.data.ptr, y.data.ptr, rstd.data.ptr, x2.shape[0], x2.shape[1], float(eps),
                          code, _stream())
    return y, rstd


def add_rmsnorm_forward(x, delta, w, eps):
    code, delta_code = _code("add_rmsnorm_forward", x, w), _delta_code(x, delta)
    if code is None or delta_code is None:
        return _fallback.add_rmsnorm_forward(x, delta, w, eps)
    x2, d2, w = _rows(x), _rows(delta), _c(w)
    s, y, rstd = _empty(x.shape, x.dtype), _empty(x.shape, x.dtype), _empty(x.shape[:-1])
    _cuda.add_rmsnorm_forward(x2.data.ptr, d2.data.ptr, w.data.ptr, s.data.ptr, y.data.ptr, rstd.data.ptr,
                              x2.shape[0], x2.shape[1], float(eps), code, delta_code, _stream())
    return s, y, rstd


def rmsnorm_backward(dy, x, w, rstd, dres=None):
    code = _code("rmsnorm_backward", dy, x, w, dres)
    if code is None or rstd.dtype != F32:
        return _fallback.rmsnorm_backward(dy, x, w, rstd, dres)
    dy2, x2, w, rstd = _rows(dy), _rows(x), _c(w), _c(rstd)
    dres = None if dres is None else _rows(dres)
    N, C = x2.shape
    dx, dw = _empty(x.shape, x.dtype), _empty((C,), w.dtype)
    scratch = cupy.empty(_cuda.norm_backward_scratch_floats(N, C), F32)
    _cuda.rmsnorm_backward(dy2.data.ptr, x2.data.ptr, w.data.ptr, rstd.data.ptr, _ptr(dres), dx.data.ptr, dw.data.ptr,
                           scratch.data.ptr, N, C, code, _stream())
    return dx, dw


# ----------------------------------------------------------------------------------------------
# activations


def _elementwise(name, out_of, *arrays, **flags):
    """Run an elementwise kernel over the flattened arrays; out has the shape and dtype of `out_of`."""
    code = _code(name, *arrays)
    if code is None:
        return None
    flat = [_c(a).reshape(-1) for a in arrays]
    out = _empty(out_of.shape, out_of.dtype)
    getattr(_cuda, name)(*(a.data.ptr for a in flat), out.data.ptr, out.size, *flags.values(), code, _stream())
    return out


def gelu_forward(x, approximate="none"):
    y = _elementwise("gelu_forward", x, x, tanh=approximate == "tanh")
    return _fallback.gelu_forward(x, approximate) if y is None else y


def gelu_backward(dy, x, approximate="none"):
    dx = _elementwise("gelu_backward", x, dy, x, tanh=approximate == "tanh")
    return _fallback.gelu_backward(dy, x, approximate) if dx is None else dx


def silu_forward(x):
    y = _elementwise("silu_forward", x, x)
    return _fallback.silu_forward(x) if y is None else y


def silu_backward(dy, x):
    dx = _elementwise("silu_backward", x, dy, x)
    return _fallback.silu_backward(dy, x) if dx is None else dx


def _dropout_kernel_args(dropout_args):
    """The kernels' dropout arguments (p, its keep factor, seed, offset, shift pointer) from the contract's
    (p, seed, offset, shift); p = 0 for none."""
    if dropout_args is None:
        return 0.0, 1.0, 0, 0, 0
    p, seed, offset, offset_shift = dropout_args
    return p, float(reference.dropout_scale(p)), seed, offset, _ptr(offset_shift)


def dropout(x, p, seed, offset, offset_shift=None):
    """offset_shift, when given, is a 0-d uint64 device array the kernel adds to offset (a captured step's)."""
    code = _code("dropout", x)
    if code is None:
        return _fallback.dropout(x, p, seed, offset, offset_shift)
    xc = _c(x)
    y = _empty(x.shape, x.dtype)
    _cuda.dropout(xc.data.ptr, y.data.ptr, x.size, *_dropout_kernel_args((p, seed, offset, offset_shift)), code,
                  _stream())
    return y


# ----------------------------------------------------------------------------------------------
# attention: (B, H, T, D) tensors. Our kernels (cuda/attention.cu on the tensor cores for bfloat16
# and float16, cuda/attention_fp32.cu for float32) take head dims 64 and 128 and scale > 0, and
# dropout where the number of keys is a multiple of 4; anything else (float64, other head dims,
# mixed dtypes, dropout over other key counts) runs the CuPy fallback, which builds the T x S matrix.

def _attention_code(name, scale, dropout_args, q, k, v, *more):
    """The dtype code when our kernel `name` takes these tensors, else None."""
    if _cuda is None or not hasattr(_cuda, name) or not scale > 0 or q.ndim != 4:
        return None
    if dropout_args is not None and k.shape[2] % 4:
        return None
    if q.shape[-1] not in (64, 128) or k.shape[:2] != q.shape[:2] or k.shape[-1] != q.shape[-1] or k.shape != v.shape:
        return None
    kinds = {a.dtype for a in (q, k, v, *more)}
    return _CODES.get(kinds.pop()) if len(kinds) == 1 else None


def attention_forward(q, k, v, causal, scale, dropout_args=None):
    code = _attention_code("attention_forward", scale, dropout_args, q, k, v)
    if code is None:
        return _fallback.attention_forward(q, k, v, causal, scale, dropout_args)
    B, H, T, D = q.shape
    q, k, v = _c(q), _c(k), _c(v)
    o, lse = _empty(q.shape, q.dtype), _empty((B, H, T))
    _cuda.attention_forward(q.data.ptr, k.data.ptr, v.data.ptr, o.data.ptr, lse.data.ptr, B * H, T, k.shape[2], D,
                            bool(causal), float(scale), *_dropout_kernel_args(dropout_args), code, _stream())
    return o, lse


def attention_backward(do, q, k, v, o, lse, causal, scale, dropout_args=None):
    code = _attention_code("attention_backward", scale, dropout_args, q, k, v, do, o)
    if code is None:
        return _fallback.attention_backward(do, q, k, v, o, lse, causal, scale, dropout_args)
    B, H, T, D = q.shape
    do, q, k, v, o, lse = _c(do), _c(q), _c(k), _c(v), _c(o), _c(lse, F32)
    dq, dk, dv = _empty(q.shape, q.dtype), _empty(k.shape, k.dtype), _empty(v.shape, v.dtype)
    scratch = cupy.empty(_cuda.attention_backward_scratch_floats(B * H, T, D), F32)
    _cuda.attention_backward(do.data.ptr, q.data.ptr, k.data.ptr, v.data.ptr, o.data.ptr, lse.data.ptr, dq.data.ptr,
                             dk.data.ptr, dv.data.ptr, scratch.data.ptr, B * H, T, k.shape[2], D, bool(causal),
                             float(scale), *_dropout_kernel_args(dropout_args), code, _stream())
    return dq, dk, dv


# ----------------------------------------------------------------------------------------------
# RoPE: (..., T, D) tensors, cos and sin (T, D/2)


def _rope(name, x, cos, sin, backward):
    code = _code("rope", x, cos, sin)
    T, D = x.shape[-2:]
    if code is None or cos.shape != (T, D // 2) or sin.shape != cos.shape or D % 2:
        return getattr(_fallback, name)(x, cos, sin)
    x, cos, sin = _c(x), _c(cos), _c(sin)
    y = _empty(x.shape, x.dtype)
    _cuda.rope(x.data.ptr, cos.data.ptr, sin.data.ptr, y.data.ptr, x.size // max(D, 1), T, D, backward, code, _stream())
    return y


def rope_forward(x, cos, sin):
    return _rope("rope_forward", x, cos, sin, False)


def rope_backward(dy, cos, sin):
    return _rope("rope_backward", dy, cos, sin, True)


# ----------------------------------------------------------------------------------------------
# cross-entropy: (N, V) logits, (N,) int64 targets


def cross_entropy_forward(logits, targets, ignore_index=-100):
    code = _code("cross_entropy_forward", logits)
    if code is None or logits.ndim != 2:
        return _fallback.cross_entropy_forward(logits, targets, ignore_index)
    logits, targets = _c(logits), _c(targets, np.int64)
    N, V = logits.shape
    losses, lse = _empty((N,)), _empty((N,))
    _cuda.cross_entropy_forward(logits.data.ptr, targets.data.ptr, losses.data.ptr, lse.data.ptr, N, V,
                                int(ignore_index), code, _stream())
    return losses, lse


def cross_entropy_backward(dlosses, logits, targets, lse, ignore_index=-100):
    code = _code("cross_entropy_backward", logits)
    if code is None or logits.ndim != 2:
        return _fallback.cross_entropy_backward(dlosses, logits, targets, lse, ignore_index)
    logits, targets, dlosses, lse = _c(logits), _c(targets, np.int64), _c(dlosses, F32), _c(lse, F32)
    N, V = logits.shape
    dlogits = _empty(logits.shape, logits.dtype)
    _cuda.cross_entropy_backward(dlosses.data.ptr, logits.data.ptr, targets.data.ptr, lse.data.ptr, dlogits.data.ptr,
                                 N, V, int(ignore_index), code, _stream())
    return dlogits


# ----------------------------------------------------------------------------------------------
# embedding


def embedding_backward(dy, idx, num_embeddings):
    code = _code("embedding_backward", dy)
    if code is None:
        return _fallback.embedding_backward(dy, idx, num_embeddings)
    dy2 = _rows(dy)
    N, D = dy2.shape
    # Sorting idx * N + n groups equal indices in the order of n: the sums run in a fixed order.
    # CUB's radix sort (cuda/sort.cu) rather than cupy.sort, whose Thrust call waits for the device.
    unsorted = _c(idx, np.int64).reshape(-1) * N + cupy.arange(N, dtype=np.int64)
    keys, scratch = cupy.empty_like(unsorted), cupy.empty(_cuda.sort_int64_scratch_bytes(N), np.uint8)
    _cuda.sort_int64(unsorted.data.ptr, keys.data.ptr, N, scratch.data.ptr, scratch.nbytes, _stream())
    dw = cupy.zeros((num_embeddings, D), dy.dtype)
    _cuda.embedding_backward(dy2.data.ptr, keys.data.ptr, dw.data.ptr, N, D, num_embeddings, code, _stream())
    return dw


# ----------------------------------------------------------------------------------------------
# optimizer


def adamw_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step):
    state = (param, exp_avg, exp_avg_sq)
    code = _code("adamw_update", grad)
    if (code is None or any(a.dtype != F32 or not a.flags.c_contiguous for a in state) or grad.shape != param.shape
            or isinstance(lr, cupy.ndarray) or isinstance(step, cupy.ndarray)):  # device scalars: the fallback reads them there
        return _fallback.adamw_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step)
    g = _c(grad)
    _cuda.adamw_update(param.data.ptr, g.data.ptr, exp_avg.data.ptr, exp_avg_sq.data.ptr, param.size, float(lr),
                       float(beta1), float(beta2), float(eps), float(weight_decay), int(step), code, _stream())


def _list(name, *lists):
    """(dtype code, pointer lists, sizes) for a multi-tensor kernel, or None when it can't take them:
    every tensor C-contiguous, the first list of one dtype (the rest float32)."""
    code = _code(name, *lists[0])
    rest_ok = all(a.dtype == F32 for lst in lists[1:] for a in lst)
    if code is None or not rest_ok or not all(a.flags.c_contiguous for lst in lists for a in lst):
        return None
    return code, [[a.data.ptr for a in lst] for lst in lists], [a.size for a in lists[0]]


def adamw_update_multi(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step):
    """One launch for the whole list. step: a number, or a 0-d float32 device array; lr: a number, or a
    0-d float64 device array (a captured step reads its count and learning rate from there at replay)."""
    found = _list("adamw_update_multi", grads, params, exp_avgs, exp_avg_sqs)
    step_on_device, lr_on_device = isinstance(step, cupy.ndarray), isinstance(lr, cupy.ndarray)
    if (found is None or any(p.shape != g.shape for p, g in zip(params, grads)) or (step_on_device and step.dtype != F32)
            or (lr_on_device and lr.dtype != np.float64)):
        for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):  # each on its own kernel or fallback
            adamw_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step)
        return
    code, (g, p, m, v), sizes = found
    _cuda.adamw_update_multi(p, g, m, v, sizes, 0.0 if lr_on_device else float(lr), float(beta1), float(beta2), float(eps),
                             float(weight_decay), 0.0 if step_on_device else float(step),
                             step.data.ptr if step_on_device else 0, lr.data.ptr if lr_on_device else 0, code, _stream())


def grad_norm(grads):
    found = _list("grad_norm", grads)
    if found is None:
        return _fallback.grad_norm(grads)
    code, (ptrs,), sizes = found
    scratch, norm = cupy.empty(_cuda.grad_norm_scratch_floats(sizes), F32), _empty((), F32)
    _cuda.grad_norm(ptrs, sizes, scratch.data.ptr, norm.data.ptr, code, _stream())
    return norm


def clip_grads_(grads, total_norm, max_norm):
    found = _list("clip_grads", grads)
    if found is None or total_norm.dtype != F32:
        return _fallback.clip_grads_(grads, total_norm, max_norm)
    code, (ptrs,), sizes = found
    _cuda.clip_grads(ptrs, sizes, total_norm.data.ptr, float(max_norm), code, _stream())


def unscale_grads_(grads, inv_scale, found_inf):
    found = _list("unscale_grads", grads)
    if found is None or found_inf.dtype != F32:
        return _fallback.unscale_grads_(grads, inv_scale, found_inf)
    code, (ptrs,), sizes = found
    _cuda.unscale_grads(ptrs, sizes, float(inv_scale), found_inf.data.ptr, code, _stream())


CHECK_IDS = os.environ.get("TINYLLM_CUDA_CHECK_IDS") == "1"


_pending_id_checks = []  # (count of bad ids on the device, ids, high, what, ignore_index), not read yet
# How many ids lie outside [0, high) and are not the ignore index (when has_ignore): one launch.
_count_bad_ids = cupy.ReductionKernel("int64 x, int64 high, bool has_ignore, int64 ignore", "int64 n",
                                      "(!has_ignore || x != ignore) && (x < 0 || x >= high)", "a + b", "n = a", "0",
                                      "tinyllm_count_bad_ids")


def check_ids(ids, high, what, ignore_index=None):
    """Ids on the GPU are counted out of range on the device, without waiting for it; the count is read
    at the next point where the host waits for the device anyway (raise_pending_errors, from
    Tensor.item(), .numpy() and .tolist()), and an error there names the ids, the range and the
    extremes, as on the CPU. Meanwhile an id out of range reads a wrapped-around row (CuPy's
    indexing), so a training loop stops at its next logged loss, before a checkpoint is written.
    With TINYLLM_CUDA_CHECK_IDS=1 the host waits for the verdict at once. A captured CUDA graph does
    not check (its eager warm-up steps did; PyTorch checks inside its kernels, with a device assert)."""
    if CHECK_IDS:
        reference.check_ids(ids, high, what, ignore_index)
        return
    if cupy.cuda.get_current_stream().is_capturing():
        return
    count = _count_bad_ids(ids.astype(np.int64, copy=False), high, ignore_index is not None, ignore_index or 0)
    _pending_id_checks.append((count, ids, high, what, ignore_index))


def raise_pending_errors():
    """Read the id checks not read yet (one wait for the device) and raise IndexError for the first
    that found an id out of range."""
    if not _pending_id_checks:
        return
    checks = _pending_id_checks[:]
    _pending_id_checks.clear()
    counts = cupy.asnumpy(cupy.stack([count for count, *_ in checks]))
    for count, (_, ids, high, what, ignore_index) in zip(counts, checks):
        if count:
            reference.check_ids(cupy.asnumpy(ids), high, what, ignore_index)


# ----------------------------------------------------------------------------------------------
# CuPy fallbacks: the reference definitions on CuPy arrays, for float64, mixed dtypes and kernels
# not written yet. bfloat16 inputs are computed in float32.


def _up(a):
    return a.astype(F32) if isinstance(a, cupy.ndarray) and a.dtype == dtypes.bfloat16 else a


def _on_cupy(fn):
    """A reference function run as it stands: NumPy hands np.exp, np.matmul, ... on CuPy arrays to CuPy."""
    return lambda *args: fn(*map(_up, args))


def _erf(x):
    import cupyx.scipy.special

    return cupyx.scipy.special.erf(x)


# The reference functions below build NumPy arrays of their own (masks, scatter targets, frompyfunc),
# so they are restated in CuPy. Their products go through this backend's matmul (cuBLASLt), not
# cupy.matmul: CuPy's cuBLAS calls can't be captured in a CUDA graph.


def _gelu_forward(x, approximate="none"):
    if approximate == "tanh":
        return reference.gelu_forward(_up(x), approximate)
    x = _up(x)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _gelu_backward(dy, x, approximate="none"):
    dy, x = _up(dy), _up(x)
    if approximate == "tanh":
        return reference.gelu_backward(dy, x, approximate)
    return dy * (0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * cupy.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi))


def _scores(q, k, causal, scale):
    s = matmul(q, k, trans_b=True) * scale
    if causal:
        T, S = q.shape[-2], k.shape[-2]
        s = cupy.where(cupy.arange(S)[None, :] > cupy.arange(T)[:, None] + (S - T), -cupy.inf, s)
    return s


def _dropped(x, dropout_args):
    """x through this backend's dropout kernel, or as it is without dropout."""
    return x if dropout_args is None else dropout(x, *dropout_args)


def _attention_forward(q, k, v, causal, scale, dropout_args=None):
    s = _scores(_up(q), _up(k), causal, scale)
    m = s.max(axis=-1, keepdims=True)
    lse = m + cupy.log(cupy.exp(s - m).sum(axis=-1, keepdims=True))
    return matmul(_dropped(cupy.exp(s - lse), dropout_args), _up(v)).astype(q.dtype), lse[..., 0]


def _attention_backward(do, q, k, v, o, lse, causal, scale, dropout_args=None):
    do, q32, k32, v32, o = map(_up, (do, q, k, v, o))
    p = cupy.exp(_scores(q32, k32, causal, scale) - lse[..., None])
    ds = p * (_dropped(matmul(do, v32, trans_b=True), dropout_args) - (do * o).sum(axis=-1, keepdims=True))
    dq = matmul(ds, k32) * scale
    dk = matmul(ds, q32, trans_a=True) * scale
    dv = matmul(_dropped(p, dropout_args), do, trans_a=True)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)


def _cross_entropy_backward(dlosses, logits, targets, lse, ignore_index=-100):
    dlosses, logits, lse = _up(dlosses), _up(logits), _up(lse)
    keep = targets != ignore_index
    g = cupy.exp(logits - lse[:, None])
    g[cupy.arange(len(targets)), cupy.where(keep, targets, 0)] -= 1.0
    return g * cupy.where(keep, dlosses, 0.0)[:, None].astype(logits.dtype)


def _embedding_backward(dy, idx, num_embeddings):
    import cupyx

    dy = _up(dy)
    dw = cupy.zeros((num_embeddings, dy.shape[-1]), dy.dtype)
    cupyx.scatter_add(dw, idx.reshape(-1), dy.reshape(-1, dy.shape[-1]))
    return dw


def _adamw_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step):
    reference.adamw_update(param, grad.astype(param.dtype), exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                           weight_decay, step)


_fallback = types.SimpleNamespace(
    **{name: _on_cupy(getattr(reference, name)) for name in (
        "matmul", "softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward",
        "layernorm_forward", "layernorm_backward", "rmsnorm_forward", "rmsnorm_backward",
        "add_layernorm_forward", "add_rmsnorm_forward",
        "silu_forward", "silu_backward", "rope_forward", "rope_backward", "cross_entropy_forward", "sum_rows",
        "grad_norm", "clip_grads_", "unscale_grads_", "dropout")},
    gelu_forward=_gelu_forward, gelu_backward=_gelu_backward,
    attention_forward=_attention_forward, attention_backward=_attention_backward,
    cross_entropy_backward=_cross_entropy_backward, embedding_backward=_embedding_backward,
    adamw_update=_adamw_update,
)
