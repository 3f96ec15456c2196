"""Atomic writes: a reader sees either the old file or the complete new one, never half a file.

Everything the pipeline writes (shards, meta.json, cached corpora) goes to a temporary name in the
same folder first and is then moved into place with `os.replace`, which is atomic on POSIX and on
Windows when source and target are on the same file system.
"""
import contextlib
import os
import pathlib
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success move it onto `path`, on error delete it.

    Works for files and for folders (the caller creates whatever it likes at the temporary path)."""
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
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

