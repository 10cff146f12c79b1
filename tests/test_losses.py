"""Loss functions against independent computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganzoo.bundle import OptimizerSpec
from ganzoo.losses import functional as L


def test_logistic_losses_values():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 3.0])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert L.nonsat_d(real, fake).item() == pytest.approx((sp(0.5) + sp(3.0)) / 2 + (sp(-2.0) + sp(1.0)) / 2)
    assert L.nonsat_g(fake).item() == pytest.approx((sp(-0.5) + sp(-3.0)) / 2)
    # At D = 0 everywhere the logistic D loss is 2 log 2.
    assert L.nonsat_d(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(2 * math.log(2))


def test_hinge_and_wgan_values():
    real, fake = torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.0])
    assert L.hinge_d(real, fake).item() == pytest.approx((0.5 + 0.0) / 2 + (0.0 + 1.0) / 2)
    assert L.hinge_g(fake).item() == pytest.approx(1.0)
    assert L.wgan_d(real, fake).item() == pytest.approx(-1.0 - 1.25)
    assert L.drift_penalty(real).item() == pytest.approx((0.25 + 4.0) / 2)


def _critic():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def test_r1_matches_per_sample_autograd():
    D = _critic()
    x = torch.randn(3, 3, 2, 2, requires_grad=True)
    r1 = L.r1_penalty(D(x).flatten(), x)
    expected = 0.0
    for i in range(3):
        xi = x[i : i + 1].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(D(xi).sum(), xi)
        expected += g.pow(2).sum().item() / 3
    assert r1.item() == pytest.approx(expected, rel=1e-5)
    # Differentiable (needed to train D on it).
    r1.backward()
    assert D[1].weight.grad is not None


def test_r1_of_linear_critic_is_weight_norm():
    w = torch.randn(12)
    x = torch.randn(5, 12, requires_grad=True)
    assert L.r1_penalty(x @ w, x).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)


def test_gradient_penalty_linear_critic():
    """For D(x) = w.x the gradient is w everywhere: GP = (|w| - 1)^2 for every interpolate."""
    w = torch.randn(3 * 2 * 2)
    critic = lambda x: x.flatten(1) @ w  # noqa: E731
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    gp = L.gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-4)


def test_path_length_against_explicit_jacobian():
    """|J^T y| from the penalty equals the explicit Jacobian-vector product, with y drawn identically."""
    torch.manual_seed(0)
    A = torch.randn(2 * 4 * 4, 3 * 5)
    synth = lambda w: (w.flatten(1) @ A.t()).view(-1, 2, 4, 4).tanh()  # noqa: E731
    w = torch.randn(2, 3, 5, requires_grad=True)
    img = synth(w)
    torch.manual_seed(1)
    pen, lengths, new_mean = L.path_length_penalty(img, w, torch.tensor(0.0), decay=0.01)
    torch.manual_seed(1)
    y = torch.randn_like(img) / 4.0  # 1/sqrt(H*W)
    for i in range(2):
        J = torch.autograd.functional.jacobian(lambda wi: synth(wi[None])[0], w[i].detach())  # [2,4,4,3,5]
        jty = torch.einsum("chw,chwlk->lk", y[i], J)  # [3, 5]
        expected = jty.pow(2).sum(1).mean().sqrt()
        assert lengths[i].item() == pytest.approx(expected.item(), rel=1e-4)
    assert new_mean.item() == pytest.approx(0.01 * lengths.mean().item(), rel=1e-5)
    assert torch.allclose(pen, (lengths - new_mean) ** 2)


def test_orthogonal_regularization_zero_for_orthogonal_rows():
    q, _ = torch.linalg.qr(torch.randn(6, 6))
    assert L.orthogonal_regularization([q], strength=1.0).item() == pytest.approx(0.0, abs=1e-8)
    W = torch.randn(4, 3)
    gram = W @ W.t()
    off = gram - torch.diag(torch.diag(gram))
    assert L.orthogonal_regularization([W], strength=2.0).item() == pytest.approx(2 * off.pow(2).sum().item())


def test_lazy_adam_correction():
    """StyleGAN2 App. B: lr *= c and betas **= c with c = k / (k + 1)."""
    spec = OptimizerSpec(lr=0.002, betas=(0.0, 0.99)).lazy(16)
    c = 16 / 17
    assert spec.lr == pytest.approx(0.002 * c)
    assert spec.betas == pytest.approx((0.0, 0.99**c))
    assert OptimizerSpec(lr=1.0).lazy(1).lr == 1.0


def test_softplus_identity():
    x = torch.randn(10)
    assert torch.allclose(L.nonsat_g(x), F.softplus(-x).mean())
