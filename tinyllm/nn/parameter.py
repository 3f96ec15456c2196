"""Parameter: a Tensor that a Module registers as learnable (requires_grad on by default)."""
import numpy as np

from ..backend.array import is_array
from ..tensor import Tensor


class Parameter(Tensor):
    def __init__(self, data, requires_grad=True):
        array = data.data if isinstance(data, Tensor) else data
        super().__init__(array if is_array(array) else np.asarray(array), requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
