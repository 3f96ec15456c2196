"""Byte-level BPE, as in GPT-2 and GPT-4.

Text is UTF-8 bytes; every byte is a token to begin with, so any string can be encoded and nothing
is ever unknown. Training finds the most frequent adjacent pair of tokens in the corpus, makes it a
new token, and repeats until the vocabulary is full; the list of these merges, in order, *is* the
tokenizer. Encoding cuts the text into pieces with a regex (see patterns.py), then in each piece
applies the merges in the order they were learned. Decoding just concatenates each token's bytes.

Special tokens (`<|endoftext|>`, chat-template markers) are whole strings with their own ids. They
are never produced by merges and are only recognised in text passed to `encode` when allowed;
otherwise they are encoded as the ordinary characters they are made of.

The loops are C++ (csrc/bpe_*.cpp, reached as tinyllm._C); this class keeps the vocabulary, the
special tokens and the files.
"""
import re

from . import formats
from .corpus import iter_texts
from .patterns import BUILTIN_IDS, CUSTOM, GPT2_PATTERN, compile_custom, resolve

try:
    from tinyllm import _C
except ImportError as err:  # the extension is optional for the rest of tinyllm, but not for this
    _C, _IMPORT_ERROR = None, err


def _core():
    if _C is None:
        raise ImportError(f"the tokenizer needs the compiled module tinyllm._C (build it with "
                          f"`python setup.py build_ext --inplace`): {_IMPORT_ERROR}")
    return _C


