"""BPETokenizer: training worked out by hand, round trips, special tokens, determinism, the C++
pre-tokenizer against the `regex` package, long inputs, and error messages."""
import random
import time
from pathlib import Path

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm import _C
from tinyllm.tokenizer import CL100K_PATTERN, GPT2_PATTERN, BPETokenizer
from tokenizer_corpus import make_text

EOT = "<|endoftext|>"


@pytest.fixture(scope="module", params=["gpt2", "cl100k", "custom"])
def tok(request):
    pattern = {"gpt2": GPT2_PATTERN, "cl100k": CL100K_PATTERN, "custom": r"\p{L}+|\p{N}|\s+|[^\s\p{L}\p{N}]+"}
    return BPETokenizer.train([make_text(0, 5000)], 600, pattern=pattern[request.param], special_tokens=[EOT])


def test_merges_worked_out_by_hand():
    # "aaabdaaabac" is one piece. Pair counts: aa 4, ab 2, rest 1 -> merge aa=256: "Z ab d Z ab ac".
    # Then ab and (256, a) both occur twice; the tie goes to the smaller pair (97, 98): ab=257.
    # Then (256, 257) occurs twice: 258. Left: X d X a c, all pairs once; smallest is (97, 99): ac=259.
    tok = BPETokenizer.train(["aaabdaaabac"], 260)
    assert tok.merges == [(97, 97), (97, 98), (256, 257), (97, 99)]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 259]
    assert tok.id_to_token(258) == b"aaab"


def test_pieces_are_never_merged_across():
    # " a" is frequent, but "a a" spans two GPT-2 pieces ("a", " a"), so no token holds "a a".
    tok = BPETokenizer.train(["a a a a a a"], 300)
    assert tok.merges == [(32, 97)]
    assert tok.encode("a a a") == [97, 256, 256]


def test_min_frequency_stops_training():
    # Pieces "ab", " ab" x2, " cd". ab (3) merges, then (" ", ab) (2); " c" and "cd" occur once: stop.
    tok = BPETokenizer.train(["ab ab ab cd"], 300, min_frequency=2)
    assert [tok.vocab[256 + i] for i in range(len(tok.merges))] == [b"ab", b" ab"]


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_round_trip_any_unicode(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")


@pytest.mark.parametrize("text", ["", " ", "\r\n\r\n", " " * 50 + "x", "12345678901234", "👍🏽 e\u0301 東京",
                                  "don't DON'T", "\t\n \u3000x", "a" * 5000])
def test_round_trip_awkward_strings(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_invalid_utf8_decodes_with_replacement(tok):
    ids = tok.encode("é")  # two bytes, c3 a9, maybe one token
    first_byte = [tok.token_to_id(b"\xc3")]
    assert tok.decode_bytes(first_byte) == b"\xc3"
    assert tok.decode(first_byte) == "\ufffd"
    assert tok.decode(ids) == "é"


def test_special_tokens_only_when_allowed(tok):
    eot = tok.token_to_id(EOT)
    assert eot == tok.vocab_size - 1
    text = f"hello{EOT}world"
    assert tok.encode(text, allowed_special="all") == tok.encode("hello") + [eot] + tok.encode("world")
    assert tok.encode(text, allowed_special=[EOT]) == tok.encode(text, allowed_special="all")
    plain = tok.encode(text)
    assert eot not in plain and tok.decode(plain) == text
    assert tok.decode(tok.encode(text, allowed_special="all")) == text
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode(text, allowed_special=["<|nope|>"])


def test_special_tokens_are_not_learned_across():
    corpus = [f"a{EOT}b{EOT}" * 200]
    tok = BPETokenizer.train(corpus, 400, special_tokens=[EOT])
    assert not any(b"|" in t and len(t) > 1 for t in tok.vocab.values())
    without = BPETokenizer.train(corpus, 400)  # undeclared, the special text is just frequent text
    assert any(b"endoftext" in t for t in without.vocab.values())


def test_encode_batch_matches_encode(tok):
    texts = [make_text(s, 200) for s in range(8)] + ["", "x"]
    expected = [tok.encode(t) for t in texts]
    assert tok.encode_batch(texts, num_threads=2) == expected
    assert tok.encode_batch(texts, num_threads=1) == expected
    assert tok.encode_batch([f"a{EOT}"], allowed_special="all") == [tok.encode("a") + [tok.token_to_id(EOT)]]


def test_training_is_deterministic():
    lines = make_text(1, 4000).split("\n")
    a = BPETokenizer.train(["\n".join(lines)], 500)
    b = BPETokenizer.train(["\n".join(lines)], 500)
    assert a.merges == b.merges and len(a.merges) == 244
    shuffled = lines[:]  # the same texts in another order: same counts, so the same merges
    random.Random(0).shuffle(shuffled)
    assert BPETokenizer.train(lines, 500).merges == BPETokenizer.train(shuffled, 500).merges


def test_train_from_files(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(make_text(0, 500), encoding="utf-8")
    assert BPETokenizer.train([path], 300).merges == BPETokenizer.train([path.read_text(encoding="utf-8")], 300).merges


@pytest.mark.parametrize("pattern_id, pattern", [(1, GPT2_PATTERN), (2, CL100K_PATTERN)])
@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cn")))
       | st.text(alphabet=list("aZ 'sStTrReElLvVdDmM\r\n\t1٣.!ſ\u3000\u00a0é😀\u0301")))
def test_cpp_split_equals_regex(pattern_id, pattern, text):
    """Our C++ splitter matches the regex package on any text of characters assigned in Python's
    Unicode database. Characters assigned only in newer Unicode versions are left out: their letter
    and number classes come from the Unicode tables of whichever regex release is installed, and
    ours were generated from one release (see csrc/bpe_unicode.h)."""
    assert _C.bpe_split(pattern_id, text) == regex.findall(pattern, text)


def test_long_inputs_take_linear_time(tok):
    start = time.perf_counter()
    for text in (" " * 1_000_000, "a" * 1_000_000, "7" * 1_000_000):
        assert tok.decode(tok.encode(text)) == text
    assert time.perf_counter() - start < 5


def test_vocab_lookups(tok):
    assert tok.token_to_id(b"a") is not None and tok.id_to_token(tok.token_to_id(b"a")) == b"a"
    assert tok.token_to_id("a") == tok.token_to_id(b"a")
    assert tok.token_to_id(b"not a token at all") is None
    assert tok.id_to_token(tok.vocab_size) is None
    with pytest.raises(ValueError, match="unknown token id 99999"):
        tok.decode([1, 99999])


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        BPETokenizer.train([tmp_path / "missing.txt"], 300)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("héllo".encode("utf-8") + b" caf\xe9")
    with pytest.raises(ValueError, match=r"latin1.txt: invalid UTF-8 at byte offset 10 \(byte 0xe9\)"):
        BPETokenizer.train([bad], 300)
    with pytest.raises(ValueError, match="at least 256 .* \\+ 2 special tokens = 258"):
        BPETokenizer.train(["abc"], 257, special_tokens=["<a>", "<b>"])
    with pytest.raises(ValueError, match="corpus is empty"):
        BPETokenizer.train(["", EOT], 300, special_tokens=[EOT])
    with pytest.raises(ValueError, match="invalid pre-tokenization pattern"):
        BPETokenizer.train(["abc"], 300, pattern="(")
    with pytest.raises(FileNotFoundError):
        BPETokenizer.from_file(Path(tmp_path / "none.json"))
