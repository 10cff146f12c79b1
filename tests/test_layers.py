"""Tests of ganzoo.layers: every test checks a defining property against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.layers import (
    AdaIN,
    Blur,
    ConditionalBatchNorm2d,
    Downsample2d,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    ModulatedConv2d,
    NoiseInjection,
    PixelNorm,
    SelfAttention2d,
    SNConv2d,
    SNLinear,
    Upsample2d,
    avg_downsample,
    bias_act,
    nearest_upsample,
    setup_filter,
    upfirdn2d,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --------------------------------------------------------------------------- equalized


def test_equalized_raw_weights_are_standard_normal():
    # 512*512 = 262144 draws: the sample mean has std 1/512 ~ 0.002 and the sample std has std
    # ~ 1/sqrt(2 * 262144) ~ 0.0014, so 0.01 is a ~5 sigma tolerance for both.
    lin = EqualizedLinear(512, 512)
    assert abs(lin.weight.mean().item()) < 0.01
    assert abs(lin.weight.std().item() - 1.0) < 0.01
    # 64*64*3*3 = 36864 draws: std of the mean ~ 0.0052, std of the std ~ 0.0037.
    conv = EqualizedConv2d(64, 64, 3)
    assert abs(conv.weight.mean().item()) < 0.03
    assert abs(conv.weight.std().item() - 1.0) < 0.02
    # lr_mul divides the stored weight: N(0, 1) / 0.01 has std 100.
    slow = EqualizedLinear(512, 512, lr_mul=0.01)
    assert abs(slow.weight.std().item() / 100.0 - 1.0) < 0.01
    assert torch.all(lin.bias == 0)


def test_equalized_linear_matches_runtime_scaled_functional():
    lin = EqualizedLinear(16, 8, bias_init=0.5, lr_mul=0.1, gain=2.0)
    assert lin.weight_gain == pytest.approx(2.0 * 0.1 / 4.0)
    assert lin.bias_gain == pytest.approx(0.1)
    assert torch.allclose(lin.bias, torch.full((8,), 5.0))  # stored bias_init / lr_mul
    x = torch.randn(5, 16)
    w_eff = lin.weight * (2.0 * 0.1 / math.sqrt(16))
    b_eff = lin.bias * 0.1
    torch.testing.assert_close(lin(x), F.linear(x, w_eff, b_eff))

    act = EqualizedLinear(16, 8, bias_init=0.2, activation="lrelu")
    ref = F.leaky_relu(F.linear(x, act.weight / 4.0, act.bias), 0.2) * math.sqrt(2)
    torch.testing.assert_close(act(x), ref)


def test_equalized_conv_matches_runtime_scaled_functional():
    conv = EqualizedConv2d(3, 4, 3, stride=2, bias_init=0.1, gain=math.sqrt(2), lr_mul=0.5, activation="relu")
    assert conv.padding == 1
    x = torch.randn(2, 3, 8, 8)
    w_eff = conv.weight * (math.sqrt(2) * 0.5 / math.sqrt(3 * 3 * 3))
    b_eff = conv.bias * 0.5
    ref = F.relu(F.conv2d(x, w_eff, b_eff, stride=2, padding=1)) * math.sqrt(2)
    out = conv(x)
    assert out.shape == (2, 4, 4, 4)
    torch.testing.assert_close(out, ref)

    plain = EqualizedConv2d(3, 4, 1, padding=0, bias=False)
    torch.testing.assert_close(plain(x), F.conv2d(x, plain.weight / math.sqrt(3)))


def test_lr_mul_keeps_initial_function():
    x = torch.randn(4, 32)
    torch.manual_seed(1)
    fast = EqualizedLinear(32, 16, bias_init=0.3)
    torch.manual_seed(1)
    slow = EqualizedLinear(32, 16, bias_init=0.3, lr_mul=0.01)
    torch.testing.assert_close(slow.weight * 0.01, fast.weight)  # stored values differ by 1/lr_mul
    assert slow.weight_gain == pytest.approx(fast.weight_gain * 0.01)
    torch.testing.assert_close(slow(x), fast(x), rtol=1e-5, atol=1e-6)  # same function at init

    xi = torch.randn(2, 3, 6, 6)
    torch.manual_seed(2)
    c1 = EqualizedConv2d(3, 5, 3)
    torch.manual_seed(2)
    c2 = EqualizedConv2d(3, 5, 3, lr_mul=0.1)
    torch.testing.assert_close(c2(xi), c1(xi), rtol=1e-5, atol=1e-6)


def test_equalized_gradient_is_scaled_by_runtime_constant():
    lin = EqualizedLinear(8, 4, lr_mul=0.1, bias_init=1.0)
    x = torch.randn(3, 8)
    lin(x).square().sum().backward()
    w_eff = (lin.weight * lin.weight_gain).detach().requires_grad_()
    b_eff = (lin.bias * lin.bias_gain).detach().requires_grad_()
    F.linear(x, w_eff, b_eff).square().sum().backward()
    torch.testing.assert_close(lin.weight.grad, w_eff.grad * lin.weight_gain)
    torch.testing.assert_close(lin.bias.grad, b_eff.grad * lin.bias_gain)

    conv = EqualizedConv2d(2, 3, 3)
    xi = torch.randn(2, 2, 5, 5)
    conv(xi).square().sum().backward()
    w_eff = (conv.weight * conv.weight_gain).detach().requires_grad_()
    F.conv2d(xi, w_eff, conv.bias.detach(), padding=1).square().sum().backward()
    torch.testing.assert_close(conv.weight.grad, w_eff.grad * conv.weight_gain)


def test_equalized_parameter_counts_match_torch():
    assert n_params(EqualizedLinear(7, 5)) == n_params(nn.Linear(7, 5))
    assert n_params(EqualizedLinear(7, 5, bias=False)) == n_params(nn.Linear(7, 5, bias=False))
    assert n_params(EqualizedConv2d(3, 6, 3)) == n_params(nn.Conv2d(3, 6, 3))
    assert n_params(EqualizedConv2d(3, 6, 3, bias=False)) == n_params(nn.Conv2d(3, 6, 3, bias=False))
    assert [n for n, _ in EqualizedConv2d(3, 6, 3).named_parameters()] == ["weight", "bias"]
    with pytest.raises(ValueError, match="activation"):
        EqualizedLinear(2, 2, activation="gelu")


def test_bias_act_gain_and_clamp():
    x = torch.tensor([[-2.0, 1.0]])
    b = torch.tensor([0.5, 0.5])
    torch.testing.assert_close(bias_act(x, b), x + b)
    ref = torch.tensor([[-1.5 * 0.2, 1.5]]) * math.sqrt(2) * 0.5
    torch.testing.assert_close(bias_act(x, b, activation="lrelu", gain=0.5), ref)
    torch.testing.assert_close(bias_act(x, b, activation="relu", clamp=1.0), torch.tensor([[0.0, 1.0]]))


# --------------------------------------------------------------------------- norms


def test_pixelnorm_unit_rms():
    x = torch.randn(4, 16, 3, 3) * 7.0 + 2.0
    y = PixelNorm()(x)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(4, 3, 3))
    # on tiny inputs eps shows: the mean square is ms / (ms + eps), about 1 - 1e-4 here
    z = torch.randn(5, 32) * 0.01
    ms = z.square().mean(dim=-1)
    torch.testing.assert_close(PixelNorm(dim=-1)(z).square().mean(dim=-1), ms / (ms + 1e-8))
    # direction is preserved
    torch.testing.assert_close(y / y.norm(dim=1, keepdim=True), x / x.norm(dim=1, keepdim=True))


def test_adain_output_statistics_equal_style():
    ada = AdaIN(6, 10)
    with torch.no_grad():
        ada.affine.weight.normal_()
    x = torch.randn(3, 6, 8, 8) * 3.0 + 1.0
    w = torch.randn(3, 10)
    out = ada(x, w)
    style = ada.affine(w)  # [N, 2C]
    ys, yb = style[:, :6], style[:, 6:]
    torch.testing.assert_close(out.mean(dim=(2, 3)), yb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.std(dim=(2, 3), correction=0), ys.abs(), atol=1e-4, rtol=1e-4)


def test_adain_init_is_plain_instance_norm():
    ada = AdaIN(4, 5)
    assert torch.all(ada.affine.bias[:4] == 1) and torch.all(ada.affine.bias[4:] == 0)
    with torch.no_grad():
        ada.affine.weight.zero_()
    x = torch.randn(2, 4, 5, 5)
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, correction=0)
    torch.testing.assert_close(ada(x, torch.randn(2, 5)), (x - mu) / torch.sqrt(var + 1e-8))


def test_cbn_classes_init_equals_batchnorm_then_embeddings_condition():
    cbn = ConditionalBatchNorm2d(3, num_classes=4)
    cbn.train()
    x = torch.randn(6, 3, 4, 4) * 2.0 + 1.0
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    ref = F.batch_norm(x, None, None, training=True, eps=1e-5)
    torch.testing.assert_close(cbn(x, y), ref)
    with torch.no_grad():
        cbn.gain.weight.normal_()
        cbn.bias.weight.normal_()
    out = cbn(x, y)
    gain, bias = cbn.gain.weight[y][:, :, None, None], cbn.bias.weight[y][:, :, None, None]  # [N, C, 1, 1]
    torch.testing.assert_close(out, ref * gain + bias)
    # the same input under two labels gives two outputs
    xx = x[:1].repeat(2, 1, 1, 1)
    o = cbn(xx, torch.tensor([0, 1]))
    assert not torch.allclose(o[0], o[1])


def test_cbn_running_stats_in_eval():
    cbn = ConditionalBatchNorm2d(2, num_classes=3, momentum=1.0)
    x = torch.randn(4, 2, 3, 3) + 5.0
    cbn(x, torch.tensor([0, 1, 2, 0]))
    cbn.eval()
    mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3))  # running_var is the unbiased one
    x2 = torch.randn(2, 2, 3, 3)
    ref = (x2 - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-5)
    torch.testing.assert_close(cbn(x2, torch.tensor([1, 2])), ref, atol=1e-5, rtol=1e-5)


def test_cbn_cond_dim_gain_is_one_plus_linear():
    cbn = ConditionalBatchNorm2d(3, cond_dim=5)
    assert cbn.gain.bias is None and cbn.bias.bias is None  # bias-free, as BigGAN's ccbn linears
    x = torch.randn(4, 3, 2, 2)
    y = torch.randn(4, 5)
    bn = F.batch_norm(x, None, None, training=True, eps=1e-5)
    gain = 1.0 + y @ cbn.gain.weight.t()
    bias = y @ cbn.bias.weight.t()
    torch.testing.assert_close(cbn(x, y), bn * gain[:, :, None, None] + bias[:, :, None, None])


def test_cbn_argument_checks_and_spectral_norm():
    with pytest.raises(ValueError, match="exactly one"):
        ConditionalBatchNorm2d(3)
    with pytest.raises(ValueError, match="exactly one"):
        ConditionalBatchNorm2d(3, num_classes=2, cond_dim=4)
    with pytest.raises(ValueError, match="spectral_norm"):
        ConditionalBatchNorm2d(3, num_classes=2, spectral_norm=True)
    sn = ConditionalBatchNorm2d(3, cond_dim=4, spectral_norm=True)
    assert isinstance(sn.gain, SNLinear) and isinstance(sn.bias, SNLinear)
    x, y = torch.randn(2, 3, 2, 2), torch.randn(2, 4)
    for _ in range(20):  # power iterations converge over training-mode forwards
        sn(x, y)
    w = sn.gain.sn_weight()  # the spectrally normalised weight
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.1)


# --------------------------------------------------------------------------- minibatch std


def test_mbstd_matches_hand_computation():
    # integer values keep the hand computation exact; N=4, G=2 -> groups {0, 2} and {1, 3}
    x = torch.arange(4 * 2 * 2 * 2, dtype=torch.float32).reshape(4, 2, 2, 2) ** 1.5
    out = MinibatchStdDev(group_size=2)(x)
    assert out.shape == (4, 3, 2, 2)
    torch.testing.assert_close(out[:, :2], x)
    for a, b in [(0, 2), (1, 3)]:
        # population std of two values is |a - b| / 2
        expected = torch.sqrt(((x[a] - x[b]) / 2) ** 2 + 1e-8).mean()
        torch.testing.assert_close(out[a, 2], torch.full((2, 2), expected.item()))
        torch.testing.assert_close(out[b, 2], out[a, 2])
    assert not torch.allclose(out[0, 2], out[1, 2])


def test_mbstd_num_channels_and_group_clamping():
    x = torch.randn(3, 4, 2, 2)  # N=3 < group_size=4 -> one group of 3
    out = MinibatchStdDev(group_size=4, num_channels=2)(x)
    assert out.shape == (3, 6, 2, 2)
    for f in range(2):
        part = x[:, 2 * f : 2 * f + 2]
        expected = torch.sqrt(part.var(dim=0, correction=0) + 1e-8).mean()
        torch.testing.assert_close(out[:, 4 + f], torch.full((3, 2, 2), expected.item()))


def test_mbstd_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="not divisible by the group size"):
        MinibatchStdDev(group_size=4)(torch.randn(6, 2, 2, 2))


# --------------------------------------------------------------------------- modulated conv


def _reference_modconv(m: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-sample loop with ordinary convolutions.

    ``up=2`` uses the official generic path of conv2d_resample (FIR upsample with zero insertion,
    then a true convolution), independent of the transposed convolution used by the layer.
    """
    styles = m.affine(w)
    outs = []
    for i in range(x.shape[0]):
        wi = m.modulated_weight(styles[i : i + 1])[0]  # [O, I, k, k]
        xi = x[i : i + 1]
        if m.up == 1:
            outs.append(F.conv2d(xi, wi, padding=m.kernel_size // 2))
        else:
            fw = m.resample_filter.shape[1]
            p0 = m.kernel_size // 2 + (fw + 1) // 2
            p1 = m.kernel_size // 2 + (fw - 2) // 2
            xi = upfirdn2d(xi, m.resample_filter, up=2, padding=(p0, p1, p0, p1), gain=4)
            outs.append(F.conv2d(xi, wi.flip([2, 3])))
    return torch.cat(outs)


def test_modconv_demodulated_weights_have_unit_norm():
    m = ModulatedConv2d(6, 5, 3, style_dim=8)
    with torch.no_grad():
        m.affine.weight.normal_()
    styles = m.affine(torch.randn(4, 8))
    wt = m.modulated_weight(styles)
    assert wt.shape == (4, 5, 6, 3, 3)
    torch.testing.assert_close(wt.square().sum(dim=(2, 3, 4)), torch.ones(4, 5), atol=1e-5, rtol=0)

    nodemod = ModulatedConv2d(6, 5, 3, style_dim=8, demodulate=False)
    s = torch.rand(2, 6) + 0.5
    ref = nodemod.weight[None] / math.sqrt(6 * 9) * s[:, None, :, None, None]
    torch.testing.assert_close(nodemod.modulated_weight(s), ref)


def test_modconv_affine_bias_starts_at_one():
    m = ModulatedConv2d(4, 4, 3, style_dim=6)
    torch.testing.assert_close(m.affine(torch.zeros(1, 6)), torch.ones(1, 4))
    assert [n for n, _ in m.named_parameters()] == ["weight", "affine.weight", "affine.bias"]
    assert "resample_filter" not in m.state_dict()


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("kernel_size", [3, 1])
def test_modconv_fused_equals_reference(up, demodulate, kernel_size):
    m = ModulatedConv2d(4, 3, kernel_size, style_dim=5, demodulate=demodulate, up=up)
    with torch.no_grad():
        m.affine.weight.normal_()
    x = torch.randn(3, 4, 5, 5)
    w = torch.randn(3, 5)
    fused = m(x, w, fused=True)
    assert fused.shape == (3, 3, 5 * up, 5 * up)
    ref = _reference_modconv(m, x, w)
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m(x, w, fused=False), ref, atol=1e-5, rtol=1e-5)


def test_modconv_gradients_reach_weight_and_affine_twice():
    m = ModulatedConv2d(3, 4, 3, style_dim=5, up=2)
    w = torch.randn(2, 5, requires_grad=True)
    x = torch.randn(2, 3, 4, 4)
    out = m(x, w)
    # path-length regularisation differentiates through the layer twice
    (g,) = torch.autograd.grad((out * torch.randn_like(out)).sum(), w, create_graph=True)
    (out.square().mean() + g.square().sum()).backward()
    for p in (m.weight, m.affine.weight, m.affine.bias):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


# --------------------------------------------------------------------------- noise


def test_noise_identity_at_init_and_shapes():
    x = torch.randn(2, 3, 4, 4)
    per_channel = NoiseInjection(3, resolution=4)
    scalar = NoiseInjection(resolution=4)
    assert per_channel.strength.shape == (3,)
    assert scalar.strength.shape == ()
    assert per_channel.noise_const.shape == (1, 1, 4, 4)
    assert "noise_const" in scalar.state_dict()
    for mode in ("random", "const", "none"):
        assert torch.equal(per_channel(x, mode=mode), x)
        assert torch.equal(scalar(x, mode=mode), x)


def test_noise_strength_gradient():
    x = torch.randn(2, 3, 4, 4)
    scalar = NoiseInjection(resolution=4)
    scalar(x, mode="const").sum().backward()
    # d/ds sum(x + s * noise) over N*C copies of the shared [H, W] noise image
    torch.testing.assert_close(scalar.strength.grad, 2 * 3 * scalar.noise_const.sum())
    per_channel = NoiseInjection(3, resolution=4)
    per_channel(x, mode="const").sum().backward()
    torch.testing.assert_close(per_channel.strength.grad, (2 * per_channel.noise_const.sum()).repeat(3))
    # with random noise the gradient at strength 0 is sum(2 * x * noise) per channel: nonzero
    fresh = NoiseInjection(3)
    fresh(x).square().sum().backward()
    assert fresh.strength.grad.shape == (3,) and (fresh.strength.grad.abs() > 0).all()


def test_noise_modes():
    x = torch.randn(2, 3, 4, 4)
    m = NoiseInjection(3, resolution=4)
    with torch.no_grad():
        m.strength.copy_(torch.tensor([0.5, -1.0, 2.0]))
    c1, c2 = m(x, mode="const"), m(x, mode="const")
    assert torch.equal(c1, c2)
    torch.testing.assert_close(c1, x + m.noise_const * m.strength[None, :, None, None])
    r1, r2 = m(x), m(x)
    assert not torch.allclose(r1, r2)
    # one noise image per sample, shared by the channels and scaled per channel
    per_channel_noise = (r1 - x) / m.strength[None, :, None, None]
    torch.testing.assert_close(per_channel_noise, per_channel_noise[:, :1].expand_as(x))
    assert not torch.allclose(per_channel_noise[0], per_channel_noise[1])
    assert torch.equal(m(x, mode="none"), x)
    explicit = torch.randn(2, 1, 4, 4)
    torch.testing.assert_close(m(x, explicit), x + explicit * m.strength[None, :, None, None])
    with pytest.raises(ValueError, match="resolution"):
        NoiseInjection(3)(x, mode="const")
    with pytest.raises(ValueError, match="mode"):
        m(x, mode="fixed")


# --------------------------------------------------------------------------- attention


def test_attention_identity_at_init_and_rows_sum_to_one():
    attn = SelfAttention2d(16)
    x = torch.randn(2, 16, 4, 4)
    assert torch.equal(attn(x), x)
    beta = attn.attention_map(x)
    assert beta.shape == (2, 16, 4)  # keys are 2x2 max-pooled
    torch.testing.assert_close(beta.sum(dim=-1), torch.ones(2, 16))
    assert (beta >= 0).all()
    nopool = SelfAttention2d(16, pool=False)
    assert nopool.attention_map(x).shape == (2, 16, 16)


@pytest.mark.parametrize("pool", [True, False])
def test_attention_goes_where_the_input_forces_it(pool):
    # Constant queries and a key that is non-zero at one position: every query must attend there,
    # and the output at every position is that position's value mapped by o (gamma = 1).
    attn = SelfAttention2d(16, pool=pool)  # f, g: 16 -> 2, h: 16 -> 8, o: 8 -> 16
    x = torch.zeros(1, 16, 8, 8)
    x[0, 0] = 1.0  # read by f: the same query everywhere
    x[0, 1, 5, 2] = 1.0  # read by g: one key position stands out
    x[0, 2] = torch.randn(8, 8)  # read by h: the values
    with torch.no_grad():
        for m in (attn.f, attn.g, attn.h, attn.o):
            m.weight.zero_()
        attn.f.weight[0, 0] = 30.0
        attn.g.weight[0, 1] = 1.0
        attn.h.weight[0, 2] = 1.0
        attn.o.weight[3, 0] = 1.0
        attn.gamma.fill_(1.0)
    beta = attn.attention_map(x)  # [1, 64, keys]
    target = (5 // 2) * 4 + 2 // 2 if pool else 5 * 8 + 2
    assert beta.shape == (1, 64, 16 if pool else 64)
    assert (beta.argmax(dim=-1) == target).all()
    assert beta[..., target].min() > 0.999
    value = x[0, 2, 4:6, 2:4].max() if pool else x[0, 2, 5, 2]  # the 2x2 cell's max when pooled
    out = attn(x)
    torch.testing.assert_close(out[0, 3], x[0, 3] + value, atol=1e-4, rtol=0)
    others = [c for c in range(16) if c != 3]
    torch.testing.assert_close(out[0, others], x[0, others])


def test_attention_bias_choice():
    assert all(c.bias is None for c in (SelfAttention2d(16).f, SelfAttention2d(16).o))
    # f, g: 16 -> 2, h: 16 -> 8, o: 8 -> 16, plus gamma
    assert n_params(SelfAttention2d(16)) == 16 * 2 * 2 + 16 * 8 + 8 * 16 + 1
    assert n_params(SelfAttention2d(16, bias=True)) == 16 * 2 * 2 + 16 * 8 + 8 * 16 + 1 + 2 + 2 + 8 + 16


@pytest.mark.parametrize("pool", [True, False])
def test_attention_matches_hand_computation(pool):
    attn = SelfAttention2d(8, qk_reduction=4, v_reduction=2, pool=pool).double()
    with torch.no_grad():
        attn.gamma.fill_(0.7)
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    out = attn(x)
    assert not torch.allclose(out, x)

    wf, wg, wh, wo = (m.weight[:, :, 0, 0] for m in (attn.f, attn.g, attn.h, attn.o))

    def proj(wt: torch.Tensor) -> torch.Tensor:
        t = torch.einsum("oc,nchw->nohw", wt, x)
        if pool:  # 2x2 max pooling by hand
            n, c, h, w = t.shape
            t = t.reshape(n, c, h // 2, 2, w // 2, 2).amax(dim=(3, 5))
        return t.flatten(2)  # [N, C', positions]

    q = torch.einsum("oc,nchw->nohw", wf, x).flatten(2)  # [N, 2, 16]
    k, v = proj(wg), proj(wh)
    expected = torch.empty_like(x).flatten(2)
    for n in range(2):
        for j in range(16):
            logits = torch.stack([q[n, :, j] @ k[n, :, i] for i in range(k.shape[2])])
            beta = torch.exp(logits - logits.max())
            beta = beta / beta.sum()
            o = (v[n] * beta).sum(dim=1)  # [4]
            expected[n, :, j] = x.flatten(2)[n, :, j] + 0.7 * (wo @ o)
    torch.testing.assert_close(out, expected.reshape_as(x))


def test_attention_spectral_norm_and_odd_sizes():
    attn = SelfAttention2d(16, spectral_norm=True)
    assert all(isinstance(m, SNConv2d) for m in (attn.f, attn.g, attn.h, attn.o))
    x = torch.randn(2, 16, 4, 4)
    assert attn(x).shape == x.shape
    with pytest.raises(ValueError, match="even"):
        attn(torch.randn(1, 16, 5, 4))


# --------------------------------------------------------------------------- resampling


def test_setup_filter():
    f = setup_filter([1, 3, 3, 1])
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    torch.testing.assert_close(f, torch.outer(taps, taps) / 64)
    g = setup_filter([[1.0, 2.0], [3.0, 4.0]], normalize=False)
    assert torch.equal(g, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))


def test_upfirdn2d_identity_filter_is_zero_insertion():
    x = torch.randn(2, 3, 5, 5)
    y = upfirdn2d(x, setup_filter([1]), up=2)
    assert y.shape == (2, 3, 10, 10)
    assert torch.equal(y[:, :, ::2, ::2], x)
    mask = torch.ones(10, 10, dtype=torch.bool)
    mask[::2, ::2] = False
    assert torch.all(y[:, :, mask] == 0)


def test_upfirdn2d_equals_transposed_convolution():
    # conv_transpose2d(x, k, stride=s) is zero insertion followed by a full true convolution with
    # k; an asymmetric 3x2 filter catches flipped or swapped axes.
    x = torch.randn(2, 3, 5, 5)
    f = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 4.0]])
    fh, fw = f.shape
    y = upfirdn2d(x, f, up=2, padding=(fw - 1, fw - 2, fh - 1, fh - 2), gain=1.5)
    ref = F.conv_transpose2d(x, 1.5 * f[None, None].repeat(3, 1, 1, 1), stride=2, groups=3)
    torch.testing.assert_close(y, ref)