class BPETokenizer:
    """A byte-level BPE tokenizer.

    vocab: {id: bytes} of the ordinary tokens (all 256 single bytes among them).
    merges: [(left id, right id), ...] in rank order; each makes the token left + right.
    pattern: the pre-tokenization regex (default GPT-2's).
    special_tokens: {text: id}, with ids not used by `vocab`.
    """

    def __init__(self, vocab, merges, pattern=GPT2_PATTERN, special_tokens=None):
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        self.pattern = resolve(pattern)
        self.special_tokens = dict(special_tokens or {})
        self._id_of = {b: i for i, b in self.vocab.items()}
        if len(self._id_of) != len(self.vocab):
            raise ValueError("two ids in the vocabulary have the same bytes")
        missing = [b for b in range(256) if bytes([b]) not in self._id_of]
        if missing:
            raise ValueError(f"the vocabulary lacks {len(missing)} of the 256 single bytes (first: 0x{missing[0]:02x})")
        clash = set(self.special_tokens.values()) & set(self.vocab)
        if clash:
            raise ValueError(f"special token ids {sorted(clash)[:5]} are also ordinary token ids")
        triples = []
        for rank, (a, b) in enumerate(self.merges):
            if a not in self.vocab or b not in self.vocab or self.vocab[a] + self.vocab[b] not in self._id_of:
                raise ValueError(f"merge {rank} ({a}, {b}) joins ids that are not in the vocabulary, "
                                 "or makes a token that is not")
            triples.append((a, b, self._id_of[self.vocab[a] + self.vocab[b]]))
        size = max([*self.vocab, *self.special_tokens.values()]) + 1
        self._bytes_of = [None] * size  # id -> bytes, specials included, for decoding
        for i, b in self.vocab.items():
            self._bytes_of[i] = b
        for s, i in self.special_tokens.items():
            self._bytes_of[i] = s.encode("utf-8")
        pattern_id = BUILTIN_IDS.get(self.pattern, CUSTOM)
        self._split = compile_custom(self.pattern).findall if pattern_id == CUSTOM else None
        self._encoder = _core().BPEEncoder([self._id_of[bytes([b])] for b in range(256)], triples, pattern_id)

    # --- training ---

    @classmethod
    def train(cls, texts_or_files, vocab_size, pattern=GPT2_PATTERN, special_tokens=(), min_frequency=1,
              progress=None):
        """Learn a tokenizer of `vocab_size` tokens (256 bytes + merges + special tokens) from a corpus.

        texts_or_files: texts (str) and/or files (pathlib.Path) of UTF-8 text.
        min_frequency: stop merging when the most frequent pair occurs fewer times than this (the
            vocabulary is then smaller than asked for; so it is when the corpus runs out of pairs).
        progress: called as progress(merges_done, merges_wanted) now and then.
        Ids: byte b is id b, merge i is id 256 + i, then the special tokens in the order given.
        """
        special_tokens = list(dict.fromkeys(special_tokens))
        if vocab_size < 256 + len(special_tokens):
            raise ValueError(f"vocab_size {vocab_size} is too small: it must be at least 256 (one token per byte) "
                             f"+ {len(special_tokens)} special tokens = {256 + len(special_tokens)}")
        pattern = resolve(pattern)
        pattern_id = BUILTIN_IDS.get(pattern, CUSTOM)
        split = compile_custom(pattern).findall if pattern_id == CUSTOM else None
        specials_re = _specials_regex(special_tokens)
        trainer = _core().BPETrainer(pattern_id)
        for text in iter_texts(texts_or_files):
            for chunk in specials_re.split(text) if specials_re else [text]:  # never learn across a special
                if split:
                    trainer.add_pieces(split(chunk))
                else:
                    trainer.add_text(chunk)
        if trainer.num_words == 0:
            raise ValueError("the training corpus is empty (no text besides special tokens)")
        wanted = vocab_size - 256 - len(special_tokens)
        report = (lambda done: progress(done, wanted)) if progress else None
        merges = trainer.train(wanted, max(1, min_frequency), report)
        vocab = {b: bytes([b]) for b in range(256)}
        for i, (a, b) in enumerate(merges):
            vocab[256 + i] = vocab[a] + vocab[b]
        specials = {s: len(vocab) + k for k, s in enumerate(special_tokens)}
        return cls(vocab, merges, pattern, specials)

    # --- encoding and decoding ---

    def encode(self, text, allowed_special=()):
        """The token ids of `text`. allowed_special: the special tokens to recognise in it ("all", or an
        iterable of their texts); any other special token text is encoded as ordinary characters."""
        specials = self._allowed(allowed_special)
        if not specials:
            return self._encode_ordinary(text)
        ids, start = [], 0
        for m in _specials_regex(specials).finditer(text):
            ids += self._encode_ordinary(text[start:m.start()])
            ids.append(specials[m.group()])
            start = m.end()
        ids += self._encode_ordinary(text[start:])
        return ids

    def encode_batch(self, texts, allowed_special=(), num_threads=0):
        """encode() of each text; without special tokens, on `num_threads` threads (0: one per core)."""
        texts = list(texts)
        if self._split is None and not self._allowed(allowed_special):
            return self._encoder.encode_batch(texts, num_threads)
        return [self.encode(t, allowed_special) for t in texts]

    def _encode_ordinary(self, text):
        if self._split:
            return self._encoder.encode_pieces(self._split(text))
        return self._encoder.encode(text)

    def _allowed(self, allowed_special):
        if allowed_special == "all":
            return self.special_tokens
        allowed = {s: self.special_tokens.get(s) for s in allowed_special}
        unknown = [s for s, i in allowed.items() if i is None]
        if unknown:
            raise ValueError(f"not special tokens of this tokenizer: {unknown}")
        return allowed

    def decode_bytes(self, ids):
        """The exact bytes the ids stand for (a prefix of a text's ids may end inside a character)."""
        try:
            return b"".join([self._bytes_of[i] for i in ids])
        except (IndexError, TypeError):
            bad = next(i for i in ids if not (isinstance(i, int) and 0 <= i < len(self._bytes_of) and self._bytes_of[i] is not None))
            raise ValueError(f"unknown token id {bad!r} (this tokenizer has ids 0..{len(self._bytes_of) - 1})") from None

    def decode(self, ids):
        """The text the ids stand for; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # --- the vocabulary ---

    @property
    def vocab_size(self):
        return len(self.vocab) + len(self.special_tokens)

    def token_to_id(self, token):
        """The id of a special token (str) or of an ordinary token given as bytes or text; None if none."""
        if isinstance(token, str):
            if token in self.special_tokens:
                return self.special_tokens[token]
            token = token.encode("utf-8")
        return self._id_of.get(token)

    def id_to_token(self, id):
        """The bytes of token `id` (a special token's are its UTF-8 text); None if there is no such id."""
        return self._bytes_of[id] if 0 <= id < len(self._bytes_of) else None

    # --- files ---

    def save(self, path, format="tinyllm"):
        """Save as "tinyllm" (our JSON, to the file `path`), "hf" (a Hugging Face tokenizer.json, to the
        file `path`) or "gpt2" (vocab.json and merges.txt, into the folder `path`)."""
        writers = {"tinyllm": formats.save_tinyllm, "hf": formats.save_hf, "gpt2": formats.save_gpt2}
        if format not in writers:
            raise ValueError(f"unknown tokenizer format {format!r} (choose from {', '.join(writers)})")
        writers[format](self, path)

    @classmethod
    def from_file(cls, path):
        """Load our JSON or a Hugging Face tokenizer.json."""
        return cls(**formats.load_file(path))

    @classmethod
    def from_gpt2_files(cls, vocab_json, merges_txt, pattern=GPT2_PATTERN, special_tokens=None):
        """Load GPT-2 style vocab.json + merges.txt (see formats.load_gpt2 for how specials are found)."""
        return cls(**formats.load_gpt2(vocab_json, merges_txt, pattern, special_tokens))

    def __repr__(self):
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, specials={len(self.special_tokens)})"


def _specials_regex(specials):
    """A regex matching any of the special token texts, longest first (so "<|a|>x" wins over "<|a|>")."""
    if not specials:
        return None
    return re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))
