"""Optimizer base: parameter groups, per-parameter state, zero_grad, and state_dict for exact resume."""
import copy

from ..backend.array import is_array, to_device
from ..tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError("the optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        self.state = {}  # id(param) -> dict of arrays and the step count
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise ValueError("the optimizer can only update Tensors that require grad")
            self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data[...] = 0

    def _params_with_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, self.state.setdefault(id(p), {})

    def step(self):
        raise NotImplementedError

    def state_dict(self):
        """Hyper-parameters of each group and the state of each parameter, keyed by its position."""
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        state = {index[k]: copy.deepcopy(v) for k, v in self.state.items() if k in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        params = [p for g in self.param_groups for p in g["params"]]
        groups = state_dict["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("load_state_dict: the saved optimizer has a different number of parameters per group")
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            for name, value in s.items():
                if is_array(value) and value.shape != p.shape:
                    raise ValueError(f"load_state_dict: state '{name}' of parameter {i} has shape {value.shape}, "
                                     f"but the parameter's is {p.shape}")
            s = copy.deepcopy(s)  # arrays of the state go where their parameter is
            self.state[id(p)] = {name: to_device(v, p.device) if is_array(v) else v for name, v in s.items()}
