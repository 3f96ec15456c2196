"""The whole chain end to end on a small crafted corpus, its reuse of up-to-date stages, and the CLI."""
import json

import numpy as np
import pytest

from tinyllm import cli
from tinyllm.data.loader import TrainLoader
from tinyllm.data.prepare import PrepareConfig, run_prepare, split_shards
from tinyllm.data.shards import read_shard

pytest.importorskip("tinyllm._C", reason="the tokenizer needs the compiled module")
from tinyllm.tokenizer import BPETokenizer  # noqa: E402

VOCAB = np.array([f"w{i}" for i in range(3000)])


def play(seed, paragraphs=12):
    rng = np.random.default_rng(seed)
    return "\n\n".join(" ".join(rng.choice(VOCAB, 30)) for _ in range(paragraphs))


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(8):
        (folder / f"play{i}.txt").write_text(play(i))
    header = "Project Gutenberg stuff\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n"
    (folder / "play0_gutenberg.txt").write_text(header + play(0) + "\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicence")
    edition = play(3).split("\n\n")
    edition[::2] = [play(100 + k, 1) for k in range(len(edition[::2]))]  # half the paragraphs rewritten
    (folder / "play3_folio.txt").write_text("\n\n".join(edition))
    (folder / "tiny.md").write_text("Exeunt.")
    return folder


def prepare(corpus, out, **overrides):
    settings = {"vocab_size": 300, "progress": False, **overrides}
    return run_prepare(PrepareConfig(out=out, inputs=(str(corpus),), **settings), command="test")


def test_prepare_end_to_end(corpus, tmp_path):
    meta = prepare(corpus, tmp_path / "out")
    docs = {d["name"].rsplit("/", 1)[-1]: d for d in meta["documents"]}
    assert "play0_gutenberg.txt" not in docs and "tiny.md" not in docs  # exact duplicate, too short
    assert docs["play3_folio.txt"]["split"] == docs["play3.txt"]["split"]  # related: one side
    assert docs["play3_folio.txt"]["group"] == docs["play3.txt"]["group"]
    dedup = meta["stages"]["documents"]["dedup"]
    assert len(dedup["exact_docs"]) == 1 and dedup["exact_removed"] == 6  # the folio's copied paragraphs
    # the shards hold exactly each document's tokens followed by <|endoftext|>
    tok = BPETokenizer.from_file(tmp_path / "out" / "tokenizer.json")
    eot = tok.token_to_id("<|endoftext|>")
    records = [json.loads(line) for line in open(tmp_path / "out" / "documents.jsonl")]
    for split in ("train", "val"):
        ids = np.concatenate([read_shard(p) for p in split_shards(tmp_path / "out", split)])
        texts = [r["text"] for r in records if r["split"] == split]
        assert ids.tolist() == [i for t in texts for i in tok.encode(t) + [eot]]
        assert meta["stages"]["shards"]["tokens"][split] == len(ids) > 0
    assert next(TrainLoader(split_shards(tmp_path / "out", "train"), 2, 8)).shape == (2, 9)


def test_second_run_reuses_every_stage_and_a_new_vocab_size_only_the_later_ones(corpus, tmp_path):
    prepare(corpus, tmp_path / "out")
    files = sorted((tmp_path / "out").iterdir())
    stamps = [f.stat().st_mtime_ns for f in files if f.name != "meta.json"]
    again = prepare(corpus, tmp_path / "out")
    assert again["reused"] == ["documents", "tokenizer", "shards"]
    assert [f.stat().st_mtime_ns for f in files if f.name != "meta.json"] == stamps
    bigger = prepare(corpus, tmp_path / "out", vocab_size=320)
    assert bigger["reused"] == ["documents"]
    assert bigger["stages"]["tokenizer"]["vocab_size"] == 320
    (tmp_path / "out" / "val_000.bin").unlink()  # a lost output is remade, even with the same key
    assert prepare(corpus, tmp_path / "out", vocab_size=320)["reused"] == ["documents", "tokenizer"]
    assert (tmp_path / "out" / "val_000.bin").exists()


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    with pytest.raises(ValueError, match="the corpus is empty after cleaning"):
        run_prepare(PrepareConfig(out=tmp_path / "out", inputs=(str(tmp_path / "empty.txt"),), progress=False))


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.txt").write_bytes(b"fine\nthen \xff")
    assert cli.main(["data", "prepare", "--input", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "o")]) == 1
    assert "bad.txt: invalid UTF-8 at byte offset 10" in capsys.readouterr().err
    assert cli.main(["data", "prepare", "--input", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_cli_prepare_prints_the_summary(corpus, tmp_path, capsys):
    assert cli.main(["data", "prepare", "--input", str(corpus), "--out", str(tmp_path / "o"),
                     "--vocab-size", "300", "--quiet", "--dedup-method", "exact"]) == 0
    out = capsys.readouterr().out
    assert "dedup paragraphs" in out and "train" in out and "validation:" in out
