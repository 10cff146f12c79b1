"""SAGAN: Self-Attention GAN (Zhang, Goodfellow, Metaxas & Odena, ICML 2019).

Built as the authors' TensorFlow code (brain-research/self-attention-gan, ``generator_test`` /
``discriminator_test``, the defaults of ``train_imagenet.py``) builds it:

* G (Sec. 4, Fig. 2 of the code): ``z`` -> SN linear -> ``[N, 16*gf, 4, 4]`` -> residual up
  blocks (conditional BN, ReLU, nearest x2, SN 3x3 conv, conditional BN, ReLU, SN 3x3 conv;
  shortcut nearest x2 + SN 1x1 conv), self-attention (Sec. 3) after the block that reaches
  ``attn_resolution`` (32 in the code), then BN - ReLU - SN 3x3 conv - tanh.
* Class-conditional BN (Sec. 5: "conditional batch normalization in the generator"): per-class
  gain and bias tables initialised to 1 and 0 (``ops.ConditionalBatchNorm``), or StudioGAN's
  variant (``cbn="onehot"``): ``1 + SN-linear(one-hot)`` and ``SN-linear(one-hot)``.
* D: the SNGAN ResNet discriminator (first block without the leading ReLU and with pool-then-conv
  shortcut, then pre-activation down blocks, the last one without down-sampling), self-attention
  after the block reaching ``attn_resolution``, ReLU, sum pooling, projection head (Miyato &
  Koyama 2018) with an SN embedding.
* Spectral normalisation on every G and D layer (Sec. 4.1), one power iteration per forward,
  with :mod:`ganzoo.layers.spectral` so the ``u`` vectors are checkpointed buffers.
* Hinge loss (eq. 5), TTUR (Sec. 4.2): Adam lr 1e-4 (G) and 4e-4 (D), betas (0, 0.9), one D
  step per G step. Xavier-uniform weights with zero biases (the code's ``xavier_initializer``).

StudioGAN (the ``sagan_cifar`` preset and imports of its checkpoints, :mod:`ganzoo.pretrained.studiogan`)
needs options that default to the behaviour above: D ``activated_shortcut=True`` (StudioGAN's ``DiscBlock``
feeds ``relu(x)`` to its shortcut, see :class:`~ganzoo.layers.resblocks.DBlock`), the objective's
``d_first`` and, for imports, ``sn_eval="stored"`` (G and D; torch ``spectral_norm``'s rule under a plain
``.eval()``, see :func:`ganzoo.layers.spectral.set_sn_eval`; the preset keeps the default power step, which
is what StudioGAN's own sampler computes, see docs/models/sagan.md) and, for its SNGAN configs
(``apply_g_sn: False``), G ``sn=False`` (plain convolutions and linears in G).

EMA: the paper and the official code sample from the raw G; ganzoo keeps a G average for the
sample grids (``trainer.ema=false`` gives the paper's setting). Its BN statistics and SN vectors
are buffers, copied from G by ``update_ema``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..bundle import Bundle, EMASpec, OptimizerSpec, gan_bundle, is_power_of_two
from ..errors import ConfigError
from ..layers.attention import SelfAttention2d
from ..layers.norms import ConditionalBatchNorm2d
from ..layers.resblocks import BatchNorm2dIgnoringY, DBlock, GBlock, ProjectionHead, init_weights
from ..layers.spectral import set_sn_eval, sn_conv2d, sn_linear
from ..losses.objectives import AdversarialObjective, optimizer_spec
from ..registry import construct, register_model

CBN_KINDS = ("table", "onehot")


def _check_attn(attn_resolution: int | None, available: Sequence[int], channels: Sequence[int], where: str) -> int:
    """Index of the block after which attention sits (-1: none); ``channels[i]`` is block i's width."""
    if not attn_resolution:
        return -1
    if attn_resolution not in available:
        raise ConfigError(
            f"{where}.attn_resolution={attn_resolution} is not a feature-map size of this network; "
            f"choose one of {sorted(set(available))} (or 0 for no attention)"
        )
    index = list(available).index(attn_resolution)
    if channels[index] < 8:
        raise ConfigError(
            f"{where}: self-attention at {attn_resolution}x{attn_resolution} needs >= 8 channels (C/8 for "
            f"queries and keys), this block has {channels[index]}; widen it or move the attention"
        )
    return index


