"""The fast paths of StyleGAN2's layers against their references: FIR resampling and the NHWC layout."""

from __future__ import annotations

import pytest
import torch

import ganzoo.models.stylegan2_discriminator as sg2_d
import ganzoo.models.stylegan2_generator as sg2_g
from ganzoo.layers.resample import setup_filter, upfirdn2d, upfirdn2d_reference
from ganzoo.models.stylegan2 import Discriminator, Generator

# (up, down, padding): StyleGAN2's four uses first (Upsample2d, Downsample2d, the Blur before a
# stride-2 conv, the FIR after the transposed conv of an up=2 modulated conv), then general ones
# that take the slower branches (asymmetric or negative padding, up and down together).
CASES = [
    (2, 1, (2, 1, 2, 1)),
    (1, 2, (1, 1, 1, 1)),
    (1, 1, (2, 2, 2, 2)),
    (1, 1, (1, 1, 1, 1)),
    (2, 1, (2, 1, 1, 3)),
    (1, 2, (1, 2, 0, 1)),
    (3, 2, (-1, 2, 1, -2)),
    (2, 2, (1, 1, 1, 1)),
    (1, 3, (0, 2, 1, 1)),
]
FILTERS = {"fir4": setup_filter([1, 3, 3, 1]), "asym3x4": torch.randn(3, 4, generator=torch.Generator().manual_seed(0))}


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("fname", sorted(FILTERS))
@pytest.mark.parametrize(("up", "down", "padding"), CASES)
def test_upfirdn2d_fast_path_matches_reference(up, down, padding, fname, flip):
    """Same values, gradient and gradient of the gradient as the plain composition of the four steps."""
    f = FILTERS[fname].double()
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    kw = dict(up=up, down=down, padding=padding, gain=1.7, flip_filter=flip)
    y, ref = upfirdn2d(x, f, **kw), upfirdn2d_reference(x, f, **kw)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref)
    # First and second order against the reference's autograd (the R1 / path-length pattern).
    v = torch.randn_like(y)
    (g,) = torch.autograd.grad((y * v).sum(), x, create_graph=True)
    (g_ref,) = torch.autograd.grad((ref * v).sum(), x, create_graph=True)
    torch.testing.assert_close(g, g_ref)
    # d/dv <grad_x <op(x), v>, w>: the second-order path that a double backward takes.
    w = torch.randn_like(g)
    v2 = v.clone().requires_grad_(True)

    def second_order(op) -> torch.Tensor:
        (gx,) = torch.autograd.grad((op(x, f, **kw) * v2).sum(), x, create_graph=True)
        return torch.autograd.grad((gx * w).sum(), v2)[0]

    torch.testing.assert_close(second_order(upfirdn2d), second_order(upfirdn2d_reference))


@pytest.mark.parametrize(("up", "down", "padding"), CASES[:4])
def test_upfirdn2d_gradcheck_and_gradgradcheck(up, down, padding):
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(t, f, up=up, down=down, padding=padding, gain=up * up)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_upfirdn2d_learned_filter_gets_a_gradient():
    """A filter that requires grad takes the reference path, so it is trained like any weight."""
    f = setup_filter([1, 3, 3, 1]).requires_grad_(True)
    x = torch.randn(1, 2, 6, 6)
    upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4).square().sum().backward()
    assert f.grad is not None and f.grad.abs().sum() > 0


def test_upfirdn2d_keeps_channels_last_and_dtype():
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    for kw in (dict(up=2, padding=(2, 1, 2, 1), gain=4), dict(down=2, padding=1), dict(padding=2)):
        y = upfirdn2d(x, f, **kw)
        torch.testing.assert_close(y, upfirdn2d_reference(x.contiguous(), f, **kw))
    assert upfirdn2d(x.double(), f, padding=1).dtype == torch.float64


def _nchw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the StyleGAN2 networks with NCHW feature maps (the layout before the NHWC fast path)."""
    for mod in (sg2_g, sg2_d):
        monkeypatch.setattr(mod, "conv_memory_format", lambda t: torch.contiguous_format)


def test_channels_last_layout_gives_the_same_networks(monkeypatch):
    """NHWC feature maps on the CPU: same images, logits, R1 gradients and parameter gradients."""
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=16, channel_base=256, channel_max=32, mapping_layers=2)
    D = Discriminator(img_resolution=16, channel_base=256, channel_max=32, mbstd_group_size=2)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.strength"):
                p.fill_(0.5)
    ws = G.mapping(torch.randn(4, 16)).detach()
    seen: list[bool] = []
    G.synthesis.blocks.b16.conv1.register_forward_hook(
        lambda m, i, o: seen.append(o.is_contiguous(memory_format=torch.channels_last))
    )

    def run() -> list[torch.Tensor]:
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        img = G.synthesis(ws, noise_mode="const")
        x = img.detach().requires_grad_(True)
        logits = D(x)
        (r1,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        (r1.square().sum() + logits.sum() + img.square().sum()).backward()
        grads = [p.grad for p in (*G.synthesis.parameters(), *D.parameters()) if p.grad is not None]
        return [img, logits, r1, *grads], img

    fast, img = run()
    assert seen == [True] and img.is_contiguous()  # NHWC inside, NCHW out
    with monkeypatch.context() as m:
        _nchw(m)
        ref, _ = run()
    assert seen == [True, False]
    assert len(fast) == len(ref)
    for a, b in zip(fast, ref):  # fp32 convolutions summed in another order: rounding only
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * float(b.detach().abs().max()))
