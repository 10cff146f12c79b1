"""ProGAN: progressive growing of GANs (Karras, Aila, Laine & Lehtinen, ICLR 2018).

Generator and discriminator are grown from 4x4 to the full resolution; every new resolution is
faded in smoothly (Sec. 3, Fig. 2). Both networks hold every resolution's layers from the start and
take ``level`` (0 = 4x4, resolution ``4 * 2**level``) and ``alpha`` (fade-in weight of the newest
level) at call time; the :class:`~ganzoo.training.schedule.ProgressiveSchedule` supplies them.

Architecture (App. A.1, Table 2; official ``networks.py``):

- G: pixel-normalised ``z`` -> dense to ``4x4xnf(1)`` -> conv3x3 at 4x4; each later block is
  2x nearest upsampling, two conv3x3; leaky ReLU 0.2 and pixel norm (Sec. 4.2) after every layer;
  a linear 1x1 toRGB at every resolution. Fade-in: ``lerp(up(toRGB_{L-1}(h_{L-1})), toRGB_L(h_L), alpha)``.
- D mirrors it: 1x1 fromRGB + leaky ReLU at every resolution, blocks conv3x3, conv3x3, 2x2 average
  pooling; the 4x4 block is minibatch stddev (Sec. 3), conv3x3, dense ``4x4xnf(1) -> nf(0)``, dense
  to one score. Fade-in: ``lerp(fromRGB_{L-1}(down(x)), block_L(fromRGB_L(x)), alpha)``.
- Equalized learning rate everywhere (Sec. 4.1): He gain ``sqrt(2)``, gain 1 for toRGB and D's last
  dense, ``sqrt(2) / 4`` for G's first dense (as the official code, "to match the Theano version").
- ``nf(stage) = min(fmap_base // 2**stage, fmap_max)``; 8192 and 512 officially.

Loss: WGAN-GP (lambda 10) + drift ``0.001 * E[D(x)^2]`` (App. A.1), Adam(1e-3, betas (0, 0.99), eps 1e-8).

At 1024x1024 (RGB) G has 23,079,115 and D 23,087,249 parameters, the official code's counts with a
toRGB/fromRGB layer for every resolution (Table 2 lists only the last ones: 23,071,507 and
23,077,137; the paper rounds all of them to 23.1M).

Class conditioning (``c_dim > 0``): G concatenates the one-hot label to ``z`` before the pixel norm
(official ``G_paper``). The official D is an AC-GAN classifier, which needs an extra loss term; here
D's last dense gives one score per class and the label selects it (the "label switch" of the
official StyleGAN ``D_basic``, Mescheder et al. 2018), so D still returns logits ``[N]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..bundle import Bundle, EMASpec, OptimizerSpec, StepContext, gan_bundle, is_power_of_two
from ..errors import ConfigError
from ..layers import (
    Blur,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
    avg_downsample,
    nearest_upsample,
)
from ..layers.resample_conv import DownConv2d, UpConv2d
from ..losses.objectives import AdversarialObjective, optimizer_spec
from ..registry import construct, register_model
from ..training.schedule import ProgressiveSchedule, progressive_reals

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2


# -- helpers shared with StyleGAN ------------------------------------------------------------------
def num_levels(resolution: int, *, model: str = "ProGAN") -> int:
    """``log2(resolution) - 1``: the number of resolutions 4, 8, ..., ``resolution``."""
    if not isinstance(resolution, int) or not is_power_of_two(resolution) or resolution < 8:
        raise ConfigError(
            f"{model} cannot produce resolution {resolution}: must be a power of two >= 8 "
            "(e.g. model.resolution=32, 64, 256 or 1024)"
        )
    return int(math.log2(resolution)) - 1


def channel_schedule(fmap_base: int, fmap_max: int, stages: int, *, model: str = "ProGAN") -> list[int]:
    """``[nf(0), ..., nf(stages - 1)]`` with ``nf(s) = min(fmap_base // 2**s, fmap_max)`` (official ``nf``)."""
    nf = [min(int(fmap_base) // 2**s, int(fmap_max)) for s in range(stages)]
    if min(nf) < 1:
        raise ConfigError(
            f"{model}: fmap_base={fmap_base} is too small for this resolution (nf({stages - 1}) = 0 channels); "
            f"use fmap_base >= {2 ** (stages - 1)}"
        )
    return nf


def check_level(level: int | None, alpha: float, max_level: int) -> int:
    """Validate ``level`` (None = full resolution) and ``alpha``; return the level as an int."""
    if level is None:
        return max_level
    level = int(level)
    if not 0 <= level <= max_level:
        raise ValueError(f"level must be in [0, {max_level}] (resolution 4 * 2**level), got {level}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return level


def fade_in_rgb(prev_rgb: torch.Tensor | None, rgb: torch.Tensor, alpha: float) -> torch.Tensor:
    """G's fade-in (Sec. 3, Fig. 2b): ``lerp(up2(prev_rgb), rgb, alpha)``; ``prev_rgb`` None = no fade."""
    if prev_rgb is None:
        return rgb
    return torch.lerp(nearest_upsample(prev_rgb, 2), rgb, float(alpha))


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU 0.2 without a gain: ProGAN/StyleGAN put the He gain into the weights instead."""
    return F.leaky_relu(x, LRELU_SLOPE)


def class_one_hot(c: torch.Tensor | None, c_dim: int, what: str) -> torch.Tensor:
    if c is None:
        raise ValueError(f"this {what} is class-conditional (c_dim={c_dim}): pass class indices c [N]")
    return F.one_hot(c.long(), c_dim)  # [N, c_dim]


# -- generator ------------------------------------------------------------------------------------
class GInputBlock(nn.Module):
    """4x4 block of G: pixel norm of the latent, dense to ``4x4xC``, conv3x3 (App. A.1, Table 2).

    The dense layer has one bias per channel (added after the reshape), as the official code.
    """

    def __init__(self, in_features: int, channels: int, *, pixelnorm: bool = True):
        super().__init__()
        self.channels = channels
        self.norm = PixelNorm()
        self.pn = PixelNorm() if pixelnorm else nn.Identity()
        # Gain sqrt(2)/4 as the official code; the bias is per channel, not per output unit.
        self.dense = EqualizedLinear(in_features, 16 * channels, bias=False, gain=SQRT2 / 4)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.conv = EqualizedConv2d(channels, channels, 3, gain=SQRT2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense(self.norm(x)).reshape(-1, self.channels, 4, 4)  # [N, C, 4, 4]
        x = self.pn(lrelu(x + self.bias.reshape(1, -1, 1, 1)))
        return self.pn(lrelu(self.conv(x)))


class GUpBlock(nn.Module):
    """A later block of G: 2x nearest upsampling + conv3x3, conv3x3; leaky ReLU and pixel norm after each."""

    def __init__(self, in_channels: int, out_channels: int, *, fused_scale: bool = True, pixelnorm: bool = True):
        super().__init__()
        self.conv0 = UpConv2d(in_channels, out_channels, 3, gain=SQRT2, fused=fused_scale)
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3, gain=SQRT2)
        self.pn = PixelNorm() if pixelnorm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pn(lrelu(self.conv0(x)))  # [N, C_out, 2H, 2W]
        return self.pn(lrelu(self.conv1(x)))


class ProGANGenerator(nn.Module):
    """ProGAN generator; ``G(z, c=None, *, level=None, alpha=1.0) -> [N, C, 4*2**level, 4*2**level]``.

    The output is linear (no tanh), as in the paper; it lies in ``[-1, 1]`` once trained.

    Args:
        z_dim: latent size; None = ``nf(0)`` (512 officially).
        fmap_base, fmap_max: channel schedule ``nf(s) = min(fmap_base // 2**s, fmap_max)``; the block
            at resolution ``2**r`` has ``nf(r - 1)`` channels.
        fused_scale: run upsampling + conv as one transposed conv (the same function, faster; official
            True); ``"auto"`` = fused at >= 128x128 (StyleGAN's choice).
        pixelnorm: pixel-wise feature normalisation after every conv (Sec. 4.2); False for ablations.
    """

    def __init__(
        self,
        *,
        resolution: int = 1024,
        img_channels: int = 3,
        c_dim: int = 0,
        z_dim: int | None = None,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        fused_scale: bool | str = True,
        pixelnorm: bool = True,
    ):
        super().__init__()
        levels = num_levels(resolution)
        nf = channel_schedule(fmap_base, fmap_max, levels + 1)
        if fused_scale not in (True, False, "auto"):
            raise ConfigError(f"fused_scale must be true, false or 'auto', got {fused_scale!r}")
        self.z_dim = int(z_dim) if z_dim is not None else nf[0]
        self.c_dim, self.img_resolution, self.img_channels = int(c_dim), resolution, img_channels
        self.max_level = levels - 1
        self.channels = [nf[level + 1] for level in range(levels)]  # channels of the block at each level
        blocks: list[nn.Module] = [GInputBlock(self.z_dim + self.c_dim, self.channels[0], pixelnorm=pixelnorm)]
        for level in range(1, levels):
            fused = (4 * 2**level >= 128) if fused_scale == "auto" else bool(fused_scale)
            blocks.append(
                GUpBlock(self.channels[level - 1], self.channels[level], fused_scale=fused, pixelnorm=pixelnorm)
            )
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.ModuleList(EqualizedConv2d(ch, img_channels, 1, gain=1.0) for ch in self.channels)

    def forward(
        self, z: torch.Tensor, c: torch.Tensor | None = None, *, level: int | None = None, alpha: float = 1.0
    ) -> torch.Tensor:
        level = check_level(level, alpha, self.max_level)
        x = z
        if self.c_dim > 0:
            x = torch.cat([z, class_one_hot(c, self.c_dim, "generator").to(z.dtype)], dim=1)  # [N, z_dim + c_dim]
        h = self.blocks[0](x)  # [N, nf(1), 4, 4]
        prev = None
        for lv in range(1, level + 1):
            if lv == level and alpha < 1.0:
                prev = h
            h = self.blocks[lv](h)  # [N, C_lv, 4 * 2**lv, 4 * 2**lv]
        prev_rgb = self.to_rgb[level - 1](prev) if prev is not None else None
        return fade_in_rgb(prev_rgb, self.to_rgb[level](h), alpha)


# -- discriminator --------------------------------------------------------------------------------
class FromRGB(nn.Module):
    """1x1 equalized conv + leaky ReLU: the image entry of D at one resolution."""

    def __init__(self, img_channels: int, channels: int):
        super().__init__()
        self.conv = EqualizedConv2d(img_channels, channels, 1, gain=SQRT2)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return lrelu(self.conv(img))


class DDownBlock(nn.Module):
    """A block of D above 4x4: conv3x3, [blur], conv3x3 + 2x2 average pooling; leaky ReLU after each conv.

    ``blur_filter`` (StyleGAN: ``[1, 2, 1]``) low-pass filters the features before downsampling,
    with 'same' padding as the official ``blur2d``.

    ``act_before_downscale``: bias and leaky ReLU before the 2x2 average pooling instead of after it, as
    ProGAN's ``D_paper`` computes with ``fused_scale=False`` (``networks.py``: ``Conv1`` then ``downscale2d``;
    the networks converted from Theano use it). Default False: pooling first, as the fused ProGAN and StyleGAN.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        fused_scale: bool = True,
        blur_filter: Sequence[float] | None = None,
        act_before_downscale: bool = False,
    ):
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, gain=SQRT2)
        if blur_filter:
            taps = len(blur_filter)
            p0 = (taps - 1) // 2
            self.blur: nn.Module = Blur(list(blur_filter), padding=(p0, taps - 1 - p0, p0, taps - 1 - p0))
        else:
            self.blur = nn.Identity()
        self.act_before_downscale = bool(act_before_downscale)
        if self.act_before_downscale:  # same parameters as DownConv2d (a subclass of EqualizedConv2d)
            self.conv1: nn.Module = EqualizedConv2d(in_channels, out_channels, 3, gain=SQRT2)
        else:
            self.conv1 = DownConv2d(in_channels, out_channels, 3, gain=SQRT2, fused=fused_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.conv0(x))
        if self.act_before_downscale:
            return avg_downsample(lrelu(self.conv1(self.blur(x))), 2)  # [N, C_out, H/2, W/2]
        return lrelu(self.conv1(self.blur(x)))  # [N, C_out, H/2, W/2]


class DOutputBlock(nn.Module):
    """4x4 block of D: minibatch stddev, conv3x3, dense ``16C -> mid``, dense ``mid -> out`` (gain 1)."""

    def __init__(
        self,
        channels: int,
        mid_features: int,
        out_features: int,
        *,
        mbstd_group_size: int = 4,
        mbstd_num_features: int = 1,
    ):
        super().__init__()
        self.channels = channels
        self.mbstd = MinibatchStdDev(mbstd_group_size, mbstd_num_features) if mbstd_group_size > 1 else None
        extra = mbstd_num_features if self.mbstd is not None else 0
        self.conv = EqualizedConv2d(channels + extra, channels, 3, gain=SQRT2)
        self.dense0 = EqualizedLinear(16 * channels, mid_features, gain=SQRT2)
        self.dense1 = EqualizedLinear(mid_features, out_features, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)  # [N, C + F, 4, 4]
        x = lrelu(self.conv(x))
        x = lrelu(self.dense0(x.flatten(1)))  # [N, 16 C] -> [N, mid]
        return self.dense1(x)  # [N, out]


class ProGANDiscriminator(nn.Module):
    """ProGAN discriminator; ``D(img, c=None, *, level=None, alpha=1.0) -> logits [N]``.

    ``img`` must be at the level's resolution ``4 * 2**level``. StyleGAN's discriminator is this one
    with ``blur_filter=[1, 2, 1]`` and ``fused_scale="auto"``.

    Args:
        fmap_base, fmap_max: channel schedule, as in the generator.
        mbstd_group_size: minibatch-stddev group (official default 4; the paper's 1-GPU CelebA-HQ
            preset uses 16, i.e. the whole minibatch); 0 or 1 disables the layer.
        mbstd_num_features: stddev feature maps appended (1 in both papers).
        fused_scale: conv + pooling as one strided conv (same function); ``"auto"`` = fused at >= 128x128.
        blur_filter: FIR filter applied before every downsampling conv (None = ProGAN, [1, 2, 1] = StyleGAN).
        act_before_downscale: leaky ReLU before the average pooling (official ``D_paper`` with
            ``fused_scale=False``, see :class:`DDownBlock`); default False.
    """

    def __init__(
        self,
        *,
        resolution: int = 1024,
        img_channels: int = 3,
        c_dim: int = 0,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        mbstd_group_size: int = 4,
        mbstd_num_features: int = 1,
        fused_scale: bool | str = True,
        blur_filter: Sequence[float] | None = None,
        act_before_downscale: bool = False,
    ):
        super().__init__()
        levels = num_levels(resolution)
        nf = channel_schedule(fmap_base, fmap_max, levels + 1)
        if fused_scale not in (True, False, "auto"):
            raise ConfigError(f"fused_scale must be true, false or 'auto', got {fused_scale!r}")
        self.c_dim, self.img_resolution, self.img_channels = int(c_dim), resolution, img_channels
        self.max_level = levels - 1
        self.channels = [nf[level + 1] for level in range(levels)]
        self.from_rgb = nn.ModuleList(FromRGB(img_channels, ch) for ch in self.channels)
        blocks: list[nn.Module] = [
            DOutputBlock(
                self.channels[0],
                nf[0],
                max(self.c_dim, 1),
                mbstd_group_size=mbstd_group_size,
                mbstd_num_features=mbstd_num_features,
            )
        ]
        for level in range(1, levels):
            res = 4 * 2**level
            fused = (res >= 128) if fused_scale == "auto" else bool(fused_scale)
            blocks.append(
                DDownBlock(self.channels[level], self.channels[level - 1], fused_scale=fused, blur_filter=blur_filter,
                           act_before_downscale=act_before_downscale)
            )
        self.blocks = nn.ModuleList(blocks)

    def forward(
        self, img: torch.Tensor, c: torch.Tensor | None = None, *, level: int | None = None, alpha: float = 1.0
    ) -> torch.Tensor:
        level = check_level(level, alpha, self.max_level)
        res = 4 * 2**level
        if img.ndim != 4 or tuple(img.shape[-2:]) != (res, res):
            raise ValueError(f"D at level {level} expects images [N, C, {res}, {res}], got {tuple(img.shape)}")
        h = self.from_rgb[level](img)  # [N, C_level, res, res]
        if level > 0:
            h = self.blocks[level](h)  # [N, C_{level-1}, res/2, res/2]
            if alpha < 1.0:
                h = torch.lerp(self.from_rgb[level - 1](avg_downsample(img, 2)), h, float(alpha))
        for lv in range(level - 1, 0, -1):
            h = self.blocks[lv](h)
        out = self.blocks[0](h)  # [N, max(c_dim, 1)]
        if self.c_dim > 0:
            return (out * class_one_hot(c, self.c_dim, "discriminator").to(out.dtype)).sum(1)  # [N]
        return out[:, 0]  # [N]


# -- objective hooks and builder ------------------------------------------------------------------
def schedule_kwargs(ctx: StepContext) -> dict[str, Any]:
    """``level`` and ``alpha`` of the schedule state, for G and D (the objective's ``g_kwargs`` hook)."""
    if "level" not in ctx.state:
        return {}
    return {"level": int(ctx.state["level"]), "alpha": float(ctx.state["alpha"])}


def schedule_reals(img: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """Reals at the schedule's resolution, blended like G's output during a fade-in (``prepare_reals``)."""
    if "resolution" not in ctx.state:
        return img
    return progressive_reals(img, int(ctx.state["resolution"]), float(ctx.state["alpha"]))


def schedule_sample_opts(state: Mapping[str, Any]) -> dict[str, Any]:
    """Sampling options at a schedule state: draw grids at the level being trained."""
    if "level" not in state:
        return {}
    return {"level": int(state["level"]), "alpha": float(state["alpha"])}


def build_schedule(
    resolution: int, cfg: Mapping[str, Any] | None, default: Mapping[str, Any], *, where: str
) -> ProgressiveSchedule:
    """A :class:`ProgressiveSchedule` from ``default`` updated by the user's ``schedule:`` mapping."""
    merged = {**default, **dict(cfg or {})}
    if merged.get("batch_sizes") is not None:
        merged["batch_sizes"] = {int(k): int(v) for k, v in dict(merged["batch_sizes"]).items()}
    return construct(ProgressiveSchedule, merged, where=where, resolution=resolution)


# Official 1-GPU paper preset ("preset-v1-1gpu" in config.py; App. A.1): 800k images per fade-in and
# per stabilisation, minibatch 16 up to 128x128, then 14, 6 and 3.
PROGAN_SCHEDULE: dict[str, Any] = {
    "start_resolution": 4,
    "fade_kimg": 800.0,
    "stab_kimg": 800.0,
    "batch_sizes": {256: 14, 512: 6, 1024: 3},
    "default_batch": 16,
}
# Official Gs: w_ema <- 0.999 w_ema + 0.001 w after every minibatch (train.py, G_smoothing=0.999).
# As a half-life at the paper's minibatch 16: 16 * ln(0.5) / ln(0.999) = 11,085 images. The spec
# rescales beta to the current batch, so at 14/6/3 images per step the average spans the same
# number of images, where the official one (fixed beta) spans fewer. No ramp-up, as official.
PROGAN_EMA_HALF_LIFE_KIMG = 16 * math.log(0.5) / math.log(0.999) / 1000.0


@register_model(
    "progan",
    family="progressive",
    description="ProGAN (Karras et al. 2018), official CelebA-HQ 1024x1024 paper configuration",
    D={"mbstd_group_size": 16},
)
def progan(
    *,
    resolution: int = 1024,
    img_channels: int = 3,
    c_dim: int = 0,
    G: dict[str, Any] | None = None,
    D: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
    ema: dict[str, Any] | None = None,
    schedule: dict[str, Any] | None = None,
) -> Bundle:
    """ProGAN (Karras et al. 2018): progressive growing, WGAN-GP + drift, Adam(1e-3, (0, 0.99))."""
    num_levels(resolution)  # a clear error before anything is built
    shape = dict(resolution=resolution, img_channels=img_channels, c_dim=c_dim)
    gen = construct(ProGANGenerator, G, where="model.G (progan)", **shape)
    disc = construct(ProGANDiscriminator, D, where="model.D (progan)", **shape)
    adam = OptimizerSpec(lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    optim = dict(optim or {})
    objective = construct(
        AdversarialObjective,
        {"loss": "wgan", "gp_lambda": 10.0, "drift": 0.001, **dict(loss or {})},
        where="model.loss (progan)",
        optim_G=optimizer_spec(optim.get("G"), adam),
        optim_D=optimizer_spec(optim.get("D"), adam),
        g_kwargs=schedule_kwargs,
        prepare_reals=schedule_reals,
    )
    ema_spec = construct(
        EMASpec, {"half_life_kimg": PROGAN_EMA_HALF_LIFE_KIMG, "rampup": None, **dict(ema or {})}, where="model.ema"
    )
    return gan_bundle(
        gen,
        disc,
        objective,
        ema=ema_spec,
        schedule=build_schedule(resolution, schedule, PROGAN_SCHEDULE, where="model.schedule (progan)"),
        sample_opts=schedule_sample_opts,
    )


register_model(
    "progan_tiny",
    family="progressive",
    builder=progan,
    description="ProGAN at 16x16 with 8-32 channels and 64-image phases (tests and quick CPU runs)",
    resolution=16,
    G={"fmap_base": 128, "fmap_max": 32},
    D={"fmap_base": 128, "fmap_max": 32, "mbstd_group_size": 4},
    schedule={"fade_kimg": 0.064, "stab_kimg": 0.064, "batch_sizes": {16: 8}, "default_batch": None},
    ema={"half_life_kimg": 0.1, "rampup": None},
)
