"""The whole chain, reusing what is up to date:

    corpus -> clean -> group related documents -> dedup -> split -> tokenizer -> shards

Related documents are grouped on their whole text, before de-duplication removes the paragraphs
they share, and each group goes to one side of the split.

Everything lands in one output folder:

    documents.jsonl      the cleaned, de-duplicated documents, one JSON object a line:
                         {"name", "split", "group", "text"}
    tokenizer.json       the BPE tokenizer, trained on the training documents only
    train_000.bin, ...   token shards (see shards.py), each document followed by <|endoftext|>
    val_000.bin, ...
    meta.json            counts, reports, timings, the tokenizer's hash, the command that made it all,
                         and each stage's *key*

A stage's key is a hash of everything its output depends on (input files' names, sizes and
modification times, the settings, the previous stage's output). A second run recomputes a stage only
when its key changed and otherwise reuses its files, so rerunning after changing only --vocab-size
retrains the tokenizer and re-shards, but does not clean or de-duplicate again.
"""
import dataclasses
import hashlib
import itertools
import json
import pathlib
import sys
import time

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_path, atomic_write_text
from .clean import CleanReport, clean_documents
from .dedup import DedupConfig, deduplicate
from .shards import ShardWriter, read_shard, token_dtype
from .sources import DEFAULT_CORPUS, Document, builtin_corpus_files, read_documents, resolve_paths
from .split import SplitConfig, assign_splits, related_groups

PIPELINE_VERSION = 1  # bump when a stage's output format or meaning changes, to invalidate caches
EOT = "<|endoftext|>"
SPLITS = ("train", "val")


@dataclasses.dataclass
class PrepareConfig:
    out: pathlib.Path
    corpus: str = DEFAULT_CORPUS  # a built-in corpus, used when `inputs` is empty
    inputs: tuple = ()            # files, folders, globs
    vocab_size: int = 4096
    min_doc_words: int = 20
    dedup: DedupConfig = dataclasses.field(default_factory=DedupConfig)
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    shard_tokens: int = 100_000_000  # a new shard starts when a document would take one past this
    batch_docs: int = 64             # documents tokenized per call to the threaded encoder
    progress: bool = True


def run_prepare(config, command=None):
    """Run the chain; return the meta dict also written to out/meta.json."""
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    old = _read_meta(out).get("stages", {})
    meta = {"version": PIPELINE_VERSION, "command": command or " ".join(sys.argv), "times": {},
            "stages": {}, "reused": []}

    def stage(name, key, outputs, compute):
        """Reuse the previous run's stage `name` if its key matches and its outputs exist, else
        compute it; then save meta.json, so that it always describes the files beside it."""
        t = time.perf_counter()
        if old.get(name, {}).get("key") == key and all((out / f).exists() for f in outputs(old[name])):
            meta["stages"][name] = old[name]
            meta["reused"].append(name)
        else:
            meta["stages"][name] = {"key": key, **compute()}
        meta["times"][name] = time.perf_counter() - t
        _save_meta(out, meta)
        return meta["stages"][name]

    t = time.perf_counter()
    files = builtin_corpus_files(config.corpus) if not config.inputs else resolve_paths(config.inputs)
    meta["source"] = {"corpus": None if config.inputs else config.corpus, "files": len(files)}
    meta["times"]["fetch"] = time.perf_counter() - t

    documents = stage("documents", _key(PIPELINE_VERSION, [_fingerprint(f) for f in files],
                                        config.min_doc_words, dataclasses.asdict(config.dedup),
                                        dataclasses.asdict(config.split)),
                      lambda _: ["documents.jsonl"],
                      lambda: _documents_stage(files, config, out, meta["times"]))
    meta["documents"] = _document_table(out)
    tokenizer = stage("tokenizer", _key(documents["key"], config.vocab_size, EOT),
                      lambda _: ["tokenizer.json"], lambda: _train_tokenizer(out, config))
    stage("shards", _key(tokenizer["key"], tokenizer["sha256"], config.shard_tokens),
          lambda previous: previous["files"], lambda: _write_shards(out, config))
    return meta


# ---- stage 1: documents --------------------------------------------------------------------------

