"""Train/validation split by document, keeping related documents together.

A document goes wholly to one side. Related documents (two editions of one play) are grouped first:
documents whose word-shingle Jaccard is at least `related_threshold` are linked, and a group is the
transitive closure of the links. On Shakespeare a play and its First Folio edition score 0.12-0.19,
unrelated texts below 0.01, so the default 0.05 separates them cleanly.

Each group's side is decided by a seeded hash of its name (the smallest file name in it, without
the folder, so the split does not depend on where the corpus lies on disk), not by a random draw over
the whole list, so adding documents to the corpus never moves an existing one (unless it joins that
document's group and gives the group a new, smaller name).
"""
import dataclasses
import hashlib
import pathlib

from .similarity import Shingler, connected_components, normalise_words


@dataclasses.dataclass
class SplitConfig:
    val_fraction: float = 0.1
    related_threshold: float = 0.05
    seed: int = 0


def related_groups(documents, dedup_config, threshold):
    """Label each document with the index of the first document of its related group."""
    shingler = Shingler(dedup_config.shingle_size)
    sets = [shingler(normalise_words(doc.text)) for doc in documents]
    # one row per band: at such a low threshold a pair must be a candidate if it shares any hash
    pairs, _ = dedup_config.pairs(sets, threshold=threshold, bands=dedup_config.num_perm)
    return connected_components(len(documents), pairs)


def group_fraction(name, seed):
    """A number in [0, 1) that depends only on the group's name and the seed."""
    digest = hashlib.blake2b(f"{seed}\0{name}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def assign_splits(names, labels, config=None):
    """Return "train" or "val" for each document, given its group label.

    A group goes to validation when its hash fraction is below `val_fraction`. So that both sides are
    never empty, when no group (or every group) lands in validation, the group with the smallest (or
    largest) fraction is moved."""
    config = config or SplitConfig()
    groups = {}
    for name, label in zip(names, labels):
        groups.setdefault(label, []).append(name)
    if len(groups) < 2:
        raise ValueError(f"cannot split {len(names)} document(s) forming {len(groups)} related group(s) "
                         f"into train and validation: give at least two unrelated documents")
    fraction = {label: group_fraction(min(pathlib.PurePath(m).name for m in members), config.seed)
                for label, members in groups.items()}
    val = {label for label, f in fraction.items() if f < config.val_fraction}
    if not val:
        val = {min(fraction, key=fraction.get)}
    if len(val) == len(groups):
        val.remove(max(fraction, key=fraction.get))
    return ["val" if label in val else "train" for label in labels]
