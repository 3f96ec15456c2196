"""nn.Module machinery, layers, optimizers and clipping."""
import numpy as np
import pytest

import tinyllm
import tinyllm.nn as nn


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.blocks = nn.ModuleList([nn.LayerNorm(8), nn.RMSNorm(8)])
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 2, bias=False)})
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = self.blocks[1](self.blocks[0](self.fc(x)))
        return self.heads["a"](self.drop(x))


def test_parameters_are_registered_by_assignment():
    names = [n for n, _ in TwoLayer().named_parameters()]
    assert names == ["fc.weight", "fc.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "heads.a.weight"]


def test_shared_parameters_are_listed_once_but_saved_under_each_name():
    m = nn.Module()
    m.emb = nn.Embedding(5, 3)
    m.head = nn.Linear(3, 5, bias=False)
    m.head.weight = m.emb.weight  # weight tying
    assert len(list(m.parameters())) == 1
    assert set(m.state_dict()) == {"emb.weight", "head.weight"}


def test_state_dict_round_trip_and_errors():
    a, b = TwoLayer(), TwoLayer()
    b.load_state_dict(a.state_dict())
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
    state = a.state_dict()
    state["fc.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="fc.weight"):
        b.load_state_dict(state)
    with pytest.raises(KeyError, match="missing keys"):
        b.load_state_dict({"fc.weight": a.fc.weight})
    missing, unexpected = b.load_state_dict({"fc.weight": a.fc.weight, "extra": 1}, strict=False)
    assert "fc.bias" in missing and unexpected == ["extra"]


def test_train_eval_switches_dropout():
    m = TwoLayer()
    x = tinyllm.randn(6, 4)
    m.eval()
    assert not m.drop.training
    np.testing.assert_array_equal(m(x).data, m(x).data)
    m.train()
    assert not np.array_equal(m(x).data, m(x).data)


def test_zero_grad_and_optimizer_state_dict_resume():
    m = TwoLayer().eval()
    x = tinyllm.randn(6, 4)
    opt = tinyllm.optim.AdamW(m.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        m(x).sum().backward()
        opt.step()
    saved_model, saved_opt = {k: v.data.copy() for k, v in m.state_dict().items()}, opt.state_dict()
    opt.zero_grad()
    m(x).sum().backward()
    opt.step()
    expected = {k: v.data.copy() for k, v in m.state_dict().items()}
    # resume from the saved state in a fresh model and optimizer: the third step is identical
    m2 = TwoLayer().eval()
    m2.load_state_dict(saved_model)
    opt2 = tinyllm.optim.AdamW(m2.parameters(), lr=1e-2)
    opt2.load_state_dict(saved_opt)
    m2(x).sum().backward()
    opt2.step()
    for k, v in m2.state_dict().items():
        np.testing.assert_array_equal(v.data, expected[k], err_msg=k)
    m2.zero_grad()
    assert all(p.grad is None for p in m2.parameters())


def test_clip_grad_norm_returns_the_norm_and_scales_gradients():
    p = nn.Parameter(np.zeros(2, np.float32))
    q = nn.Parameter(np.zeros(1, np.float32))
    p.grad, q.grad = tinyllm.tensor([3.0, 0.0]), tinyllm.tensor([4.0])
    total = nn.utils.clip_grad_norm_([p, q], max_norm=1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([p.grad.numpy(), q.grad.numpy()]), [0.6, 0.0, 0.8], rtol=1e-5)
    assert nn.utils.clip_grad_norm_([p, q], max_norm=10.0).item() == pytest.approx(1.0, rel=1e-5)


def test_bad_hyper_parameters_are_refused():
    with pytest.raises(ValueError, match="betas"):
        tinyllm.optim.AdamW(TwoLayer().parameters(), betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="Nesterov"):
        tinyllm.optim.SGD(TwoLayer().parameters(), nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        tinyllm.optim.SGD([])
