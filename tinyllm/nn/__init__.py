"""tinyllm.nn: layers and models built from differentiable ops, shaped like torch.nn."""
from . import functional, utils
from .activation import GELU, Dropout, ReLU, SiLU, Tanh
from .container import ModuleDict, ModuleList, Sequential
from .linear import Embedding, Linear
from .module import Module
from .normalization import LayerNorm, RMSNorm
from .parameter import Parameter

__all__ = ["functional", "utils", "Module", "Parameter", "Linear", "Embedding", "LayerNorm", "RMSNorm",
           "Dropout", "GELU", "ReLU", "SiLU", "Tanh", "Sequential", "ModuleList", "ModuleDict"]
