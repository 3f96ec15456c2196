"""Token shards: binary files of token ids, written atomically, read back memory-mapped.

Layout (little-endian):

    offset 0   8 bytes   magic  b"TLLMTOK\\0"
    offset 8   uint32    format version (1)
    offset 12  uint32    bits per token id: 16 (uint16) or 32 (uint32)
    offset 16  uint64    number of tokens N
    offset 24  N ids     the tokens

uint16 is used when every id fits (vocabularies up to 65,536), uint32 otherwise. Readers also accept
nanoGPT's raw `.bin` files: a bare array of uint16 ids with no header.
"""
import contextlib
import os
import pathlib
import struct

import numpy as np

from ..atomic import atomic_path

MAGIC = b"TLLMTOK\0"
VERSION = 1
HEADER = struct.Struct("<8sIIQ")
_DTYPES = {16: np.dtype("<u2"), 32: np.dtype("<u4")}


def token_dtype(vocab_size):
    """The smallest id dtype that holds every id of a vocabulary of `vocab_size` tokens."""
    return _DTYPES[16] if vocab_size <= 2**16 else _DTYPES[32]


class ShardWriter:
    """Stream token ids into a shard: `with ShardWriter(path, dtype) as w: w.write(ids) ...`.

    The ids go to a temporary file; on a clean exit the header gets the final count and the file
    is moved into place, so `path` never holds a partial shard."""

    def __init__(self, path, dtype):
        self.path = pathlib.Path(path)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        if self.dtype not in _DTYPES.values():
            raise ValueError(f"shard ids must be uint16 or uint32, not {dtype}")
        self.count = 0

    def __enter__(self):
        self._stack = contextlib.ExitStack()  # closes the file, then moves it into place
        self._file = self._stack.enter_context(open(self._stack.enter_context(atomic_path(self.path)), "wb"))
        self._file.write(HEADER.pack(MAGIC, VERSION, self.dtype.itemsize * 8, 0))
        return self

    def write(self, ids):
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(self.dtype).max):
            raise ValueError(f"token ids must lie in [0, {np.iinfo(self.dtype).max}] for {self.dtype.name} "
                             f"shards, got [{ids.min()}, {ids.max()}]")
        self._file.write(ids.astype(self.dtype, copy=False).tobytes())
        self.count += ids.size

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self._file.seek(0)
            self._file.write(HEADER.pack(MAGIC, VERSION, self.dtype.itemsize * 8, self.count))
            self._file.flush()
            os.fsync(self._file.fileno())
        return self._stack.__exit__(exc_type, exc, tb)


def write_shard(path, ids, dtype=None):
    """Write one array of ids as a shard (dtype: the smallest that fits its largest id if not given)."""
    ids = np.asarray(ids)
    if dtype is None:
        dtype = token_dtype(int(ids.max()) + 1 if ids.size else 1)
    with ShardWriter(path, dtype) as writer:
        writer.write(ids)


def read_shard(path):
    """The ids of a shard (or a nanoGPT raw uint16 .bin) as a read-only memory-mapped array."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such shard: {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
    if not head.startswith(MAGIC):
        return _read_raw_uint16(path, size)
    if len(head) < HEADER.size:
        raise ValueError(f"{path}: truncated shard header ({size} bytes, expected {HEADER.size})")
    _, version, bits, count = HEADER.unpack(head)
    if version != VERSION:
        raise ValueError(f"{path}: shard format version {version}, this tinyllm reads version {VERSION}")
    if bits not in _DTYPES:
        raise ValueError(f"{path}: corrupt shard header (token width {bits} bits, expected 16 or 32)")
    dtype = _DTYPES[bits]
    expected = HEADER.size + count * dtype.itemsize
    if size != expected:
        problem = "truncated" if size < expected else "has trailing bytes"
        raise ValueError(f"{path}: shard {problem}: header says {count:,} tokens ({expected:,} bytes), "
                         f"file has {size:,} bytes")
    if count == 0:
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=HEADER.size, shape=(count,))


def _read_raw_uint16(path, size):
    if size == 0:
        raise ValueError(f"{path}: empty file, not a token shard")
    if size % 2:
        raise ValueError(f"{path}: not a tinyllm shard (no header) and an odd number of bytes ({size}), "
                         f"so not a raw uint16 token file either")
    return np.memmap(path, dtype=_DTYPES[16], mode="r")
