"""Central finite differences: the independent check of every hand-written backward."""
import numpy as np

import tinyllm


def gradcheck(fn, *inputs, eps=1e-6, rtol=1e-5, atol=1e-7):
    """Compare the autograd gradient of sum(fn(*inputs) * R), R a fixed random weighting, with
    (f(x + eps) - f(x - eps)) / (2 eps) for every element of every float64 input that requires grad."""
    out = fn(*inputs)
    weights = np.random.default_rng(1).standard_normal(out.shape)
    (out * tinyllm.tensor(weights)).sum().backward()
    for t in inputs:
        if not (isinstance(t, tinyllm.Tensor) and t.requires_grad):
            continue
        assert t.dtype == np.float64, "gradcheck needs float64 inputs"
        numeric = np.zeros_like(t.data)
        flat, num = t.data.reshape(-1), numeric.reshape(-1)
        with tinyllm.no_grad():
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                plus = float((fn(*inputs).data * weights).sum())
                flat[i] = old - eps
                minus = float((fn(*inputs).data * weights).sum())
                flat[i] = old
                num[i] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(t.grad.data, numeric, rtol=rtol, atol=atol)


def leaf(*shape, low=None, high=None, seed=None):
    """A float64 leaf tensor of random values (uniform in [low, high) when given, else normal)."""
    rng = np.random.default_rng(seed if seed is not None else sum(shape) + len(shape))
    data = rng.uniform(low, high, shape) if low is not None else rng.standard_normal(shape)
    return tinyllm.tensor(data, dtype="float64", requires_grad=True)
