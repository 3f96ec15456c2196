"""Kernel benchmark: tinyllm's CPU kernels against PyTorch CPU and NumPy (the reference backend).

    python benchmarks/kernels.py            # every kernel of the contract at the small GPT's shapes
    python benchmarks/kernels.py --quick    # fewer repeats, for a smoke test
    python benchmarks/kernels.py --only softmax,layernorm

Each row times one kernel (or a forward and its backward together) three ways on the same inputs:
ours through tinyllm.backend.cpu, PyTorch's own kernel for the same computation (its functional op,
or its explicit backward op, or autograd where PyTorch has no backward op to call), and the NumPy
reference. Timing: one warm-up call each, then rounds that run a block of calls of ours, then of
torch, then of NumPy, so that the three see the same machine load (this machine is shared); the time
of a call is its block's time over the block's length, and a row reports the median over rounds.
`torch/ours` > 1 means we are faster. The `native` column says whether every kernel of ours that
the row uses runs compiled (cpu.native_kernels()); a kernel not built yet falls back to NumPy.

Shapes: the default small GPT, B = 16 sequences of T = 256 tokens, d = 384, 6 heads of 64, vocab 8192.
Rows are written to benchmarks/results/kernels.json and printed as a table.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinyllm.backend import cpu, reference  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "kernels.json")


@dataclass
class Row:
    kernel: str  # what is timed, e.g. "layernorm fwd+bwd"
    shape: str
    ours: object  # callables of no arguments
    torch: object
    numpy: object
    uses: tuple  # the contract kernels `ours` calls
    times: dict = field(default_factory=dict)


def block_ms(fn, seconds, calls=None):
    """(ms per call, calls) over a block of `calls` calls of fn; by default as many as fill `seconds`."""
    if calls is None:
        t = time.perf_counter()
        fn()
        calls = max(1, int(seconds / max(time.perf_counter() - t, 1e-6)))
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) * 1e3 / calls, calls


def measure(row, rounds, seconds_per_round):
    """Median time in ms of ours, torch and numpy, interleaved round by round."""
    impls = {"ours": row.ours, "torch": row.torch, "numpy": row.numpy}
    calls, samples = {}, {name: [] for name in impls}
    for name, fn in impls.items():  # warm-up, and the block length of each
        fn()
        _, calls[name] = block_ms(fn, seconds_per_round)
    for r in range(rounds):
        for name, fn in impls.items():
            if name == "numpy" and r >= max(1, rounds // 5):  # NumPy is the slow baseline: fewer rounds
                continue
            ms, _ = block_ms(fn, seconds_per_round, calls[name])
            samples[name].append(ms)
    return {name: statistics.median(s) for name, s in samples.items()}


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def softmax_rows(torch, name, shape, rng):
    """softmax over attention rows (B*H*T, T), or log-softmax over vocab rows (B*T, V)."""
    x, dy = randn(rng, *shape, scale=3.0), randn(rng, *shape)
    y = getattr(reference, f"{name}_forward")(x)
    tx, tdy, ty = torch.from_numpy(x), torch.from_numpy(dy), torch.from_numpy(y)
    fwd, bwd = getattr(cpu, f"{name}_forward"), getattr(cpu, f"{name}_backward")
    ref_fwd, ref_bwd = getattr(reference, f"{name}_forward"), getattr(reference, f"{name}_backward")
    torch_fwd = torch.softmax if name == "softmax" else torch.log_softmax
    torch_bwd = torch._softmax_backward_data if name == "softmax" else torch._log_softmax_backward_data
    s = "x".join(map(str, shape))
    return [
        Row(f"{name} fwd", s, lambda: fwd(x), lambda: torch_fwd(tx, -1), lambda: ref_fwd(x), (f"{name}_forward",)),
        Row(f"{name} bwd", s, lambda: bwd(dy, y), lambda: torch_bwd(tdy, ty, -1, torch.float32),
            lambda: ref_bwd(dy, y), (f"{name}_backward",)),
    ]


def norm_rows(torch, N, d, rng):
    """layernorm and rmsnorm over (B*T, d)."""
    F, aten = torch.nn.functional, torch.ops.aten
    x, dy, w, b = randn(rng, N, d), randn(rng, N, d), randn(rng, d) + 1, randn(rng, d)
    tx, tdy, tw, tb = (torch.from_numpy(a) for a in (x, dy, w, b))
    txg, twg = tx.clone().requires_grad_(), tw.clone().requires_grad_()

    def ln_ours():
        y, mean, rstd = cpu.layernorm_forward(x, w, b, 1e-5)
        return cpu.layernorm_backward(dy, x, w, mean, rstd)

    def ln_torch():
        y, mean, rstd = aten.native_layer_norm(tx, [d], tw, tb, 1e-5)
        return aten.native_layer_norm_backward(tdy, tx, [d], mean, rstd, tw, tb, [True, True, True])

    def ln_numpy():
        y, mean, rstd = reference.layernorm_forward(x, w, b, 1e-5)
        return reference.layernorm_backward(dy, x, w, mean, rstd)

    def rms_ours():
        y, rstd = cpu.rmsnorm_forward(x, w, 1e-5)
        return cpu.rmsnorm_backward(dy, x, w, rstd)

    def rms_torch():  # PyTorch has no explicit rms_norm backward op on CPU: autograd
        txg.grad = twg.grad = None
        F.rms_norm(txg, [d], twg, 1e-5).backward(tdy)

    def rms_numpy():
        y, rstd = reference.rmsnorm_forward(x, w, 1e-5)
        return reference.rmsnorm_backward(dy, x, w, rstd)

    s = f"{N}x{d}"
    return [
        Row("layernorm fwd", s, lambda: cpu.layernorm_forward(x, w, b, 1e-5),
            lambda: aten.native_layer_norm(tx, [d], tw, tb, 1e-5),
            lambda: reference.layernorm_forward(x, w, b, 1e-5), ("layernorm_forward",)),
        Row("layernorm fwd+bwd", s, ln_ours, ln_torch, ln_numpy, ("layernorm_forward", "layernorm_backward")),
        Row("rmsnorm fwd", s, lambda: cpu.rmsnorm_forward(x, w, 1e-5), lambda: F.rms_norm(tx, [d], tw, 1e-5),
            lambda: reference.rmsnorm_forward(x, w, 1e-5), ("rmsnorm_forward",)),
        Row("rmsnorm fwd+bwd", s, rms_ours, rms_torch, rms_numpy, ("rmsnorm_forward", "rmsnorm_backward")),
    ]


def cross_entropy_rows(torch, N, V, rng):
    """cross-entropy over (B*T, V) logits, every 17th target ignored."""
    F = torch.nn.functional
    logits, targets, dl = randn(rng, N, V, scale=2.0), rng.integers(0, V, N), randn(rng, N)
    targets[::17] = -100
    tl, tt, tdl = torch.from_numpy(logits), torch.from_numpy(targets), torch.from_numpy(dl)
    tlg = tl.clone().requires_grad_()

    def ce_ours():
        losses, lse = cpu.cross_entropy_forward(logits, targets)
        return cpu.cross_entropy_backward(dl, logits, targets, lse)

    def ce_torch():  # log_softmax + nll_loss, and their backward, through autograd
        tlg.grad = None
        F.cross_entropy(tlg, tt, reduction="none").backward(tdl)

    def ce_numpy():
        losses, lse = reference.cross_entropy_forward(logits, targets)
        return reference.cross_entropy_backward(dl, logits, targets, lse)

    s = f"{N}x{V}"
    return [
        Row("cross_entropy fwd", s, lambda: cpu.cross_entropy_forward(logits, targets),
            lambda: F.cross_entropy(tl, tt, reduction="none"),
            lambda: reference.cross_entropy_forward(logits, targets), ("cross_entropy_forward",)),
        Row("cross_entropy fwd+bwd", s, ce_ours, ce_torch, ce_numpy, ("cross_entropy_forward", "cross_entropy_backward")),
    ]


def activation_rows(torch, N, d, rng):
    """GELU (both forms) and SiLU on the MLP's hidden activations (B*T, 4d)."""
    F, aten = torch.nn.functional, torch.ops.aten
    x, dy = randn(rng, N * 4 * d, scale=2.0), randn(rng, N * 4 * d)
    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    s = f"{N}x{4 * d}"
    rows = []
    for a in ["tanh", "none"]:
        rows += [
            Row(f"gelu({a}) fwd", s, lambda a=a: cpu.gelu_forward(x, a), lambda a=a: F.gelu(tx, approximate=a),
                lambda a=a: reference.gelu_forward(x, a), ("gelu_forward",)),
            Row(f"gelu({a}) bwd", s, lambda a=a: cpu.gelu_backward(dy, x, a),
                lambda a=a: aten.gelu_backward(tdy, tx, approximate=a),
                lambda a=a: reference.gelu_backward(dy, x, a), ("gelu_backward",)),
        ]
    return rows + [
        Row("silu fwd", s, lambda: cpu.silu_forward(x), lambda: F.silu(tx), lambda: reference.silu_forward(x),
            ("silu_forward",)),
        Row("silu bwd", s, lambda: cpu.silu_backward(dy, x), lambda: aten.silu_backward(tdy, tx),
            lambda: reference.silu_backward(dy, x), ("silu_backward",)),
    ]


