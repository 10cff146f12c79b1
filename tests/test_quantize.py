"""VectorQuantizer: nearest code, straight-through, losses, EMA, dead-code restarts, factorized l2 codes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganzoo.layers.quantize import VectorQuantizer, code_statistics, nearest_code


def _brute_force_indices(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """argmin over an explicit [M, K, D] difference tensor (test-only reference)."""
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # [M, D]
    dist = ((flat[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)  # [M, K]
    return dist.argmin(1).reshape(z.shape[0], z.shape[2], z.shape[3])


@pytest.mark.parametrize("ema", [False, True])
def test_nearest_code_equals_brute_force(ema):
    torch.manual_seed(0)
    q = VectorQuantizer(37, 8, ema=ema).eval()
    with torch.no_grad():
        q.weight.copy_(torch.randn(37, 8))
    z = torch.randn(3, 8, 5, 6, dtype=torch.float64).float()
    out = q(z)
    assert out.indices.shape == (3, 5, 6) and out.indices.dtype == torch.int64
    assert torch.equal(out.indices, _brute_force_indices(z, q.weight))
    # the output values are the chosen codes
    assert torch.allclose(out.z_q, q.lookup(out.indices), atol=1e-6)
    assert torch.allclose(out.z_q.permute(0, 2, 3, 1), q.weight[out.indices], atol=1e-6)


def test_nearest_code_function_on_hand_example():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[0.1, 0.1], [0.9, -0.2], [0.2, 1.4], [-3.0, 0.0]])
    assert nearest_code(z, codebook).tolist() == [0, 1, 2, 0]


def test_straight_through_gradient_reaches_input():
    torch.manual_seed(1)
    q = VectorQuantizer(16, 4)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = q(z)
    g = torch.randn_like(out.z_q)
    (out.z_q * g).sum().backward()
    # straight-through: d z_q / d z = identity, so the input gradient is exactly the upstream one
    assert torch.allclose(z.grad, g)
    assert q.embedding.weight.grad is None or q.embedding.weight.grad.abs().sum() == 0


@pytest.mark.parametrize("legacy", [True, False])
def test_losses_equal_their_formulas(legacy):
    torch.manual_seed(2)
    beta = 0.3
    q = VectorQuantizer(10, 3, beta=beta, legacy=legacy)
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = q(z)
    e = q.weight[out.indices].permute(0, 3, 1, 2)  # [N, D, h, w]
    mse = ((z - e) ** 2).mean()
    assert torch.allclose(out.codebook_loss, mse) and torch.allclose(out.commitment_loss, mse)
    expected = mse + beta * mse  # values agree; the gradients tell the two forms apart
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    # d/dz of the commitment term 1 (legacy) or beta (paper), codebook term gets the other weight
    w_commit, w_code = (1.0, beta) if legacy else (beta, 1.0)
    n = z.numel()
    assert torch.allclose(z.grad, w_commit * 2 * (z - e).detach() / n, atol=1e-7)
    code_grad = torch.zeros_like(q.weight)
    flat_diff = (e - z).detach().permute(0, 2, 3, 1).reshape(-1, 3)  # [M, 3]
    code_grad.index_add_(0, out.indices.flatten(), w_code * 2 * flat_diff / n)
    assert torch.allclose(q.embedding.weight.grad, code_grad, atol=1e-7)


def test_ema_update_follows_formula_on_hand_example():
    decay, eps = 0.9, 0.1
    q = VectorQuantizer(3, 2, ema=True, decay=decay, eps=eps, beta=0.25)
    with torch.no_grad():
        q.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
        q.embed_avg.copy_(q.embed)
        q.cluster_size.copy_(torch.tensor([1.0, 2.0, 0.0]))
    # four vectors: three nearest code 0, one nearest code 1, none for code 2
    vecs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [9.0, 1.0]])
    z = vecs.t().reshape(1, 2, 2, 2)  # [1, D=2, 2, 2], M order = row-major over (h, w)
    q.train()
    out = q(z)
    assert out.indices.flatten().tolist() == [0, 0, 0, 1]
    # hand computation
    n_k = torch.tensor([3.0, 1.0, 0.0])
    s_k = torch.tensor([[0.0, 2.0], [9.0, 1.0], [0.0, 0.0]])
    N = 0.9 * torch.tensor([1.0, 2.0, 0.0]) + 0.1 * n_k  # [1.2, 1.9, 0.0]
    m = 0.9 * torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]) + 0.1 * s_k
    total = N.sum()
    smoothed = (N + eps) / (total + 3 * eps) * total
    assert torch.allclose(q.cluster_size, N)
    assert torch.allclose(q.embed_avg, m)
    assert torch.allclose(q.embed, m / smoothed[:, None])
    # the loss is beta * commitment against the codes *before* the update (as taming)
    old = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [10.0, 0.0]])
    assert torch.allclose(out.commitment_loss, ((vecs - old) ** 2).mean())
    assert torch.allclose(out.loss, 0.25 * out.commitment_loss)
    # no update in eval mode
    before = q.embed.clone()
    q.eval()
    q(z)
    assert torch.equal(q.embed, before)


def test_ema_state_is_in_state_dict():
    q = VectorQuantizer(8, 4, ema=True)
    keys = set(q.state_dict())
    assert {"embed", "embed_avg", "cluster_size"} <= keys
    assert not any(p.requires_grad for p in q.parameters())


@pytest.mark.parametrize("ema", [False, True])
def test_dead_codes_are_restarted_from_batch(ema):
    torch.manual_seed(3)
    # usage decays by 0.5 per batch (EMA mode: cluster_size with decay 0.5; else the usage counter)
    q = VectorQuantizer(8, 2, ema=ema, decay=0.5, restart_dead=True, dead_threshold=0.5, usage_decay=0.5)
    with torch.no_grad():
        # code 0 near the data, the others far away: they are never chosen
        q.weight.copy_(torch.cat([torch.zeros(1, 2), 100.0 + torch.randn(7, 2)]))
        if ema:
            q.embed_avg.copy_(q.embed)
            q.cluster_size.fill_(1.0)
        else:
            q.cluster_size.fill_(1.0)
    z = torch.randn(4, 2, 3, 3)
    batch = z.permute(0, 2, 3, 1).reshape(-1, 2)
    q.train()
    q(z)  # usage of codes 1..7 decays to 0.5, not below the threshold: kept
    if ema:
        assert torch.all(q.embed[1:] > 50)
    else:
        assert torch.all(q.weight[1:] > 50)
    q(z)  # now 0.25 < 0.5: restarted from batch vectors
    w = q.weight[1:]
    dist_to_batch = torch.cdist(w, batch, compute_mode="donot_use_mm_for_euclid_dist").min(1).values  # exact
    assert torch.all(dist_to_batch < 1e-5), "restarted codes must be vectors of the batch"
    assert torch.all(q.cluster_size[1:] == 0.5)
    if ema:
        assert torch.allclose(q.embed_avg[1:], w * 0.5)


def test_dead_restart_off_in_eval():
    q = VectorQuantizer(8, 2, restart_dead=True).eval()
    with torch.no_grad():
        q.weight.copy_(100.0 + torch.randn(8, 2))
    before = q.weight.clone()
    q(torch.randn(2, 2, 2, 2))
    assert torch.equal(q.weight, before)


def test_factorized_l2_codes():
    torch.manual_seed(4)
    q = VectorQuantizer(64, 24, lookup_dim=6, l2_normalize=True, legacy=False)
    assert q.weight.shape == (64, 6)
    assert q.proj_in.in_features == 24 and q.proj_in.out_features == 6
    assert q.proj_out.in_features == 6 and q.proj_out.out_features == 24
    codes = q.codebook()
    assert torch.allclose(codes.norm(dim=1), torch.ones(64), atol=1e-6)
    z = torch.randn(2, 24, 3, 3, requires_grad=True)
    out = q(z)
    assert out.z_q.shape == (2, 24, 3, 3)
    # lookup in the low-dim space: the index is the nearest unit code to the normalised projection
    low = F.normalize(q.proj_in(z.detach().permute(0, 2, 3, 1).reshape(-1, 24)), dim=1)
    ref = ((low[:, None] - codes.detach()[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(out.indices.flatten(), ref)
    # the output is the projection out of the chosen unit code
    assert torch.allclose(out.z_q, q.lookup(out.indices), atol=1e-5)
    expected = q.proj_out(codes[out.indices]).permute(0, 3, 1, 2)
    assert torch.allclose(out.z_q, expected, atol=1e-5)
    # losses live in the low-dim, unit-norm space
    assert torch.allclose(out.commitment_loss, ((low - codes[out.indices.flatten()]) ** 2).mean(), atol=1e-6)
    # gradients reach the input through proj_in / proj_out, and both projections learn
    (out.z_q.sum() + out.loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert q.proj_in.weight.grad.abs().sum() > 0 and q.proj_out.weight.grad.abs().sum() > 0


def test_bf16_autocast_uses_fp32_distances():
    torch.manual_seed(5)
    q = VectorQuantizer(512, 16).eval()
    with torch.no_grad():
        q.weight.copy_(torch.randn(512, 16))
    z = torch.randn(4, 16, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(z)
    assert torch.equal(out.indices, _brute_force_indices(z, q.weight))
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    # a bf16 input (an autocast conv output) is upcast, not looked up in bf16
    zb = z.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outb = q(zb)
    assert torch.equal(outb.indices, _brute_force_indices(zb.float(), q.weight))


def test_perplexity_and_usage_known_cases():
    p, u = code_statistics(torch.zeros(10, dtype=torch.long), 4)
    assert p.item() == pytest.approx(1.0, abs=1e-6) and u.item() == pytest.approx(0.25)
    p, u = code_statistics(torch.arange(8) % 4, 8)  # four codes used equally
    assert p.item() == pytest.approx(4.0, rel=1e-5) and u.item() == pytest.approx(0.5)
    p, _ = code_statistics(torch.tensor([0, 0, 0, 1]), 2)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert p.item() == pytest.approx(math.exp(h), rel=1e-5)


def test_forward_reports_statistics_and_rejects_bad_shape():
    q = VectorQuantizer(4, 2).eval()
    with torch.no_grad():
        q.weight.copy_(torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]]))
    z = torch.tensor([[0.0, 5.0], [0.0, 5.0]]).reshape(1, 2, 1, 2)  # vectors (0, 0) and (5, 5)
    out = q(z)
    assert out.indices.flatten().tolist() == [0, 3]
    assert out.usage.item() == pytest.approx(0.5) and out.perplexity.item() == pytest.approx(2.0, rel=1e-5)
    with pytest.raises(ValueError, match="expected z"):
        q(torch.randn(1, 3, 2, 2))
