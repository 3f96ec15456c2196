"""Shingles, MinHash-LSH against exact Jaccard, and the vectorised helpers."""
import numpy as np
import pytest

from tinyllm.data.similarity import (Shingler, connected_components, exact_pairs, minhash_signatures,
                                     normalise_words, pairs_sharing_a_key, similar_pairs)


def test_normalised_words_are_lowercase_letters_and_digits():
    assert normalise_words("Who's there?  Act 2, Scène I.") == ["who", "s", "there", "act", "2", "scène", "i"]


def test_shingles_are_stable_and_short_texts_are_one_shingle():
    shingler = Shingler(3)
    a = shingler("a b c d".split())
    assert len(a) == 2 and np.array_equal(a, Shingler(3)("a b c d".split()))
    assert len(shingler(["a", "b"])) == 1 and len(shingler([])) == 0


def test_pairs_sharing_a_key_matches_brute_force():
    keys = np.random.default_rng(0).integers(0, 7, size=60).astype(np.uint64)
    i, j = pairs_sharing_a_key(keys)
    brute = {(a, b) for a in range(60) for b in range(a + 1, 60) if keys[a] == keys[b]}
    assert set(zip(i.tolist(), j.tolist())) == brute and len(i) == len(brute)


def _sets_with_jaccard(targets, size=100, seed=0):
    """Pairs of integer sets (a, b) with |a| = |b| = size and Jaccard exactly shared / (2 size - shared)."""
    rng = np.random.default_rng(seed)
    sets = []
    for shared in targets:
        values = rng.choice(2**40, size=2 * size - shared, replace=False).astype(np.uint64)
        sets += [np.sort(values[:size]), np.sort(values[size - shared:])]
    return sets


def test_exact_pairs_finds_exactly_the_pairs_at_or_above_threshold():
    # shared 89 -> J = 89/111 = 0.8018 (just above 0.8); 88 -> 88/112 = 0.7857 (just below)
    sets = _sets_with_jaccard([89, 88, 100])
    pairs, jaccard = exact_pairs(sets, 0.8)
    assert pairs.tolist() == [[0, 1], [4, 5]]
    assert jaccard == pytest.approx([89 / 111, 1.0])


def test_lsh_agrees_with_exact_just_above_and_below_threshold():
    sets = _sets_with_jaccard([89, 88, 95, 60, 100] * 4)
    exact, _ = exact_pairs(sets, 0.8)
    for seed in range(3):
        found, _ = similar_pairs(sets, 0.8, method="lsh", seed=seed)
        assert found.tolist() == exact.tolist()


def test_minhash_estimates_jaccard_and_is_seeded():
    sets = _sets_with_jaccard([300], size=400)  # J = 300 / 500 = 0.6
    sig = minhash_signatures(sets, num_perm=512, seed=1)
    assert (sig[0] == sig[1]).mean() == pytest.approx(0.6, abs=0.07)  # ~3 standard errors
    assert np.array_equal(sig, minhash_signatures(sets, num_perm=512, seed=1))
    assert not np.array_equal(sig, minhash_signatures(sets, num_perm=512, seed=2))


def test_minhash_is_independent_of_chunking():
    sets = _sets_with_jaccard([10, 50], size=70)
    assert np.array_equal(minhash_signatures(sets, 64, chunk_rows=7), minhash_signatures(sets, 64))


def test_connected_components_label_with_smallest_member():
    labels = connected_components(7, np.array([[5, 6], [1, 3], [3, 6], [2, 4]]))
    assert labels.tolist() == [0, 1, 2, 1, 2, 1, 1]
