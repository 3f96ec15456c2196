"""Set similarity at scale: word shingles, MinHash signatures, LSH banding, exact Jaccard.

Two texts are compared as sets of *shingles*: runs of k consecutive normalised words (lower-cased,
letters and digits only, so "Who's there?" and "WHO'S THERE" are the same words "who s there").
Their similarity is the Jaccard index |A ∩ B| / |A ∪ B|.

MinHash (Broder 1997): apply a random hash function h to every shingle of a set and keep the minimum.
For two sets, P[min h(A) == min h(B)] = Jaccard(A, B), so with P independent hash functions the
fraction of equal entries in the two *signatures* estimates the Jaccard index (standard error
sqrt(J(1-J)/P)). Our hash functions are the multiply-add-shift family
h(x) = ((a·x + b) mod 2^64) >> 32 with random odd a and random b: one NumPy expression for all P.

LSH banding: cut each signature into b bands of r rows (P = b·r). Two sets whose signatures agree on
a whole band land in the same bucket and become a candidate pair; that happens with probability
1 - (1 - J^r)^b, an S-curve that rises steeply around J ≈ (1/b)^(1/r) (the defaults, 128 = 32 × 4,
put it at 0.42: a pair at J = 0.8 is a candidate with probability 0.99999). Only candidates are
verified, by their true Jaccard, so the cost is near-linear instead of all n² pairs. (Verifying by
the signatures' estimate instead misses about one pair in ten at threshold 0.8 on Shakespeare's
paragraphs, where many pairs sit exactly at J = 0.8 and the estimate is a coin flip there.)

`exact_pairs` computes the true Jaccard of every pair that shares at least one shingle (all others
have J = 0): the reference we measure the LSH against, for small corpora.
"""
import hashlib
import re

import numpy as np

_WORD = re.compile(r"[^\W_]+")  # a run of letters and digits, in any script
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (2^64 / golden ratio) for polynomial hashes


def normalise_words(text):
    """Lower-cased runs of letters and digits: "Who's there?" -> ["who", "s", "there"]."""
    return _WORD.findall(text.lower())


class Shingler:
    """Turns a list of normalised words into the sorted, unique uint64 hashes of its k-word shingles.

    A text shorter than k words is a single shingle of all its words. Word hashes are stable (BLAKE2b
    of the word), so the same text gives the same shingles in any run and any corpus."""

    def __init__(self, k=5):
        if k < 1:
            raise ValueError(f"shingle size must be at least 1, got {k}")
        self.k = k
        self._word_hash = {}

    def __call__(self, words):
        if not words:
            return np.empty(0, dtype=np.uint64)
        for word in set(words).difference(self._word_hash):  # hash each new word once, ever
            digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
            self._word_hash[word] = int.from_bytes(digest, "little")
        h = np.fromiter(map(self._word_hash.__getitem__, words), dtype=np.uint64, count=len(words))
        n = max(len(h) - self.k + 1, 1)
        shingles = np.zeros(n, dtype=np.uint64)
        for j in range(min(self.k, len(h))):  # polynomial hash of each window, wrapping mod 2^64
            shingles = shingles * _MIX + h[j:j + n]
        return np.unique(shingles)


def minhash_signatures(shingle_sets, num_perm=128, seed=0, chunk_rows=1 << 15):
    """(n, num_perm) uint32 MinHash signatures of n non-empty shingle sets, computed in chunks of
    `chunk_rows` shingles so memory stays at chunk_rows × num_perm × 8 bytes."""
    lengths = np.array([len(s) for s in shingle_sets], dtype=np.int64)
    if len(lengths) and lengths.min() == 0:
        raise ValueError("MinHash needs non-empty shingle sets")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    values = np.concatenate(shingle_sets) if len(lengths) else np.empty(0, np.uint64)
    owner = np.repeat(np.arange(len(lengths)), lengths)  # which set each shingle belongs to
    signatures = np.full((len(lengths), num_perm), 2**32 - 1, dtype=np.uint64)
    buffer = np.empty((min(chunk_rows, len(values)), num_perm), dtype=np.uint64)
    for lo in range(0, len(values), chunk_rows):
        chunk = values[lo:lo + chunk_rows]
        hashed = buffer[:len(chunk)]
        np.multiply(chunk[:, None], a, out=hashed)  # in place: no temporaries of this size
        hashed += b
        hashed >>= np.uint64(32)
        sets = owner[lo:lo + chunk_rows]
        starts = np.flatnonzero(np.r_[True, sets[1:] != sets[:-1]])  # each set's first row here
        ids = sets[starts]  # a set cut by the chunk boundary is finished in the next chunk
        signatures[ids] = np.minimum(signatures[ids], np.minimum.reduceat(hashed, starts, axis=0))
    return signatures.astype(np.uint32)


