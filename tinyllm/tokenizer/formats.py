"""Tokenizer files: our own JSON, Hugging Face `tokenizer.json`, and GPT-2's `vocab.json` + `merges.txt`.

All three store tokens as text using GPT-2's byte-to-unicode table: each of the 256 bytes becomes one
printable character (printable ASCII and Latin-1 stay themselves; the rest, such as the space, map
to characters from U+0100 on, so " the" is stored as "Ġthe"). A loader returns the parts a
BPETokenizer is built from: `vocab` (id -> bytes), `merges` (ranked (left id, right id) pairs),
`pattern` and `special_tokens` (text -> id). Every file is written atomically.
"""
import json
import os
import tempfile
from pathlib import Path

from .patterns import GPT2_PATTERN

FORMAT_NAME, FORMAT_VERSION = "tinyllm-bpe", 1


def _bytes_to_unicode():
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR = _bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def token_to_text(token: bytes) -> str:
    return "".join(BYTE_TO_CHAR[b] for b in token)


def text_to_token(text: str, where: str) -> bytes:
    try:
        return bytes(CHAR_TO_BYTE[c] for c in text)
    except KeyError as err:
        raise ValueError(f"{where}: token {text!r} has character {err.args[0]!r}, which is not in the byte-level "
                         "alphabet (is this a byte-level BPE tokenizer?)") from None


