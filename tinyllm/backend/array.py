"""Devices and their array libraries: NumPy arrays live on the host ("cpu"), CuPy arrays on an NVIDIA
GPU ("cuda").

Code that creates arrays (zeros, masks, index ranges, scalars) takes the library of an array it
already has, `xp = array_module(x)`, and calls `xp.zeros(...)`, so the same line runs on either
device. Functions of arrays alone (np.exp, np.where over arrays, np.moveaxis, ...) need nothing:
NumPy hands them to CuPy when their arguments are CuPy arrays (the __array_ufunc__ and
__array_function__ protocols). CuPy is optional and imported only when a "cuda" device is asked for.
"""
import sys

import numpy as np

DEVICES = ("cpu", "cuda")


def as_device(device):
    """"cpu" or "cuda" from a device name ("cuda:0" is "cuda": tinyllm uses CuPy's current GPU)."""
    name = str(device)
    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and kind == "cpu") or (index and not index.isdigit()):
        raise ValueError(f"unknown device {device!r}; expected 'cpu' or 'cuda'")
    return kind


def usable_device(device):
    """as_device(device), checked now: "cuda" gives a clear error where CuPy or a GPU is missing."""
    device = as_device(device)
    if device == "cuda":
        cupy()
    return device


def is_device_name(value):
    return isinstance(value, str) and value.partition(":")[0] in DEVICES


def cupy():
    """The CuPy module, imported on first use, with a clear error where it or a GPU is missing."""
    try:
        import cupy
    except ImportError as err:
        raise RuntimeError("device 'cuda' needs CuPy (pip install cupy-cuda12x or cupy-cuda13x) and an NVIDIA GPU; "
                           f"CuPy could not be imported: {err}") from None
    try:
        found = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as err:
        raise RuntimeError(f"device 'cuda': CuPy found no usable NVIDIA GPU ({err})") from None
    if not found:
        raise RuntimeError("device 'cuda': CuPy found no NVIDIA GPU")
    return cupy


def is_array(x):
    """Whether x is a NumPy or CuPy array."""
    return isinstance(x, np.ndarray) or _is_cupy(x)


def _is_cupy(x):
    cupy = sys.modules.get("cupy")  # an array can only be a CuPy array once CuPy has been imported
    return cupy is not None and isinstance(x, cupy.ndarray)


def device_of(x):
    return "cuda" if _is_cupy(x) else "cpu"


def is_capturing(x):
    """Whether x is a GPU array and the current CUDA stream is recording a graph (tinyllm.cuda_graph)."""
    return _is_cupy(x) and sys.modules["cupy"].cuda.get_current_stream().is_capturing()


def array_module(x):
    """The library of array x: CuPy for a CuPy array, else NumPy."""
    return sys.modules["cupy"] if _is_cupy(x) else np


def module_for(device):
    """The array library of a device: NumPy for "cpu", CuPy for "cuda"."""
    return np if as_device(device) == "cpu" else cupy()


def to_device(x, device):
    """Array x on device: x itself when it is there already, else a copy (host to GPU or back)."""
    device = as_device(device)
    if device_of(x) == device:
        return x
    return cupy().asarray(x) if device == "cuda" else x.get()


def check_same_device(arrays):
    """Raise the error PyTorch raises when one op gets arrays of two devices."""
    devices = {device_of(a) for a in arrays}
    if len(devices) > 1:
        raise RuntimeError(f"expected all tensors on the same device, got {' and '.join(sorted(devices))}")
