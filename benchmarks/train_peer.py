"""The quickstart's peer: the same model trained by PyTorch on the same data, batches and schedule.

    python benchmarks/train_peer.py --run runs/quickstart

Reads a finished tinyllm run (its config.json and prepared data), builds the same GPT in plain
PyTorch (tests/torch_gpt.py) from the same initial weights (tinyllm's initialisation with the run's
seed), and trains it for the run's number of steps with torch.optim.AdamW, the same parameter
groups, warmup-cosine schedule, gradient clipping and the very same batches (tinyllm's loader with
the run's seed). Then both are evaluated on the whole validation split, and the script prints the
two validation losses side by side (the bar: ours <= PyTorch's).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
from tinyllm import random as tl_random  # noqa: E402
from tinyllm.data.loader import TrainLoader, eval_batches  # noqa: E402
from tinyllm.data.prepare import split_shards  # noqa: E402
from tinyllm.models import GPT, GPTConfig  # noqa: E402
from tinyllm.optim.lr_schedule import warmup_cosine  # noqa: E402
from tinyllm.train import evaluate_run  # noqa: E402
from torch_gpt import TorchGPT  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/quickstart")
    args = parser.parse_args()
    saved = json.loads(open(os.path.join(args.run, "config.json")).read())
    cfg, model_config = saved["train"], GPTConfig(**saved["model"])
    tl_random.manual_seed(cfg["seed"])  # the same initial weights as the tinyllm run
    initial = GPT(model_config)
    model = TorchGPT(model_config)
    model.load_state_dict({k: torch.tensor(v.data) for k, v in initial.state_dict().items()})
    decay = lambda n, p: p.dim() >= 2 and "wte" not in n and "wpe" not in n
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in model.named_parameters() if decay(n, p)], "weight_decay": cfg["weight_decay"]},
         {"params": [p for n, p in model.named_parameters() if not decay(n, p)], "weight_decay": 0.0}],
        lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]))
    data = cfg["data"]
    loader = TrainLoader(split_shards(data, "train"), cfg["batch_size"], model_config.block_size, seed=cfg["seed"])
    start = time.perf_counter()
    for step in range(cfg["max_steps"]):
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(step, cfg["lr"], cfg["warmup_steps"], cfg["max_steps"], cfg["min_lr"])
        window = torch.from_numpy(next(loader))
        _, loss = model(window[:, :-1].contiguous(), window[:, 1:].contiguous())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        optimizer.step()
        if (step + 1) % 100 == 0:
            print(f"pytorch step {step + 1}: loss {loss.item():.4f}", flush=True)
    train_s = time.perf_counter() - start
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for window in eval_batches(split_shards(data, "val"), cfg["batch_size"], model_config.block_size):
            window = torch.from_numpy(window)
            _, loss = model(window[:, :-1].contiguous(), window[:, 1:].contiguous())
            total += loss.item() * window[:, 1:].numel()
            count += window[:, 1:].numel()
    theirs = total / count
    ours = evaluate_run(args.run, log=lambda *a: None)["val_loss"]
    print(f"\nvalidation loss after {cfg['max_steps']} steps on the whole validation split:")
    print(f"  tinyllm {ours:.4f} (perplexity {math.exp(ours):.1f})")
    print(f"  PyTorch {theirs:.4f} (perplexity {math.exp(theirs):.1f}), trained in {train_s:.0f} s")
    print(f"  tinyllm - PyTorch = {ours - theirs:+.4f} nats (the bar: <= 0)")


if __name__ == "__main__":
    main()