def dropout_rows(torch, N, d, rng):
    """dropout at p = 0.1 on the MLP's hidden activations (B*T, 4d), forward (backward is the same kernel)."""
    x = randn(rng, N * 4 * d)
    tx = torch.from_numpy(x)
    return [Row("dropout fwd", f"{N}x{4 * d}", lambda: cpu.dropout(x, 0.1, 1234, 0),
                lambda: torch.nn.functional.dropout(tx, 0.1, training=True), lambda: reference.dropout(x, 0.1, 1234, 0),
                ("dropout",))]


def embedding_rows(torch, N, d, V, rng):
    """embedding backward: (B*T, d) gradient rows scattered into a (V, d) table."""
    dy, idx = randn(rng, N, d), rng.integers(0, V, N)
    tdy, tidx = torch.from_numpy(dy), torch.from_numpy(idx)
    return [Row("embedding bwd", f"{N}x{d} -> {V}x{d}", lambda: cpu.embedding_backward(dy, idx, V),
                lambda: torch.ops.aten.embedding_dense_backward(tdy, tidx, V, -1, False),
                lambda: reference.embedding_backward(dy, idx, V), ("embedding_backward",))]


def adamw_rows(torch, n, rng):
    """One AdamW step over n parameters: ours against torch.optim.AdamW's default (single-tensor) and
    fused CPU implementations. The update runs in place, so every call is one more step."""
    hyper = dict(lr=1e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    p, g = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    ours_state = [p.copy(), g, np.zeros(n, np.float32), np.zeros(n, np.float32)]
    ref_state = [p.copy(), g, np.zeros(n, np.float32), np.zeros(n, np.float32)]
    rows = []
    for fused in [False, True]:
        tp = torch.nn.Parameter(torch.from_numpy(p.copy()))
        tp.grad = torch.from_numpy(g)
        opt = torch.optim.AdamW([tp], lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"],
                                weight_decay=hyper["weight_decay"], fused=fused or None)
        rows.append(Row(f"adamw step (torch {'fused' if fused else 'default'})", f"{n / 1e6:.1f}M params",
                        lambda: cpu.adamw_update(*ours_state, step=10, **hyper), opt.step,
                        lambda: reference.adamw_update(*ref_state, step=10, **hyper), ("adamw_update",)))
    return rows


def matmul_attention_rows(torch, B, T, d, H, rng):
    """Rows for the kernels written beside these (matmul, attention): they show as native once merged."""
    t = torch.from_numpy
    N, D = B * T, d // H
    f32 = lambda *shape: randn(rng, *shape)  # noqa: E731
    rows = []
    for name, (M, K, Nn), ta, tb in [
        ("matmul x@W (qkv)", (N, d, 3 * d), False, False),
        ("matmul x@W (mlp up)", (N, d, 4 * d), False, False),
        ("matmul x@W (mlp down)", (N, 4 * d, d), False, False),
        ("matmul dC@W^T (dx)", (N, 4 * d, d), False, True),
        ("matmul x^T@dC (dW)", (d, N, 4 * d), True, False),
        ("matmul square", (2048, 2048, 2048), False, False),
    ]:
        a = f32(K, M) if ta else f32(M, K)
        b = f32(Nn, K) if tb else f32(K, Nn)
        ta_, tb_ = t(a), t(b)
        opa = (lambda x: x.T) if ta else (lambda x: x)
        opb = (lambda x: x.T) if tb else (lambda x: x)
        rows.append(Row(name, f"{M}x{K} @ {K}x{Nn}", lambda a=a, b=b, ta=ta, tb=tb: cpu.matmul(a, b, ta, tb),
                        lambda ta_=ta_, tb_=tb_, opa=opa, opb=opb: torch.matmul(opa(ta_), opb(tb_)),
                        lambda a=a, b=b, opa=opa, opb=opb: np.matmul(opa(a), opb(b)), ("matmul",)))

    q, k, v, do = (f32(B, H, T, D) for _ in range(4))
    scale = 1.0 / np.sqrt(D)
    tq, tk, tv = (t(a).clone().requires_grad_() for a in (q, k, v))
    tdo = t(do)

    def attn(backend, dropout_args=None):
        o, lse = backend.attention_forward(q, k, v, True, scale, dropout_args)
        return backend.attention_backward(do, q, k, v, o, lse, True, scale, dropout_args)

    def attn_torch(dropout_p=0.0):
        tq.grad = tk.grad = tv.grad = None
        torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True, dropout_p=dropout_p).backward(tdo)

    drop = (0.1, 1234, 0, None)  # p 0.1 at a fixed key: the probabilities' dropout inside the kernels
    rows += [
        Row("attention fwd+bwd (causal)", f"B{B} H{H} T{T} D{D}", lambda: attn(cpu), attn_torch,
            lambda: attn(reference), ("attention_forward", "attention_backward")),
        Row("attention fwd+bwd (causal, dropout 0.1)", f"B{B} H{H} T{T} D{D}", lambda: attn(cpu, drop),
            lambda: attn_torch(0.1), lambda: attn(reference, drop), ("attention_forward", "attention_backward")),
    ]
    return rows


