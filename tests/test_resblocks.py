"""Residual SN blocks and the projection head (ganzoo.layers.resblocks) against direct computations."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.layers.norms import ConditionalBatchNorm2d
from ganzoo.layers.resblocks import BatchNorm2dIgnoringY, DBlock, GBlock, ProjectionHead, init_weights
from ganzoo.layers.spectral import SNConv2d, SNEmbedding, SNLinear


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _w(conv: nn.Module) -> torch.Tensor:
    """The weight a conv uses in eval mode (spectrally normalised or plain)."""
    return conv.sn_weight() if isinstance(conv, SNConv2d) else conv.weight


def _conv(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    k = conv.weight.shape[-1]
    return F.conv2d(x, _w(conv), conv.bias, padding=k // 2)


@pytest.mark.parametrize("sn", [True, False])
def test_gblock_matches_hand_computation(sn):
    norm = functools.partial(ConditionalBatchNorm2d, num_classes=3)
    blk = GBlock(4, 6, norm=norm, sn=sn).eval()
    with torch.no_grad():  # non-trivial class tables and running statistics
        for cbn in (blk.norm1, blk.norm2):
            cbn.gain.weight.uniform_(0.5, 1.5)
            cbn.bias.weight.normal_()
            cbn.bn.running_mean.normal_()
            cbn.bn.running_var.uniform_(0.5, 2.0)
    x, y = torch.randn(2, 4, 5, 5), torch.tensor([0, 2])

    def bn(cbn: ConditionalBatchNorm2d, t: torch.Tensor) -> torch.Tensor:
        mean, var = cbn.bn.running_mean, cbn.bn.running_var
        t = (t - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-5)
        return t * cbn.gain.weight[y][:, :, None, None] + cbn.bias.weight[y][:, :, None, None]

    up = lambda t: t.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # noqa: E731
    h = _conv(blk.conv1, up(F.relu(bn(blk.norm1, x))))
    h = _conv(blk.conv2, F.relu(bn(blk.norm2, h)))
    expected = h + _conv(blk.conv_sc, up(x))
    out = blk(x, y)
    assert out.shape == (2, 6, 10, 10)
    torch.testing.assert_close(out, expected)
    assert isinstance(blk.conv1, SNConv2d) == sn


def test_gblock_identity_shortcut_and_class_response():
    # sn=False: a zero weight has no spectral normalisation (sigma = 0)
    blk = GBlock(4, 4, norm=functools.partial(ConditionalBatchNorm2d, num_classes=2), upsample=False, sn=False)
    assert blk.conv_sc is None
    x = torch.randn(3, 4, 6, 6)
    with torch.no_grad():
        blk.conv2.weight.zero_()
        blk.conv2.bias.zero_()
    torch.testing.assert_close(blk(x, torch.tensor([0, 1, 0])), x)  # residual branch is zero
    blk2 = GBlock(4, 4, norm=functools.partial(ConditionalBatchNorm2d, num_classes=2), upsample=False)
    with torch.no_grad():
        blk2.norm1.bias.weight[1].fill_(2.0)
    a = blk2(x, torch.tensor([0, 0, 0]))
    b = blk2(x, torch.tensor([1, 1, 1]))
    assert not torch.allclose(a, b)
    # unconditional norm ignores y
    u = GBlock(4, 8, norm=BatchNorm2dIgnoringY)
    assert u(x, None).shape == (3, 8, 12, 12)


@pytest.mark.parametrize("preactivation", [True, False])
@pytest.mark.parametrize("downsample", [True, False])
def test_dblock_matches_hand_computation(preactivation, downsample):
    blk = DBlock(3, 5, downsample=downsample, preactivation=preactivation).eval()
    x = torch.randn(2, 3, 6, 6)  # negative inputs: the first ReLU matters
    pool = (lambda t: F.avg_pool2d(t, 2)) if downsample else (lambda t: t)
    h = F.relu(x) if preactivation else x
    h = pool(_conv(blk.conv2, F.relu(_conv(blk.conv1, h))))
    # a 1x1 conv and average pooling commute, so either shortcut order gives conv(pool(x))
    sc = _conv(blk.conv_sc, pool(x))
    out = blk(x)
    torch.testing.assert_close(out, h + sc, atol=1e-6, rtol=1e-5)
    assert out.shape == ((2, 5, 3, 3) if downsample else (2, 5, 6, 6))


def test_dblock_shortcut_rules_and_width():
    same = DBlock(4, 4, downsample=False, sn=False)
    assert same.conv_sc is None
    x = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        same.conv2.weight.zero_()
        same.conv2.bias.zero_()
    torch.testing.assert_close(same(x), x)
    assert DBlock(4, 4, downsample=True).conv_sc is not None
    assert DBlock(4, 8, wide=False).conv1.out_channels == 4
    assert DBlock(4, 8, wide=True).conv1.out_channels == 8
    assert DBlock(4, 8, sn=False).conv1.__class__ is nn.Conv2d


def test_projection_head():
    head = ProjectionHead(6, 4).eval()
    assert isinstance(head.linear, SNLinear) and isinstance(head.embed, SNEmbedding)
    h, y = torch.randn(3, 6), torch.tensor([0, 3, 1])
    lin = h @ head.linear.sn_weight().t() + head.linear.bias  # [N, 1]
    emb = head.embed.sn_weight()[y]  # [N, 6]
    expected = lin[:, 0] + (emb * h).sum(1)
    torch.testing.assert_close(head(h, y), expected)
    torch.testing.assert_close(head(h), lin[:, 0])  # no labels: the unconditional term only
    assert ProjectionHead(6, 0).embed is None
    # the projection term makes the logit class dependent
    assert not torch.allclose(head(h, torch.zeros(3, dtype=torch.long)), head(h, torch.ones(3, dtype=torch.long)))


def test_init_weights_schemes_leave_class_tables():
    net = nn.ModuleDict(
        {
            "g": GBlock(8, 16, norm=functools.partial(ConditionalBatchNorm2d, num_classes=3)),
            "head": ProjectionHead(16, 3),
        }
    )
    init_weights(net, "ortho")
    w = net["g"].conv1.weight.reshape(16, -1)  # [16, 72]: orthonormal rows
    torch.testing.assert_close(w @ w.t(), torch.eye(16), atol=1e-5, rtol=0)
    assert torch.all(net["g"].conv1.bias == 0)
    assert torch.all(net["g"].norm1.gain.weight == 1) and torch.all(net["g"].norm1.bias.weight == 0)
    init_weights(net, "xavier", zero_bias=False)
    bound = (6 / (16 + 8 * 9)) ** 0.5
    assert net["g"].conv1.weight.abs().max() <= bound
    assert torch.all(net["g"].norm2.gain.weight == 1)
    init_weights(net, "N02")
    assert net["head"].embed.weight.std().item() == pytest.approx(0.02, rel=0.3)
    with pytest.raises(ValueError, match="init scheme"):
        init_weights(net, "kaiming")
