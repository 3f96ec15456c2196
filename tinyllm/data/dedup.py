"""De-duplication of documents and paragraphs, exact and near.

Four passes over the cleaned corpus, in order; each keeps the first copy (in corpus order) and removes
the later ones:
1. exact duplicate documents: the same text once whitespace is collapsed;
2. near-duplicate documents: word-shingle Jaccard >= threshold (MinHash-LSH, or exact all-pairs);
3. exact duplicate paragraphs;
4. near-duplicate paragraphs.
Paragraphs are the blocks separated by a blank line. A paragraph of fewer than
`min_paragraph_words` words (separated by whitespace) is never removed: short repeated lines such as "[Exit.]" are
the structure of a play, not duplication. Near duplicates are grouped transitively (if A ~ B and
B ~ C, only A stays).
"""
import dataclasses
import hashlib

from .similarity import Shingler, connected_components, normalise_words, similar_pairs
from .sources import Document


@dataclasses.dataclass
class DedupConfig:
    shingle_size: int = 5
    threshold: float = 0.8
    num_perm: int = 128
    bands: int = 32
    method: str = "lsh"  # or "exact": all-pairs Jaccard, for small corpora
    min_paragraph_words: int = 10
    seed: int = 0

    def pairs(self, shingle_sets, threshold=None, bands=None):
        """The similar pairs among `shingle_sets` under this configuration (see similarity.py)."""
        return similar_pairs(shingle_sets, self.threshold if threshold is None else threshold,
                             self.method, self.num_perm, bands or self.bands, self.seed)


@dataclasses.dataclass
class DedupReport:
    docs_in: int = 0
    docs_out: int = 0
    exact_docs: list = dataclasses.field(default_factory=list)   # (removed name, kept name)
    near_docs: list = dataclasses.field(default_factory=list)    # (first, second, Jaccard)
    paragraphs_in: int = 0
    paragraphs_out: int = 0
    exact_repeats: int = 0        # paragraphs that repeat an earlier one, of any length
    exact_removed: int = 0        # ... of which long enough to be removed
    near_pairs: list = dataclasses.field(default_factory=list)   # NearPair, one per similar pair
    near_removed: int = 0
    emptied: list = dataclasses.field(default_factory=list)      # documents left with no paragraph


@dataclasses.dataclass
class NearPair:
    first_doc: str  # the earlier paragraph in corpus order (the later one is removed)
    first_text: str
    second_doc: str
    second_text: str
    jaccard: float


def exact_key(text):
    """A 16-byte hash of the text with all runs of whitespace collapsed to one space."""
    return hashlib.blake2b(" ".join(text.split()).encode("utf-8"), digest_size=16).digest()


def deduplicate(documents, config=None):
    """Return (kept documents, DedupReport). Documents are (name, text) `Document`s, cleaned."""
    config = config or DedupConfig()
    report = DedupReport(docs_in=len(documents))
    shingler = Shingler(config.shingle_size)
    docs = _drop_exact_documents(documents, report)
    docs = _drop_near_documents(docs, shingler, config, report)
    docs = _drop_paragraphs(docs, shingler, config, report)
    report.docs_out = len(docs)
    return docs, report


def _drop_exact_documents(docs, report):
    first = {}
    kept = []
    for doc in docs:
        key = exact_key(doc.text)
        if key in first:
            report.exact_docs.append((doc.name, first[key]))
        else:
            first[key] = doc.name
            kept.append(doc)
    return kept


def _drop_near_documents(docs, shingler, config, report):
    sets = [shingler(normalise_words(doc.text)) for doc in docs]
    pairs, jaccard = config.pairs(sets)
    labels = connected_components(len(docs), pairs)
    report.near_docs += [(docs[i].name, docs[j].name, float(s)) for (i, j), s in zip(pairs, jaccard)]
    return [doc for i, doc in enumerate(docs) if labels[i] == i]


def _drop_paragraphs(docs, shingler, config, report):
    """Passes 3 and 4: remove repeated long paragraphs, then rebuild each document's text."""
    paragraphs = [(d, p) for d, doc in enumerate(docs) for p in doc.text.split("\n\n")]
    report.paragraphs_in = len(paragraphs)
    removed = set()
    seen = set()
    long_ones, long_sets = [], []
    for index, (_, text) in enumerate(paragraphs):
        key = exact_key(text)
        repeat = key in seen
        seen.add(key)
        report.exact_repeats += repeat
        if len(text.split()) < config.min_paragraph_words:
            continue
        if repeat:
            removed.add(index)
        else:
            long_ones.append(index)
            long_sets.append(shingler(normalise_words(text)))
    report.exact_removed = len(removed)

    pairs, jaccard = config.pairs(long_sets)
    labels = connected_components(len(long_ones), pairs)
    near = {long_ones[i] for i in range(len(long_ones)) if labels[i] != i}
    report.near_removed = len(near)
    for (i, j), similarity in zip(pairs, jaccard):
        (di, ti), (dj, tj) = paragraphs[long_ones[i]], paragraphs[long_ones[j]]
        report.near_pairs.append(NearPair(docs[di].name, ti, docs[dj].name, tj, float(similarity)))
    removed |= near
    report.paragraphs_out = len(paragraphs) - len(removed)

    kept = [[] for _ in docs]
    for index, (d, text) in enumerate(paragraphs):
        if index not in removed:
            kept[d].append(text)
    report.emptied += [doc.name for doc, parts in zip(docs, kept) if not parts]
    return [Document(doc.name, "\n\n".join(parts)) for doc, parts in zip(docs, kept) if parts]
