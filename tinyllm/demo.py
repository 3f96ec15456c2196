"""`tinyllm demo`: train a small MLP on a synthetic spiral data set with the engine, end to end.

It exercises what a GPT's training uses (Linear layers, GELU, cross-entropy, backward, gradient
clipping, AdamW) on a problem small enough to finish in seconds and hard enough to need a hidden layer.
"""
import time

import numpy as np

import tinyllm
import tinyllm.nn as nn
import tinyllm.nn.functional as F


def spirals(n_per_class=300, classes=3, noise=0.2, seed=0):
    """Points on `classes` interleaved spiral arms in the plane, labelled by arm."""
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.05, 1.0, n_per_class), classes)
    labels = np.repeat(np.arange(classes), n_per_class)
    angle = labels * 2 * np.pi / classes + r * 4.0 + rng.standard_normal(r.size) * noise
    points = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1).astype(np.float32)
    return points, labels


def train(steps=200, hidden=64, lr=1e-2, seed=0, log=print):
    tinyllm.manual_seed(seed)
    x, y = spirals(seed=seed)
    order = np.random.default_rng(seed).permutation(len(y))
    split = int(0.8 * len(y))
    train_idx, val_idx = order[:split], order[split:]
    model = nn.Sequential(nn.Linear(2, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 3))
    opt = tinyllm.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    xs, ys = tinyllm.tensor(x[train_idx]), tinyllm.tensor(y[train_idx])
    start = time.perf_counter()
    for step in range(1, steps + 1):
        loss = F.cross_entropy(model(xs), ys)
        opt.zero_grad()
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step == 1 or step % 50 == 0:
            log(f"step {step:4d}  loss {loss.item():.4f}  grad norm {norm.item():.3f}")
    with tinyllm.no_grad():
        predictions = model(tinyllm.tensor(x[val_idx])).argmax(dim=-1).numpy()
    accuracy = float((predictions == y[val_idx]).mean())
    log(f"validation accuracy {accuracy:.1%} on {len(val_idx)} held-out points "
        f"({time.perf_counter() - start:.1f} s, kernels: {', '.join(tinyllm.backend.cpu.native_kernels()) or 'NumPy reference only'})")
    return accuracy


def add_commands(subparsers):
    p = subparsers.add_parser("demo", help="train a small MLP with the engine (a quick end-to-end check)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=lambda args: train(steps=args.steps, seed=args.seed) and None)
