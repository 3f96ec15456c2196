"""tinyllm: a GPT built from scratch on NumPy, with a hand-written autograd and our own kernels."""
__version__ = "0.1.0"
