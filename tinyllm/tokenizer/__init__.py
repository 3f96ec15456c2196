"""Byte-level BPE tokenizer: train on your corpus, encode, decode, and read/write tinyllm, Hugging Face
and GPT-2 files. See bpe.py."""
from .bpe import BPETokenizer
from .patterns import CL100K_PATTERN, GPT2_PATTERN

__all__ = ["BPETokenizer", "GPT2_PATTERN", "CL100K_PATTERN"]
