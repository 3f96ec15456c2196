"""The random number generators behind randn, dropout and parameter initialisation.

One NumPy Generator draws on the host, seeded by `tinyllm.manual_seed`, so a run is reproducible. Draws
of randn and friends on the GPU come from a CuPy Generator made from the same seed on first use (its
numbers differ from the host's, as in PyTorch).

Dropout draws from neither: its masks are counter-based (Philox4x32-10, backend/reference.py), a pure
function of a 64-bit seed and a counter offset. Each dropout call takes the next ceil(n / 4) counters
of the dropout stream, so the stream's whole state is two integers, the masks are the same on the CPU
and the GPU, and the backward pass draws its mask again instead of keeping it. `get_rng_state` /
`set_rng_state` cover the host generator and the dropout stream: a resumed run, on either device,
draws exactly what the uninterrupted one would have.
"""
import contextlib

import numpy as np

from . import dtypes
from .backend.array import as_device, cupy

_UINT64 = 1 << 64

_seed = None
_generator = np.random.default_rng()
_device_generator = None
_dropout_seed = int(np.random.SeedSequence().entropy) % _UINT64
_dropout_offset = 0
_dropout_shift = None  # while a CUDA graph is captured: the device counter its dropout kernels add to their offsets


def manual_seed(seed):
    """Reseed the global generators (as torch.manual_seed)."""
    global _seed, _generator, _device_generator, _dropout_seed, _dropout_offset
    _seed, _generator, _device_generator = seed, np.random.default_rng(seed), None
    _dropout_seed, _dropout_offset = seed % _UINT64, 0


def generator(device="cpu"):
    """The generator that draws arrays on device (NumPy's and CuPy's have the same methods)."""
    global _device_generator
    if as_device(device) == "cpu":
        return _generator
    if _device_generator is None:
        _device_generator = cupy().random.default_rng(_seed)
    return _device_generator


def get_rng_state():
    return {"numpy": _generator.bit_generator.state, "dropout": {"seed": _dropout_seed, "offset": _dropout_offset}}


def set_rng_state(state):
    global _dropout_seed, _dropout_offset
    if "bit_generator" in state:  # a checkpoint written before the dropout stream existed: the host generator's alone
        state = {"numpy": state, "dropout": {"seed": _dropout_seed, "offset": _dropout_offset}}
    _generator.bit_generator.state = state["numpy"]
    _dropout_seed, _dropout_offset = int(state["dropout"]["seed"]), int(state["dropout"]["offset"])


def dropout_key(numel):
    """(seed, offset, offset_shift) for a dropout call over numel elements, which takes the next
    ceil(numel / 4) counters of the dropout stream (the kernel contract's `dropout` arguments)."""
    global _dropout_offset
    key = (_dropout_seed, _dropout_offset, _dropout_shift)
    _dropout_offset += (numel + 3) // 4
    return key


class CapturedDropout:
    """The dropout counters a captured CUDA graph's step takes: it was recorded with offsets from
    `start` on, `used` of them. `before_replay` writes into the device `shift` how far the stream has
    moved since, and moves it on by `used`: replay k draws the masks eager step k would have."""

    def __init__(self, shift):
        self.shift, self.start, self.used = shift, _dropout_offset, 0

    def before_replay(self):
        global _dropout_offset
        if self.used:
            self.shift.fill(_dropout_offset - self.start)
            _dropout_offset += self.used


@contextlib.contextmanager
def capturing_dropout():
    """While a step is captured (cuda_graph.capture): dropout calls add a device counter to their
    offsets, and the stream is left where it was (capture records kernels without running them)."""
    global _dropout_offset, _dropout_shift
    captured = CapturedDropout(cupy().zeros((), np.uint64))
    _dropout_shift = captured.shift
    try:
        yield captured
    finally:
        captured.used = _dropout_offset - captured.start
        _dropout_offset, _dropout_shift = captured.start, None


def normal(shape, mean=0.0, std=1.0, dtype=dtypes.float32, device="cpu"):
    draws = generator(device).standard_normal(shape, dtype=np.float32 if dtype != dtypes.float64 else np.float64)
    return (draws * std + mean).astype(dtype, copy=False)


def uniform(shape, low=0.0, high=1.0, dtype=dtypes.float32, device="cpu"):
    return generator(device).uniform(low, high, shape).astype(dtype, copy=False)
