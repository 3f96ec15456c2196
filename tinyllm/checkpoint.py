"""Checkpoints: model and optimizer tensors in safetensors, everything else in JSON; nothing pickled.

A run directory keeps one folder per saved step and a pointer to the newest:

    run/checkpoints/step_000100/model.safetensors      parameters by name
    run/checkpoints/step_000100/optimizer.safetensors  optimizer state arrays, "state.<i>.<name>"
    run/checkpoints/step_000100/state.json             step, optimizer scalars and groups, RNG, loader, ...
    run/checkpoints/latest                             "step_000100"

Each step folder is written under a temporary name and renamed into place, and `latest` is replaced
atomically after it, so a crash mid-save leaves the previous checkpoint as the latest one. Only the
newest `keep` step folders stay (as Hugging Face's save_total_limit); older ones are deleted after
`latest` has moved, so a run always has a complete checkpoint on disk.
"""
import json
import pathlib
import shutil

import numpy as np
import safetensors
import safetensors.numpy

from . import dtypes
from .atomic import atomic_path, atomic_write_text
from .backend.array import is_array, to_device

MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, LATEST = "model.safetensors", "optimizer.safetensors", "state.json", "latest"
# safetensors dtype names we read; bfloat16 is ml_dtypes' (older safetensors' NumPy loader lacks it).
_DTYPES = {"F64": dtypes.float64, "F32": dtypes.float32, "F16": dtypes.float16, "BF16": dtypes.bfloat16,
           "I64": dtypes.int64, "I32": dtypes.int32}


def save_tensors(path, tensors, metadata=None):
    """Write a dict of NumPy (or CuPy: copied to the host) arrays as a safetensors file, atomically."""
    with atomic_path(path) as tmp:
        safetensors.numpy.save_file({k: np.ascontiguousarray(to_device(v, "cpu")) for k, v in tensors.items()}, str(tmp),
                                    metadata=metadata)


def load_tensors(path):
    """Read a safetensors file into a dict of NumPy arrays, with a clear error for a missing or broken file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        entries = safetensors.deserialize(path.read_bytes())
    except safetensors.SafetensorError as err:
        raise ValueError(f"{path}: not a valid safetensors file (truncated or corrupted?): {err}") from None
    tensors = {}
    for name, entry in entries:
        if entry["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {entry['dtype']}; tinyllm reads {sorted(_DTYPES)}")
        tensors[name] = np.frombuffer(entry["data"], _DTYPES[entry["dtype"]]).reshape(entry["shape"]).copy()
    return tensors


def _split_optimizer_state(state_dict):
    """Optimizer state as (arrays for safetensors, the rest for JSON)."""
    arrays, scalars = {}, {}
    for index, entry in state_dict["state"].items():
        for name, value in entry.items():
            if is_array(value):
                arrays[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return arrays, {"scalars": scalars, "param_groups": state_dict["param_groups"]}


def _join_optimizer_state(arrays, rest):
    state = {}
    for key, value in arrays.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entry in rest["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in rest["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_checkpoint(run_dir, step, model, optimizer=None, extra=None, keep=None):
    """Save model, optimizer and `extra` (any JSON-able dict: RNG, loader, scheduler state) for `step`;
    then delete all but the newest `keep` step folders (None: keep every one)."""
    if keep is not None and keep < 1:
        raise ValueError(f"save_checkpoint: keep must be at least 1 (the checkpoint just saved), got {keep}")
    folder = pathlib.Path(run_dir) / "checkpoints" / f"step_{step:06d}"
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        save_tensors(tmp / MODEL_FILE, {k: v.data for k, v in model.state_dict().items()})
        state = {"step": step, "extra": extra or {}}
        if optimizer is not None:
            arrays, state["optimizer"] = _split_optimizer_state(optimizer.state_dict())
            save_tensors(tmp / OPTIMIZER_FILE, arrays)
        atomic_write_text(tmp / STATE_FILE, json.dumps(state, indent=1))
    atomic_write_text(folder.parent / LATEST, folder.name)
    if keep is not None:
        for old in sorted(folder.parent.glob("step_*"))[:-keep]:  # zero-padded names sort by step
            shutil.rmtree(old)
    return folder


def latest_checkpoint(run_dir):
    """The newest complete checkpoint folder of a run, or None if it has none."""
    pointer = pathlib.Path(run_dir) / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    if not (folder / STATE_FILE).is_file():
        raise ValueError(f"{pointer} names {folder.name}, which is missing or incomplete")
    return folder


def load_checkpoint(folder, model, optimizer=None):
    """Restore model (and optimizer) from a checkpoint folder; return (step, extra)."""
    folder = pathlib.Path(folder)
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        raise FileNotFoundError(f"{folder}: not a checkpoint folder (no {STATE_FILE})")
    try:
        state = json.loads(state_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{state_file}: corrupted ({err})") from None
    model.load_state_dict(load_tensors(folder / MODEL_FILE))
    if optimizer is not None:
        if "optimizer" not in state:
            raise ValueError(f"{folder}: the checkpoint has no optimizer state to resume from")
        optimizer.load_state_dict(_join_optimizer_state(load_tensors(folder / OPTIMIZER_FILE), state["optimizer"]))
    return state["step"], state["extra"]
