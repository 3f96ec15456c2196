"""Pre-tokenization patterns: the regular expressions that cut text into pieces before BPE.

BPE never merges across a piece boundary, so the pattern decides what a token can be: GPT-2's keeps
letters, numbers and punctuation apart and glues a leading space to the word after it; GPT-4's
(cl100k) also caps numbers at three digits and ignores case in contractions. These two run in C++
(csrc/bpe_split.h, a hand-written equivalent of each regex); any other pattern is run with the
`regex` package, which understands \\p{L} (letter) and \\p{N} (number).
"""
import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
CL100K_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""

NAMED_PATTERNS = {"gpt2": GPT2_PATTERN, "cl100k": CL100K_PATTERN}

# Ids of the patterns the C++ core splits by itself (0 means: split in Python, see `compile_custom`).
CUSTOM, BUILTIN_IDS = 0, {GPT2_PATTERN: 1, CL100K_PATTERN: 2}


def resolve(pattern):
    """The regex for `pattern`, which is a name ("gpt2", "cl100k") or a regex of one's own."""
    pattern = NAMED_PATTERNS.get(pattern, pattern)
    if pattern not in BUILTIN_IDS:
        compile_custom(pattern)  # fail now, with the regex error, rather than at the first encode
    return pattern


def compile_custom(pattern):
    try:
        return regex.compile(pattern)
    except regex.error as err:
        raise ValueError(f"invalid pre-tokenization pattern {pattern!r}: {err}") from None
