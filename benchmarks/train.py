"""Training-step benchmark: our GPT against the same model written in PyTorch, on the CPU.

    python benchmarks/train.py                 # both presets
    python benchmarks/train.py --preset small --steps 10

A step is what the training loop does: zero the gradients, forward with the loss, backward, clip the
global gradient norm to 1.0, and one AdamW step. Both models get the same configuration, the same
weights (copied from ours) and the same batch of random token ids. Steps alternate between the two
libraries (ours, PyTorch, ours, ...) so both see the same machine load, and each figure is the median
step time after warm-up steps. tokens/s = batch_size * block_size / step time; `ours/torch` > 1 means
we are faster.

Presets (issue 5): `small` = vocab 8192, d 256, 4 layers, 4 heads, T 128, batch 16;
`medium` = vocab 8192, d 384, 6 layers, 6 heads, T 256, batch 8. Rows go to benchmarks/results/train.json.
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
from tinyllm.models import GPT, GPTConfig  # noqa: E402
from torch_gpt import TorchGPT  # noqa: E402

PRESETS = {"small": 16, "medium": 8}  # preset -> batch size
RESULTS = os.path.join(ROOT, "benchmarks", "results", "train.json")


def train_step(lib, model, optimizer, idx, targets):
    """One step, written once for both libraries (tinyllm mirrors PyTorch's API)."""
    optimizer.zero_grad(set_to_none=True)
    _, loss = model(idx, targets)
    loss.backward()
    lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


def bench(preset, batch_size, steps, warmup):
    config = GPTConfig.from_preset(preset)
    ours = GPT(config)
    theirs = TorchGPT(config)
    theirs.load_state_dict({k: torch.tensor(v.data) for k, v in ours.state_dict().items()})
    our_opt = ours.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
    decay = [p for n, p in theirs.named_parameters() if p.dim() >= 2 and "wte" not in n and "wpe" not in n]
    no_decay = [p for n, p in theirs.named_parameters() if not (p.dim() >= 2 and "wte" not in n and "wpe" not in n)]
    their_opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-3, betas=(0.9, 0.95))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, config.vocab_size, (batch_size, config.block_size))
    targets = rng.integers(0, config.vocab_size, (batch_size, config.block_size))
    mine = (tinyllm, ours, our_opt, tinyllm.tensor(idx), tinyllm.tensor(targets))
    peer = (torch, theirs, their_opt, torch.tensor(idx), torch.tensor(targets))
    times = {"ours": [], "torch": []}
    losses = {"ours": [], "torch": []}
    for i in range(warmup + steps):
        for name, args in (("ours", mine), ("torch", peer)):
            start = time.perf_counter()
            loss = train_step(*args)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
            losses[name].append(loss)
    tokens = batch_size * config.block_size
    ours_s, torch_s = statistics.median(times["ours"]), statistics.median(times["torch"])
    return {"preset": preset, "batch_size": batch_size, "block_size": config.block_size, "n_layer": config.n_layer,
            "n_embd": config.n_embd, "n_head": config.n_head, "vocab_size": config.vocab_size,
            "parameters": ours.num_parameters(), "ours_ms": 1e3 * ours_s, "torch_ms": 1e3 * torch_s,
            "ours_tokens_per_s": tokens / ours_s, "torch_tokens_per_s": tokens / torch_s, "ratio": torch_s / ours_s,
            "first_losses": {"ours": losses["ours"][:3], "torch": losses["torch"][:3]}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), action="append", help="default: both")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per library")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    rows = []
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}; median of {args.steps} steps after {args.warmup} warm-up\n")
    print(f"{'preset':<8} {'config':<26} {'ours ms':>9} {'torch ms':>9} {'ours tok/s':>11} {'torch tok/s':>12} {'ours/torch':>11}")
    for preset in args.preset or list(PRESETS):
        row = bench(preset, PRESETS[preset], args.steps, args.warmup)
        rows.append(row)
        config = f"d{row['n_embd']} L{row['n_layer']} H{row['n_head']} T{row['block_size']} B{row['batch_size']}"
        print(f"{preset:<8} {config:<26} {row['ours_ms']:>9.1f} {row['torch_ms']:>9.1f} {row['ours_tokens_per_s']:>11,.0f} "
              f"{row['torch_tokens_per_s']:>12,.0f} {row['ratio']:>10.2f}x", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"rows": rows, "torch": torch.__version__, "cores": os.cpu_count()}, f, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
