"""tinyllm.optim: optimizers with PyTorch's signatures."""
from .adamw import AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "AdamW", "SGD"]
