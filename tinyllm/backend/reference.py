"""The reference backend: every kernel of the contract in short, vectorised NumPy.

This file is the definition. Each compiled backend (cpu.py over tinyllm._C, later cuda.py) exposes
the same functions with the same signatures and is tested against these. Conventions:

- Arrays in, arrays out. Forward and backward are separate kernels; a forward returns what its
  backward needs (e.g. layernorm's mean and rstd, attention's logsumexp).
- Reductions run over the last axis; leading axes are rows.
- Computation happens in the input's dtype (float32 or float64); the op layer upcasts float16 and
  bfloat16 storage to `compute_dtype(dtype)` before it calls a kernel (a backend whose kernels take
  a half dtype directly says so in its own compute_dtype).
- Attention tensors are (B, H, T, D). `causal` lets query i see keys j <= i + (S - T), where T is
  the number of queries and S the number of keys (so a query block at the end of a longer key
  sequence, as in a KV cache, sees everything before it).
"""
import math

import numpy as np

from .. import dtypes
from .array import array_module


def compute_dtype(dtype):
    """The dtype these kernels compute in for data stored as `dtype`: float32 for the half types."""
    return dtypes.float32 if dtype in (dtypes.float16, dtypes.bfloat16) else dtype


# ----------------------------------------------------------------------------------------------
# matmul


def matmul(a, b, trans_a=False, trans_b=False, bias=None):
    """C = op(A) @ op(B) (+ bias on every row), batched over leading axes (broadcast as in np.matmul).

    op(X) is X or X transposed over its last two axes. A backward pass needs the transposed forms:
    for C = A @ B, dA = dC @ B^T and dB = A^T @ dC. bias (N,): a linear layer's, y = x W^T + b.
    """
    if trans_a:
        a = np.swapaxes(a, -1, -2)
    if trans_b:
        b = np.swapaxes(b, -1, -2)
    c = np.matmul(a, b)
    if bias is not None:
        add_bias_(c, bias)
    return c


def contiguous(x):
    """x as a C-contiguous array: x itself if it is one, else a copy (of a transposed view, say)."""
    return np.ascontiguousarray(x)


def cast(x, dtype):
    """x in another dtype, as a new array (autocast's copies of weights and activations)."""
    return x.astype(dtype, copy=True)


def add_bias_(y, bias):
    """y += bias over the last axis, in place: the bias of a linear layer (y = x W^T + b)."""
    y += bias


def sum_rows(x):
    """out[c] = sum over the rows n of x[n, c], for x (N, C): the bias gradient of a linear layer."""
    return x.sum(axis=0)


# ----------------------------------------------------------------------------------------------
# softmax


def softmax_forward(x):
    """y = exp(x - max x) / sum exp(x - max x) over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dy, y):
    """dx = y * (dy - sum(dy * y)), the Jacobian-vector product of softmax."""
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def log_softmax_forward(x):
    """y = x - logsumexp(x) over the last axis."""
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def log_softmax_backward(dy, y):
    """dx = dy - softmax(x) * sum(dy), with softmax(x) = exp(y)."""
    return dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# normalisation


def layernorm_forward(x, w, b, eps):
    """y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps); returns (y, mean, rstd).

    mean and rstd have x's shape without the last axis; b may be None.
    """
    mean = x.mean(axis=-1)
    xc = x - mean[..., None]
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1) + eps)
    y = xc * rstd[..., None] * w
    if b is not None:
        y = y + b
    return y, mean, rstd


def layernorm_backward(dy, x, w, mean, rstd, dres=None):
    """With xhat = (x - mean) * rstd and g = dy * w:
    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) + dres,  dw = sum_rows(dy * xhat),  db = sum_rows(dy).

    dres (may be None) is a gradient that reaches x by another path, the residual stream of a pre-norm
    block; adding it here saves a pass over dx.
    """
    xhat = (x - mean[..., None]) * rstd[..., None]
    g = dy * w
    dx = rstd[..., None] * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    if dres is not None:
        dx = dx + dres
    rows = tuple(range(x.ndim - 1))
    return dx, (dy * xhat).sum(axis=rows), dy.sum(axis=rows)


def add_layernorm_forward(x, delta, w, b, eps):
    """s = x + delta, then y = layernorm(s): the residual add and the next norm in one pass.
    Returns (s, y, mean, rstd); the backward is layernorm_backward(dy, s, w, mean, rstd, dres=ds)."""
    s = x + delta
    return (s, *layernorm_forward(s, w, b, eps))


def rmsnorm_forward(x, w, eps):
    """y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps); returns (y, rstd)."""
    rstd = 1.0 / np.sqrt((x * x).mean(axis=-1) + eps)
    return x * rstd[..., None] * w, rstd


def rmsnorm_backward(dy, x, w, rstd, dres=None):
    """With xhat = x * rstd and g = dy * w:  dx = rstd * (g - xhat * mean(g * xhat)) + dres,
    dw = sum_rows(dy * xhat);  dres as in layernorm_backward."""
    xhat = x * rstd[..., None]
    g = dy * w
    dx = rstd[..., None] * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    if dres is not None:
        dx = dx + dres
    return dx, (dy * xhat).sum(axis=tuple(range(x.ndim - 1)))


def add_rmsnorm_forward(x, delta, w, eps):
    """s = x + delta, then y = rmsnorm(s); returns (s, y, rstd). Backward: rmsnorm_backward(dy, s, w, rstd, dres=ds)."""
    s = x + delta
    return (s, *rmsnorm_forward(s, w, eps))


# ----------------------------------------------------------------------------------------------
# activations

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_erf = np.frompyfunc(math.erf, 1, 1)


def gelu_forward(x, approximate="none"):
    """GELU. "none": x * Phi(x) with Phi the normal CDF, 0.5 * (1 + erf(x / sqrt 2)).
    "tanh": 0.5 * x * (1 + tanh(u)), u = sqrt(2/pi) * (x + 0.044715 x^3)  (GPT-2's form)."""
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(x.dtype))


