"""Models built from tinyllm.nn: the GPT (GPT-2 and Llama in one file) and its Hugging Face interop."""
from .gpt import GPT, PRESETS, GPTConfig, KVCache

__all__ = ["GPT", "GPTConfig", "KVCache", "PRESETS"]
