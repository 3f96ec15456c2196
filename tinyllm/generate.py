"""Sampling text from a GPT, token by token, with a KV cache.

The prompt goes through the model once (prefill) and leaves every layer's keys and values in a
KVCache; after that each step feeds only the newest token, which attends to the cached positions, so
a new token costs one position's work instead of the whole context's.

Each step turns the last position's logits z into the next token:
    repetition_penalty r: a token already in the context gets z / r if z > 0, else z * r (CTRL, 2019);
    temperature 0: the argmax (greedy); otherwise z / temperature, then
    top_k: only the k most likely tokens stay;  top_p: only the smallest set of most likely tokens
    whose probability reaches p stays (nucleus sampling, Holtzman et al. 2019);
    and the token is drawn from the softmax of what stays.

A caller may keep the cache between calls (a chat does, from turn to turn): given a KVCache that holds
the first len(cache) tokens of the prompt, generate feeds only the rest, and leaves the cache holding
a prefix of the result (all of it but the last token, which no step has fed yet), so a later call
whose prompt begins with this result goes on from there.

Past block_size: with RoPE the positions go on and so does the cache (the model never saw such
positions in training, so quality may drop). Learned positions end at block_size, so the model sees
the last block_size tokens only, as in nanoGPT; a sliding window would shift every cached position,
so from then on each step recomputes the cropped window without a cache (exact, but slower).
"""
import numpy as np

from . import random
from .autograd import no_grad
from .creation import tensor
from .models.gpt import KVCache
from .tensor import Tensor


def sample_next(logits, context, temperature=1.0, top_k=None, top_p=None, repetition_penalty=1.0, rng=None):
    """The next token id of each row, (B,), from last-position logits (B, V) and the context ids (B, T)."""
    z = np.array(logits, dtype=np.float64)
    if repetition_penalty != 1.0:
        rows = np.arange(len(z))[:, None]
        seen = z[rows, context]
        z[rows, context] = np.where(seen > 0, seen / repetition_penalty, seen * repetition_penalty)
    if temperature == 0:
        return z.argmax(axis=-1)
    z /= temperature
    if top_k is not None:
        kth = np.sort(z, axis=-1)[:, -min(top_k, z.shape[-1])]
        z[z < kth[:, None]] = -np.inf
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None:
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=-1)
        beyond = np.cumsum(sorted_p, axis=-1) - sorted_p >= top_p  # the set before this token already reaches top_p
        np.put_along_axis(p, order, np.where(beyond, 0.0, sorted_p), axis=-1)
        p /= p.sum(axis=-1, keepdims=True)
    rng = random.generator() if rng is None else rng
    return np.array([rng.choice(len(row), p=row) for row in p])


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, repetition_penalty=1.0,
             stop_tokens=(), seed=None, stream=None, cache=None):
    """idx followed by up to max_new_tokens tokens sampled from model (see the module docstring).

    idx: token ids, (T,) or (B, T) (a Tensor, array or list); the result has the same rank, as a Tensor.
    A row ends when it produces one of stop_tokens (which is kept); generation ends when every row
    has, and finished rows are padded with their stop token. seed makes the draws reproducible (else
    the generator of tinyllm.manual_seed is used). stream(token) is called after every step with the
    new id (an int, or a (B,) array for a batch). cache: a KVCache from an earlier call whose tokens
    begin idx, extended in place (see the module docstring); None starts a new one. Runs in eval mode,
    without building a graph. The model runs on its device; the ids and the sampling stay on the
    host, and the result goes to idx's device.
    """
    if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1) or repetition_penalty <= 0:
        raise ValueError(f"generate: need temperature >= 0, top_k >= 1, 0 < top_p <= 1 and repetition_penalty > 0, got "
                         f"temperature={temperature}, top_k={top_k}, top_p={top_p}, repetition_penalty={repetition_penalty}")
    ids = np.asarray(idx.numpy() if isinstance(idx, Tensor) else idx, dtype=np.int64)
    single = ids.ndim == 1
    ids = np.atleast_2d(ids)
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"generate: the prompt must hold at least one token, as (T,) or (B, T), got shape {ids.shape}")
    cache = KVCache() if cache is None else cache
    if len(cache) >= ids.shape[1]:
        raise ValueError(f"generate: the cache holds {len(cache)} positions and the prompt {ids.shape[1]} tokens; "
                         f"at least the prompt's last token must be new")
    if len(cache) and cache.keys[0].shape[0] != len(ids):
        raise ValueError(f"generate: the cache holds {cache.keys[0].shape[0]} rows and the prompt {len(ids)}")
    rng = np.random.default_rng(seed) if seed is not None else None
    window = model.config.block_size if model.config.pos_encoding == "learned" else None
    stops, done = np.asarray(list(stop_tokens), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for _ in range(max_new_tokens):
                if window is not None and ids.shape[1] > window:
                    logits, _ = model(ids[:, -window:])
                else:
                    logits, _ = model(ids[:, len(cache):], cache=cache)
                new = sample_next(logits[:, -1].numpy(), ids, temperature, top_k, top_p, repetition_penalty, rng)
                new = np.where(done, ids[:, -1], new)
                ids = np.concatenate([ids, new[:, None]], axis=1)
                if stream is not None:
                    stream(int(new[0]) if single else new)
                done |= np.isin(new, stops)
                if done.all():
                    break
    finally:
        model.train(was_training)
    return tensor(ids[0] if single else ids, device=idx.device if isinstance(idx, Tensor) else "cpu")