def gelu_backward(dy, x, approximate="none"):
    """"none": dx = dy * (Phi(x) + x * phi(x)), phi the normal density.
    "tanh": dx = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) du/dx), t = tanh(u), du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
        du = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)
        return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
    cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)).astype(x.dtype))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return dy * (cdf + x * pdf)


def silu_forward(x):
    """y = x * sigmoid(x)."""
    return x / (1.0 + np.exp(-x))


def silu_backward(dy, x):
    """dx = dy * s * (1 + x (1 - s)), s = sigmoid(x)."""
    s = 1.0 / (1.0 + np.exp(-x))
    return dy * s * (1.0 + x * (1.0 - s))


# ----------------------------------------------------------------------------------------------
# attention


def _causal_mask(T, S):
    """True where query i may NOT see key j: j > i + (S - T)."""
    return np.arange(S)[None, :] > np.arange(T)[:, None] + (S - T)


def attention_forward(q, k, v, causal, scale, dropout_args=None):
    """o = dropout(softmax(q k^T * scale + mask)) v over (B, H, T, D) tensors; returns (o, lse).

    lse (B, H, T) is the log-sum-exp of each row of masked scores, all the backward needs to rebuild
    the probabilities without storing them. dropout_args: None, or (p, seed, offset, offset_shift), the
    arguments of `dropout` (below) over the (B, H, T, S) probabilities, which the backward draws again.
    """
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    if causal:
        s = np.where(_causal_mask(q.shape[-2], k.shape[-2]), -np.inf, s)
    m = s.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(s - m).sum(axis=-1, keepdims=True))
    p = np.exp(s - lse)
    if dropout_args is not None:
        p = dropout(p, *dropout_args)
    return np.matmul(p, v), lse[..., 0]


def attention_backward(do, q, k, v, o, lse, causal, scale, dropout_args=None):
    """With P = exp(S - lse) rebuilt from the saved lse, and Z the dropout factors (1 without dropout):
    dV = (P Z)^T dO,  dP = (dO V^T) Z,  dS = P * (dP - rowsum(dO * O)),  dQ = dS K * scale,  dK = dS^T Q * scale.
    """
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    if causal:
        s = np.where(_causal_mask(q.shape[-2], k.shape[-2]), -np.inf, s)
    p = np.exp(s - lse[..., None])
    dp = np.matmul(do, np.swapaxes(v, -1, -2))
    dropped = (lambda x: x) if dropout_args is None else (lambda x: dropout(x, *dropout_args))
    dv = np.matmul(np.swapaxes(dropped(p), -1, -2), do)
    ds = p * (dropped(dp) - (do * o).sum(axis=-1, keepdims=True))
    dq = np.matmul(ds, k) * scale
    dk = np.matmul(np.swapaxes(ds, -1, -2), q) * scale
    return dq, dk, dv


# ----------------------------------------------------------------------------------------------
# rotary position embedding (RoPE)


def rope_forward(x, cos, sin):
    """Rotate pairs of features of x (..., T, D) by position-dependent angles; cos, sin are (T, D/2).

    Layout: the Llama / Hugging Face "rotate_half" convention, which pairs feature i with feature
    i + D/2 (not the interleaved 2i, 2i+1 of the RoFormer paper), so HF Llama checkpoints load as
    they are. With x = [x1, x2] split in halves and cos = cos(t * theta_i), sin = sin(t * theta_i):
        y1 = x1 * cos - x2 * sin,    y2 = x2 * cos + x1 * sin.
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def rope_backward(dy, cos, sin):
    """The rotation is orthogonal, so its gradient is the inverse rotation (by -angle):
        dx1 = dy1 * cos + dy2 * sin,    dx2 = dy2 * cos - dy1 * sin.
    """
    return rope_forward(dy, cos, -sin)