def _documents_stage(files, config, out, times):
    """Read, clean, group related documents, de-duplicate and split; write documents.jsonl; return
    the stage's report."""
    t = time.perf_counter()
    clean_report = CleanReport()
    raw = read_documents(tqdm(files, desc="read+clean", unit="file", disable=not config.progress))
    docs = list(clean_documents(raw, config.min_doc_words, clean_report))
    if not docs:
        raise ValueError(f"the corpus is empty after cleaning ({clean_report.docs_in} documents read, "
                         f"all empty or under {config.min_doc_words} words)")
    times["read+clean"] = time.perf_counter() - t

    t = time.perf_counter()
    _say(config, "grouping related documents ...")  # on whole documents, before dedup thins them
    labels = related_groups(docs, config.dedup, config.split.related_threshold)
    group_of = {doc.name: docs[label].name for doc, label in zip(docs, labels)}
    times["group"] = time.perf_counter() - t

    t = time.perf_counter()
    _say(config, f"de-duplicating {len(docs)} documents ({config.dedup.method}) ...")
    docs, dedup_report = deduplicate(docs, config.dedup)
    times["dedup"] = time.perf_counter() - t

    groups = [group_of[doc.name] for doc in docs]
    splits = assign_splits([doc.name for doc in docs], groups, config.split)
    with atomic_path(out / "documents.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as f:
        for doc, split, group in zip(docs, splits, groups):
            f.write(json.dumps({"name": doc.name, "split": split, "group": group, "text": doc.text},
                               ensure_ascii=False) + "\n")
    return {"clean": dataclasses.asdict(clean_report), "dedup": dataclasses.asdict(dedup_report)}


def _document_table(out):
    """[{"name", "split", "group", "words"}] for every document of documents.jsonl (no text)."""
    return [{"name": d.name, "split": split, "group": group, "words": len(d.text.split())}
            for d, split, group in _read_documents_jsonl(out)]


def _read_documents_jsonl(out, split=None):
    """Yield (Document, split, group) from out/documents.jsonl, optionally only one split's."""
    with open(out / "documents.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if split is None or record["split"] == split:
                yield Document(record["name"], record["text"]), record["split"], record["group"]


# ---- stage 2: tokenizer -------------------------------------------------------------------------

def _train_tokenizer(out, config):
    from tinyllm.tokenizer import BPETokenizer  # the only stage that needs the compiled module

    texts = (d.text for d, _, _ in _read_documents_jsonl(out, "train"))  # streamed, not a list
    with tqdm(total=config.vocab_size, desc="tokenizer", unit="tok", disable=not config.progress) as bar:
        def progress(done, wanted):
            bar.total = wanted
            bar.update(done - bar.n)
        tok = BPETokenizer.train(texts, config.vocab_size, special_tokens=[EOT], progress=progress)
    tok.save(out / "tokenizer.json")  # the tokenizer writes its files atomically itself
    return {"vocab_size": tok.vocab_size, "eot_id": tok.token_to_id(EOT),
            "sha256": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest()}


# ---- stage 3: shards ----------------------------------------------------------------------------

def _write_shards(out, config):
    """Tokenize each split's documents in batches on all cores and stream them into shards: only a
    batch of documents and its ids are in memory at a time."""
    from tinyllm.tokenizer import BPETokenizer

    tok = BPETokenizer.from_file(out / "tokenizer.json")
    eot, dtype = tok.token_to_id(EOT), token_dtype(tok.vocab_size)
    report = {"dtype": dtype.name, "files": [], "tokens": {}}
    for split in SPLITS:
        texts = (d.text for d, _, _ in _read_documents_jsonl(out, split))
        bar = tqdm(desc=f"shards {split}", unit="doc", disable=not config.progress)
        with bar:
            pieces = _token_pieces(tok, texts, eot, config.batch_docs, bar)
            report["files"] += _write_split(out, split, dtype, pieces, config.shard_tokens)
        report["tokens"][split] = sum(len(read_shard(out / f)) for f in report["files"]
                                      if f.startswith(split + "_"))
    for stale in {p.name for s in SPLITS for p in out.glob(f"{s}_*.bin")} - set(report["files"]):
        (out / stale).unlink()
    return report


def _token_pieces(tok, texts, eot, batch, bar):
    """Yield each text's ids followed by the end-of-text id, encoding `batch` texts at a time with
    the tokenizer's threaded encode_batch."""
    while chunk := list(itertools.islice(texts, batch)):
        for ids in tok.encode_batch(chunk):
            yield np.append(np.asarray(ids, dtype=np.int64), eot)
        bar.update(len(chunk))


def _write_split(out, split, dtype, pieces, shard_tokens):
    """Write pieces (one document's ids each) into split_000.bin, split_001.bin, ...; a new shard
    starts when the next document would take the current one past `shard_tokens`. Returns the names."""
    names = []
    piece = next(pieces, None)
    while piece is not None:
        names.append(f"{split}_{len(names):03d}.bin")
        with ShardWriter(out / names[-1], dtype) as writer:
            while piece is not None and (writer.count == 0 or writer.count + len(piece) <= shard_tokens):
                writer.write(piece)
                piece = next(pieces, None)
    return names


def split_shards(out, split):
    """The shard paths of one split in a prepared folder, in order, each checked readable."""
    meta = _read_meta(pathlib.Path(out))
    if not meta:
        raise FileNotFoundError(f"{out}: no meta.json (run `tinyllm data prepare --out {out}` first)")
    paths = [pathlib.Path(out) / f for f in meta["stages"]["shards"]["files"] if f.startswith(split + "_")]
    for path in paths:
        read_shard(path)
    return paths


# ---- helpers ------------------------------------------------------------------------------------

def _read_meta(out):
    """The previous run's meta.json, or {} when there is none (or it is unreadable)."""
    try:
        return json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _save_meta(out, meta):
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=1) + "\n")


def _key(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fingerprint(path):
    stat = pathlib.Path(path).stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _say(config, message):
    if config.progress:
        print(message, file=sys.stderr)
