"""Differentiable operations: one Function per op, forward and hand-written backward side by side.

Ops compute on plain arrays. Elementwise arithmetic, shapes and reductions use NumPy's array API
directly; the heavy kernels (matmul, softmax, norms, attention, cross-entropy, ...) go through the
kernel contract of tinyllm.backend, so the same op runs on every backend.
"""
