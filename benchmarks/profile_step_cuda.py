"""Where a GPU training step's time goes: device time per op (CUDA events around every op's forward and
backward, and around the optimizer, the clip and the loss read-back), and the host's time to queue a step.

    python3 benchmarks/profile_step_cuda.py --preset gpt2 --steps 3

The step is benchmarks/train.py's (zero_grad, forward + loss under bf16 autocast, backward, clip 1.0,
AdamW). Events are recorded on CuPy's current stream without synchronising, so the queue stays full
while the GPU is the bottleneck; an op's figure is the device time between the events around it.
Host time: the wall time of a step with no synchronisation inside it, against the device time.
"""
import argparse
import collections
import os
import sys
import time

import cupy

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
import tinyllm  # noqa: E402
import tinyllm.amp  # noqa: E402
from tinyllm import autograd  # noqa: E402
from tinyllm.models import GPT, GPTConfig  # noqa: E402

from train import PRESETS, train_step  # noqa: E402

_spans = []  # (name, start event, end event), filled while profiling


def _timed(name, fn):
    def wrapper(*args, **kwargs):
        if _spans is None:
            return fn(*args, **kwargs)
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        out = fn(*args, **kwargs)
        end.record()
        _spans.append((name, start, end))
        return out
    return wrapper


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def instrument():
    """Wrap every Function's forward and backward, AdamW.step and clip_grad_norm_ with events."""
    for cls in set(_subclasses(autograd.Function)):
        for kind in ("forward", "backward"):
            if kind in cls.__dict__:
                fn = cls.__dict__[kind]
                wrapped = _timed(f"{cls.__name__}.{kind}", fn.__func__ if isinstance(fn, (staticmethod, classmethod)) else fn)
                setattr(cls, kind, classmethod(lambda c, *a, _w=wrapped, **k: _w(c, *a, **k)) if isinstance(fn, classmethod)
                        else staticmethod(wrapped))
    apply = autograd.Function.apply.__func__
    autograd.Function.apply = classmethod(_timed("Function.apply (whole, incl. casts)", apply))
    tinyllm.optim.AdamW.step = _timed("AdamW.step", tinyllm.optim.AdamW.step)
    tinyllm.nn.utils.clip_grad_norm_ = _timed("clip_grad_norm_", tinyllm.nn.utils.clip_grad_norm_)
    tinyllm.optim.Optimizer.zero_grad = _timed("zero_grad", tinyllm.optim.Optimizer.zero_grad)
    autograd.backward = _timed("autograd.backward (whole)", autograd.backward)
    from tinyllm.backend import cpu, cuda
    step_kernels = ("add_bias_", "sum_rows", "grad_norm", "clip_grads_", "adamw_update_multi")
    for name in cpu.CONTRACT + step_kernels:  # the kernels, as the ops call them (backend.for_array(x).<name>)
        setattr(cuda, name, _timed(f"kernel {name}", getattr(cuda, name)))


def step(model, opt, idx, targets):
    return train_step(tinyllm, model, opt, tinyllm.amp.GradScaler(enabled=False), idx, targets,
                      lambda: tinyllm.amp.autocast(tinyllm.bfloat16))


def main():
    global _spans
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="gpt2", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    batch_size, overrides = PRESETS[args.preset]
    config = GPTConfig.from_preset(args.preset, **overrides)
    model = GPT(config).to("cuda")
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
    rng = cupy.random.default_rng(0)
    idx = tinyllm.tensor(rng.integers(0, config.vocab_size, (batch_size, config.block_size)), device="cuda")
    targets = tinyllm.tensor(rng.integers(0, config.vocab_size, (batch_size, config.block_size)), device="cuda")
    sync = cupy.cuda.Device().synchronize
    for _ in range(2):
        step(model, opt, idx, targets).item()
    host, device = [], []
    for _ in range(args.steps):  # plain steps: host time to queue, and device time of the whole step
        sync()
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        t0 = time.perf_counter()
        start.record()
        loss = step(model, opt, idx, targets)
        end.record()
        host.append(time.perf_counter() - t0)
        end.synchronize()
        device.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
        loss.item()
    print(f"{args.preset}: step device {1e3 * min(device):.1f} ms, host queueing {1e3 * min(host):.1f} ms (min of {args.steps})")
    instrument()
    totals, counts = collections.defaultdict(float), collections.Counter()
    for _ in range(args.steps):
        _spans = []
        sync()
        step(model, opt, idx, targets).item()
        sync()
        for name, s, e in _spans:
            totals[name] += cupy.cuda.get_elapsed_time(s, e) / args.steps
            counts[name] += 1
    _spans = None
    print(f"\nper step, device ms between the events around each (nested spans overlap; mean of {args.steps}):")
    for name, ms in sorted(totals.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {name:<45} {ms:9.2f} ms  x{counts[name] // args.steps}")


if __name__ == "__main__":
    main()
