"""StyleGAN: a style-based generator (Karras, Laine & Aila, CVPR 2019).

Generator (Sec. 2, Fig. 1b; official ``networks_stylegan.py``):

- mapping network ``f: z -> w``: pixel norm of ``z``, 8 equalized dense layers of 512 with a
  learning-rate multiplier of 0.01 (App. C) and leaky ReLU 0.2;
- synthesis network: a learned constant ``4x4x512`` (initialised to ones) replaces the input
  layer; every layer is [conv] -> per-channel scaled noise (Sec. 2) -> bias -> leaky ReLU -> AdaIN
  with a style from a per-layer affine map of ``w`` (eq. 1). A block doubles the resolution with
  nearest upsampling + conv3x3 (fused into one transposed conv at >= 128x128, as official) followed
  by a ``[1, 2, 1]`` blur (App. C, bilinear-like filtering), then a second conv3x3. Two layers per
  resolution, so ``num_ws = 2 * log2(resolution) - 2`` styles (18 at 1024x1024);
- progressive growing exactly as ProGAN: a toRGB at every resolution and the same fade-in.

Discriminator: ProGAN's (:class:`~ganzoo.models.progan.ProGANDiscriminator`) with a ``[1, 2, 1]``
blur before every downsampling conv and fused downsampling at >= 128x128, as the official ``D_basic``.

Training (official ``train.py``/``training_loop.py``, FFHQ): non-saturating logistic loss with R1
(gamma 10), style mixing with probability 0.9 (Sec. 3.1), tracked ``w_avg`` (beta 0.995) for the
truncation trick in W (Sec. 4 / App. B), Adam(1e-3, (0, 0.99), 1e-8), growing from 8x8
(``lod_initial_resolution = 8``) with 600k images per fade-in and per stabilisation, G EMA with a
half-life of 10k images.

At 1024x1024 G has 26,219,627 parameters (paper Sec. 2: "26.2M") and D 23,087,249 (the ProGAN
discriminator plus a parameter-free blur).

Class conditioning (``c_dim > 0``), as the official code: the mapping network concatenates a learned
``N(0, 1)`` embedding of the label to ``z``; D's last dense gives one score per class and the label
picks it (Mescheder et al. 2018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..bundle import Bundle, EMASpec, OptimizerSpec, StepContext, gan_bundle
from ..errors import ConfigError
from ..layers import NOISE_MODES, AdaIN, Blur, EqualizedConv2d, EqualizedLinear, NoiseInjection, PixelNorm
from ..layers.resample_conv import UpConv2d
from ..losses.objectives import StyleObjective, optimizer_spec
from ..registry import construct, register_model
from ..sampling.truncation import truncate
from ..training import distributed as dist
from .progan import (
    ProGANDiscriminator,
    build_schedule,
    channel_schedule,
    check_level,
    fade_in_rgb,
    lrelu,
    num_levels,
    schedule_kwargs,
    schedule_reals,
    schedule_sample_opts,
)

SQRT2 = math.sqrt(2.0)


# -- mapping network ------------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """``z [N, z_dim] (+ label) -> w [N, w_dim]``: pixel norm, then ``num_layers`` dense + leaky ReLU.

    Every dense layer has He gain ``sqrt(2)`` and learning-rate multiplier ``lr_mul`` (App. C: 0.01).
    """

    def __init__(
        self,
        *,
        z_dim: int = 512,
        c_dim: int = 0,
        w_dim: int = 512,
        num_layers: int = 8,
        hidden: int = 512,
        lr_mul: float = 0.01,
    ):
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"StyleGAN mapping_layers must be >= 1, got {num_layers}")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        # Official LabelConcat: one-hot labels times an N(0, 1) matrix = an embedding lookup.
        self.embed = nn.Embedding(c_dim, z_dim) if c_dim > 0 else None
        self.norm = PixelNorm()
        dims = [z_dim * (2 if c_dim > 0 else 1)] + [hidden] * (num_layers - 1) + [w_dim]
        self.layers = nn.ModuleList(
            EqualizedLinear(i, o, gain=SQRT2, lr_mul=lr_mul) for i, o in zip(dims[:-1], dims[1:])
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = z
        if self.embed is not None:
            if c is None:
                raise ValueError(f"this generator is class-conditional (c_dim={self.c_dim}): pass class indices c")
            x = torch.cat([z, self.embed(c.long()).to(z.dtype)], dim=1)  # [N, 2 * z_dim]
        x = self.norm(x)
        for layer in self.layers:
            x = lrelu(layer(x))
        return x  # [N, w_dim]


# -- synthesis network ----------------------------------------------------------------------------
class StyleLayer(nn.Module):
    """The end of every synthesis layer (official ``layer_epilogue``): noise, bias, leaky ReLU, AdaIN.

    ``NoiseInjection`` holds the per-channel noise strengths (Sec. 2, init 0) and a fixed noise
    image for ``noise_mode="const"``; AdaIN's affine map has gain 1 and its scale starts at 1.
    """

    def __init__(self, channels: int, w_dim: int, resolution: int):
        super().__init__()
        self.noise = NoiseInjection(channels, resolution=resolution)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.adain = AdaIN(channels, w_dim)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = self.noise(x, mode=noise_mode)
        x = lrelu(x + self.bias.to(x.dtype).reshape(1, -1, 1, 1))
        return self.adain(x, w)


class SynthesisInputBlock(nn.Module):
    """4x4 block: learned constant (ones) -> StyleLayer, conv3x3 -> StyleLayer (styles 0 and 1)."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.const = nn.Parameter(torch.ones(1, channels, 4, 4))
        self.layer0 = StyleLayer(channels, w_dim, 4)
        self.conv = EqualizedConv2d(channels, channels, 3, gain=SQRT2, bias=False)
        self.layer1 = StyleLayer(channels, w_dim, 4)

    def forward(self, w0: torch.Tensor, w1: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = self.const.to(w0.dtype).expand(w0.shape[0], -1, -1, -1)  # [N, C, 4, 4]
        x = self.layer0(x, w0, noise_mode)
        return self.layer1(self.conv(x), w1, noise_mode)


class SynthesisUpBlock(nn.Module):
    """A block doubling the resolution: up + conv3x3, blur, StyleLayer; conv3x3, StyleLayer."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        *,
        fused_scale: bool = False,
        blur_filter: Sequence[float] | None = (1, 2, 1),
    ):
        super().__init__()
        self.conv0 = UpConv2d(in_channels, out_channels, 3, gain=SQRT2, bias=False, fused=fused_scale)
        if blur_filter:
            taps = len(blur_filter)
            p0 = (taps - 1) // 2
            self.blur: nn.Module = Blur(list(blur_filter), padding=(p0, taps - 1 - p0, p0, taps - 1 - p0))
        else:
            self.blur = nn.Identity()
        self.layer0 = StyleLayer(out_channels, w_dim, resolution)
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3, gain=SQRT2, bias=False)
        self.layer1 = StyleLayer(out_channels, w_dim, resolution)

    def forward(self, x: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = self.layer0(self.blur(self.conv0(x)), w0, noise_mode)  # [N, C_out, 2H, 2W]
        return self.layer1(self.conv1(x), w1, noise_mode)


class SynthesisNetwork(nn.Module):
    """``ws [N, >= 2 * (level + 1), w_dim] -> img [N, C, 4 * 2**level, 4 * 2**level]``.

    The block at level ``l`` uses ``ws[:, 2l]`` and ``ws[:, 2l + 1]``; a toRGB at every level gives
    ProGAN's fade-in.
    """

    def __init__(
        self,
        *,
        w_dim: int = 512,
        resolution: int = 1024,
        img_channels: int = 3,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        fused_scale: bool | str = "auto",
        blur_filter: Sequence[float] | None = (1, 2, 1),
    ):
        super().__init__()
        if fused_scale not in (True, False, "auto"):
            raise ConfigError(f"fused_scale must be true, false or 'auto', got {fused_scale!r}")
        levels = num_levels(resolution, model="StyleGAN")
        nf = channel_schedule(fmap_base, fmap_max, levels + 1, model="StyleGAN")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, resolution, img_channels
        self.max_level = levels - 1
        self.num_ws = 2 * levels
        self.channels = [nf[level + 1] for level in range(levels)]
        blocks: list[nn.Module] = [SynthesisInputBlock(self.channels[0], w_dim)]
        for level in range(1, levels):
            res = 4 * 2**level
            fused = (res >= 128) if fused_scale == "auto" else bool(fused_scale)
            blocks.append(
                SynthesisUpBlock(
                    self.channels[level - 1],
                    self.channels[level],
                    w_dim,
                    res,
                    fused_scale=fused,
                    blur_filter=blur_filter,
                )
            )
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.ModuleList(EqualizedConv2d(ch, img_channels, 1, gain=1.0) for ch in self.channels)

    def forward(
        self,
        ws: torch.Tensor,
        *,
        level: int | None = None,
        alpha: float = 1.0,
        noise_mode: str = "random",
    ) -> torch.Tensor:
        level = check_level(level, alpha, self.max_level)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"unknown noise_mode {noise_mode!r}; use one of {NOISE_MODES}")
        need = 2 * (level + 1)
        if ws.ndim != 3 or ws.shape[1] < need or ws.shape[2] != self.w_dim:
            raise ValueError(f"synthesis at level {level} needs ws [N, >= {need}, {self.w_dim}], got {tuple(ws.shape)}")
        h = self.blocks[0](ws[:, 0], ws[:, 1], noise_mode)  # [N, nf(1), 4, 4]
        prev = None
        for lv in range(1, level + 1):
            if lv == level and alpha < 1.0:
                prev = h
            h = self.blocks[lv](h, ws[:, 2 * lv], ws[:, 2 * lv + 1], noise_mode)  # [N, C_lv, 4*2**lv, 4*2**lv]
        prev_rgb = self.to_rgb[level - 1](prev) if prev is not None else None
        return fade_in_rgb(prev_rgb, self.to_rgb[level](h), alpha)


class StyleGANGenerator(nn.Module):
    """StyleGAN generator: mapping network + tracked ``w_avg`` + progressive synthesis network.

    ``G(z, c=None, *, truncation_psi=1.0, truncation_cutoff=None, noise_mode="random", level=None,
    alpha=1.0) -> img [N, C, 4 * 2**level, 4 * 2**level]`` (linear output, ``[-1, 1]`` once trained).

    Args:
        z_dim, w_dim: latent sizes (512 officially).
        mapping_layers, mapping_fmaps, mapping_lr_mul: mapping network depth, width and lr multiplier.
        w_avg_beta: decay of the tracked mean of ``w`` (official ``dlatent_avg_beta`` 0.995).
        fmap_base, fmap_max: channel schedule ``nf(s) = min(fmap_base // 2**s, fmap_max)``.
        fused_scale: upsampling + conv as one transposed conv: True, False or ``"auto"`` (>= 128x128).
        blur_filter: FIR filter after every upsampling conv (None disables it).
    """

    w_avg: torch.Tensor

    def __init__(
        self,
        *,
        resolution: int = 1024,
        img_channels: int = 3,
        c_dim: int = 0,
        z_dim: int = 512,
        w_dim: int = 512,
        mapping_layers: int = 8,
        mapping_fmaps: int = 512,
        mapping_lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        fused_scale: bool | str = "auto",
        blur_filter: Sequence[float] | None = (1, 2, 1),
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.c_dim = int(z_dim), int(w_dim), int(c_dim)
        self.img_resolution, self.img_channels = resolution, img_channels
        self.w_avg_beta = float(w_avg_beta)
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim,
            resolution=resolution,
            img_channels=img_channels,
            fmap_base=fmap_base,
            fmap_max=fmap_max,
            fused_scale=fused_scale,
            blur_filter=blur_filter,
        )
        self.num_ws = self.synthesis.num_ws
        self.max_level = self.synthesis.max_level
        self.mapping_network = MappingNetwork(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            num_layers=mapping_layers,
            hidden=mapping_fmaps,
            lr_mul=mapping_lr_mul,
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def mapping(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        """``z -> ws [N, num_ws, w_dim]``, one copy of ``w`` per synthesis layer.

        ``update_w_avg`` (training) moves ``w_avg`` towards the batch mean of ``w`` with decay
        ``w_avg_beta`` before truncation. Truncation (Sec. 4, App. B): ``w_avg + psi * (w - w_avg)``
        on the layers ``< truncation_cutoff`` (None = every layer; the official sampling default is
        psi 0.7 on the first 8 layers).
        """
        w = self.mapping_network(z, c)  # [N, w_dim]
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(dist.batch_mean_rows(w.detach().float()).lerp(self.w_avg, self.w_avg_beta))
        ws = w[:, None, :].repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim], a copy per layer (editable)
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        level: int | None = None,
        alpha: float = 1.0,
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, level=level, alpha=alpha, noise_mode=noise_mode)


# -- objective and builder ------------------------------------------------------------------------
def active_ws(ctx: StepContext) -> int:
    """Styles used at the schedule's level, ``2 * (level + 1)``: style mixing draws its cutoff below it."""
    if "level" not in ctx.state:
        return int(ctx.modules["G"].num_ws)
    return 2 * (int(ctx.state["level"]) + 1)


# Official FFHQ config (train.py, 8 GPUs): start at 8x8, 600k images per fade-in and stabilisation
# (training_loop defaults), minibatch 256 at 8x8, 128 at 16, 64 at 32, 32 at 64 and above.
STYLEGAN_SCHEDULE: dict[str, Any] = {
    "start_resolution": 8,
    "fade_kimg": 600.0,
    "stab_kimg": 600.0,
    "batch_sizes": {4: 512, 8: 256, 16: 128, 32: 64, 64: 32},
    "default_batch": 32,
}


@register_model(
    "stylegan",
    family="progressive",
    description="StyleGAN (Karras et al. 2019), official FFHQ 1024x1024 configuration",
)
def stylegan(
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
    """StyleGAN (Karras et al. 2019): style-based G, logistic loss + R1 10, style mixing 0.9, growing from 8x8."""
    num_levels(resolution, model="StyleGAN")
    shape = dict(resolution=resolution, img_channels=img_channels, c_dim=c_dim)
    gen = construct(StyleGANGenerator, G, where="model.G (stylegan)", **shape)
    disc = construct(
        ProGANDiscriminator,
        {"blur_filter": [1, 2, 1], "fused_scale": "auto", **dict(D or {})},
        where="model.D (stylegan)",
        **shape,
    )
    adam = OptimizerSpec(lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    optim = dict(optim or {})
    objective = construct(
        StyleObjective,
        {"loss": "nonsat", "r1_gamma": 10.0, "style_mixing_prob": 0.9, **dict(loss or {})},
        where="model.loss (stylegan)",
        optim_G=optimizer_spec(optim.get("G"), adam),
        optim_D=optimizer_spec(optim.get("D"), adam),
        g_kwargs=schedule_kwargs,
        prepare_reals=schedule_reals,
        active_ws=active_ws,
    )
    # Official G_smoothing_kimg = 10: Gs beta = 0.5 ** (minibatch / 10000), no ramp-up.
    ema_spec = construct(EMASpec, {"half_life_kimg": 10.0, "rampup": None, **dict(ema or {})}, where="model.ema")
    return gan_bundle(
        gen,
        disc,
        objective,
        ema=ema_spec,
        schedule=build_schedule(resolution, schedule, STYLEGAN_SCHEDULE, where="model.schedule (stylegan)"),
        sample_opts=schedule_sample_opts,
    )


register_model(
    "stylegan_tiny",
    family="progressive",
    builder=stylegan,
    description="StyleGAN at 16x16 with 8-32 channels, 32-d W and 64-image phases (tests and quick CPU runs)",
    resolution=16,
    G={"z_dim": 32, "w_dim": 32, "mapping_fmaps": 32, "fmap_base": 128, "fmap_max": 32},
    D={"fmap_base": 128, "fmap_max": 32},
    schedule={"fade_kimg": 0.064, "stab_kimg": 0.064, "batch_sizes": {16: 8}, "default_batch": None},
    ema={"half_life_kimg": 0.1, "rampup": None},
)
