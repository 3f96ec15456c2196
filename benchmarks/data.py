"""The data pipeline's bar, measured.

1. `tinyllm data prepare` on the default corpus from scratch (corpus cached, output folder empty):
   each stage's time, and the total (the bar: under 3 minutes on the 2-core machine).
2. On `shakespeare-folio`, the paragraph-level near-duplicates (paragraphs of 10+ words, Jaccard of
   5-word shingles >= 0.8) that MinHash-LSH finds against the exact all-pairs computation on the
   same paragraphs: pair counts, precision and recall (the bar: >= 0.9 each), for a few seeds. For
   comparison, a row that verifies LSH candidates by their signature estimate instead of their true
   Jaccard (what the pipeline does).
3. The folio split: each Folio text's modern edition, found independently as the modern text with
   the highest exact document Jaccard, must be on the same side (the bar: no play split).

    PYTHONPATH=. python benchmarks/data.py [--seeds 3] [--out benchmarks/results/data.json]

Times are wall-clock on a shared machine and noisy; the ratios that matter here are P and R.
"""
import argparse
import json
import pathlib
import tempfile
import time

import numpy as np

from tinyllm.data.clean import clean_documents
from tinyllm.data.dedup import DedupConfig
from tinyllm.data.prepare import PrepareConfig, run_prepare
from tinyllm.data.similarity import (Shingler, exact_pairs, lsh_candidates, minhash_signatures,
                                     normalise_words, similar_pairs)
from tinyllm.data.sources import builtin_corpus_files, read_documents


def bench_prepare(corpus):
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        meta = run_prepare(PrepareConfig(out=pathlib.Path(out), corpus=corpus, progress=False))
        total = time.perf_counter() - t
    return meta, {"corpus": corpus, "total_s": total, "stages_s": meta["times"],
                  "tokens": meta["stages"]["shards"]["tokens"]}


def long_paragraph_sets(docs, config):
    """Shingle sets of the paragraphs the dedup considers (config.min_paragraph_words+ words)."""
    shingler = Shingler(config.shingle_size)
    paragraphs = [p for d in docs for p in d.text.split("\n\n") if len(p.split()) >= config.min_paragraph_words]
    return [shingler(normalise_words(p)) for p in paragraphs]


def agreement(found, truth):
    found, truth = set(map(tuple, found.tolist())), set(map(tuple, truth.tolist()))
    hits = len(found & truth)
    return {"pairs": len(found), "precision": hits / max(len(found), 1), "recall": hits / max(len(truth), 1)}


def bench_lsh(docs, seeds):
    config = DedupConfig()
    sets = long_paragraph_sets(docs, config)
    t = time.perf_counter()
    truth, _ = exact_pairs(sets, config.threshold)
    rows = [{"method": "exact all-pairs", "paragraphs": len(sets), "pairs": len(truth),
             "seconds": time.perf_counter() - t}]
    for seed in range(seeds):
        t = time.perf_counter()
        found, _ = similar_pairs(sets, config.threshold, "lsh", config.num_perm, config.bands, seed)
        rows.append({"method": "minhash-lsh", "seed": seed, "seconds": time.perf_counter() - t,
                     **agreement(found, truth)})
        signatures = minhash_signatures(sets, config.num_perm, seed)
        candidates = lsh_candidates(signatures, config.bands)
        estimate = (signatures[candidates[:, 0]] == signatures[candidates[:, 1]]).mean(axis=1)
        rows.append({"method": "lsh, verified by signature estimate (not used)", "seed": seed,
                     **agreement(candidates[estimate >= config.threshold], truth)})
    return rows


def bench_folio_split(docs, meta):
    """Pair every Folio text with its best-matching modern text and check they share a side."""
    side = {d["name"]: d["split"] for d in meta["documents"]}
    shingler = Shingler(5)
    sets = {d.name: shingler(normalise_words(d.text)) for d in docs}
    modern = [n for n in sets if not n.endswith("_gut_f.txt")]
    rows = []
    for folio in (n for n in sets if n.endswith("_gut_f.txt")):
        jaccard = [len(np.intersect1d(sets[folio], sets[m], assume_unique=True)) for m in modern]
        jaccard = [s / (len(sets[folio]) + len(sets[m]) - s) for s, m in zip(jaccard, modern)]
        best = modern[int(np.argmax(jaccard))]
        rows.append({"folio": folio, "modern": best, "jaccard": max(jaccard),
                     "same_side": side.get(folio) == side.get(best), "split": side.get(folio)})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/data.json")
    args = parser.parse_args()

    _, prepare_row = bench_prepare("shakespeare")
    print(f"prepare shakespeare: {prepare_row['total_s']:.1f}s in all; "
          + ", ".join(f"{k} {v:.1f}s" for k, v in prepare_row["stages_s"].items() if k != "documents")
          + f" (the documents stage, read+clean to split, {prepare_row['stages_s']['documents']:.1f}s)")

    folio_docs = list(clean_documents(read_documents(builtin_corpus_files("shakespeare-folio"))))
    lsh_rows = bench_lsh(folio_docs, args.seeds)
    print(f"\nfolio paragraphs (10+ words): {lsh_rows[0]['paragraphs']:,}; "
          f"exact all-pairs J >= 0.8: {lsh_rows[0]['pairs']} pairs in {lsh_rows[0]['seconds']:.1f}s")
    print(f"{'method':<48} {'seed':>4} {'pairs':>6} {'precision':>9} {'recall':>7}")
    for row in lsh_rows[1:]:
        print(f"{row['method']:<48} {row['seed']:>4} {row['pairs']:>6} {row['precision']:>9.3f} {row['recall']:>7.3f}")

    folio_meta, folio_prepare = bench_prepare("shakespeare-folio")
    split_rows = bench_folio_split(folio_docs, folio_meta)
    apart = [r for r in split_rows if not r["same_side"]]
    low = min(r["jaccard"] for r in split_rows)
    print(f"\nfolio split: {len(split_rows)} Folio texts, each matched to a modern edition (lowest J {low:.3f}); "
          f"{len(apart)} on the other side of the split; "
          f"{sum(r['split'] == 'val' for r in split_rows)} Folio texts in validation")
    for row in apart:
        print(f"  SPLIT APART: {row['folio']} / {row['modern']}")

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"prepare": [prepare_row, folio_prepare], "lsh": lsh_rows,
                               "folio_split": split_rows}, indent=1, default=str) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
