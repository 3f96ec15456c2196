"""tinyllm's CUDA kernels against PyTorch on the same GPU, at the GPT-2 124M shapes
(B 16, T 1024, d 768, 12 heads, vocab 50304), on random inputs.

Each row is a function `row_*(reps)` returning a dict (ours and PyTorch's median milliseconds, the
ratio PyTorch/ours, so > 1 means we are faster, and GB/s or TFLOP/s), so another harness can call
them one by one. Timing: CUDA events around each call, the L2 cache flushed (a 256 MB write)
before every timed repeat, medians over `reps` after warm-up.

    python benchmarks/kernels_cuda.py [--reps 30] [--only layernorm,matmul]

prints a table and writes the rows as JSON to $OUT/kernels_cuda.json if $OUT is set, else to
benchmarks/results/kernels_cuda.json.
"""
import argparse
import json
import os
import time

import cupy
import numpy as np
import torch

from tinyllm import dtypes
from tinyllm.backend import cuda

F = torch.nn.functional
B, T, C, H, V = 16, 1024, 768, 12, 50304
N = B * T
BF16 = dtypes.bfloat16
_flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")


def median_ms(fn, reps, warmup=3):
    """Median time of fn() in ms: CUDA events around each call, L2 flushed before each."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        _flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        times.append((start, end))
    torch.cuda.synchronize()
    return float(np.median([s.elapsed_time(e) for s, e in times]))


def rand(shape, dtype=np.float32, scale=1.0):
    return (cupy.random.standard_normal(shape, dtype=np.float32) * scale).astype(dtype)


def t(x):
    return torch.from_dlpack(x)


def row(name, ours, theirs, reps, gbytes=None, tflop=None):
    """Time both; report throughput as GB/s (bytes moved, at least once each) or TFLOP/s."""
    a, b = median_ms(ours, reps), median_ms(theirs, reps)
    r = {"name": name, "ours_ms": a, "torch_ms": b, "ratio": b / a}
    if gbytes is not None:
        r.update(ours_GBps=gbytes / a * 1e3, torch_GBps=gbytes / b * 1e3)
    if tflop is not None:
        r.update(ours_TFLOPs=tflop / a * 1e3, torch_TFLOPs=tflop / b * 1e3)
    return r


def _pair(dtype):
    return (np.float32, torch.float32) if dtype == "fp32" else (BF16, torch.bfloat16)


def row_layernorm_forward(reps, dtype="bf16"):
    nd, _ = _pair(dtype)
    x, w, b = rand((N, C), nd), rand((C,), nd), rand((C,), nd)
    tx, tw, tb = t(x), t(w), t(b)
    size = x.itemsize * N * C * 2 / 1e9
    return row(f"layernorm fwd {dtype} {N}x{C}", lambda: cuda.layernorm_forward(x, w, b, 1e-5),
               lambda: F.layer_norm(tx, (C,), tw, tb, 1e-5), reps, gbytes=size)


def row_layernorm_backward(reps, dtype="bf16"):
    nd, _ = _pair(dtype)
    x, w, b, dy = rand((N, C), nd), rand((C,), nd), rand((C,), nd), rand((N, C), nd)
    _, mean, rstd = cuda.layernorm_forward(x, w, b, 1e-5)
    tx, tw, tb, tdy = t(x), t(w), t(b), t(dy)
    _, tmean, trstd = torch.ops.aten.native_layer_norm(tx, (C,), tw, tb, 1e-5)
    size = x.itemsize * N * C * 3 / 1e9
    return row(f"layernorm bwd {dtype} {N}x{C}", lambda: cuda.layernorm_backward(dy, x, w, mean, rstd),
               lambda: torch.ops.aten.native_layer_norm_backward(tdy, tx, (C,), tmean, trstd, tw, tb, [True] * 3),
               reps, gbytes=size)


def row_add_layernorm(reps, dtype="bf16", fused=True, pas="fwd"):
    """A pre-norm block's residual add and the next LayerNorm, s = x + delta, y = layernorm(s), against
    PyTorch's add + layer_norm; backward: dx = ds + layernorm's dx of dy, against PyTorch's layer_norm
    backward + add. fused=False times our two separate kernels instead (CuPy's add and our layernorm),
    to see what the fusion saves. Bytes: fwd reads x, delta and writes s, y; bwd reads dy, s, ds and
    writes dx (w, b, dw, db are small)."""
    nd, _ = _pair(dtype)
    x, delta, w, b, dy, ds = rand((N, C), nd), rand((N, C), nd), rand((C,), nd), rand((C,), nd), rand((N, C), nd), rand((N, C), nd)
    s, _, mean, rstd = cuda.add_layernorm_forward(x, delta, w, b, 1e-5)
    tx, tdelta, tw, tb, tdy, tds, ts = t(x), t(delta), t(w), t(b), t(dy), t(ds), t(s)
    _, tmean, trstd = torch.ops.aten.native_layer_norm(ts, (C,), tw, tb, 1e-5)
    if pas == "fwd":
        ours = ((lambda: cuda.add_layernorm_forward(x, delta, w, b, 1e-5)) if fused else
                (lambda: cuda.layernorm_forward(x + delta, w, b, 1e-5)))
        theirs = lambda: F.layer_norm(tx + tdelta, (C,), tw, tb, 1e-5)  # noqa: E731
    else:
        ours = ((lambda: cuda.layernorm_backward(dy, s, w, mean, rstd, ds)) if fused else
                (lambda: cuda.layernorm_backward(dy, s, w, mean, rstd)[0] + ds))

        def theirs():
            dx, dw, db = torch.ops.aten.native_layer_norm_backward(tdy, ts, (C,), tmean, trstd, tw, tb, [True] * 3)
            return dx + tds, dw, db
    name = f"add+layernorm {pas} {dtype} {N}x{C}" + ("" if fused else " (ours unfused)")
    return row(name, ours, theirs, reps, gbytes=x.itemsize * N * C * 4 / 1e9)


def row_softmax_forward(reps, dtype="bf16"):
    nd, _ = _pair(dtype)
    x = rand((N * 4, T), nd)
    tx = t(x)
    return row(f"softmax fwd {dtype} {N * 4}x{T}", lambda: cuda.softmax_forward(x), lambda: torch.softmax(tx, -1),
               reps, gbytes=x.nbytes * 2 / 1e9)


def row_softmax_backward(reps, dtype="bf16"):
    nd, td = _pair(dtype)
    x, dy = rand((N * 4, T), nd), rand((N * 4, T), nd)
    y = cuda.softmax_forward(x)
    ty, tdy = t(y), t(dy)
    return row(f"softmax bwd {dtype} {N * 4}x{T}", lambda: cuda.softmax_backward(dy, y),
               lambda: torch._softmax_backward_data(tdy, ty, -1, td), reps, gbytes=x.nbytes * 3 / 1e9)


def row_cross_entropy(reps, dtype="bf16"):
    nd, _ = _pair(dtype)
    logits = rand((N, V), nd, 2.0)
    targets = cupy.random.randint(0, V, N).astype(np.int64)
    ones = cupy.full(N, 1.0 / N, np.float32)
    tl, tt = t(logits).requires_grad_(), t(targets)

    def ours():
        _, lse = cuda.cross_entropy_forward(logits, targets)
        cuda.cross_entropy_backward(ones, logits, targets, lse)

    def theirs():
        F.cross_entropy(tl, tt).backward()
        tl.grad = None

    return row(f"cross-entropy fwd+bwd {dtype} {N}x{V}", ours, theirs, reps, gbytes=logits.nbytes * 3 / 1e9)


def row_gelu(reps, dtype="bf16"):
    nd, _ = _pair(dtype)
    x, dy = rand((N, 4 * C), nd), rand((N, 4 * C), nd)
    tx, tdy = t(x), t(dy)

    def ours():
        cuda.gelu_forward(x, "tanh")
        cuda.gelu_backward(dy, x, "tanh")

    def theirs():
        F.gelu(tx, approximate="tanh")
        torch.ops.aten.gelu_backward(tdy, tx, approximate="tanh")

    return row(f"gelu tanh fwd+bwd {dtype} {N}x{4 * C}", ours, theirs, reps, gbytes=x.nbytes * 5 / 1e9)


def row_dropout(reps, dtype="bf16"):
    """Forward and backward at p = 0.1 on the MLP's hidden activations. Ours draws the mask twice from
    (seed, offset) and keeps nothing; PyTorch's native_dropout writes a bool mask that backward reads."""
    nd, _ = _pair(dtype)
    x, dy = rand((N, 4 * C), nd), rand((N, 4 * C), nd)
    tx, tdy = t(x), t(dy)

    def ours():
        cuda.dropout(x, 0.1, 1234, 0)
        cuda.dropout(dy, 0.1, 1234, 0)

    def theirs():
        _, mask = torch.ops.aten.native_dropout(tx, 0.1, True)
        torch.ops.aten.native_dropout_backward(tdy, mask, 1 / 0.9)

    return row(f"dropout fwd+bwd {dtype} {N}x{4 * C}", ours, theirs, reps, gbytes=x.nbytes * 4 / 1e9)


def row_embedding_backward(reps, dtype="fp32"):
    nd, _ = _pair(dtype)
    dy, idx = rand((N, C), nd), cupy.random.randint(0, V, N).astype(np.int64)
    tdy, tidx = t(dy), t(idx)
    return row(f"embedding bwd {dtype} {N}x{C} -> {V}", lambda: cuda.embedding_backward(dy, idx, V),
               lambda: torch.ops.aten.embedding_dense_backward(tdy, tidx, V, -1, False), reps,
               gbytes=(dy.nbytes + V * C * dy.itemsize) / 1e9)


def row_adamw(reps, n=124_475_904):
    p, g, m, v = rand((n,)), rand((n,)), cupy.zeros(n, np.float32), cupy.zeros(n, np.float32)
    tp = t(p.copy()).requires_grad_()
    tp.grad = t(g)
    opt = torch.optim.AdamW([tp], lr=1e-4, weight_decay=0.1, fused=True)
    step = [0]

    def ours():
        step[0] += 1
        cuda.adamw_update(p, g, m, v, 1e-4, 0.9, 0.999, 1e-8, 0.1, step[0])

    return row(f"adamw fp32 {n / 1e6:.1f}M params, one tensor", ours, opt.step, reps, gbytes=n * 4 * 7 / 1e9)


def row_sum_rows(reps, cols=4 * C, dtype="bf16"):
    nd, _ = _pair(dtype)
    dy = rand((N, cols), nd)
    tdy = t(dy)
    return row(f"sum_rows (bias grad) {dtype} {N}x{cols}", lambda: cuda.sum_rows(dy), lambda: tdy.sum(0), reps,
               gbytes=dy.nbytes / 1e9)


def row_cast(reps, shape=(N, 4 * C)):
    x = rand(shape)
    tx = t(x)
    return row(f"cast fp32 -> bf16 {shape[0]}x{shape[1]}", lambda: cuda.cast(x, BF16), lambda: tx.to(torch.bfloat16), reps,
               gbytes=x.size * 6 / 1e9)


def row_transpose(reps, shape=(B, T, H, 64)):
    x = rand(shape, BF16).transpose(0, 2, 1, 3)
    tx = t(x)
    return row("contiguous (B,T,H,D) -> (B,H,T,D) bf16 B16 T1024 H12 D64", lambda: cuda.contiguous(x), tx.contiguous,
               reps, gbytes=x.nbytes * 2 / 1e9)


def row_rope(reps, shape=(B, H, T, 64)):
    x, cos, sin = rand(shape, BF16), rand(shape[-2:-1] + (shape[-1] // 2,), BF16), rand(shape[-2:-1] + (shape[-1] // 2,), BF16)
    tx, tc, ts = t(x), t(cos).repeat(1, 2), t(sin).repeat(1, 2)
    half = shape[-1] // 2
    theirs = lambda: tx * tc + torch.cat([-tx[..., half:], tx[..., :half]], -1) * ts  # eager PyTorch, as HF Llama
    return row("rope fwd bf16 B16 H12 T1024 D64", lambda: cuda.rope_forward(x, cos, sin), theirs, reps,
               gbytes=x.nbytes * 2 / 1e9)


def _gpt2_shapes():
    """The 148 parameter shapes of GPT-2 124M (vocab 50304, tied head), in model order."""
    block = [(C,), (C,), (3 * C, C), (3 * C,), (C, C), (C,), (C,), (C,), (4 * C, C), (4 * C,), (C, 4 * C), (C,)]
    return [(V, C), (T, C)] + block * 12 + [(C,), (C,)]


def row_step_tail(reps):
    """The end of a step over GPT-2 124M's 148 parameters: the global grad norm, clipping to 1.0, and
    AdamW; ours are three multi-tensor launches, PyTorch's clip_grad_norm_ (foreach) and fused AdamW."""
    shapes = _gpt2_shapes()
    params, grads = [rand(s) for s in shapes], [rand(s, scale=1e-3) for s in shapes]
    ms, vs = [cupy.zeros(s, np.float32) for s in shapes], [cupy.zeros(s, np.float32) for s in shapes]
    tps = [t(p.copy()).requires_grad_() for p in params]
    for tp, g in zip(tps, grads):
        tp.grad = t(g.copy())
    opt = torch.optim.AdamW(tps, lr=1e-4, weight_decay=0.1, fused=True)
    step = [0]

    def ours():
        step[0] += 1
        cuda.clip_grads_(grads, cuda.grad_norm(grads), 1.0)
        cuda.adamw_update_multi(params, grads, ms, vs, 1e-4, 0.9, 0.999, 1e-8, 0.1, step[0])

    def theirs():
        torch.nn.utils.clip_grad_norm_(tps, 1.0)
        opt.step()

    n = sum(p.size for p in params)
    return row(f"grad norm + clip + adamw, GPT-2's {len(shapes)} tensors ({n / 1e6:.1f}M)", ours, theirs, reps,
               gbytes=n * 4 * (1 + 2 + 7) / 1e9)


# The GEMMs of a GPT-2 124M Linear layer (out, in) over M = B * T tokens, as (M, N, K, trans_a, trans_b):
# forward y = x @ w^T, input gradient dx = dy @ w, weight gradient dw = dy^T @ x.
LINEARS = {"qkv": (3 * C, C), "proj": (C, C), "fc": (4 * C, C), "fc-proj": (C, 4 * C), "lm-head": (V, C)}
PASSES = {"fwd": lambda o, i: (N, o, i, False, True), "dx": lambda o, i: (N, i, o, False, False),
          "dw": lambda o, i: (o, i, N, True, False)}


def row_matmul(reps, layer="qkv", pas="fwd", impl="ours"):
    M, Nn, K, ta, tb = PASSES[pas](*LINEARS[layer])
    a = rand((K, M) if ta else (M, K), BF16)
    b = rand((Nn, K) if tb else (K, Nn), BF16)
    ta_, tb_ = t(a), t(b)

    def theirs():
        return (ta_.T if ta else ta_) @ (tb_.T if tb else tb_)

    cuda.GEMM = impl
    kernel = ("wgmma" if cuda._cuda.matmul_wgmma_available() else "mma.sync") if impl == "ours" else "cublasLt"
    r = row(f"matmul {layer} {pas} {kernel} {M}x{Nn}x{K}", lambda: cuda.matmul(a, b, ta, tb), theirs, reps,
            tflop=2 * M * Nn * K / 1e12)
    cuda.GEMM = "cublaslt"
    return r


def row_linear(reps, layer="fc", fused=True):
    """A linear layer's forward with its bias, x W^T + b, against F.linear (cuBLASLt with the bias in
    its epilogue); fused=False adds our bias after the GEMM (add_bias_), as before the epilogue."""
    out_f, in_f = LINEARS[layer]
    x, w, b = rand((N, in_f), BF16), rand((out_f, in_f), BF16), rand((out_f,), BF16)
    tx, tw, tb = t(x), t(w), t(b)

    def ours():
        if fused:
            return cuda.matmul(x, w, trans_b=True, bias=b)
        y = cuda.matmul(x, w, trans_b=True)
        cuda.add_bias_(y, b)
        return y

    return row(f"linear fwd bf16 {layer} {N}x{out_f}x{in_f} bias {'in the epilogue' if fused else 'after'}", ours,
               lambda: F.linear(tx, tw, tb), reps, tflop=2 * N * out_f * in_f / 1e12)


def row_linear_param_grads(reps, layer="fc"):
    """A linear layer's weight and bias gradients, dy^T x and the column sums of dy (our GEMM, then
    sum_rows), against PyTorch's (a GEMM, then a sum, as F.linear's backward)."""
    out_f, in_f = LINEARS[layer]
    dy, x = rand((N, out_f), BF16), rand((N, in_f), BF16)
    tdy, tx = t(dy), t(x)
    return row(f"linear dW+db bf16 {layer} {N}x{out_f}x{in_f}", lambda: (cuda.matmul(dy, x, trans_a=True), cuda.sum_rows(dy)),
               lambda: (tdy.t() @ tx, tdy.sum(0)), reps, tflop=2 * N * out_f * in_f / 1e12)


def _attention_inputs(D):
    q, k, v, do = (rand((B, H, T, D), BF16) for _ in range(4))
    return q, k, v, do, D ** -0.5


# Causal attention FLOPs: the forward's two T x T x D products (S = QK^T, O = PV) over half the
# scores, 2·B·H·T²·D; the backward's five (S recomputed, dV, dP, dQ, dK) are 2.5 times that, so
# fwd+bwd counts 3.5 times the forward (FlashAttention's count, and GPU-FACTS.md's).
def row_attention_forward(reps, D=64, dropout_p=0.0):
    q, k, v, _, scale = _attention_inputs(D)
    tq, tk, tv = t(q), t(k), t(v)
    dropout_args = (dropout_p, 1234, 0, None) if dropout_p else None
    return row(f"attention fwd bf16 causal B16 H12 T1024 D{D}" + (f" dropout {dropout_p}" if dropout_p else ""),
               lambda: cuda.attention_forward(q, k, v, True, scale, dropout_args),
               lambda: F.scaled_dot_product_attention(tq, tk, tv, is_causal=True, dropout_p=dropout_p), reps,
               tflop=2 * B * H * T * T * D / 1e12)


def row_attention(reps, D=64, dropout_p=0.0):
    """fwd+bwd; with dropout_p > 0 both draw a dropout of the probabilities (ours from a fixed key, as
    each step's draw costs the same; PyTorch's SDPA from its generator)."""
    q, k, v, do, scale = _attention_inputs(D)
    tq, tk, tv = (t(a).requires_grad_() for a in (q, k, v))
    tdo = t(do)
    dropout_args = (dropout_p, 1234, 0, None) if dropout_p else None

    def ours():
        o, lse = cuda.attention_forward(q, k, v, True, scale, dropout_args)
        cuda.attention_backward(do, q, k, v, o, lse, True, scale, dropout_args)

    def theirs():  # fresh gradients each call, as ours: accumulating into .grad would add three passes
        F.scaled_dot_product_attention(tq, tk, tv, is_causal=True, dropout_p=dropout_p).backward(tdo)
        tq.grad = tk.grad = tv.grad = None

    name = f"attention fwd+bwd bf16 causal B16 H12 T1024 D{D}" + (f" dropout {dropout_p}" if dropout_p else "") + (
        "" if "attention_backward" in cuda.native_kernels() else " (ours: bwd on CuPy)")
    return row(name, ours, theirs, reps, tflop=3.5 * 2 * B * H * T * T * D / 1e12)


ROWS = {
    "layernorm": [lambda r: row_layernorm_forward(r, "fp32"), row_layernorm_forward,
                  lambda r: row_layernorm_backward(r, "fp32"), row_layernorm_backward],
    "add_norm": [lambda r, d=d, f=f, p=p: row_add_layernorm(r, d, f, p) for p in ("fwd", "bwd") for d in ("bf16", "fp32")
                 for f in (True, False)],
    "softmax": [lambda r: row_softmax_forward(r, "fp32"), row_softmax_forward,
                lambda r: row_softmax_backward(r, "fp32"), row_softmax_backward],
    "cross_entropy": [row_cross_entropy, lambda r: row_cross_entropy(r, "fp32")],
    "gelu": [row_gelu],
    "dropout": [row_dropout, lambda r: row_dropout(r, "fp32")],
    "embedding": [row_embedding_backward],
    "adamw": [row_adamw, row_step_tail],
    "sum_rows": [row_sum_rows, lambda r: row_sum_rows(r, 3 * C, "fp32")],
    "cast": [row_cast, row_transpose],
    "rope": [row_rope],
    "matmul": [lambda r, layer=layer, p=p, i=i: row_matmul(r, layer, p, i) for layer in LINEARS for p in PASSES
               for i in ("ours", "cublaslt")],
    "linear": [lambda r, layer=layer, f=f: row_linear(r, layer, f) for layer in ("qkv", "fc", "fc-proj") for f in (True, False)]
              + [lambda r, layer=layer: row_linear_param_grads(r, layer) for layer in ("qkv", "fc", "fc-proj")],
    "attention": [row_attention_forward, row_attention, lambda r: row_attention_forward(r, 128),
                  lambda r: row_attention(r, 128), lambda r: row_attention_forward(r, 64, 0.1), lambda r: row_attention(r, 64, 0.1),
                  lambda r: row_attention_forward(r, 128, 0.1), lambda r: row_attention(r, 128, 0.1)],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--only", default=",".join(ROWS))
    args = ap.parse_args()
    print(f"{torch.cuda.get_device_name()}, native kernels: {', '.join(cuda.native_kernels())}")
    rows = []
    for group in args.only.split(","):
        for fn in ROWS[group]:
            t0 = time.time()
            r = fn(args.reps)
            rows.append(r)
            rate = (f"{r['ours_GBps']:7.0f} / {r['torch_GBps']:7.0f} GB/s" if "ours_GBps" in r else
                    f"{r['ours_TFLOPs']:7.1f} / {r['torch_TFLOPs']:7.1f} TFLOP/s")
            print(f"{r['name']:<58} ours {r['ours_ms']:8.3f} ms  torch {r['torch_ms']:8.3f} ms  "
                  f"x{r['ratio']:5.2f}  {rate}  ({time.time() - t0:.0f}s)", flush=True)
    out = os.environ.get("OUT") or os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "kernels_cuda.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