# ----------------------------------------------------------------------------------------------
# cross-entropy fused with log-softmax


def cross_entropy_forward(logits, targets, ignore_index=-100):
    """losses[n] = lse(logits[n]) - logits[n, targets[n]] for (N, V) logits; 0 where targets[n] == ignore_index.

    Returns (losses, lse); reduction (mean over non-ignored rows, or sum) belongs to the op.
    """
    m = logits.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))[:, 0]
    keep = targets != ignore_index
    picked = np.take_along_axis(logits, np.where(keep, targets, 0)[:, None], axis=-1)[:, 0]
    return np.where(keep, lse - picked, 0.0).astype(logits.dtype), lse


def cross_entropy_backward(dlosses, logits, targets, lse, ignore_index=-100):
    """dlogits[n] = dlosses[n] * (softmax(logits[n]) - onehot(targets[n])); 0 rows where ignored."""
    keep = targets != ignore_index
    g = np.exp(logits - lse[:, None])
    g[np.arange(len(targets)), np.where(keep, targets, 0)] -= 1.0
    return g * np.where(keep, dlosses, 0.0)[:, None].astype(logits.dtype)


# ----------------------------------------------------------------------------------------------
# embedding


def embedding_backward(dy, idx, num_embeddings):
    """dW[i] = sum of dy rows whose index is i (a scatter-add); dy is (N, D), idx is (N,)."""
    dw = np.zeros((num_embeddings, dy.shape[-1]), dtype=dy.dtype)
    np.add.at(dw, idx, dy)
    return dw


# ----------------------------------------------------------------------------------------------
# optimizer


def adamw_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step):
    """One AdamW step, in place, in the order PyTorch computes it (so results agree to rounding):

    p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    """
    param *= 1.0 - lr * weight_decay
    exp_avg += (1.0 - beta1) * (grad - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * grad * grad
    denom = np.sqrt(exp_avg_sq) / math.sqrt(1.0 - beta2**step) + eps
    param -= (lr / (1.0 - beta1**step)) * exp_avg / denom


def adamw_update_multi(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step):
    """adamw_update on each tensor of the lists, all with the same hyper-parameters and step count
    (one launch on the GPU). step may be a number or a 0-d array (a count kept on the device)."""
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        adamw_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step)


# ----------------------------------------------------------------------------------------------
# gradient clipping


def grad_norm(grads):
    """sqrt(sum over every element of every gradient of g^2): the global 2-norm, a 0-d float32 array
    on the gradients' device (summed in float64 here)."""
    total = sum(np.square(g, dtype=np.float64).sum() for g in grads)
    return array_module(grads[0]).asarray(np.sqrt(total), dtype=np.float32)


def clip_grads_(grads, total_norm, max_norm):
    """g *= min(1, max_norm / (total_norm + 1e-6)) for every gradient, in place, as
    torch.nn.utils.clip_grad_norm_ does; total_norm is a 0-d array (it may stay on the device)."""
    coef = np.minimum(1.0, max_norm / (total_norm.astype(np.float64) + 1e-6))
    with np.errstate(invalid="ignore"):  # a non-finite norm makes every gradient NaN, as in PyTorch
        for g in grads:
            g *= coef.astype(g.dtype)