def print_table(rows):
    header = ["kernel", "shape", "native", "ours ms", "torch ms", "numpy ms", "torch/ours"]
    cells = [[r["kernel"], r["shape"], "yes" if r["native"] else "NO",
              f"{r['ours_ms']:.3f}", f"{r['torch_ms']:.3f}", f"{r['numpy_ms']:.3f}", f"{r['torch_over_ours']:.2f}"]
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    line = lambda c: "  ".join(s.ljust(w) if i < 3 else s.rjust(w) for i, (s, w) in enumerate(zip(c, widths)))  # noqa: E731
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line(c))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter blocks (a smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per row (default 15, quick 3)")
    parser.add_argument("--only", default="", help="comma-separated substrings: keep the rows whose name has one")
    parser.add_argument("--out", default=RESULTS, help="where to write the JSON rows")
    args = parser.parse_args()
    if args.device == "cuda":
        print("--device cuda: the CUDA backend (tinyllm._cuda) is not available yet; nothing to benchmark.")
        return

    import torch  # a benchmark dependency only: tinyllm itself never imports it

    rounds = args.rounds or (3 if args.quick else 15)
    seconds_per_round = 0.02 if args.quick else 0.1
    B, T, d, H, V = 16, 256, 384, 6, 8192
    rng = np.random.default_rng(0)
    N = B * T
    rows = (softmax_rows(torch, "softmax", (B * H * T, T), rng) + softmax_rows(torch, "log_softmax", (N, V), rng)
            + norm_rows(torch, N, d, rng) + cross_entropy_rows(torch, N, V, rng) + activation_rows(torch, N, d, rng)
            + dropout_rows(torch, N, d, rng) + embedding_rows(torch, N, d, V, rng) + adamw_rows(torch, 10_000_000, rng)
            + matmul_attention_rows(torch, B, T, d, H, rng))
    only = [s for s in args.only.split(",") if s]
    rows = [r for r in rows if not only or any(s in r.kernel for s in only)]

    native = set(cpu.native_kernels())
    results = []
    for row in rows:
        times = measure(row, rounds, seconds_per_round)
        results.append(dict(kernel=row.kernel, shape=row.shape, native=set(row.uses) <= native,
                            ours_ms=times["ours"], torch_ms=times["torch"], numpy_ms=times["numpy"],
                            torch_over_ours=times["torch"] / times["ours"]))
        print(f"  {row.kernel:32s} ours {times['ours']:9.3f} ms  torch {times['torch']:9.3f} ms", file=sys.stderr)

    features = cpu._C.cpu_features() if cpu._C is not None else {}
    report = dict(
        device="cpu", machine=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
        cpu_features=features, torch=torch.__version__, torch_threads=torch.get_num_threads(), numpy=np.__version__,
        config=dict(B=B, T=T, d=d, heads=H, vocab=V), rounds=rounds, quick=args.quick,
        native_kernels=sorted(native), rows=results,
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"\ntinyllm CPU kernels vs PyTorch {torch.__version__} ({torch.get_num_threads()} threads) and NumPy; "
          f"median of {rounds} rounds; torch/ours > 1: we are faster")
    print_table(results)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
