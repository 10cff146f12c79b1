"""Spectral normalisation layers (ganzoo.layers.spectral) against direct computations."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.layers.spectral import SNConv2d, SNEmbedding, SNLinear, sn_conv2d, sn_embedding, sn_linear


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _layers() -> list[tuple[nn.Module, torch.Tensor]]:
    return [
        (SNConv2d(3, 5, 3, padding=1), torch.randn(2, 3, 6, 6)),
        (SNLinear(7, 4), torch.randn(3, 7)),
        (SNEmbedding(6, 4), torch.tensor([0, 5, 2])),
    ]


def _matrix(m: nn.Module) -> torch.Tensor:
    return m.weight.detach().reshape(m.weight.shape[0], -1)  # [out, -1]


@pytest.mark.parametrize("idx", [0, 1, 2])
def test_sigma_matches_top_singular_value(idx):
    m, x = _layers()[idx]
    for _ in range(50):
        m(x)
    top = torch.linalg.svdvals(_matrix(m))[0]
    assert m.weight_sigma.item() == pytest.approx(top.item(), rel=1e-4)
    # the normalised weight has largest singular value 1
    w_sn = m.sn_weight().detach().reshape(m.weight.shape[0], -1)
    assert torch.linalg.svdvals(w_sn)[0].item() == pytest.approx(1.0, rel=1e-4)
    # the stored u is the top left singular vector (up to sign)
    u_ref = torch.linalg.svd(_matrix(m))[0][:, 0]
    assert abs(torch.dot(m.weight_u, u_ref).item()) == pytest.approx(1.0, abs=1e-4)


def test_output_equals_plain_layer_with_normalised_weight():
    m, x = _layers()[0]
    m.eval()
    w_sn = m.sn_weight()
    torch.testing.assert_close(m(x), F.conv2d(x, w_sn, m.bias, padding=1))
    lin, xl = _layers()[1]
    lin.eval()
    torch.testing.assert_close(lin(xl), F.linear(xl, lin.sn_weight(), lin.bias))
    emb, idx = _layers()[2]
    emb.eval()
    torch.testing.assert_close(emb(idx), emb.sn_weight()[idx])


def test_power_iteration_is_one_step_of_algorithm_1():
    lin = SNLinear(5, 4, n_power_iterations=2)
    u0 = lin.weight_u.clone()
    w = lin.weight.detach()
    lin(torch.randn(1, 5))
    u = u0
    for _ in range(2):
        v = w.t() @ u
        v = v / v.norm()
        u = w @ v
        u = u / u.norm()
    torch.testing.assert_close(lin.weight_u, u)
    torch.testing.assert_close(lin.weight_sigma, u @ w @ v)


def test_buffers_in_state_dict_and_round_trip():
    m, x = _layers()[0]
    for _ in range(3):
        m(x)
    sd = m.state_dict()
    assert set(sd) == {"weight", "bias", "weight_u", "weight_sigma"}
    assert sd["weight_u"].dtype == torch.float32 and sd["weight_u"].shape == (5,)
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    other = SNConv2d(3, 5, 3, padding=1)
    assert not torch.equal(other.weight_u, m.weight_u)
    other.load_state_dict(torch.load(buf))
    # training-mode forwards continue identically (same u, same update)
    for _ in range(2):
        torch.testing.assert_close(other(x), m(x), rtol=0, atol=0)
    assert torch.equal(other.weight_u, m.weight_u)


def test_eval_does_not_change_state():
    m, x = _layers()[1]
    m(x)
    u, s = m.weight_u.clone(), m.weight_sigma.clone()
    m.eval()
    y1 = m(x)
    y2 = m(x)
    assert torch.equal(m.weight_u, u) and torch.equal(m.weight_sigma, s)
    assert torch.equal(y1, y2)
    # eval sigma is one fresh power step from the stored u, not stored: ||W v|| with v = W^T u / |W^T u|
    # (BigGAN-PyTorch's power_iteration(update=False))
    w = m.weight.detach()
    v = w.t() @ u
    v = v / v.norm()
    torch.testing.assert_close(m.sn_weight(), w / (w @ v).norm())
    m.train()
    m(x)
    assert not torch.equal(m.weight_u, u)


def test_gradient_flows_through_sigma():
    lin = SNLinear(6, 4).double()
    lin(torch.randn(1, 6, dtype=torch.float64))  # one update of u
    x = torch.randn(3, 6, dtype=torch.float64)
    # the reference: same u (the update is deterministic), v and sigma as an autograd graph
    u0 = lin.weight_u.clone().double()
    w_ref = lin.weight.detach().clone().requires_grad_(True)
    with torch.no_grad():
        v = F.normalize(w_ref.t() @ u0, dim=0, eps=1e-6)
        u = F.normalize(w_ref @ v, dim=0, eps=1e-6)
    sigma = u @ w_ref @ v
    ref = F.linear(x, w_ref / sigma, lin.bias.detach())
    ref.square().sum().backward()
    lin.zero_grad()
    lin(x).square().sum().backward()
    torch.testing.assert_close(lin.weight.grad, w_ref.grad)
    # and the sigma term matters: W / const(sigma) has a different gradient
    w_const = lin.weight.detach().clone().requires_grad_(True)
    F.linear(x, w_const / sigma.detach(), lin.bias.detach()).square().sum().backward()
    assert not torch.allclose(w_const.grad, w_ref.grad)


def test_bf16_autocast_keeps_power_iteration_fp32():
    m, x = _layers()[0]
    ref = copy.deepcopy(m)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
        w_sn = m.sn_weight()
    assert y.dtype == torch.bfloat16
    assert w_sn.dtype == torch.float32
    assert m.weight_u.dtype == torch.float32 and m.weight_sigma.dtype == torch.float32
    # the estimate is bit-identical to the one computed without autocast from the same state
    ref(x)
    ref.sn_weight()
    torch.testing.assert_close(m.weight_u, ref.weight_u, rtol=0, atol=0)
    torch.testing.assert_close(m.weight_sigma, ref.weight_sigma, rtol=0, atol=0)
    y.float().sum().backward()
    assert m.weight.grad is not None and torch.isfinite(m.weight.grad).all()


def test_factories_and_deepcopy():
    assert isinstance(sn_conv2d(2, 3, 1), SNConv2d)
    plain = sn_conv2d(2, 3, 1, sn=False, sn_eps=1e-4, n_power_iterations=3)
    assert type(plain) is nn.Conv2d
    assert type(sn_linear(2, 3, sn=False, sn_eps=1e-4)) is nn.Linear
    assert isinstance(sn_linear(2, 3, n_power_iterations=2), SNLinear)
    assert type(sn_embedding(4, 3, sn=False)) is nn.Embedding
    assert isinstance(sn_embedding(4, 3), SNEmbedding)
    # parameter count and names are those of the plain layer
    sn, pl = sn_conv2d(4, 8, 3), nn.Conv2d(4, 8, 3)
    assert [n for n, _ in sn.named_parameters()] == [n for n, _ in pl.named_parameters()]
    assert sum(p.numel() for p in sn.parameters()) == sum(p.numel() for p in pl.parameters())
    clone = copy.deepcopy(sn)
    assert torch.equal(clone.weight_u, sn.weight_u) and clone.weight_u is not sn.weight_u
    with pytest.raises(ValueError, match="n_power_iterations"):
        SNLinear(2, 2, n_power_iterations=0)
