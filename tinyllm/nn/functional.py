"""tinyllm.nn.functional: the differentiable ops of a GPT, named and ordered as torch.nn.functional,
so a PyTorch snippet ports by changing its import."""
import math

import numpy as np

from .. import amp, backend, dtypes
from ..backend.array import array_module, check_same_device, to_device
from ..ops import activation, attention, dropout as _dropout, elementwise, embedding as _embedding, loss, matmul, norm, rope as _rope, softmax as _softmax
from ..tensor import Tensor


def linear(input, weight, bias=None):
    """input @ weight.T + bias, weight of shape (out_features, in_features)."""
    if input.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input has {input.shape[-1]} features, weight expects {weight.shape[-1]} (weight shape {tuple(weight.shape)})")
    low = amp.autocast_dtype()
    if low is not None:
        input, weight = input.to(low), weight.to(low)
        bias = bias.to(low) if bias is not None else None
    return matmul.Linear.apply(input, weight, bias)


def softmax(input, dim):
    return _softmax.Softmax.apply(input, dim=dim)


def log_softmax(input, dim):
    return _softmax.LogSoftmax.apply(input, dim=dim)


def _normalized_size(input, normalized_shape, name):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) != 1 or input.shape[-1] != shape[0]:
        raise ValueError(f"{name}: normalized_shape must be the size of the last axis ({input.shape[-1]}), got {shape}")
    return shape[0]


def _unit_weight(input, n):
    return Tensor._wrap(array_module(input.data).ones(n, dtype=dtypes.compute_dtype(input.dtype)))


def _ids(ids, like):
    """Integer ids (a Tensor, array or list) as an array on the device of Tensor `like`: a Tensor of
    another device is an error, other data is moved there."""
    if isinstance(ids, Tensor):
        check_same_device((ids.data, like.data))
        return ids.data
    return to_device(np.asarray(ids), like.device)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the last axis to zero mean and unit variance, then scale by weight and shift by bias."""
    n = _normalized_size(input, normalized_shape, "layer_norm")
    return norm.LayerNorm.apply(input, weight if weight is not None else _unit_weight(input, n), bias, eps=eps)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """Scale the last axis to unit root-mean-square, then by weight; eps defaults to the dtype's machine epsilon."""
    n = _normalized_size(input, normalized_shape, "rms_norm")
    eps = float(np.finfo(dtypes.compute_dtype(input.dtype)).eps) if eps is None else eps
    return norm.RMSNorm.apply(input, weight if weight is not None else _unit_weight(input, n), eps=eps)


def _same_shape(input, delta, name):
    if input.shape != delta.shape:
        raise ValueError(f"{name}: input and delta must have one shape (no broadcasting), got {input.shape} and {delta.shape}")