def similar_pairs(shingle_sets, threshold, method="lsh", num_perm=128, bands=32, seed=0):
    """Pairs (i < j) of sets with Jaccard >= threshold, and their Jaccard: (pairs (m, 2), J (m,)).

    method "lsh": MinHash-LSH candidates, each verified by its true Jaccard (cheap: a candidate's two
    sets are at hand), so no false positives and, for a well-chosen S-curve, few misses.
    method "exact": every pair, for small corpora and for measuring the LSH."""
    if method == "exact":
        return exact_pairs(shingle_sets, threshold)
    if method != "lsh":
        raise ValueError(f"unknown similarity method {method!r} (choose 'lsh' or 'exact')")
    candidates = lsh_candidates(minhash_signatures(shingle_sets, num_perm, seed), bands)
    jaccard = np.array([_jaccard(shingle_sets[i], shingle_sets[j]) for i, j in candidates])
    keep = jaccard >= threshold
    return candidates[keep], jaccard[keep]


def lsh_candidates(signatures, bands):
    """Pairs (i < j), sorted, whose signatures agree on every row of at least one band."""
    n, num_perm = signatures.shape
    if bands < 1 or num_perm % bands:
        raise ValueError(f"bands ({bands}) must divide the number of permutations ({num_perm})")
    rows = num_perm // bands
    keys = [np.empty(0, dtype=np.int64)]
    for band in range(bands):
        bucket = np.zeros(n, dtype=np.uint64)
        for column in signatures[:, band * rows:(band + 1) * rows].T.astype(np.uint64):
            bucket = bucket * _MIX + column
        i, j = pairs_sharing_a_key(bucket)
        keys.append(i * n + j)
    return _unpack_pairs(np.unique(np.concatenate(keys)), n)


def exact_pairs(shingle_sets, threshold, max_pairs=200_000_000):
    """All pairs (i < j) with true Jaccard >= threshold (> 0). Returns (pairs (m, 2), Jaccard (m,)).

    Every pair that shares a shingle is counted once per shared shingle, which gives |A ∩ B|; the
    work grows with the square of how often shingles repeat, hence `max_pairs`."""
    if threshold <= 0:
        raise ValueError("exact_pairs needs a threshold above 0 (pairs sharing nothing have J = 0)")
    n = len(shingle_sets)
    lengths = np.array([len(s) for s in shingle_sets], dtype=np.int64)
    values = np.concatenate(shingle_sets) if n else np.empty(0, np.uint64)
    owner = np.repeat(np.arange(n), lengths)
    i, j = pairs_sharing_a_key(values, max_pairs=max_pairs)
    keys, shared = np.unique(owner[i] * n + owner[j], return_counts=True)
    pairs = _unpack_pairs(keys, n)
    jaccard = shared / (lengths[pairs[:, 0]] + lengths[pairs[:, 1]] - shared)
    keep = jaccard >= threshold
    return pairs[keep], jaccard[keep]


def _unpack_pairs(keys, n):
    """Pair keys i·n + j back to an (m, 2) array of (i, j)."""
    return np.stack([keys // max(n, 1), keys % max(n, 1)], axis=1).astype(np.int64)


def _jaccard(a, b):
    """Jaccard index of two sorted arrays of unique values."""
    shared = len(np.intersect1d(a, b, assume_unique=True))
    return shared / (len(a) + len(b) - shared)


def pairs_sharing_a_key(keys, max_pairs=200_000_000):
    """All index pairs (i, j), i < j, with keys[i] == keys[j], as two int64 arrays, vectorised.

    Sort the keys (stably, so indices ascend inside a group); a group of size s at sorted positions
    g..g+s-1 gives s(s-1)/2 pairs: each position p is paired with every later one in its group."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    group_size = np.repeat(sizes, sizes)
    later = group_size - 1 - (np.arange(len(keys)) - np.repeat(starts, sizes))  # later members
    total = int(later.sum())
    if total > max_pairs:
        raise ValueError(f"{total:,} candidate pairs exceed the limit of {max_pairs:,}: "
                         f"the corpus is too large or repetitive for this mode")
    first = np.repeat(np.arange(len(keys)), later)
    offset = np.arange(total) - np.repeat(np.cumsum(later) - later, later)
    return order[first], order[first + 1 + offset]


def connected_components(n, pairs):
    """Label each of n items with the smallest index of its connected component under `pairs`.

    Min-label propagation with pointer jumping, vectorised: each round every item takes the smallest
    label among itself and its neighbours, then follows its label's own label."""
    labels = np.arange(n)
    if len(pairs) == 0:
        return labels
    i, j = pairs[:, 0], pairs[:, 1]
    while True:
        new = labels.copy()
        np.minimum.at(new, i, labels[j])
        np.minimum.at(new, j, labels[i])
        new = new[new]
        if np.array_equal(new, labels):
            return labels
        labels = new
