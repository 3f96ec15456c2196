"""A GPT in one file, after nanoGPT: GPT-2 and Llama are the same model with different choices.

    x = wte(idx) + wpe(positions)              (learned positions; with RoPE, no wpe)
    for each of the n_layer blocks:
        x = x + attn(norm_1(x))                causal self-attention, RoPE on q and k, GQA
        x = x + mlp(norm_2(x))                 gelu: c_proj(gelu(c_fc x));  swiglu: c_proj(silu(gate) * up)
    logits = lm_head(norm_f(x))                lm_head may share its weight with wte (tying)

GPTConfig picks: pos_encoding "learned" | "rope", norm "layernorm" | "rmsnorm", mlp "gelu" | "swiglu",
bias, n_kv_head < n_head for grouped-query attention, tie_weights. The presets below are GPT-2
(OpenAI's 124M..1.5B), a Llama (TinyLlama-1.1B's shape) and two small CPU models.

Parameter names are nanoGPT's, which are those of Hugging Face GPT-2 (transformer.h.0.attn.c_attn...);
hf.py maps them to and from HF's gpt2 and llama checkpoints (from_pretrained / save_pretrained).
The model is built from tinyllm.nn modules only: it never calls a kernel.
"""
import dataclasses
import math

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..creation import arange, cat, tensor
from ..nn import functional as F
from ..optim import AdamW
from . import hf


@dataclasses.dataclass
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024  # longest context; the learned position table has this many rows
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_kv_head: int | None = None  # key/value heads, dividing n_head (GQA); None: n_head (plain multi-head)
    mlp_hidden: int | None = None  # MLP width; None: 4 n_embd for gelu, 8/3 n_embd rounded up to 64 for swiglu
    pos_encoding: str = "learned"  # "learned" (GPT-2) or "rope" (Llama)
    rope_theta: float = 10000.0  # RoPE base: feature pair i turns by t * theta^(-2i / head_dim) at position t
    norm: str = "layernorm"  # "layernorm" (GPT-2) or "rmsnorm" (Llama)
    norm_eps: float = 1e-5
    mlp: str = "gelu"  # "gelu" (GPT-2's, the tanh approximation) or "swiglu" (Llama)
    bias: bool = True  # biases in the Linear layers and LayerNorms
    dropout: float = 0.0
    tie_weights: bool = True  # lm_head.weight is transformer.wte.weight

    def __post_init__(self):
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.mlp_hidden is None:
            self.mlp_hidden = 4 * self.n_embd if self.mlp == "gelu" else 64 * math.ceil(8 * self.n_embd / 3 / 64)
        for field, allowed in (("pos_encoding", ("learned", "rope")), ("norm", ("layernorm", "rmsnorm")), ("mlp", ("gelu", "swiglu"))):
            if getattr(self, field) not in allowed:
                raise ValueError(f"GPTConfig.{field} must be one of {allowed}, got {getattr(self, field)!r}")
        if self.n_embd % self.n_head or self.n_head % self.n_kv_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head}), "
                             f"and n_head a multiple of n_kv_head ({self.n_kv_head})")
        if self.pos_encoding == "rope" and self.head_dim % 2:
            raise ValueError(f"GPTConfig: RoPE rotates pairs of features, so head_dim (n_embd / n_head = {self.head_dim}) must be even")

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    @classmethod
    def from_preset(cls, name, **overrides):
        """A preset of PRESETS, with some fields changed: GPTConfig.from_preset("small", dropout=0.1)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; the presets are {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


_GPT2 = dict(pos_encoding="learned", norm="layernorm", norm_eps=1e-5, mlp="gelu", bias=True, tie_weights=True)
_LLAMA = dict(pos_encoding="rope", norm="rmsnorm", norm_eps=1e-5, mlp="swiglu", bias=False)
PRESETS = {
    "gpt2": dict(_GPT2, vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),  # 124M parameters
    "gpt2-medium": dict(_GPT2, vocab_size=50257, block_size=1024, n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(_GPT2, vocab_size=50257, block_size=1024, n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(_GPT2, vocab_size=50257, block_size=1024, n_layer=48, n_head=25, n_embd=1600),  # 1558M
    "llama": dict(_LLAMA, vocab_size=32000, block_size=2048, n_layer=22, n_head=32, n_kv_head=4, n_embd=2048,
                  mlp_hidden=5632, rope_theta=10000.0, tie_weights=False),  # TinyLlama-1.1B's shape
    # GPT-2 architecture at CPU sizes (vocabulary of our own 8192-token BPE):
    "small": dict(_GPT2, vocab_size=8192, block_size=128, n_layer=4, n_head=4, n_embd=256),  # 5.3M parameters
    "medium": dict(_GPT2, vocab_size=8192, block_size=256, n_layer=6, n_head=6, n_embd=384),  # 13.8M
}


def _norm(config):
    if config.norm == "layernorm":
        return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)
    return nn.RMSNorm(config.n_embd, eps=config.norm_eps)


def rope_tables(n_positions, head_dim, theta, device="cpu"):
    """cos and sin (n_positions, head_dim / 2) of the RoPE angles t * theta^(-2i / head_dim), float32
    Tensors on device (computed in float64 on the host so that late positions keep their precision)."""
    angles = np.outer(np.arange(n_positions), theta ** (-np.arange(0, head_dim, 2) / head_dim))
    return tuple(tensor(f(angles), dtype=np.float32, device=device) for f in (np.cos, np.sin))


def repeat_kv(x, n_rep):
    """(B, n_kv_head, S, D) -> (B, n_kv_head * n_rep, S, D): query head h reads key/value head h // n_rep.
    Differentiable: expand's backward sums the gradients of the copies."""
    B, H, S, D = x.shape
    return x.unsqueeze(2).expand(B, H, n_rep, S, D).reshape(B, H * n_rep, S, D)


