"""Module: the base class of layers and models, as torch.nn.Module.

Assigning a Parameter or a Module to an attribute registers it, so `parameters()`, `state_dict()`,
`train()/eval()` and `zero_grad()` reach everything inside without further bookkeeping.
"""
import collections

import numpy as np

from .. import autograd, dtypes
from ..backend.array import to_device
from ..tensor import Tensor, device_and_dtype
from .parameter import Parameter


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", collections.OrderedDict())
        object.__setattr__(self, "_modules", collections.OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call super().__init__() in {type(self).__name__}.__init__ before assigning attributes")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter) or (value is None and name in self._parameters):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):  # called only when normal lookup fails
        for registry in ("_parameters", "_modules"):
            if name in self.__dict__.get(registry, {}):
                return self.__dict__[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name, param):
        self.__setattr__(name, param)

    def add_module(self, name, module):
        self._modules[name] = module

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix="", recurse=True):
        """(name, parameter) pairs, each parameter once even if shared (weight tying)."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def apply(self, fn):
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and gradients
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # ------------------------------------------------------------------ devices and dtypes
    def to(self, *args, device=None, dtype=None):
        """Move every parameter (and its gradient) to a device and/or cast the floating-point ones to a
        dtype, in place: model.to("cuda"), model.to(tinyllm.bfloat16). The Parameter objects stay the
        same, so an optimizer made before keeps working on them."""
        device, dtype = device_and_dtype(args, device, dtype)
        for p in self.parameters():
            for t in (p, p.grad):
                if t is None:
                    continue
                if dtype is not None and dtypes.is_floating(t.dtype):
                    t.data = t.data.astype(dtype, copy=False)
                if device is not None:
                    t.data = to_device(t.data, device)
        return self

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """Every parameter by dotted name (shared parameters under each of their names), as Tensors
        that share the parameters' memory."""
        state = collections.OrderedDict()
        for module_name, module in self.named_modules():
            for name, param in module._parameters.items():
                if param is not None:
                    state[f"{module_name}.{name}" if module_name else name] = param.detach()
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the parameters. With strict, missing or unexpected names are an error;
        a shape mismatch always is. Returns (missing_keys, unexpected_keys)."""
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict for {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}")
        for name, target in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            array = to_device(value.data if isinstance(value, Tensor) else np.asarray(value), target.device)
            if array.shape != target.shape:
                raise ValueError(f"load_state_dict: '{name}' has shape {array.shape} in the state dict, "
                                 f"but the model's is {target.shape}")
            with autograd.no_grad():
                target.data[...] = array
        return missing, unexpected

    # ------------------------------------------------------------------ printing
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(module).replace("\n", "\n  ") for name, module in self.named_children()]
        body = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({body})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
