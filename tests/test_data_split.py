"""Train/validation split: disjoint, related documents together, stable as the corpus grows."""
import numpy as np
import pytest

from tinyllm.data.dedup import DedupConfig
from tinyllm.data.sources import Document
from tinyllm.data.split import SplitConfig, assign_splits, related_groups

VOCAB = np.array([f"w{i}" for i in range(5000)])


def text(seed, n=400):
    return " ".join(np.random.default_rng(seed).choice(VOCAB, n))


def edition(original, seed, keep=0.7):
    """Another edition: 30% of the words respelled, so J ≈ 0.7^5 / (2 - 0.7^5) ≈ 0.09, like a Folio."""
    words = original.split()
    rng = np.random.default_rng(seed)
    return " ".join(w + "e" if rng.random() > keep else w for w in words)


def test_related_documents_are_grouped_and_unrelated_ones_are_not():
    plays = [text(i) for i in range(6)]
    docs = [Document(f"p{i}", t) for i, t in enumerate(plays)] + [Document("p2_folio", edition(plays[2], 9))]
    labels = related_groups(docs, DedupConfig(), threshold=0.05)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 2]


def test_split_is_disjoint_keeps_groups_together_and_has_both_sides():
    names = [f"doc{i}" for i in range(200)]
    labels = np.arange(200) // 2  # pairs of related documents
    splits = assign_splits(names, labels, SplitConfig(val_fraction=0.2, seed=3))
    assert set(splits) == {"train", "val"}
    assert all(splits[i] == splits[i + 1] for i in range(0, 200, 2))
    assert 0.1 < splits.count("val") / 200 < 0.3


def test_split_is_stable_when_documents_are_added():
    names = [f"doc{i}" for i in range(50)]
    before = dict(zip(names, assign_splits(names, np.arange(50))))
    grown = names + [f"new{i}" for i in range(50)]
    after = dict(zip(grown, assign_splits(grown, np.arange(100))))
    assert all(after[n] == before[n] for n in names)
    moved = assign_splits([f"/elsewhere/{n}" for n in names], np.arange(50))  # folders do not count
    assert moved == [before[n] for n in names]


def test_small_corpora_still_get_a_validation_document():
    splits = assign_splits(["a", "b"], [0, 1], SplitConfig(val_fraction=0.01))
    assert sorted(splits) == ["train", "val"]
    with pytest.raises(ValueError, match="at least two unrelated documents"):
        assign_splits(["a", "a_folio"], [0, 0])
