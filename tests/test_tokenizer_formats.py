"""Tokenizer files and the ecosystem: save/load in each format, and ids identical to Hugging Face
`tokenizers` (trained there and loaded here; trained here and loaded there) and to `tiktoken`, on
held-out text."""
import json

import pytest

from tinyllm.tokenizer import CL100K_PATTERN, GPT2_PATTERN, BPETokenizer
from tokenizer_corpus import make_text

tokenizers = pytest.importorskip("tokenizers")
tiktoken = pytest.importorskip("tiktoken")

EOT, CHAT = "<|endoftext|>", "<|im_start|>"
HELD_OUT = make_text(12345, 3000) + f" don't{EOT} x {CHAT}user\n  ١٢٣٤٥ 1234567 \r\n\r\n  \t東京😀  end"


@pytest.fixture(scope="module", params=[GPT2_PATTERN, CL100K_PATTERN], ids=["gpt2", "cl100k"])
def ours(request):
    return BPETokenizer.train([make_text(0, 8000)], 1000, pattern=request.param, special_tokens=[EOT, CHAT])


def same_tokenizer(a, b):
    return (a.vocab, a.merges, a.pattern, a.special_tokens) == (b.vocab, b.merges, b.pattern, b.special_tokens)


def test_tinyllm_format_round_trips_exactly(ours, tmp_path):
    ours.save(tmp_path / "tok.json")
    back = BPETokenizer.from_file(tmp_path / "tok.json")
    assert same_tokenizer(back, ours)
    back.save(tmp_path / "again.json")
    assert (tmp_path / "tok.json").read_bytes() == (tmp_path / "again.json").read_bytes()
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file


def test_hf_and_gpt2_formats_round_trip(ours, tmp_path):
    ours.save(tmp_path / "tokenizer.json", format="hf")
    assert same_tokenizer(BPETokenizer.from_file(tmp_path / "tokenizer.json"), ours)
    ours.save(tmp_path / "gpt2", format="gpt2")
    back = BPETokenizer.from_gpt2_files(tmp_path / "gpt2" / "vocab.json", tmp_path / "gpt2" / "merges.txt",
                                        pattern=ours.pattern)
    assert same_tokenizer(back, ours)  # the specials are found again: tokens no merge makes


def test_trained_here_loaded_in_hf(ours, tmp_path):
    ours.save(tmp_path / "tokenizer.json", format="hf")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ids = ours.encode(HELD_OUT, allowed_special="all")
    assert hf.encode(HELD_OUT).ids == ids
    assert hf.decode(ids, skip_special_tokens=False) == HELD_OUT


def test_gpt2_files_loaded_in_hf(tmp_path):
    ours = BPETokenizer.train([make_text(0, 8000)], 800, special_tokens=[EOT])
    ours.save(tmp_path, format="gpt2")
    model = tokenizers.models.BPE.from_file(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    hf = tokenizers.Tokenizer(model)
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert hf.encode(HELD_OUT).ids == ours.encode(HELD_OUT)


@pytest.mark.parametrize("use_split", [False, True], ids=["bytelevel-regex", "split-cl100k"])
def test_trained_in_hf_loaded_here(tmp_path, use_split):
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
    hf = tokenizers.Tokenizer(models.BPE())
    if use_split:
        hf.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(CL100K_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator([make_text(0, 8000)], trainer)
    hf.save(str(tmp_path / "tokenizer.json"))
    ours = BPETokenizer.from_file(tmp_path / "tokenizer.json")
    assert ours.pattern == (CL100K_PATTERN if use_split else GPT2_PATTERN)
    assert ours.vocab_size == hf.get_vocab_size() and ours.token_to_id(EOT) == 0
    text = HELD_OUT.replace(CHAT, "")
    ids = hf.encode(text).ids
    assert ours.encode(text, allowed_special="all") == ids
    assert ours.decode(ids) == text


def test_same_ids_as_tiktoken(ours):
    enc = tiktoken.Encoding(name="tinyllm-test", pat_str=ours.pattern,
                            mergeable_ranks={b: i for i, b in ours.vocab.items()}, special_tokens=ours.special_tokens)
    assert enc.encode_ordinary(HELD_OUT) == ours.encode(HELD_OUT)
    assert enc.encode(HELD_OUT, allowed_special="all") == ours.encode(HELD_OUT, allowed_special="all")
    long_runs = " " * 3000 + "x" + "a" * 3000 + "9" * 3000 + "\n" * 3000
    assert enc.encode_ordinary(long_runs) == ours.encode(long_runs)


def test_format_errors(ours, tmp_path):
    with pytest.raises(ValueError, match="unknown tokenizer format 'spm'"):
        ours.save(tmp_path / "x", format="spm")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="neither a tinyllm tokenizer nor a Hugging Face"):
        BPETokenizer.from_file(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not a JSON file"):
        BPETokenizer.from_file(tmp_path / "broken.json")
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        BPETokenizer.from_gpt2_files(tmp_path / "other.json", tmp_path / "merges.txt")