class SAGANGenerator(nn.Module):
    """Residual generator with conditional BN and one self-attention layer (see module docstring).

    ``channel_mults``: widths ``base_channels * m`` of the ``bottom x bottom`` input and of each
    up block's output (one block per doubling), e.g. ``[16, 16, 8, 4, 2, 1]`` at 128x128.
    """

    def __init__(
        self,
        *,
        z_dim: int = 128,
        resolution: int = 128,
        img_channels: int = 3,
        c_dim: int = 0,
        base_channels: int = 64,
        channel_mults: Sequence[int] = (16, 16, 8, 4, 2, 1),
        attn_resolution: int | None = 32,
        bottom: int = 4,
        cbn: str = "table",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.001,
        out_bn_momentum: float = 0.0001,
        sn_eps: float = 1e-12,
        init: str = "xavier",
        sn_eval: str = "power_step",
        sn: bool = True,
    ):
        super().__init__()
        if not is_power_of_two(resolution // bottom) or resolution % bottom or resolution <= bottom:
            raise ConfigError(
                f"SAGAN cannot reach resolution {resolution} from {bottom}x{bottom} by doublings; "
                "use a power of two >= 8 (e.g. model.resolution=32)"
            )
        n_blocks = int(math.log2(resolution // bottom))
        if len(channel_mults) != n_blocks + 1:
            raise ConfigError(
                f"model.G.channel_mults needs {n_blocks + 1} entries at resolution {resolution} (the "
                f"{bottom}x{bottom} input and one per up block), got {list(channel_mults)}"
            )
        if cbn not in CBN_KINDS:
            raise ConfigError(f"model.G.cbn={cbn!r}; choose one of {CBN_KINDS}")
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = resolution, img_channels
        self.bottom, self.cbn = bottom, cbn
        chans = [base_channels * m for m in channel_mults]
        self.channels = chans
        use_sn = sn
        sn = dict(sn_eps=sn_eps, sn=use_sn)

        norm: Callable[[int], nn.Module]
        if c_dim == 0:
            norm = functools.partial(BatchNorm2dIgnoringY, eps=bn_eps, momentum=bn_momentum)
        elif cbn == "table":
            norm = functools.partial(ConditionalBatchNorm2d, num_classes=c_dim, eps=bn_eps, momentum=bn_momentum)
        else:
            norm = functools.partial(
                ConditionalBatchNorm2d, cond_dim=c_dim, spectral_norm=use_sn, sn_eps=sn_eps, eps=bn_eps,
                momentum=bn_momentum,
            )

        self.linear = sn_linear(z_dim, chans[0] * bottom * bottom, **sn)
        self.blocks = nn.ModuleList(GBlock(a, b, norm=norm, **sn) for a, b in zip(chans[:-1], chans[1:]))
        block_res = [bottom * 2 ** (i + 1) for i in range(n_blocks)]
        self.attn_after = _check_attn(attn_resolution, block_res, chans[1:], "model.G")
        self.attn_resolution = block_res[self.attn_after] if self.attn_after >= 0 else None
        self.attn = (
            SelfAttention2d(chans[self.attn_after + 1], spectral_norm=use_sn, sn_eps=sn_eps)
            if self.attn_after >= 0
            else None
        )
        self.out_bn = nn.BatchNorm2d(chans[-1], eps=bn_eps, momentum=out_bn_momentum)
        self.out_conv = sn_conv2d(chans[-1], img_channels, 3, padding=1, **sn)
        init_weights(self, init)
        set_sn_eval(self, sn_eval)

    def class_embedding(self, c: torch.Tensor) -> torch.Tensor:
        """Class weights ``[N, c_dim]`` (one-hot) that ``forward(z, embedding=...)`` takes; every
        conditional BN is linear in them, so mixing two rows interpolates between the classes."""
        return F.one_hot(c.long(), self.c_dim).float()

    def forward(
        self, z: torch.Tensor, c: torch.Tensor | None = None, *, embedding: torch.Tensor | None = None
    ) -> torch.Tensor:
        y: torch.Tensor | None = None
        if self.c_dim > 0 and embedding is not None:
            y = embedding.to(z.dtype)  # [N, K] class weights (class interpolation)
        elif self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is class-conditional (c_dim={self.c_dim}): pass labels c")
            y = F.one_hot(c.long(), self.c_dim).to(z.dtype) if self.cbn == "onehot" else c.long()  # [N, K] or [N]
        h = self.linear(z).view(z.shape[0], self.channels[0], self.bottom, self.bottom)  # [N, C0, 4, 4]
        for i, block in enumerate(self.blocks):
            h = block(h, y)
            if i == self.attn_after:
                h = self.attn(h)
        h = self.out_conv(F.relu(self.out_bn(h)))  # [N, img_channels, R, R]
        return torch.tanh(h)

    def extra_repr(self) -> str:
        return (
            f"z_dim={self.z_dim}, c_dim={self.c_dim}, resolution={self.img_resolution}, "
            f"channels={self.channels}, attn_resolution={self.attn_resolution}, cbn={self.cbn!r}"
        )


class SAGANDiscriminator(nn.Module):
    """SNGAN-style residual discriminator with one self-attention layer and a projection head.

    ``channel_mults``: output widths ``base_channels * m`` of the blocks; ``downsample``: which
    blocks halve the resolution (default: all but the last, as the TF code's ``d_block6``).
    """

    def __init__(
        self,
        *,
        resolution: int = 128,
        img_channels: int = 3,
        c_dim: int = 0,
        base_channels: int = 64,
        channel_mults: Sequence[int] = (1, 2, 4, 8, 16, 16),
        downsample: Sequence[bool] | None = None,
        attn_resolution: int | None = 32,
        sn_eps: float = 1e-12,
        init: str = "xavier",
        sn_eval: str = "power_step",
        activated_shortcut: bool = False,
    ):
        super().__init__()
        downs = list(downsample) if downsample is not None else [True] * (len(channel_mults) - 1) + [False]
        if len(downs) != len(channel_mults) or not channel_mults:
            raise ConfigError(
                f"model.D.downsample ({downs}) needs one entry per block of "
                f"model.D.channel_mults ({list(channel_mults)})"
            )
        if not downs[0]:
            raise ConfigError("model.D.downsample: the first block (the SNGAN 'optimized' block) always downsamples")
        if resolution % 2 ** sum(downs) or resolution < 2 ** sum(downs):
            raise ConfigError(
                f"model.D: {sum(downs)} down-sampling blocks cannot divide resolution {resolution}; "
                "use fewer blocks or a power-of-two resolution"
            )
        self.c_dim, self.img_resolution, self.img_channels = c_dim, resolution, img_channels
        chans = [img_channels] + [base_channels * m for m in channel_mults]
        self.channels = chans[1:]
        sn = dict(sn_eps=sn_eps)
        # The first block must not start with a ReLU on the image (SAGAN's ``optimized_block``).
        self.blocks = nn.ModuleList(
            DBlock(a, b, downsample=d, preactivation=i > 0, activated_shortcut=activated_shortcut, **sn)
            for i, (a, b, d) in enumerate(zip(chans[:-1], chans[1:], downs))
        )
        block_res, r = [], resolution
        for d in downs:
            r = r // 2 if d else r
            block_res.append(r)
        self.attn_after = _check_attn(attn_resolution, block_res, chans[1:], "model.D")
        self.attn_resolution = block_res[self.attn_after] if self.attn_after >= 0 else None
        self.attn = (
            SelfAttention2d(chans[self.attn_after + 1], spectral_norm=True, sn_eps=sn_eps)
            if self.attn_after >= 0
            else None
        )
        self.head = ProjectionHead(chans[-1], c_dim, **sn)
        init_weights(self, init)
        set_sn_eval(self, sn_eval)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.c_dim > 0 and c is None:
            raise ValueError(f"this discriminator is class-conditional (c_dim={self.c_dim}): pass labels c")
        h = img
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attn_after:
                h = self.attn(h)
        h = F.relu(h).sum(dim=(2, 3))  # [N, C] sum pooling, as the TF code and BigGAN
        return self.head(h, c.long() if c is not None and self.c_dim > 0 else None)  # [N]

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, channels={self.channels}, attn_resolution={self.attn_resolution}"


def sagan(
    *,
    resolution: int = 128,
    img_channels: int = 3,
    c_dim: int = 0,
    G: dict[str, Any] | None = None,
    D: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
    ema: dict[str, Any] | None = None,
) -> Bundle:
    """SAGAN (Zhang et al. 2019): SN residual G/D with self-attention, hinge loss, TTUR."""
    if not isinstance(c_dim, int) or c_dim < 0:
        raise ConfigError(f"model.c_dim must be an integer >= 0 (or 'auto'), got {c_dim!r}")
    shape = dict(resolution=resolution, img_channels=img_channels, c_dim=c_dim)
    gen = construct(SAGANGenerator, G, where="model.G (sagan)", **shape)
    disc = construct(SAGANDiscriminator, D, where="model.D (sagan)", **shape)
    optim = dict(optim or {})
    objective = construct(
        AdversarialObjective,
        {"loss": "hinge", **(loss or {})},
        where="model.loss (sagan)",
        optim_G=optimizer_spec(optim.get("G"), OptimizerSpec(lr=1e-4, betas=(0.0, 0.9))),
        optim_D=optimizer_spec(optim.get("D"), OptimizerSpec(lr=4e-4, betas=(0.0, 0.9))),
    )
    ema_spec = construct(EMASpec, {"half_life_kimg": 10.0, "rampup": 0.05, **(ema or {})}, where="model.ema")
    return gan_bundle(gen, disc, objective, ema=ema_spec)


PRESETS: dict[str, dict[str, Any]] = {
    # CPU default: 32x32 grey Fashion-MNIST, class-conditional (the yaml sets c_dim: auto).
    "sagan": dict(
        resolution=32,
        img_channels=1,
        G=dict(z_dim=128, base_channels=16, channel_mults=[4, 4, 2, 1], attn_resolution=16,
               bn_momentum=0.1, out_bn_momentum=0.1),
        D=dict(base_channels=16, channel_mults=[1, 2, 4, 4], attn_resolution=16),
        # TTUR's 1:4 ratio at 4x the paper's rates: ~400 steps in 30 CPU minutes (docs/models/sagan.md)
        optim=dict(G=dict(lr=4e-4, betas=[0.0, 0.9]), D=dict(lr=1.6e-3, betas=[0.0, 0.9])),
    ),
    # The paper / official TF code: ImageNet 128x128, 1000 classes, gf = df = 64, z 128, attention
    # at 32x32 in G (after g_block3) and D (after d_block2), TF BN decays 0.999 (cBN) / 0.9999 (last BN).
    "sagan_imagenet128": dict(
        resolution=128,
        img_channels=3,
        c_dim=1000,
        G=dict(z_dim=128, base_channels=64, channel_mults=[16, 16, 8, 4, 2, 1], attn_resolution=32),
        D=dict(base_channels=64, channel_mults=[1, 2, 4, 8, 16, 16], attn_resolution=32),
    ),
    # StudioGAN's CIFAR10/SAGAN.yaml on its resnet backbone: g/d_conv_dim 64 -> G 256 channels
    # throughout, D 128; attention after G block 2 (16x16) and D block 1 (16x16); cBN from SN linears
    # of the one-hot label, BN eps 1e-4, momentum 0.1; SN eps 1e-6; orthogonal init; D's shortcut sees
    # relu(x) (DiscBlock's in-place ReLU). Optimisation from StudioGAN's config defaults: Adam 2e-4 / 2e-4,
    # betas (0.5, 0.999), eps 1e-6 (config.define_optimizer for non-StyleGAN models), D stepped first
    # (d_first), 5 D steps per G step, no EMA. Eval-mode SN takes one power step, as StudioGAN's sampler
    # does (utils/misc.py set_deterministic_op_trainable puts every conv, linear and embedding of the
    # eval-mode G back in training mode); sn_eval="stored" gives torch's plain .eval() rule.
    "sagan_cifar": dict(
        resolution=32,
        img_channels=3,
        c_dim=10,
        G=dict(z_dim=128, base_channels=64, channel_mults=[4, 4, 4, 4], attn_resolution=16, cbn="onehot",
               bn_eps=1e-4, bn_momentum=0.1, out_bn_momentum=0.1, sn_eps=1e-6, init="ortho", sn_eval="power_step"),
        D=dict(base_channels=64, channel_mults=[2, 2, 2, 2], downsample=[True, True, False, False],
               attn_resolution=16, sn_eps=1e-6, init="ortho", sn_eval="power_step", activated_shortcut=True),
        loss=dict(d_repeats=5, d_first=True),
        optim=dict(G=dict(lr=2e-4, betas=[0.5, 0.999], eps=1e-6), D=dict(lr=2e-4, betas=[0.5, 0.999], eps=1e-6)),
    ),
    # Tests and smoke runs: 16x16, at most 32 channels.
    "sagan_tiny": dict(
        resolution=16,
        img_channels=3,
        G=dict(z_dim=32, base_channels=8, channel_mults=[4, 2, 1], attn_resolution=8,
               bn_momentum=0.1, out_bn_momentum=0.1),
        D=dict(base_channels=8, channel_mults=[1, 2, 4], downsample=[True, True, False], attn_resolution=8),
        ema=dict(half_life_kimg=1.0),
    ),
}

_DESCRIPTIONS = {
    "sagan": "SAGAN at 32x32 grey sized for a CPU (class-conditional with model.c_dim=auto)",
    "sagan_imagenet128": "SAGAN as the paper / official TF code: ImageNet 128x128, 1000 classes",
    "sagan_cifar": "SAGAN as StudioGAN's CIFAR-10 config: 32x32, 10 classes",
    "sagan_tiny": "SAGAN at 16x16 with at most 32 channels (tests and smoke runs)",
}

for _name, _presets in PRESETS.items():
    register_model(_name, family="attention", builder=sagan, description=_DESCRIPTIONS[_name], **_presets)
