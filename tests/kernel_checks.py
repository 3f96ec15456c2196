"""Shared checks for the kernel tests: compiled kernels through tinyllm.backend.cpu against reference.py.

`native` runs a call with the reference twin of the kernel sabotaged, so a silent fallback to NumPy
fails the test instead of passing it; `poisoned_outputs` makes every output buffer start as NaN, so
an element the kernel forgets to write shows up.
"""
import contextlib

import numpy as np
import pytest

from tinyllm.backend import cpu, reference

requires_native = pytest.mark.skipif(
    cpu._C is None, reason="tinyllm._C is not built: run `python setup.py build_ext --inplace` first"
)

# The awkward row lengths: 1, odd, prime, just under a 16-float AVX-512 vector multiple, a vocab row.
ROW_LENGTHS = [1, 3, 17, 127, 8192]


@contextlib.contextmanager
def native(*names):
    """Within the block, each kernel in `names` must run compiled: calling its reference raises."""
    assert set(names) <= set(cpu.native_kernels()), f"not compiled: {set(names) - set(cpu.native_kernels())}"
    with pytest.MonkeyPatch.context() as mp:
        for name in names:
            def refuse(*args, _name=name, **kwargs):
                raise AssertionError(f"cpu.{_name} fell back to reference.{_name}")
            mp.setattr(reference, name, refuse)
        yield


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    """Every output buffer the CPU backend allocates starts as NaN."""
    monkeypatch.setattr(cpu, "_empty", lambda shape, dtype=np.float32: np.full(shape, np.nan, dtype))


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def non_contiguous(x, how="sliced"):
    """The values of x in a view that is not C-contiguous: every other element of a wider array
    ("sliced"), or the transpose of a transposed copy ("transposed", for 2-D x)."""
    if how == "transposed":
        view = np.ascontiguousarray(x.T).T
    else:
        wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        wide[..., ::2] = x
        view = wide[..., ::2]
    assert np.array_equal(view, x, equal_nan=True)
    return view
