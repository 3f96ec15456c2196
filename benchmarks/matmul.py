"""Our C++ matmul and attention kernels against NumPy (OpenBLAS) and PyTorch CPU, in one process.

GEMM rows are the matrix products of the default small GPT (B=16 sequences of T=128..256 tokens,
so M = B*T = 2048..4096 rows; width d = 256..384; MLP 4d; vocabulary 8192), forward and the
transposed forms of the backward (dX = dY W^T, dW = X^T dY), plus a large square product.
Attention rows are causal forward+backward at B=16, H=4..6, T=128..256, D=64.

The contenders run interleaved, round after round on the same inputs, so a noisy neighbour slows
them alike; each figure is the median over rounds after warm-up. `ratio` is ours over the peer in
speed (peer time / our time): above 1 we are faster.

    python benchmarks/matmul.py [--rounds 9] [--only gemm|attention]

writes benchmarks/results/matmul.json.
"""
import argparse
import json
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from tinyllm.backend import cpu

GPT_SHAPES = [  # (label, M, K, N, trans_a, trans_b): C = op(A) op(B) is M x N
    ("qkv   x@W      T=256 d=384", 4096, 384, 1152, False, False),
    ("proj  x@W      T=256 d=384", 4096, 384, 384, False, False),
    ("fc    x@W      T=256 d=384", 4096, 384, 1536, False, False),
    ("fc2   h@W      T=256 d=384", 4096, 1536, 384, False, False),
    ("head  x@W      T=256 d=384", 4096, 384, 8192, False, False),
    ("fc    dY@W^T   T=256 d=384", 4096, 1536, 384, False, True),
    ("fc    X^T@dY   T=256 d=384", 384, 4096, 1536, True, False),
    ("head  dY@W^T   T=256 d=384", 4096, 8192, 384, False, True),
    ("head  X^T@dY   T=256 d=384", 384, 4096, 8192, True, False),
    ("fc    x@W      T=128 d=256", 2048, 256, 1024, False, False),
    ("fc    dY@W^T   T=128 d=256", 2048, 1024, 256, False, True),
    ("fc    X^T@dY   T=128 d=256", 256, 2048, 1024, True, False),
    ("head  x@W      T=128 d=256", 2048, 256, 8192, False, False),
    ("square 2048^3", 2048, 2048, 2048, False, False),
]
ATTENTION_SHAPES = [(16, 4, 128, 64), (16, 4, 256, 64), (16, 6, 128, 64), (16, 6, 256, 64)]  # B, H, T, D


def interleaved_medians(fns, rounds, warmup=2):
    """Median seconds of each function, timed in turns: round r runs every function once."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def bench_gemm(rounds):
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'GEMM':30s} {'ours':>8s} {'numpy':>8s} {'torch':>8s}  GFLOP/s   ours/numpy  ours/torch")
    for label, M, K, N, ta, tb in GPT_SHAPES:
        a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
        a_op, b_op = (a.T if ta else a), (b.T if tb else b)        # views: BLAS takes the transposes
        ta_op, tb_op = torch.from_numpy(a_op), torch.from_numpy(b_op)  # the same views
        secs = interleaved_medians({
            "ours": lambda: cpu.matmul(a, b, ta, tb),
            "numpy": lambda: a_op @ b_op,
            "torch": lambda: ta_op @ tb_op,
        }, rounds)
        gflops = {name: 2.0 * M * N * K / s / 1e9 for name, s in secs.items()}
        row = dict(label=label, M=M, K=K, N=N, trans_a=ta, trans_b=tb, seconds=secs, gflops=gflops,
                   ratio_numpy=secs["numpy"] / secs["ours"], ratio_torch=secs["torch"] / secs["ours"])
        rows.append(row)
        print(f"{label:30s} {gflops['ours']:8.1f} {gflops['numpy']:8.1f} {gflops['torch']:8.1f}"
              f"            {row['ratio_numpy']:6.2f}      {row['ratio_torch']:6.2f}")
    gpt = [r["ratio_numpy"] for r in rows if not r["label"].startswith("square")]
    print(f"small-GPT shapes, ours/numpy: median {np.median(gpt):.2f}, min {min(gpt):.2f}")
    return rows


def bench_attention(rounds):
    rng = np.random.default_rng(1)
    rows = []
    print(f"\n{'attention, causal, fwd+bwd':30s} {'ours ms':>8s} {'torch ms':>9s}  ours/torch   (forward only: ours, torch, ratio)")
    for B, H, T, D in ATTENTION_SHAPES:
        q, k, v, do = (rng.standard_normal((B, H, T, D), dtype=np.float32) for _ in range(4))
        scale = 1.0 / np.sqrt(D)
        tq, tk, tv = (torch.from_numpy(x.copy()).requires_grad_() for x in (q, k, v))
        tdo = torch.from_numpy(do)

        def ours():
            o, lse = cpu.attention_forward(q, k, v, True, scale)
            cpu.attention_backward(do, q, k, v, o, lse, True, scale)

        def peer():
            tq.grad = tk.grad = tv.grad = None
            F.scaled_dot_product_attention(tq, tk, tv, is_causal=True).backward(tdo)

        def peer_forward():
            with torch.no_grad():
                F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)

        secs = interleaved_medians({"ours": ours, "torch": peer,
                                    "ours_forward": lambda: cpu.attention_forward(q, k, v, True, scale),
                                    "torch_forward": peer_forward}, rounds)
        row = dict(B=B, H=H, T=T, D=D, causal=True, seconds=secs, ratio_torch=secs["torch"] / secs["ours"],
                   ratio_torch_forward=secs["torch_forward"] / secs["ours_forward"])
        rows.append(row)
        print(f"B={B} H={H} T={T} D={D:<14d} {secs['ours'] * 1e3:8.2f} {secs['torch'] * 1e3:9.2f}  {row['ratio_torch']:10.2f}"
              f"   ({secs['ours_forward'] * 1e3:.2f}, {secs['torch_forward'] * 1e3:.2f}, {row['ratio_torch_forward']:.2f})")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", choices=["gemm", "attention"])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "matmul.json"))
    args = parser.parse_args()
    from tinyllm import _C
    env = dict(threads=_C.cpu_features()["openmp_threads"], torch_threads=torch.get_num_threads(),
               simd=_C.simd_isa(), torch=torch.__version__, numpy=np.__version__, machine=platform.processor())
    print(env)
    result = dict(env=env, rounds=args.rounds)
    if args.only != "attention":
        result["gemm"] = bench_gemm(args.rounds)
    if args.only != "gemm":
        result["attention"] = bench_attention(args.rounds)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
