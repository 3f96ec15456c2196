"""Log-probabilities of answer tokens: the quantities SFT and DPO are losses of.

Only the answer tokens count (the positions whose target is not IGNORE, a few per conversation), so
lm_head runs at those positions alone: the hidden states (B, T, C) are gathered to (N, C), N the
number of answer tokens, before the (C, vocab) matmul and the softmax, which would otherwise cost as
much as the rest of the model for the padded (B, T) batch.
"""
import numpy as np

from ..backend.array import to_device
from ..creation import tensor
from ..nn import functional as F
from .data import IGNORE


def answer_logits(model, inputs, targets):
    """(logits (N, V), labels (N,), rows (N,)): the logits at the N positions whose target is not
    IGNORE, in row-major order, their target ids, and the batch row each belongs to."""
    rows, cols = np.nonzero(targets != IGNORE)
    hidden = model.hidden_states(inputs)
    at = tuple(to_device(index, hidden.device) for index in (rows, cols))
    return model.lm_head(hidden[at]), targets[rows, cols], rows


def token_logps(logits, labels):
    """(N,) log p(label) under softmax(logits) for (N, V) logits, differentiable."""
    return -F.cross_entropy(logits, labels, reduction="none")


def sum_by_row(values, rows, n_rows):
    """(n_rows,) sums of the (N,) values belonging to each row, differentiable: a (n_rows, N) 0/1
    matrix times the values."""
    membership = tensor(rows[None, :] == np.arange(n_rows)[:, None], dtype=values.dtype, device=values.device)
    return (membership @ values.reshape(-1, 1)).reshape(-1)


def sequence_logps(model, inputs, targets):
    """(B,) log p(answer) = sum over each row's answer tokens t of log p(x_t | x_<t), differentiable."""
    logits, labels, rows = answer_logits(model, inputs, targets)
    return sum_by_row(token_logps(logits, labels), rows, len(inputs))


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def token_kl(policy_logits, reference_logits):
    """KL(pi || ref) = sum over the vocabulary of pi (log pi - log ref), averaged over positions, from
    (N, V) logit arrays of the two models at the same N positions."""
    logp, logq = _log_softmax(np.asarray(policy_logits, np.float64)), _log_softmax(np.asarray(reference_logits, np.float64))
    return float((np.exp(logp) * (logp - logq)).sum(axis=-1).mean())
