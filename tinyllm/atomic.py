"""Atomic writes: a reader sees either the old file or the complete new one, never half a file.

Whatever tinyllm writes (checkpoints, tokenizers, shards, metadata) goes to a temporary name in the
same folder first and is then moved into place with `os.replace`, which is atomic on POSIX and on
Windows when source and target are on the same file system. A crash mid-write leaves the old file.
"""
import contextlib
import json
import os
import pathlib
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success move it onto `path`, on error delete it.

    Works for files and for new folders (the caller creates whatever it likes at the temporary path).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path, text):
    """Write `text` to `path` atomically, as UTF-8 and with its line endings exactly as given."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_jsonl(path, records):
    """Write one JSON object per line (UTF-8 kept as it is), atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
