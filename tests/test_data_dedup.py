"""De-duplication: exact and near, documents and paragraphs, minimum paragraph length."""
import numpy as np
import pytest

from tinyllm.data.dedup import DedupConfig, deduplicate
from tinyllm.data.sources import Document

WORDS = np.random.default_rng(0).choice(
    "the a of king queen lord love night day sword crown blood heart fool ghost grave rose".split(), 5000)


def words(start, n):
    """n pseudo-random words; two calls with overlapping ranges share text."""
    return " ".join(WORDS[start:start + n])




@pytest.mark.parametrize("method", ["lsh", "exact"])
def test_near_duplicate_paragraphs_just_above_and_below_threshold(method):
    # 40 words -> 36 shingles; changing the last c words leaves 36 - c shared shingles of 36 + c.
    # c = 4: J = 32/40 = 0.80 (removed at 0.8); c = 5: J = 31/41 = 0.756 (kept)
    above = words(100, 40), words(100, 36) + " zz0 zz1 zz2 zz3"
    below = words(300, 40), words(300, 35) + " yy0 yy1 yy2 yy3 yy4"
    docs = [Document("a", "\n\n".join([above[0], below[0]])), Document("b", "\n\n".join([above[1], below[1]]))]
    kept, report = deduplicate(docs, DedupConfig(method=method))
    assert kept[1].text == below[1]
    assert [(p.first_doc, p.second_doc, round(p.jaccard, 3)) for p in report.near_pairs] == [("a", "b", 0.8)]
    assert (report.paragraphs_in, report.near_removed, report.paragraphs_out) == (4, 1, 3)


def test_short_repeated_paragraphs_are_kept_and_long_exact_repeats_removed():
    long = words(500, 12)
    docs = [Document("a", f"[Exit.]\n\n{long}\n\n{words(600, 30)}"),
            Document("b", f"[Exit.]\n\n{long}\n\n{words(700, 30)}\n\n[Exit.]")]
    kept, report = deduplicate(docs, DedupConfig(min_paragraph_words=10))
    assert kept[1].text == f"[Exit.]\n\n{words(700, 30)}\n\n[Exit.]"
    assert (report.exact_repeats, report.exact_removed) == (3, 1)
    _, report = deduplicate(docs, DedupConfig(min_paragraph_words=13))  # now 12 words is "short"
    assert report.exact_removed == 0


def test_exact_and_near_duplicate_documents_are_dropped_first_copy_kept():
    play = "\n\n".join(words(i, 30) for i in range(1000, 1300, 30))
    docs = [Document("play", play),
            Document("copy", play.replace("\n\n", "\n\n\n")),          # same text, other whitespace
            Document("edit", play.replace(words(1270, 30), words(2000, 30))),  # 9 of 10 paragraphs
            Document("other", words(3000, 200))]
    kept, report = deduplicate(docs)
    assert [d.name for d in kept] == ["play", "other"]
    assert report.exact_docs == [("copy", "play")]
    assert [(a, b) for a, b, _ in report.near_docs] == [("play", "edit")]
    assert report.near_docs[0][2] == pytest.approx(0.8, abs=0.05)


def test_dedup_is_deterministic():
    docs = [Document(str(i), "\n\n".join(words(i * 37 + j * 11, 25) for j in range(8))) for i in range(20)]
    first, second = deduplicate(docs)[0], deduplicate(docs)[0]
    assert [d.text for d in first] == [d.text for d in second]
