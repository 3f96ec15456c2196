"""Loader: window contents, determinism, exact resume, per-rank slices, sequential eval windows."""
import numpy as np
import pytest

from tinyllm.data.loader import TrainLoader, eval_batches
from tinyllm.data.shards import write_shard


@pytest.fixture
def shards(tmp_path):
    """Two shards of consecutive ids, so a window's content shows where it came from."""
    write_shard(tmp_path / "a.bin", np.arange(0, 500))
    write_shard(tmp_path / "b.bin", np.arange(1000, 1040))
    return [tmp_path / "a.bin", tmp_path / "b.bin"]


def test_windows_are_contiguous_and_never_cross_shards(shards):
    batch = next(TrainLoader(shards, batch_size=256, block_size=16))
    assert batch.shape == (256, 17) and batch.dtype == np.int64
    assert (np.diff(batch, axis=1) == 1).all()  # consecutive ids: from one shard, in order
    assert (batch[:, 0] >= 1000).any()  # the small shard is sampled too


def test_same_seed_same_batches_other_seed_other_batches(shards):
    a, b, c = (TrainLoader(shards, 8, 16, seed=s) for s in (1, 1, 2))
    first = [next(a) for _ in range(3)]
    assert all(np.array_equal(x, next(b)) for x in first)
    assert not np.array_equal(first[0], next(c))


def test_resume_from_state_dict_sees_the_same_batches(shards):
    loader = TrainLoader(shards, 8, 16, seed=5)
    next(loader), next(loader)
    state = loader.state_dict()
    expected = [next(loader) for _ in range(3)]
    resumed = TrainLoader(shards, 8, 16, seed=5)
    resumed.load_state_dict(state)
    assert all(np.array_equal(x, next(resumed)) for x in expected)
    with pytest.raises(ValueError, match="seed"):
        TrainLoader(shards, 8, 16, seed=6).load_state_dict(state)


def test_ranks_take_disjoint_slices_of_the_global_batch(shards):
    whole = next(TrainLoader(shards, 8, 16, seed=3))
    parts = [next(TrainLoader(shards, 4, 16, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert np.array_equal(np.concatenate(parts), whole)


def test_eval_windows_cover_each_shard_in_order(shards):
    batches = list(eval_batches(shards, batch_size=4, block_size=99))
    windows = np.concatenate(batches)
    assert [len(b) for b in batches] == [4, 1]  # 500 tokens: starts 0, 99, ..., 396 (495 + 100 > 500)
    assert windows[:, 0].tolist() == [0, 99, 198, 297, 396]  # the 40-token shard has no full window
    ranked = [np.concatenate(list(eval_batches(shards, 8, 99, rank=r, world_size=2))) for r in range(2)]
    assert ranked[0][:, 0].tolist() == [0, 198, 396] and ranked[1][:, 0].tolist() == [99, 297]


def test_too_few_tokens_is_a_clear_error(shards):
    with pytest.raises(ValueError, match="too few tokens"):
        TrainLoader(shards, 4, block_size=500)