def unscale_grads_(grads, inv_scale, found_inf):
    """g = g * inv_scale for every gradient, in place (computed in float32, stored in g's dtype), and
    found_inf set to 1 where any result is inf or NaN (a 0-d float32 array, left as it is otherwise):
    the gradient half of loss scaling, as PyTorch's _amp_foreach_non_finite_check_and_unscale_. The
    flag is updated where it lives, so on a GPU (CuPy arrays: the CUDA backend's fallback) the host
    reads nothing until the caller reads the flag once."""
    for g in grads:
        g[...] = (g.astype(np.float32) * np.float32(inv_scale)).astype(g.dtype)
        found_inf[...] = np.where(np.isfinite(g).all(), found_inf, np.float32(1.0))


# ----------------------------------------------------------------------------------------------
# dropout: counter-based random numbers (Philox4x32-10, Salmon et al. 2011, "Parallel random numbers:
# as easy as 1, 2, 3"; the generator of cuRAND and PyTorch's GPU dropout)

PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # the two multipliers of a round
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # the key's increment between rounds (golden ratio and sqrt(3) - 1, in 32 bits)
_LOW32 = 0xFFFFFFFF


def philox4x32(c0, c1, c2, c3, k0, k1):
    """The four 32-bit words Philox4x32-10 makes of the counter (c0, c1, c2, c3) under the key (k0, k1).

    Words are uint64 arrays (or ints) holding 32-bit values, so a product of two words fits. A round
    multiplies c0 and c2 by the constants and mixes the high halves of the products with the other two
    words and the key; the key moves on by PHILOX_W between rounds; ten rounds make every output bit
    depend on every input bit. No state: the same counter and key always give the same words."""
    for _ in range(10):
        p0, p1 = c0 * PHILOX_M[0], c2 * PHILOX_M[1]
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & _LOW32, (p0 >> 32) ^ c3 ^ k1, p0 & _LOW32
        k0, k1 = (k0 + PHILOX_W[0]) & _LOW32, (k1 + PHILOX_W[1]) & _LOW32
    return c0, c1, c2, c3


def dropout_uniforms(n, seed, offset, xp=np, offset_shift=None):
    """n float32 numbers in [0, 1): number i is word i % 4 of Philox4x32-10 at the 64-bit counter
    offset + i // 4 (in words 0 and 1; words 2 and 3 are 0) under the 64-bit key seed, its top 24 bits
    over 2**24 (exact in float32). offset_shift: a 0-d uint64 array of xp added to every counter."""
    counters = xp.arange((n + 3) // 4, dtype=np.uint64) + np.uint64(offset)
    if offset_shift is not None:
        counters += offset_shift
    zero = xp.zeros_like(counters)
    words = philox4x32(counters & _LOW32, counters >> 32, zero, zero, seed & _LOW32, seed >> 32)
    return (xp.stack(words, axis=-1).reshape(-1)[:n] >> 8).astype(np.float32) * np.float32(2.0 ** -24)


def dropout_scale(p):
    """1 / (1 - p) in float32, the factor a kept element is multiplied by (0 for p = 1: all dropped)."""
    return np.float32(0.0 if p >= 1.0 else 1.0 / (1.0 - p))


def dropout(x, p, seed, offset, offset_shift=None):
    """y = x * m with m_i = dropout_scale(p) where u_i >= p (float32) and 0 elsewhere, u = dropout_uniforms
    over x's elements in C order; computed in float32 (float64 for float64 x), stored in x's dtype.

    The mask is a function of (seed, offset), so nothing of it is kept: the backward pass is the same
    call on dy (dx = dy * m), and a checkpoint holds only the stream's next offset (random.py)."""
    xp = array_module(x)
    keep = dropout_uniforms(x.size, seed, offset, xp, offset_shift).reshape(x.shape) >= np.float32(p)
    compute = np.float64 if x.dtype == np.float64 else np.float32
    m = xp.where(keep, dropout_scale(p), np.float32(0.0)).astype(compute)
    return (x.astype(compute) * m).astype(x.dtype)


# ----------------------------------------------------------------------------------------------
# id checks


def raise_pending_errors():
    """Raise the input errors that a device found but the host has not read yet (a host backend checks
    at once, so it never has any)."""


def check_ids(ids, high, what, ignore_index=None):
    """Raise IndexError unless every id (but ignore_index) lies in [0, high)."""
    valid = ids if ignore_index is None else ids[ids != ignore_index]
    if valid.size and (valid.min() < 0 or valid.max() >= high):
        ignored = "" if ignore_index is None else f" or ignore_index={ignore_index}"
        raise IndexError(f"{what} must be in [0, {high}){ignored}, got min {valid.min()} and max {valid.max()}")
