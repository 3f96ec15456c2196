"""Shard files: round trip in both dtypes, nanoGPT raw files, and clear errors for broken files."""
import numpy as np
import pytest

from tinyllm.data.shards import HEADER, ShardWriter, read_shard, token_dtype, write_shard


@pytest.mark.parametrize("vocab_size, dtype", [(50_257, np.uint16), (65_536, np.uint16), (100_000, np.uint32)])
def test_round_trip_and_dtype_choice(tmp_path, vocab_size, dtype):
    ids = np.random.default_rng(0).integers(0, vocab_size, size=1000)
    ids[0] = vocab_size - 1
    write_shard(tmp_path / "s.bin", ids, token_dtype(vocab_size))
    back = read_shard(tmp_path / "s.bin")
    assert back.dtype == dtype and np.array_equal(back, ids)
    assert (tmp_path / "s.bin").stat().st_size == HEADER.size + 1000 * np.dtype(dtype).itemsize


def test_streaming_writer_counts_all_pieces(tmp_path):
    with ShardWriter(tmp_path / "s.bin", np.uint16) as writer:
        writer.write([1, 2, 3])
        writer.write(np.array([4], dtype=np.int64))
    assert read_shard(tmp_path / "s.bin").tolist() == [1, 2, 3, 4]


def test_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 65535\]"):
        with ShardWriter(tmp_path / "s.bin", np.uint16) as writer:
            writer.write([1, 70_000])
    assert list(tmp_path.iterdir()) == []


def test_reads_nanogpt_raw_uint16(tmp_path):
    np.array([7, 8, 9], dtype=np.uint16).tofile(tmp_path / "train.bin")
    assert read_shard(tmp_path / "train.bin").tolist() == [7, 8, 9]


def test_truncated_shard_is_a_clear_error(tmp_path):
    write_shard(tmp_path / "s.bin", np.arange(100))
    data = (tmp_path / "s.bin").read_bytes()
    (tmp_path / "s.bin").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="s.bin: shard truncated: header says 100 tokens"):
        read_shard(tmp_path / "s.bin")
    (tmp_path / "s.bin").write_bytes(data[:12])
    with pytest.raises(ValueError, match="truncated shard header"):
        read_shard(tmp_path / "s.bin")


@pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"abc", "odd number of bytes")])
def test_files_that_are_not_shards(tmp_path, content, message):
    (tmp_path / "x.bin").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_shard(tmp_path / "x.bin")


def test_missing_shard(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such shard"):
        read_shard(tmp_path / "nope.bin")
