"""The PyTorch-shaped Tensor API: creation, dtypes, indexing, comparisons, conversion, devices."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinyllm


def test_creation_functions_and_default_dtypes():
    assert tinyllm.tensor([1.0, 2.0]).dtype == np.float32
    assert tinyllm.tensor([1, 2]).dtype == np.int64
    assert tinyllm.tensor(np.zeros(2)).dtype == np.float64  # NumPy arrays keep their dtype
    assert tinyllm.zeros(2, 3).shape == (2, 3) and tinyllm.ones((4,)).data.sum() == 4
    assert tinyllm.arange(5).tolist() == [0, 1, 2, 3, 4] and tinyllm.arange(5).dtype == np.int64
    assert tinyllm.arange(0, 1, 0.25).dtype == np.float32
    assert tinyllm.full((2,), 7.0).tolist() == [7.0, 7.0]
    assert tinyllm.randn(3, 4, dtype="bfloat16").dtype == tinyllm.bfloat16


def test_manual_seed_makes_randn_reproducible():
    tinyllm.manual_seed(42)
    a = tinyllm.randn(5)
    tinyllm.manual_seed(42)
    np.testing.assert_array_equal(a.numpy(), tinyllm.randn(5).numpy())


def test_rng_state_round_trips():
    x = tinyllm.ones(64)
    state = tinyllm.get_rng_state()
    a, mask = tinyllm.rand(3), tinyllm.nn.functional.dropout(x, 0.5)
    tinyllm.set_rng_state(json.loads(json.dumps(state)))  # as a checkpoint keeps it
    np.testing.assert_array_equal(a.numpy(), tinyllm.rand(3).numpy())
    np.testing.assert_array_equal(mask.numpy(), tinyllm.nn.functional.dropout(x, 0.5).numpy())
    assert not np.array_equal(mask.numpy(), tinyllm.nn.functional.dropout(x, 0.5).numpy())  # the stream moved on


def test_manual_seed_restarts_the_dropout_stream():
    x = tinyllm.ones(64)
    tinyllm.manual_seed(3)
    first = tinyllm.nn.functional.dropout(x, 0.5).numpy()
    tinyllm.manual_seed(3)
    np.testing.assert_array_equal(first, tinyllm.nn.functional.dropout(x, 0.5).numpy())


def test_a_checkpoints_rng_state_from_before_the_dropout_stream_still_loads():
    old_state = tinyllm.get_rng_state()["numpy"]  # what checkpoints held before: the host generator's state alone
    a = tinyllm.rand(3)
    tinyllm.set_rng_state(old_state)
    np.testing.assert_array_equal(a.numpy(), tinyllm.rand(3).numpy())


def test_indexing_comparisons_and_item():
    x = tinyllm.arange(12).reshape(3, 4)
    assert x[1, 2].item() == 6
    assert x[tinyllm.tensor([2, 0])].shape == (2, 4)
    assert (x > 5).dtype == np.bool_ and int((x > 5).numpy().sum()) == 6
    assert x.max().item() == 11
    values, indices = tinyllm.tensor([[1.0, 5.0, 2.0]]).max(dim=1)
    assert values.tolist() == [5.0] and indices.tolist() == [1]


def test_numpy_refuses_a_tensor_that_requires_grad():
    x = tinyllm.randn(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    assert x.detach().numpy().shape == (2,)


def test_shape_helpers():
    x = tinyllm.randn(2, 3, 4)
    assert x.unsqueeze(1).shape == (2, 1, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert x.flatten(1).shape == (2, 12) and x.T.shape == (4, 3, 2) and x.mT.shape == (2, 4, 3)
    assert x[:, :1].squeeze(1).shape == (2, 4)
    assert x[:, :1].expand(2, 5, 4).shape == (2, 5, 4) and x.view(-1).shape == (24,)


def test_where_and_scalar_dtype_rules():
    a = tinyllm.randn(3).half()
    assert (a * 2.5).dtype == np.float16  # a Python scalar does not promote the tensor
    w = tinyllm.where(tinyllm.tensor([True, False, True]), tinyllm.ones(3), 0.0)
    assert w.tolist() == [1.0, 0.0, 1.0]


def test_device_plumbing_on_the_host():
    t = tinyllm.randn(2, 3)
    assert t.device == "cpu" and t.to("cpu") is t and t.to(tinyllm.float32) is t and t.cpu() is t
    assert t.to("cpu", tinyllm.float64).dtype == tinyllm.float64 and t.to(device="cpu", dtype="bfloat16").dtype == tinyllm.bfloat16
    assert tinyllm.zeros(2, device="cpu").device == "cpu" and tinyllm.tensor([1, 2], device="cpu").device == "cpu"
    model = tinyllm.nn.Linear(3, 2)
    weight = model.weight
    assert model.to(tinyllm.float64) is model and model.weight is weight and weight.dtype == tinyllm.float64
    with pytest.raises(ValueError, match="unknown device"):
        t.to(device="tpu")


def test_import_does_not_import_cupy():
    code = "import sys, tinyllm; tinyllm.randn(2).to('cpu'); assert 'cupy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(tinyllm.__file__)))


def test_cuda_without_cupy_is_a_clear_error():
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here")
    with pytest.raises(RuntimeError, match="device 'cuda' needs CuPy"):
        tinyllm.randn(2).to("cuda")
