"""Batches of token windows from memory-mapped shards.

A window is T+1 consecutive ids; a model reads x = w[:, :-1] and predicts y = w[:, 1:]. Windows never
cross from one shard into the next. Nothing is read into memory beyond the windows of a batch.

- `TrainLoader`: random windows. Batch number `step` is drawn from a generator seeded with
  (seed, step), so the loader's whole state is that step counter: `state_dict()` /
  `load_state_dict()` make a resumed run see exactly the batches the first run would have seen.
  With data parallelism the global batch of batch_size × world_size windows is drawn the same way
  and rank r takes its r-th slice, so the ranks see disjoint rows and together exactly what one
  process with the global batch size sees.
- `eval_batches`: every window at offsets 0, T, 2T, ... of each shard, in order (every token but a
  shard's first is predicted once, the tail shorter than a window is left out); rank r takes
  windows r, r + world_size, ...
"""
import numpy as np

from .shards import read_shard


def load_shards(shards):
    """Shard paths (or arrays, handy in tests) to a list of 1-D id arrays."""
    arrays = [s if isinstance(s, np.ndarray) else read_shard(s) for s in shards]
    if not arrays:
        raise ValueError("no shards given")
    return arrays


def _check_rank(rank, world_size):
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")


def _gather(arrays, shard, start, window):
    """(len(start), window) int64 array of arrays[shard[i]][start[i]: start[i] + window]."""
    out = np.empty((len(start), window), dtype=np.int64)
    span = np.arange(window)
    for s in np.unique(shard):
        rows = shard == s
        out[rows] = arrays[s][start[rows, None] + span]
    return out


class SeededLoader:
    """A loader whose batch number `step` is a function of (seed, step): its whole state is the step."""

    def __iter__(self):
        return self

    def state_dict(self):
        return {"seed": self.seed, "step": self.step}

    def load_state_dict(self, state):
        if state["seed"] != self.seed:
            raise ValueError(f"loader state is for seed {state['seed']}, this loader has seed {self.seed}")
        self.step = int(state["step"])


class TrainLoader(SeededLoader):
    """Random (batch_size, block_size + 1) windows: `for w in loader` or `next(loader)`."""

    def __init__(self, shards, batch_size, block_size, seed=0, rank=0, world_size=1):
        _check_rank(rank, world_size)
        self.arrays = load_shards(shards)
        self.batch_size, self.window = batch_size, block_size + 1
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.step = 0
        starts = np.array([max(len(a) - self.window + 1, 0) for a in self.arrays])  # per shard
        if starts.sum() == 0:
            raise ValueError(f"the shards hold too few tokens ({sum(map(len, self.arrays)):,} in all) "
                             f"for one window of block_size + 1 = {self.window}")
        self._first = np.cumsum(starts) - starts  # global index of each shard's first window
        self._total = int(starts.sum())

    def __next__(self):
        rng = np.random.default_rng([self.seed, self.step])
        picks = rng.integers(0, self._total, size=self.batch_size * self.world_size)
        picks = picks[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        self.step += 1
        shard = np.searchsorted(self._first, picks, side="right") - 1
        return _gather(self.arrays, shard, picks - self._first[shard], self.window)

def eval_batches(shards, batch_size, block_size, rank=0, world_size=1):
    """Yield (b, block_size + 1) windows, b <= batch_size, covering the shards in order."""
    _check_rank(rank, world_size)
    arrays = load_shards(shards)
    window = block_size + 1
    starts = [np.arange(0, len(a) - window + 1, block_size) for a in arrays]
    shard = np.repeat(np.arange(len(arrays)), [len(s) for s in starts])[rank::world_size]
    start = np.concatenate(starts)[rank::world_size]
    for lo in range(0, len(start), batch_size):
        yield _gather(arrays, shard[lo:lo + batch_size], start[lo:lo + batch_size], window)
