"""The learning-rate schedule and the dynamic loss scaler."""
import math

import numpy as np
import pytest

import tinyllm
import tinyllm.amp
from tinyllm.amp import GradScaler
from tinyllm.optim.lr_schedule import warmup_cosine


def test_warmup_then_cosine():
    lr = lambda s: warmup_cosine(s, max_lr=1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    assert lr(0) == pytest.approx(0.1) and lr(9) == pytest.approx(1.0)
    assert lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.1 + 0.5 * 0.9)  # half way through the cosine
    assert lr(110) == pytest.approx(0.1) and lr(500) == pytest.approx(0.1)
    assert all(lr(s) >= lr(s + 1) for s in range(10, 120))


def _param_with_grad(value):
    p = tinyllm.nn.Parameter(np.ones(3, np.float32))
    p.grad = tinyllm.tensor(np.full(3, value, np.float32))
    return p


def test_scaler_skips_a_step_with_inf_gradients_and_recovers():
    p = _param_with_grad(np.inf)
    opt = tinyllm.optim.SGD([p], lr=0.1)
    scaler = GradScaler(init_scale=1024.0, growth_interval=2)
    assert scaler.step(opt) is False  # skipped: the parameter is untouched
    np.testing.assert_array_equal(p.data, 1.0)
    scaler.update()
    assert scaler.scale_value == 512.0 and scaler.skipped_steps == 1
    p.grad = tinyllm.tensor(np.full(3, 512.0, np.float32))  # a finite, scaled gradient of 1.0
    assert scaler.step(opt) is True
    np.testing.assert_allclose(p.data, 1.0 - 0.1 * 1.0)
    scaler.update()
    p.grad = tinyllm.tensor(np.full(3, 512.0, np.float32))
    scaler.step(opt)
    scaler.update()
    assert scaler.scale_value == 1024.0  # grew back after growth_interval clean steps


def test_scaler_scales_the_loss():
    assert GradScaler(init_scale=8.0).scale(tinyllm.tensor(2.0)).item() == 16.0
    assert GradScaler(enabled=False).scale(tinyllm.tensor(2.0)).item() == 2.0
    assert math.isfinite(GradScaler().state_dict()["scale"])


def test_autocast_runs_linear_layers_in_bfloat16_with_float32_master_weights():
    layer = tinyllm.nn.Linear(16, 8)
    x = tinyllm.randn(4, 16)
    with tinyllm.amp.autocast("bfloat16"):
        y = layer(x)
    assert y.dtype == tinyllm.bfloat16
    y.float().sum().backward()
    assert layer.weight.grad.dtype == np.float32 and layer.bias.grad.dtype == np.float32
    exact = x.numpy() @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
    np.testing.assert_allclose(y.data.astype(np.float32), exact, rtol=3e-2, atol=3e-2)  # bf16 keeps 8 bits
    assert not np.array_equal(y.data.astype(np.float32), exact.astype(np.float32))
    with tinyllm.amp.autocast("float32"):
        assert layer(x).dtype == np.float32


def test_loss_curve_png_is_a_valid_image(tmp_path):
    import struct
    import zlib
    from tinyllm.plot import plot_curves
    plot_curves(tmp_path / "loss.png", {"train": ([1, 2, 3], [3.0, 2.0, 1.5]), "val": ([3], [1.7])}, width=120, height=80)
    data = (tmp_path / "loss.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (120, 80)
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    pixels = np.frombuffer(zlib.decompress(data[idat + 4:idat + 4 + length]), np.uint8).reshape(80, 1 + 120 * 3)
    assert (pixels[:, 1:] != 255).any()  # something was drawn
