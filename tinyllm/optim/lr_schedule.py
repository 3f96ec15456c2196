"""Learning-rate schedules as plain functions of the step (so resuming needs only the step count)."""
import math


def warmup_cosine(step, max_lr, warmup_steps, total_steps, min_lr=0.0):
    """Linear warmup from max_lr/warmup_steps to max_lr over warmup_steps, then a cosine from max_lr
    down to min_lr at total_steps, and min_lr after it. Steps count from 0, as in nanoGPT."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
