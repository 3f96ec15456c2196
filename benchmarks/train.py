"""Training-step benchmark: our GPT against the same model written in PyTorch, on the CPU or the GPU.

    python benchmarks/train.py                                  # CPU: the small and medium presets, float32
    python benchmarks/train.py --preset small --steps 10
    python benchmarks/train.py --device cuda                    # GPU: gpt2 (124M), small, medium; bfloat16 autocast
    python benchmarks/train.py --device cuda --dtype float16    # float16 autocast with loss scaling (GradScaler)
    python benchmarks/train.py --device cuda --dropout 0.1      # both models with dropout (nanoGPT's places)

A step is what the training loop does: zero the gradients, forward with the loss, backward, clip the
global gradient norm to 1.0, and one AdamW step; in float16, through each library's GradScaler (the
loss scaled, the gradients unscaled and checked for inf/NaN before clipping, the step skipped on one). Both models get the same configuration, the same
weights (copied from ours) and the same batch of random token ids. Steps alternate between the two
libraries (ours, PyTorch, ours, ...) so both see the same machine load, and each figure is the median
step time after warm-up steps. tokens/s = batch_size * block_size / step time; `ours/torch` > 1 means
we are faster.

On the GPU (--device cuda) each step is timed between two device synchronisations; the forward runs
under bfloat16 autocast in both libraries (tinyllm.amp.autocast, torch.autocast), PyTorch uses its
fused AdamW and SDPA (tests/torch_gpt.py), and we use our CUDA kernels, with the CuPy fallbacks
where a kernel is missing (listed in the output).

Presets (issue 5): `small` = vocab 8192, d 256, 4 layers, 4 heads, T 128, batch 16;
`medium` = vocab 8192, d 384, 6 layers, 6 heads, T 256, batch 8; on the GPU also (issue 6) `gpt2` =
GPT-2 124M, vocab 50304, d 768, 12 layers, 12 heads, T 1024, batch 16.
Rows go to benchmarks/results/train.json (train_cuda.json for the GPU).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
import tinyllm  # noqa: E402
import tinyllm.amp  # noqa: E402
import tinyllm.cuda_graph  # noqa: E402
from tinyllm.models import GPT, GPTConfig  # noqa: E402
from torch_gpt import TorchGPT  # noqa: E402

PRESETS = {"small": (16, {}), "medium": (8, {}), "gpt2": (16, {"vocab_size": 50304})}  # preset -> batch size, overrides
DEFAULT_PRESETS = {"cpu": ["small", "medium"], "cuda": ["gpt2", "small", "medium"]}
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DTYPES = {"float32": "float32", "bfloat16": "bfloat16 autocast", "float16": "float16 autocast, GradScaler"}


def train_step(lib, model, optimizer, scaler, idx, targets, autocast):
    """One step, written once for both libraries (tinyllm mirrors PyTorch's API); returns the loss Tensor.
    A disabled scaler (all but float16) passes the loss and the step through."""
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        _, loss = model(idx, targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    return loss


def synchronizer(device):
    """A function that waits for both libraries' queued GPU work (nothing to wait for on the CPU)."""
    if device == "cpu":
        return lambda: None
    import cupy

    return lambda: (cupy.cuda.Device().synchronize(), torch.cuda.synchronize())


def bench(preset, device, dtype, steps, warmup, cuda_graph=False, torch_compile=False, dropout=0.0):
    batch_size, overrides = PRESETS[preset]
    config = GPTConfig.from_preset(preset, **overrides, dropout=dropout)
    ours = GPT(config)
    theirs = TorchGPT(config)
    theirs.load_state_dict({k: torch.tensor(v.data) for k, v in ours.state_dict().items()})
    ours.to(device)
    theirs.to(device)
    our_opt = ours.configure_optimizers(0.1, 1e-3, (0.9, 0.95), capturable=cuda_graph)
    decay = [p for n, p in theirs.named_parameters() if p.dim() >= 2 and "wte" not in n and "wpe" not in n]
    no_decay = [p for n, p in theirs.named_parameters() if not (p.dim() >= 2 and "wte" not in n and "wpe" not in n)]
    their_opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-3, betas=(0.9, 0.95), fused=device == "cuda")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, config.vocab_size, (batch_size, config.block_size))
    targets = rng.integers(0, config.vocab_size, (batch_size, config.block_size))
    our_autocast = lambda: tinyllm.amp.autocast(dtype)
    their_autocast = lambda: torch.autocast(device, dtype=getattr(torch, dtype), enabled=dtype != "float32")
    scaled = dtype == "float16"
    mine = (tinyllm, ours, our_opt, tinyllm.amp.GradScaler(enabled=scaled), tinyllm.tensor(idx, device=device),
            tinyllm.tensor(targets, device=device), our_autocast)
    peer = (torch, theirs, their_opt, torch.amp.GradScaler(device, enabled=scaled), torch.tensor(idx, device=device),
            torch.tensor(targets, device=device), their_autocast)
    our_step, their_step = (lambda: train_step(*mine)), (lambda: train_step(*peer))
    if cuda_graph:  # warm-up steps, then one capture; each call replays the whole step
        our_step = tinyllm.cuda_graph.capture(our_step, optimizers=[our_opt])
    if torch_compile:
        peer = (torch, torch.compile(theirs), *peer[2:])
    sync = synchronizer(device)
    times = {"ours": [], "torch": []}
    losses = {"ours": [], "torch": []}
    for i in range(warmup + steps):
        for name, fn in (("ours", our_step), ("torch", their_step)):
            sync()
            start = time.perf_counter()
            loss = fn().item()
            sync()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
            losses[name].append(loss)
    tokens = batch_size * config.block_size
    ours_s, torch_s = statistics.median(times["ours"]), statistics.median(times["torch"])
    return {"preset": preset, "device": device, "dtype": DTYPES[dtype],
            "cuda_graph": cuda_graph, "peer": "torch.compile" if torch_compile else "torch eager",
            "dropout": dropout, "batch_size": batch_size, "block_size": config.block_size, "n_layer": config.n_layer,
            "n_embd": config.n_embd, "n_head": config.n_head, "vocab_size": config.vocab_size,
            "parameters": ours.num_parameters(), "ours_ms": 1e3 * ours_s, "torch_ms": 1e3 * torch_s,
            "ours_tokens_per_s": tokens / ours_s, "torch_tokens_per_s": tokens / torch_s, "ratio": torch_s / ours_s,
            "first_losses": {"ours": losses["ours"][:3], "torch": losses["torch"][:3]}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--preset", choices=sorted(PRESETS), action="append",
                        help="default: small and medium on the CPU, gpt2, small and medium on the GPU")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="bfloat16 (default on the GPU): autocast; float16: autocast "
                        "and loss scaling")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per library")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cuda-graph", action="store_true", help="capture our whole step in a CUDA graph (tinyllm.cuda_graph)")
    parser.add_argument("--torch-compile", action="store_true", help="the peer is torch.compile(model) instead of eager")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout of both models (default 0)")
    parser.add_argument("--out", help="default: benchmarks/results/train.json, or train_cuda.json for the GPU")
    args = parser.parse_args()
    dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    if dtype == "float16" and args.cuda_graph:
        parser.error("--cuda-graph with float16: the GradScaler decides on the host whether to skip a step, "
                     "which a captured graph cannot")
    out = args.out or os.path.join(RESULTS, "train.json" if args.device == "cpu" else "train_cuda.json")
    rows = []
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}; median of {args.steps} steps after {args.warmup} warm-up")
    if args.device == "cuda":
        from tinyllm.backend import cpu, cuda

        fallbacks = [name for name in cpu.CONTRACT if name not in cuda.native_kernels()]
        print(f"GPU: {torch.cuda.get_device_name()}; cupy {cuda.cupy.__version__}; GEMM {cuda.GEMM}; "
              f"kernels on the CuPy fallback: {', '.join(fallbacks) or 'none'}")
    print(f"dtype: {DTYPES[dtype]}; dropout {args.dropout}; ours {'captured in a CUDA graph' if args.cuda_graph else 'eager'}; "
          f"peer: {'torch.compile' if args.torch_compile else 'torch eager'}\n")
    print(f"{'preset':<8} {'config':<26} {'ours ms':>9} {'torch ms':>9} {'ours tok/s':>11} {'torch tok/s':>12} {'ours/torch':>11}")
    for preset in args.preset or DEFAULT_PRESETS[args.device]:
        row = bench(preset, args.device, dtype, args.steps, args.warmup, args.cuda_graph, args.torch_compile, args.dropout)
        rows.append(row)
        config = f"d{row['n_embd']} L{row['n_layer']} H{row['n_head']} T{row['block_size']} B{row['batch_size']}"
        print(f"{preset:<8} {config:<26} {row['ours_ms']:>9.1f} {row['torch_ms']:>9.1f} {row['ours_tokens_per_s']:>11,.0f} "
              f"{row['torch_tokens_per_s']:>12,.0f} {row['ratio']:>10.2f}x", flush=True)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"rows": rows, "torch": torch.__version__, "cores": os.cpu_count()}, f, indent=1)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