class KVCache:
    """The keys and values of every position seen so far, per layer, so generation feeds the model
    only the new tokens. Each layer keeps (B, n_kv_head, S, head_dim) Tensors, after RoPE."""

    def __init__(self):
        self.keys, self.values = {}, {}

    def __len__(self):
        """S, the number of cached positions (the position of the next token)."""
        return self.keys[0].shape[2] if self.keys else 0

    def update(self, layer, k, v):
        """Append this step's k, v (B, n_kv_head, T, head_dim) to the layer's and return all S + T of them."""
        if layer in self.keys:
            k, v = cat([self.keys[layer], k], dim=2), cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class CausalSelfAttention(nn.Module):
    """y = c_proj(concat over heads of softmax(q k^T / sqrt(head_dim) + causal mask) v).

    c_attn makes n_head query heads and n_kv_head key and value heads in one matmul; with RoPE, q and k
    are rotated by their positions; each key/value head serves n_head / n_kv_head query heads (GQA).
    The softmax runs in the fused attention kernel, whose causal mask lets query i of T see key j of
    S when j <= i + S - T, so T new queries against S cached keys need no other mask.
    """

    def __init__(self, config, layer):
        super().__init__()
        self.layer = layer  # this layer's index in a KVCache
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.c_attn = nn.Linear(config.n_embd, (config.n_head + 2 * config.n_kv_head) * config.head_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, rope=None, cache=None):
        B, T, C = x.shape
        nh, nkv = self.n_head, self.n_kv_head
        qkv = self.c_attn(x).reshape(B, T, nh + 2 * nkv, self.head_dim).transpose(1, 2)  # (B, heads, T, head_dim)
        q, k, v = qkv[:, :nh], qkv[:, nh:nh + nkv], qkv[:, nh + nkv:]
        if rope is not None:
            q, k = F.rope(q, *rope), F.rope(k, *rope)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        if nkv != nh:
            k, v = repeat_kv(k, nh // nkv), repeat_kv(v, nh // nkv)
        dropout = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class MLP(nn.Module):
    """gelu: c_proj(gelu(c_fc x)).  swiglu (Shazeer 2020): c_proj(silu(gate) * up), [gate, up] = c_fc x."""

    def __init__(self, config):
        super().__init__()
        self.swiglu, self.hidden = config.mlp == "swiglu", config.mlp_hidden
        self.c_fc = nn.Linear(config.n_embd, (2 if self.swiglu else 1) * config.mlp_hidden, bias=config.bias)
        self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.c_fc(x)
        h = F.silu(h[..., :self.hidden]) * h[..., self.hidden:] if self.swiglu else F.gelu(h, approximate="tanh")
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    """x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))  (pre-norm residual block).

    The first residual add and ln_2 run as one fused op (ln_2.add_norm), which reads x and attn's
    output once and writes the new x and ln_2's output, instead of a pass for each."""

    def __init__(self, config, layer):
        super().__init__()
        self.ln_1 = _norm(config)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = _norm(config)
        self.mlp = MLP(config)

    def forward(self, x, rope=None, cache=None):
        x, h = self.ln_2.add_norm(x, self.attn(self.ln_1(x), rope, cache))
        return x + self.mlp(h)


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        modules = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))
        if config.pos_encoding == "learned":
            modules["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        modules.update(drop=nn.Dropout(config.dropout), h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
                       ln_f=_norm(config))
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        if config.pos_encoding == "rope":
            self.rope_cos, self.rope_sin = rope_tables(config.block_size, config.head_dim, config.rope_theta)
        self._init_weights()

    def _init_weights(self):
        """GPT-2's initialisation: weights N(0, 0.02), biases 0, norms 1, and the two projections that
        add into the residual stream in each block (attn.c_proj, mlp.c_proj) N(0, 0.02 / sqrt(2 n_layer)),
        so the residual stream's variance does not grow with depth."""
        with no_grad():
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    p.normal_(0.0, 0.02 / math.sqrt(2 * self.config.n_layer))
                elif p.ndim == 2:
                    p.normal_(0.0, 0.02)
                elif name.endswith(".bias"):
                    p.zero_()

    def _rope(self, start, T, device):
        """cos and sin of the positions start .. start + T - 1 on device; the table grows past block_size
        on demand, and follows the model to its device on first use there."""
        if start + T > len(self.rope_cos):
            self.rope_cos, self.rope_sin = rope_tables(2 * (start + T), self.config.head_dim, self.config.rope_theta, device)
        elif self.rope_cos.device != device:
            self.rope_cos, self.rope_sin = self.rope_cos.to(device), self.rope_sin.to(device)
        return self.rope_cos[start:start + T], self.rope_sin[start:start + T]

    def forward(self, idx, targets=None, cache=None):
        """logits (B, T, vocab_size) for token ids idx (B, T), and the mean cross-entropy against targets
        (B, T) (ids, or -100 to ignore a position), or None without targets.

        With a KVCache the T tokens continue the cached sequence: they sit at positions S .. S + T - 1
        and attend to the S cached positions too. Learned positions end at block_size; RoPE goes on.
        """
        logits = self.lm_head(self.hidden_states(idx, cache))
        loss = None
        if targets is not None:
            B, T = idx.shape
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def hidden_states(self, idx, cache=None):
        """The final normalised hidden states (B, T, n_embd) of idx (and cache) as in forward, which lm_head
        turns into logits. A loss on
        a few positions only (SFT and DPO learn the answer tokens) applies lm_head to those alone,
        sparing the (T, vocab_size) logits of the rest."""
        B, T = idx.shape
        start = len(cache) if cache is not None else 0
        x = self.transformer.wte(idx)
        rope = None
        if self.config.pos_encoding == "learned":
            if start + T > self.config.block_size:
                raise ValueError(f"positions up to {start + T} don't fit the {self.config.block_size} learned positions (block_size)")
            x = x + self.transformer.wpe(arange(start, start + T, device=x.device))
        else:
            rope = self._rope(start, T, x.device)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, rope, cache)
        return self.transformer.ln_f(x)

    def resize_token_embeddings(self, new_vocab_size):
        """Grow the token embedding (and an untied lm_head) to new_vocab_size rows, for new tokens such
        as chat markers; existing rows are kept, so every existing id means what it did.

        Each new row is the mean of the existing rows (as Hugging Face does since 4.46, after Hewitt
        2021): a new token then starts where the model's tokens are on average, and with a tied head
        its logit is the mean logit, so it takes no probability mass from the tokens the model knows
        and the pretrained model's predictions barely change. Random rows could dominate the softmax.
        Build the optimizer after resizing: the grown tables are new Parameters.
        """
        old = self.config.vocab_size
        if new_vocab_size < old:
            raise ValueError(f"resize_token_embeddings only grows the vocabulary: {new_vocab_size} < {old}")

        def grown(weight):
            rows = weight.detach().numpy()
            fresh = np.repeat(rows.mean(axis=0, keepdims=True), new_vocab_size - old, axis=0)
            return nn.Parameter(tensor(np.concatenate([rows, fresh]), dtype=weight.dtype, device=weight.device))

        wte = self.transformer.wte
        wte.weight, wte.num_embeddings = grown(wte.weight), new_vocab_size
        self.lm_head.weight = wte.weight if self.config.tie_weights else grown(self.lm_head.weight)
        self.lm_head.out_features = new_vocab_size
        self.config.vocab_size = new_vocab_size
        return self

    def num_parameters(self):
        """The number of parameters, a tied weight counted once."""
        return sum(p.numel() for p in self.parameters())

    def configure_optimizers(self, weight_decay, lr, betas, capturable=False):
        """AdamW that decays the matrices of the Linear layers only: not norms, biases or embeddings
        (a tied lm_head is the embedding, so it is not decayed either). capturable: see AdamW."""
        embeddings = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        decay = [p for p in self.parameters() if p.ndim >= 2 and id(p) not in embeddings]
        rest = [p for p in self.parameters() if p.ndim < 2 or id(p) in embeddings]
        return AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas,
                     capturable=capturable)

    @classmethod
    def from_pretrained(cls, directory, dropout=0.0):
        """A model from a Hugging Face checkpoint directory (config.json + model.safetensors) whose
        model_type is gpt2 or llama. See hf.py for the name mapping."""
        model = cls(GPTConfig(**hf.read_config(directory), dropout=dropout))
        model.load_state_dict(hf.read_weights(directory, model.config, {k: v.shape for k, v in model.state_dict().items()}))
        return model

    def save_pretrained(self, directory):
        """Write config.json + model.safetensors in Hugging Face's format (gpt2 or llama, whichever the
        config is), each file atomically, so `transformers` opens the model and gives the same logits."""
        hf.write(directory, self.config, {k: v.numpy() for k, v in self.state_dict().items()})