def write_atomic(path, text):
    """Write `text` to `path` through a temporary file in the same folder and os.replace, so a reader
    never sees half a file and a crash never leaves one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _read_json(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a JSON file ({err})") from None


def _parts(vocab_text, merges_text, pattern, special_tokens, where):
    """Turn a vocab {token text: id} and merges [(left text, right text)] into ids and bytes."""
    vocab = {i: text_to_token(t, where) for t, i in vocab_text.items()}
    try:
        merges = [(vocab_text[a], vocab_text[b]) for a, b in merges_text]
    except KeyError as err:
        raise ValueError(f"{where}: merge uses {err.args[0]!r}, which is not in the vocabulary") from None
    return dict(vocab=vocab, merges=merges, pattern=pattern, special_tokens=dict(special_tokens))


def _split_merge(line, where):
    parts = line.split(" ") if isinstance(line, str) else list(line)
    if len(parts) != 2:
        raise ValueError(f"{where}: bad merge {line!r} (expected two tokens)")
    return parts


# --- our own JSON ---

def save_tinyllm(tok, path):
    doc = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "pattern": tok.pattern,
        "special_tokens": tok.special_tokens,
        "vocab": {token_to_text(b): i for i, b in sorted(tok.vocab.items())},
        "merges": [[token_to_text(tok.vocab[a]), token_to_text(tok.vocab[b])] for a, b in tok.merges],
    }
    write_atomic(path, json.dumps(doc, ensure_ascii=False, indent=1) + "\n")


def _load_tinyllm(doc, where):
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"{where}: tinyllm tokenizer version {doc.get('version')!r} is not supported "
                         f"(this tinyllm reads version {FORMAT_VERSION})")
    merges = [_split_merge(m, where) for m in doc["merges"]]
    return _parts(doc["vocab"], merges, doc["pattern"], doc["special_tokens"], where)


# --- Hugging Face tokenizer.json (byte-level BPE) ---

def save_hf(tok, path):
    """A tokenizer.json that Hugging Face `tokenizers` and `transformers` load: the pattern as a Split
    pre-tokenizer, then ByteLevel (without its own regex), a BPE model, and our special tokens as added
    tokens."""
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for s, i in sorted(tok.special_tokens.items(), key=lambda x: x[1])]
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": tok.pattern}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {token_to_text(b): i for i, b in sorted(tok.vocab.items())},
                  "merges": [f"{token_to_text(tok.vocab[a])} {token_to_text(tok.vocab[b])}" for a, b in tok.merges]},
    }
    write_atomic(path, json.dumps(doc, ensure_ascii=False, indent=1) + "\n")


def _hf_pattern(pre, where):
    """The split regex of a byte-level pre-tokenizer: ByteLevel alone (GPT-2's regex), or a Split by a
    regex followed by ByteLevel without its regex."""
    def unsupported(what):
        return ValueError(f"{where}: {what} is not supported (tinyllm reads byte-level BPE tokenizers)")

    steps = pre.get("pretokenizers", []) if pre and pre.get("type") == "Sequence" else [pre]
    pattern = None
    for step in steps:
        kind = step and step.get("type")
        if kind == "ByteLevel":
            if step.get("add_prefix_space"):
                raise unsupported("ByteLevel with add_prefix_space")
            if step.get("use_regex", True):
                pattern = pattern or GPT2_PATTERN
        elif kind == "Split" and "Regex" in step.get("pattern", {}) and step.get("behavior") == "Isolated" \
                and not step.get("invert"):
            pattern = step["pattern"]["Regex"]
        else:
            raise unsupported(f"pre-tokenizer {kind!r}")
    if pattern is None:
        raise unsupported("a pre-tokenizer without a split pattern")
    return pattern


def _load_hf(doc, where):
    model = doc["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"{where}: model type {model.get('type')!r} is not BPE")
    for key in ("continuing_subword_prefix", "end_of_word_suffix", "dropout", "byte_fallback", "ignore_merges"):
        if model.get(key):
            raise ValueError(f"{where}: BPE option {key}={model[key]!r} is not supported")
    if doc.get("normalizer"):
        raise ValueError(f"{where}: normalizer {doc['normalizer'].get('type')!r} is not supported")
    pattern = _hf_pattern(doc.get("pre_tokenizer"), where)
    specials = {t["content"]: t["id"] for t in doc.get("added_tokens", [])}
    vocab_text = {t: i for t, i in model["vocab"].items() if t not in specials}
    merges = [_split_merge(m, where) for m in model["merges"]]
    return _parts(vocab_text, merges, pattern, specials, where)


def load_file(path):
    """Read our JSON or a Hugging Face tokenizer.json (told apart by their contents)."""
    doc = _read_json(path)
    if isinstance(doc, dict) and doc.get("format") == FORMAT_NAME:
        return _load_tinyllm(doc, str(path))
    if isinstance(doc, dict) and isinstance(doc.get("model"), dict):
        return _load_hf(doc, str(path))
    raise ValueError(f"{path}: neither a tinyllm tokenizer nor a Hugging Face tokenizer.json")


# --- GPT-2 vocab.json + merges.txt ---

def save_gpt2(tok, folder):
    """Write folder/vocab.json and folder/merges.txt. Special tokens go into vocab.json as they are."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token_to_text(b): i for i, b in sorted(tok.vocab.items())}
    vocab.update(tok.special_tokens)
    write_atomic(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False) + "\n")
    lines = [f"{token_to_text(tok.vocab[a])} {token_to_text(tok.vocab[b])}" for a, b in tok.merges]
    write_atomic(folder / "merges.txt", "#version: 0.2\n" + "".join(line + "\n" for line in lines))


def load_gpt2(vocab_json, merges_txt, pattern=GPT2_PATTERN, special_tokens=None):
    """Read GPT-2 style files. Without `special_tokens`, a vocab entry that is neither one byte nor made
    by a merge is taken to be a special token (that is how GPT-2's <|endoftext|> appears)."""
    vocab_text = _read_json(vocab_json)
    merges_txt = Path(merges_txt)
    if not merges_txt.is_file():
        raise FileNotFoundError(f"{merges_txt}: no such file")
    lines = [line for line in merges_txt.read_text(encoding="utf-8").split("\n")
             if line and not line.startswith("#version")]
    merges = [_split_merge(line, str(merges_txt)) for line in lines]
    if special_tokens is None:
        made = {a + b for a, b in merges}
        special_tokens = [t for t in vocab_text if t not in made and len(t) != 1]
    unknown = [t for t in special_tokens if t not in vocab_text]
    if unknown:
        raise ValueError(f"{vocab_json}: special tokens {unknown} are not in the vocabulary")
    specials = {t: vocab_text[t] for t in special_tokens}
    vocab_text = {t: i for t, i in vocab_text.items() if t not in specials}
    return _parts(vocab_text, merges, pattern, specials, str(vocab_json))