def add_layer_norm(input, delta, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(s, layer_norm(s)) with s = input + delta, in one fused op: a pre-norm block's residual add and
    the norm after it. Gradients may flow into both results."""
    _same_shape(input, delta, "add_layer_norm")
    n = _normalized_size(input, normalized_shape, "add_layer_norm")
    return norm.AddLayerNorm.apply(input, delta, weight if weight is not None else _unit_weight(input, n), bias, eps=eps)


def add_rms_norm(input, delta, normalized_shape, weight=None, eps=None):
    """(s, rms_norm(s)) with s = input + delta, in one fused op (see add_layer_norm)."""
    _same_shape(input, delta, "add_rms_norm")
    n = _normalized_size(input, normalized_shape, "add_rms_norm")
    eps = float(np.finfo(dtypes.compute_dtype(input.dtype)).eps) if eps is None else eps
    return norm.AddRMSNorm.apply(input, delta, weight if weight is not None else _unit_weight(input, n), eps=eps)


def gelu(input, approximate="none"):
    return activation.GELU.apply(input, approximate=approximate)


def silu(input):
    return activation.SiLU.apply(input)


def relu(input):
    return elementwise.Relu.apply(input)


def sigmoid(input):
    return elementwise.Sigmoid.apply(input)


def logsigmoid(input):
    """log(1 / (1 + exp(-x))), computed without overflow."""
    return elementwise.LogSigmoid.apply(input)


def tanh(input):
    return elementwise.Tanh.apply(input)


def dropout(input, p=0.5, training=True):
    """Zero elements with probability p while training (scaling the rest by 1/(1-p)); identity otherwise."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return _dropout.Dropout.apply(input, p=p)


def embedding(input, weight):
    """Rows of weight picked by the integer ids in input: output shape input.shape + (embedding_dim,)."""
    ids = _ids(input, weight)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    backend.for_array(ids).check_ids(ids, weight.shape[0], "embedding: ids")
    return _embedding.Embedding.apply(weight, idx=ids)


def cross_entropy(input, target, ignore_index=-100, reduction="mean"):
    """Mean (or sum, or per-element) negative log-likelihood of target classes under softmax(input).

    input: (N, C) logits, or (N, C, d1, ...) with classes on axis 1, or (C,); target: the class ids.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    targets = _ids(target, input)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class ids, got dtype {targets.dtype}")
    logits, out_shape = input, targets.shape  # the loss of low-precision logits is float32 (see ops/loss.py)
    if input.ndim == 1:
        logits = logits.reshape(1, -1)
    elif input.ndim > 2:  # classes on axis 1, as in PyTorch: move them last and flatten the rest
        logits = logits.permute(0, *range(2, input.ndim), 1).reshape(-1, input.shape[1])
    if logits.shape[0] != targets.size:
        raise ValueError(f"cross_entropy: {logits.shape[0]} rows of logits but {targets.size} targets "
                         f"(input shape {tuple(input.shape)}, target shape {targets.shape})")
    flat = targets.reshape(-1).astype(np.int64, copy=False)
    backend.for_array(flat).check_ids(flat, logits.shape[1], "cross_entropy: targets", ignore_index)
    out = loss.CrossEntropy.apply(logits, targets=flat, ignore_index=ignore_index, reduction=reduction)
    return out.reshape(*out_shape) if reduction == "none" else out


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """softmax(query @ key^T * scale + mask) @ value over (..., L, E) query and (..., S, E) key/value.

    Without a mask this is one fused kernel (no L x S matrix kept for backward), dropout included: it
    draws the masks dropout(softmax(...)) would. With an attn_mask (bool: True = may attend; float:
    added to the scores) it is composed of the differentiable ops above. Pass dropout_p=0 at
    evaluation, as with PyTorch.
    """
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: shapes don't fit: query {tuple(query.shape)}, "
                         f"key {tuple(key.shape)}, value {tuple(value.shape)}")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], got {dropout_p}")
    if attn_mask is None and dropout_p < 1.0:
        lead = query.shape[:-2]
        q, k, v = (t.reshape(-1, 1, *t.shape[-2:]) if t.ndim != 4 else t for t in (query, key, value))
        out = attention.ScaledDotProductAttention.apply(q, k, v, causal=bool(is_causal), scale=float(scale),
                                                        dropout_p=float(dropout_p))
        return out if query.ndim == 4 else out.reshape(*lead, *out.shape[-2:])
    scores = (query @ key.transpose(-2, -1)) * scale
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        xp = array_module(query.data)
        scores = scores.masked_fill(xp.arange(S)[None, :] > xp.arange(L)[:, None] + (S - L), -np.inf)
    if attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, Tensor) else to_device(np.asarray(attn_mask), query.device)
        scores = scores.masked_fill(~mask, -np.inf) if mask.dtype == np.bool_ else scores + Tensor._wrap(mask.astype(scores.dtype))
    probs = dropout(softmax(scores, dim=-1), dropout_p, training=dropout_p > 0)
    return probs @ value


def rope(input, cos, sin):
    """Rotary position embedding of input (..., T, D) in Llama's "rotate_half" layout: feature i and
    feature i + D/2 are rotated together by the angle whose cos and sin, (T, D/2), are given for each
    of the T positions (see ops/rope.py). Not differentiable in cos and sin."""
    cos, sin = (to_device(c.data if isinstance(c, Tensor) else np.asarray(c), input.device).astype(dtypes.compute_dtype(input.dtype), copy=False)
                for c in (cos, sin))
    T, D = input.shape[-2:]
    if D % 2 or cos.shape != (T, D // 2) or sin.shape != (T, D // 2):
        raise ValueError(f"rope: input (..., T, D) = {tuple(input.shape)} needs an even D and cos, sin of shape "
                         f"{(T, D // 2)}, got {cos.shape} and {sin.shape}")
    return _rope.RoPE.apply(input, cos, sin)