@pytest.mark.parametrize(
    ("up", "down", "padding"),
    [(1, 1, (0, 0, 0, 0)), (2, 1, (2, 1, 1, 3)), (1, 2, (1, 2, 0, 1)), (3, 2, (-1, 2, 1, -2))],
)
def test_upfirdn2d_equals_direct_computation(up, down, padding):
    x = np.random.randn(5, 5)
    f = np.random.randn(3, 4)
    px0, px1, py0, py1 = padding
    u = np.zeros((5 * up, 5 * up))
    u[::up, ::up] = x
    u = np.pad(u, ((max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    u = u[max(-py0, 0) : u.shape[0] - max(-py1, 0), max(-px0, 0) : u.shape[1] - max(-px1, 0)]
    ref = scipy.signal.convolve2d(u, f, mode="valid")[::down, ::down]
    xt = torch.from_numpy(x)[None, None]
    y = upfirdn2d(xt, torch.from_numpy(f), up=up, down=down, padding=padding)
    np.testing.assert_allclose(y[0, 0].numpy(), ref, atol=1e-10)
    # flip_filter=True is a correlation
    ref_corr = scipy.signal.correlate2d(u, f, mode="valid")[::down, ::down]
    y_corr = upfirdn2d(xt, torch.from_numpy(f), up=up, down=down, padding=padding, flip_filter=True)
    np.testing.assert_allclose(y_corr[0, 0].numpy(), ref_corr, atol=1e-10)


def test_upfirdn2d_double_backward():
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).double()

    def fn(t: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(t, f, up=2, padding=(2, 1, 2, 1), gain=4)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_upsample_and_downsample_keep_constants():
    x = torch.full((1, 2, 8, 8), 3.5)
    up = Upsample2d()(x)
    assert up.shape == (1, 2, 16, 16)
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.full((1, 2, 12, 12), 3.5))
    down = Downsample2d()(x)
    assert down.shape == (1, 2, 4, 4)
    torch.testing.assert_close(down[:, :, 1:-1, 1:-1], torch.full((1, 2, 2, 2), 3.5))
    assert "resample_filter" not in Upsample2d().state_dict()


def test_upsample_downsample_match_official_padding():
    # official upsample2d pads (fw + up - 1) // 2 and (fw - up) // 2 with gain up**2
    x = torch.randn(2, 3, 4, 4)
    f = setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(Upsample2d()(x), upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4))
    torch.testing.assert_close(Downsample2d()(x), upfirdn2d(x, f, down=2, padding=1))
    blur = Blur([1, 3, 3, 1], padding=2, gain=2.0)
    torch.testing.assert_close(blur(x), upfirdn2d(x, f, padding=2, gain=2.0))
    assert blur(x).shape == (2, 3, 5, 5)


def test_nearest_and_average_resampling():
    x = torch.randn(2, 3, 4, 4)
    up = nearest_upsample(x)
    torch.testing.assert_close(up, x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    torch.testing.assert_close(avg_downsample(up), x)
    z = torch.randn(1, 1, 4, 6)
    torch.testing.assert_close(avg_downsample(z), z.reshape(1, 1, 2, 2, 3, 2).mean(dim=(3, 5)))
    assert nearest_upsample(x, 3).shape == (2, 3, 12, 12)


# --------------------------------------------------------------------------- devices


def _accelerators() -> list[str]:
    devs = []
    if torch.cuda.is_available():
        devs.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append("mps")
    return devs


@pytest.mark.skipif(not _accelerators(), reason="no CUDA or MPS device")
def test_layers_follow_the_input_device():
    for dev in _accelerators():
        device = torch.device(dev)
        x = torch.randn(4, 16, 8, 8, device=device)
        w = torch.randn(4, 8, device=device)
        mods = [
            (EqualizedConv2d(16, 8, 3, activation="lrelu"), (x,)),
            (PixelNorm(), (x,)),
            (AdaIN(16, 8), (x, w)),
            (MinibatchStdDev(), (x,)),
            (NoiseInjection(16, resolution=8), (x,)),
            (SelfAttention2d(16, spectral_norm=True), (x,)),
            (Upsample2d(), (x,)),
            (Downsample2d(), (x,)),
            (ConditionalBatchNorm2d(16, num_classes=3), (x, torch.tensor([0, 1, 2, 0], device=device))),
        ]
        for m, args in mods:
            cpu_out = m(*(a.cpu() for a in args)) if not isinstance(m, NoiseInjection) else None
            out = m.to(device)(*args)
            assert out.device.type == dev
            if cpu_out is not None:
                torch.testing.assert_close(out.cpu(), cpu_out, atol=1e-4, rtol=1e-4)
        mc = ModulatedConv2d(16, 8, 3, 8, up=2).to(device)
        fused, ref = mc(x, w), mc(x, w, fused=False)
        assert fused.device.type == dev and fused.shape == (4, 8, 16, 16)
        torch.testing.assert_close(fused, ref, atol=1e-4, rtol=1e-4)
