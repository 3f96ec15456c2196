"""The GPT in plain PyTorch, written from the papers' formulas with tinyllm's parameter names: the
oracle of the model parity tests and the peer of benchmarks/train.py."""
import torch


class TorchGPT(torch.nn.Module):
    """The same GPT in plain PyTorch, written from the papers' formulas, with the same parameter names."""

    def __init__(self, c):
        super().__init__()
        nn, self.c = torch.nn, c
        norm = (lambda: nn.LayerNorm(c.n_embd, eps=c.norm_eps, bias=c.bias)) if c.norm == "layernorm" else \
            (lambda: nn.RMSNorm(c.n_embd, eps=c.norm_eps))
        hd, width = c.n_embd // c.n_head, c.mlp_hidden * (2 if c.mlp == "swiglu" else 1)
        block = lambda: nn.ModuleDict(dict(
            ln_1=norm(), ln_2=norm(),
            attn=nn.ModuleDict(dict(c_attn=nn.Linear(c.n_embd, (c.n_head + 2 * c.n_kv_head) * hd, bias=c.bias),
                                    c_proj=nn.Linear(c.n_embd, c.n_embd, bias=c.bias))),
            mlp=nn.ModuleDict(dict(c_fc=nn.Linear(c.n_embd, width, bias=c.bias), c_proj=nn.Linear(c.mlp_hidden, c.n_embd, bias=c.bias)))))
        modules = dict(wte=nn.Embedding(c.vocab_size, c.n_embd), h=nn.ModuleList([block() for _ in range(c.n_layer)]), ln_f=norm())
        if c.pos_encoding == "learned":
            modules["wpe"] = nn.Embedding(c.block_size, c.n_embd)
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx, targets):
        c, F = self.c, torch.nn.functional
        B, T = idx.shape
        nh, nkv, hd = c.n_head, c.n_kv_head, c.n_embd // c.n_head
        p = c.dropout if self.training else 0.0  # where tinyllm's GPT drops: embeddings, attention, both residual branches
        x = self.transformer.wte(idx)
        if c.pos_encoding == "learned":
            x = x + self.transformer.wpe(torch.arange(T, device=idx.device))
        else:  # Hugging Face Llama's rotate_half RoPE
            angles = torch.outer(torch.arange(T, dtype=torch.float64, device=idx.device),
                                 c.rope_theta ** (-torch.arange(0, hd, 2, dtype=torch.float64, device=idx.device) / hd))
            cos, sin = torch.cat([angles.cos()] * 2, -1).float(), torch.cat([angles.sin()] * 2, -1).float()
            rope = lambda t: t * cos + torch.cat([-t[..., hd // 2:], t[..., :hd // 2]], -1) * sin
        x = F.dropout(x, p)
        for blk in self.transformer.h:
            qkv = blk.attn.c_attn(blk.ln_1(x)).view(B, T, nh + 2 * nkv, hd).transpose(1, 2)
            q, k, v = qkv.split([nh, nkv, nkv], dim=1)
            if c.pos_encoding == "rope":
                q, k = rope(q), rope(k)
            k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True).transpose(1, 2).reshape(B, T, c.n_embd)
            x = x + F.dropout(blk.attn.c_proj(y), p)
            h = blk.mlp.c_fc(blk.ln_2(x))
            if c.mlp == "swiglu":
                gate, up = h.split(c.mlp_hidden, dim=-1)
                h = F.silu(gate) * up
            else:
                h = F.gelu(h, approximate="tanh")
            x = x + F.dropout(blk.mlp.c_proj(h), p)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, F.cross_entropy(logits.view(B * T, -1), targets.view(-1), ignore_index=-100)
