"""StyleGAN2 (Karras et al., CVPR 2020, "Analyzing and Improving the Image Quality of StyleGAN").

The architecture follows the official StyleGAN2-ADA PyTorch code (``training/networks.py``),
which reproduces the paper's config F:

- **Mapping network** (StyleGAN, Karras et al. 2019, Sec. 2): ``z`` normalised to unit second
  moment, optionally concatenated with a normalised embedding of the class label, then ``L`` fully
  connected layers with leaky ReLU and a learning-rate multiplier of 0.01 (StyleGAN App. C). A
  running average ``w_avg`` of ``w`` (decay 0.995) is kept for the truncation trick (StyleGAN
  App. B): ``w' = w_avg + psi * (w - w_avg)``, optionally only for the first ``cutoff`` layers.
- **Synthesis network** (StyleGAN2 Sec. 2.1, Fig. 2d): a learned 4x4 constant, then per resolution
  a block of two modulated 3x3 convolutions (the first upsamples by 2 with a transposed conv and a
  [1, 3, 3, 1] FIR filter), each followed by per-pixel noise with one learned scalar strength, a
  bias and leaky ReLU times sqrt(2). Weight modulation/demodulation replaces AdaIN (Sec. 2.2,
  eq. 1-3). Output skips (Sec. 4.1, Fig. 7b): every block has a ToRGB (modulated 1x1 conv, no
  demodulation) and the image is ``upsample(img) + torgb(x)``.
- **Discriminator** (Sec. 4.1, Fig. 7c): residual blocks ``(skip(x) + conv1(conv0(x))) * sqrt(0.5)``
  with FIR-filtered downsampling, FromRGB only at the top, and an epilogue with the minibatch
  standard deviation (ProGAN Sec. 3), a 3x3 conv, a fully connected layer and the output layer
  (a projection onto a mapped label embedding when class-conditional, Miyato & Koyama 2018).

Channels at resolution ``r`` are ``min(channel_base // r, channel_max)``; config F uses
``channel_base=32768, channel_max=512`` (StyleGAN2 Sec. 4.2: feature maps doubled at high
resolutions). At 1024x1024 the generator has 30,370,060 and the discriminator 29,012,513
parameters, the same counts as the official networks.

Training uses :class:`~ganzoo.losses.objectives.StyleObjective`: non-saturating logistic loss,
lazy R1 every 16 steps (Sec. 3.1), lazy path-length regularisation every 4 steps (Sec. 3.2),
style mixing with probability 0.9 (StyleGAN Sec. 3.1), Adam(0.002, betas (0, 0.99)) corrected
for the laziness (App. B), and a generator EMA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..bundle import Bundle, EMASpec, OptimizerSpec, gan_bundle, is_power_of_two
from ..errors import ConfigError
from ..layers import (
    NOISE_MODES,
    Blur,
    Downsample2d,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    ModulatedConv2d,
    NoiseInjection,
    PixelNorm,
    Upsample2d,
    bias_act,
    downsample2d_padding,
)
from ..losses.objectives import StyleObjective, optimizer_spec
from ..registry import construct, register_model
from ..sampling.truncation import truncate

FIR = (1, 3, 3, 1)  # the binomial filter of all StyleGAN2 resampling (App. B, "bilinear filtering")
SQRT_HALF = math.sqrt(0.5)  # residual branches are scaled by 1/sqrt(2) (Sec. 4.1)


def check_resolution(resolution: int) -> int:
    """``resolution`` as an int, or a :class:`ConfigError` when it is not a power of two >= 8."""
    if not isinstance(resolution, int) or not is_power_of_two(resolution) or resolution < 8:
        raise ConfigError(
            f"StyleGAN2 cannot work at resolution {resolution!r}: it must be a power of two >= 8 "
            "(e.g. model.resolution=32, 256 or 1024)"
        )
    return resolution


def channels_per_resolution(resolution: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """``{r: min(channel_base // r, channel_max)}`` for ``r = 4, 8, ..., resolution`` (official schedule)."""
    if channel_base < 1 or channel_max < 1:
        raise ConfigError(f"channel_base ({channel_base}) and channel_max ({channel_max}) must be >= 1")
    res = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
    chans = {r: min(channel_base // r, channel_max) for r in res}
    if chans[resolution] < 1:
        raise ConfigError(
            f"channel_base={channel_base} leaves no channels at {resolution}x{resolution}; "
            f"use channel_base >= {resolution}"
        )
    return chans


def labels_to_onehot(c: torch.Tensor | None, c_dim: int) -> torch.Tensor:
    """Class indices ``[N]`` (or already one-hot/soft labels ``[N, c_dim]``) -> float ``[N, c_dim]``."""
    if c is None:
        raise ValueError(f"this network is class-conditional (c_dim={c_dim}): pass labels c")
    if c.ndim == 1 and not torch.is_floating_point(c):
        return F.one_hot(c.long(), c_dim).float()  # [N, c_dim]
    if c.ndim == 2 and c.shape[1] == c_dim:
        return c.float()
    raise ValueError(f"labels must be class indices [N] or one-hot [N, {c_dim}], got shape {tuple(c.shape)}")


# -- generator ---------------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """``z`` (and label ``c``) -> ``w`` (StyleGAN Sec. 2, Fig. 1b; official ``MappingNetwork``).

    ``num_ws=None`` returns ``[N, w_dim]`` (the discriminator's label mapping); otherwise ``w`` is
    broadcast to ``[N, num_ws, w_dim]``, one copy per synthesis layer. ``w_avg_beta=None`` keeps no
    average (and allows no truncation).
    """

    w_avg: torch.Tensor

    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        lr_mul: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ):
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"the mapping network needs at least one layer, got num_layers={num_layers}")
        if z_dim <= 0 and c_dim <= 0:
            raise ConfigError("the mapping network needs z_dim > 0 or c_dim > 0")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = num_ws, num_layers, w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        self.norm = PixelNorm(dim=1)  # normalize_2nd_moment of the official code
        self.embed = EqualizedLinear(c_dim, embed_features) if c_dim > 0 else None
        self.layers = nn.ModuleList(
            EqualizedLinear(features[i], features[i + 1], lr_mul=lr_mul, activation="lrelu") for i in range(num_layers)
        )
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None = None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        """``z`` ``[N, z_dim]``, ``c`` ``[N]`` -> ``ws`` ``[N, num_ws, w_dim]`` (or ``[N, w_dim]``).

        ``update_w_avg`` moves ``w_avg`` towards this batch's mean ``w``:
        ``w_avg <- beta * w_avg + (1 - beta) * mean(w)`` (the training objective asks for it).
        """
        parts = []
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            parts.append(self.norm(z.float()))
        if self.embed is not None:
            parts.append(self.norm(self.embed(labels_to_onehot(c, self.c_dim).to(self.embed.weight.device))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]  # [N, z_dim + embed_features]
        for layer in self.layers:
            x = layer(x)  # [N, w_dim] after the last layer

        if update_w_avg and self.w_avg_beta is not None and self.num_ws is not None:
            with torch.no_grad():
                self.w_avg.copy_(torch.lerp(x.detach().float().mean(dim=0), self.w_avg, self.w_avg_beta))

        if self.num_ws is None:
            return x
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]
        if truncation_psi == 1:
            return ws
        if self.w_avg_beta is None:
            raise ValueError("truncation needs the tracked w_avg (w_avg_beta is None)")
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)  # [N, num_ws, w_dim]

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class SynthesisLayer(nn.Module):
    """Modulated conv -> noise -> bias -> leaky ReLU * sqrt(2) (StyleGAN2 Sec. 2.1, Fig. 2c/d).

    ``up=2`` doubles the resolution (transposed conv + FIR filter). The noise is a single-channel
    image scaled by one learned scalar; ``noise_mode`` picks fresh noise, the stored constant
    ``noise_const`` (reproducible images) or none. ``conv_clamp`` clamps the activations to
    ``[-conv_clamp * gain, conv_clamp * gain]`` (StyleGAN2-ADA, for float16 safety).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        conv_clamp: float | None = None,
        resample_filter: Sequence[float] = FIR,
    ):
        super().__init__()
        self.resolution = resolution
        self.conv_clamp = conv_clamp
        self.conv = ModulatedConv2d(
            in_channels, out_channels, kernel_size, w_dim, demodulate=True, up=up, resample_filter=resample_filter
        )
        self.noise = NoiseInjection(None, resolution=resolution) if use_noise else None
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        *,
        noise_mode: str = "random",
        fused_modconv: bool = False,
        gain: float = 1.0,
    ) -> torch.Tensor:
        """``x`` ``[N, in, R/up, R/up]``, ``w`` ``[N, w_dim]`` -> ``[N, out, R, R]``."""
        x = self.conv(x, w, fused=fused_modconv)  # [N, out, R, R]
        if self.noise is not None:
            x = self.noise(x, mode=noise_mode)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, activation="lrelu", gain=gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation, plus bias (StyleGAN2 Fig. 7b "tRGB").

    The official layer multiplies the styles by ``1 / sqrt(in_channels)``; here that factor sits on
    the weight (``ModulatedConv2d``'s equalized-lr gain), which gives the same product.
    """

    def __init__(self, in_channels: int, img_channels: int, *, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, fused_modconv: bool = False) -> torch.Tensor:
        """``x`` ``[N, C, R, R]``, ``w`` ``[N, w_dim]`` -> ``[N, img_channels, R, R]``."""
        return bias_act(self.conv(x, w, fused=fused_modconv), self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator (StyleGAN2 Fig. 7b).

    The first block (``in_channels == 0``) starts from a learned ``[C, 4, 4]`` constant and has one
    conv; later blocks have ``conv0`` (up x2) and ``conv1``. Every block ends with a ToRGB whose
    output is added to the FIR-upsampled image of the previous block.

    ``num_conv + num_torgb`` ws are consumed; the ToRGB shares its ``w`` with the next block's
    ``conv0`` (as in the official code, so ``num_ws = 2 log2(R) - 2``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        img_channels: int,
        use_noise: bool = True,
        conv_clamp: float | None = None,
        resample_filter: Sequence[float] = FIR,
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        layer = dict(
            w_dim=w_dim,
            resolution=resolution,
            use_noise=use_noise,
            conv_clamp=conv_clamp,
            resample_filter=resample_filter,
        )
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
            self.upsample = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer)
            self.upsample = Upsample2d(2, resample_filter)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        *,
        noise_mode: str = "random",
        fused_modconv: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws`` ``[N, num_conv + 1, w_dim]``; returns features ``[N, C, R, R]`` and image ``[N, 3, R, R]``."""
        opts = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
        if self.conv0 is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)  # [N, C, 4, 4]
            x = self.conv1(x, ws[:, 0], **opts)
        else:
            x = self.conv0(x, ws[:, 0], **opts)
            x = self.conv1(x, ws[:, 1], **opts)
        y = self.torgb(x, ws[:, self.num_conv], fused_modconv=fused_modconv)  # [N, img_channels, R, R]
        img = y if img is None else self.upsample(img) + y
        return x, img

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, resolution={self.resolution}"


class SynthesisNetwork(nn.Module):
    """``ws`` ``[N, num_ws, w_dim]`` -> image ``[N, img_channels, R, R]`` (skip architecture)."""

    def __init__(
        self,
        *,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        use_noise: bool = True,
        conv_clamp: float | None = None,
        resample_filter: Sequence[float] = FIR,
    ):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.channels = channels_per_resolution(img_resolution, channel_base, channel_max)
        self.block_resolutions = list(self.channels)
        self.blocks = nn.ModuleDict()
        self.num_ws = 0
        for res in self.block_resolutions:
            self.blocks[f"b{res}"] = SynthesisBlock(
                self.channels[res // 2] if res > 4 else 0,
                self.channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                use_noise=use_noise,
                conv_clamp=conv_clamp,
                resample_filter=resample_filter,
            )
            self.num_ws += self.blocks[f"b{res}"].num_conv
        self.num_ws += 1  # the last ToRGB's w; the others share the next block's first w

    def forward(
        self, ws: torch.Tensor, *, noise_mode: str = "random", fused_modconv: bool | None = None
    ) -> torch.Tensor:
        """``fused_modconv=None`` follows the official choice: grouped conv in eval mode only."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"unknown noise_mode {noise_mode!r}; use one of {NOISE_MODES}")
        fused = (not self.training) if fused_modconv is None else bool(fused_modconv)
        x = img = None
        w_idx = 0
        for block in self.blocks.values():
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)  # [N, num_conv + 1, w_dim]
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused)
            w_idx += block.num_conv
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: :class:`MappingNetwork` then :class:`SynthesisNetwork` (config F by default).

    Interface used by the objective and the sampling tools: ``z_dim, w_dim, c_dim, num_ws,
    img_resolution, img_channels``, ``w_avg``, ``mapping(z, c, ...)``, ``synthesis(ws, ...)``.
    """

    def __init__(
        self,
        *,
        z_dim: int = 512,
        w_dim: int = 512,
        c_dim: int = 0,
        img_resolution: int = 1024,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        mapping_layers: int = 8,
        mapping_lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
        use_noise: bool = True,
        conv_clamp: float | None = None,
        fused_modconv: bool | None = None,
        resample_filter: Sequence[float] = FIR,
    ):
        super().__init__()
        check_resolution(img_resolution)
        self.z_dim, self.w_dim, self.c_dim = z_dim, w_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.fused_modconv = fused_modconv
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            use_noise=use_noise,
            conv_clamp=conv_clamp,
            resample_filter=tuple(resample_filter),
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            num_ws=self.num_ws,
            num_layers=mapping_layers,
            lr_mul=mapping_lr_mul,
            w_avg_beta=w_avg_beta,
        )

    @property
    def w_avg(self) -> torch.Tensor:
        """The tracked average ``w`` ``[w_dim]`` (the mapping network's buffer ``mapping.w_avg``)."""
        return self.mapping.w_avg

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        """``z`` ``[N, z_dim]`` (and labels ``[N]``) -> images ``[N, C, R, R]``, roughly in ``[-1, 1]``."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        fused = self.fused_modconv if fused_modconv is None else fused_modconv
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused)


# -- discriminator -----------------------------------------------------------------------------
class DiscriminatorConv(nn.Module):
    """Equalized conv with optional FIR downsampling, bias, activation, gain and clamp.

    StyleGAN2-ADA's ``Conv2dLayer`` as a composition of the shared layers: for ``down=2`` a 3x3
    conv is ``Blur`` (padding 2 for the 4-tap filter) + stride-2 conv, and a 1x1 conv is
    ``Downsample2d`` + conv (the official ``conv2d_resample`` fast paths). The output is
    ``act(conv(x) + b) * act_gain * gain``, clamped to ``+-conv_clamp * gain``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: str | None = "lrelu",
        down: int = 1,
        conv_clamp: float | None = None,
        resample_filter: Sequence[float] = FIR,
    ):
        super().__init__()
        if down not in (1, 2):
            raise ValueError(f"down must be 1 or 2, got {down}")
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.resample: nn.Module | None = None
        stride, padding = 1, kernel_size // 2
        if down > 1 and kernel_size == 1:
            self.resample = Downsample2d(down, resample_filter)
            padding = 0
        elif down > 1:
            p0, p1 = downsample2d_padding(len(resample_filter), down)
            pad = kernel_size // 2
            self.resample = Blur(resample_filter, padding=(pad + p0, pad + p1, pad + p0, pad + p1))
            stride, padding = down, 0
        self.conv = EqualizedConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        if self.resample is not None:
            x = self.resample(x)
        x = self.conv(x)  # bias included
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, None, activation=self.activation, gain=gain, clamp=clamp)


class DiscriminatorBlock(nn.Module):
    """One resolution of the discriminator (StyleGAN2 Fig. 7c), ``[N, tmp, R, R] -> [N, out, R/2, R/2]``.

    ``resnet``: ``(skip(x) + conv1(conv0(x))) * sqrt(0.5)`` where ``skip`` is a FIR-downsampled 1x1
    conv without bias or activation. ``orig``: ``conv1(conv0(x))`` only. The first block
    (``in_channels == 0``) reads the image through a 1x1 FromRGB.
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        *,
        img_channels: int,
        architecture: str = "resnet",
        conv_clamp: float | None = None,
        resample_filter: Sequence[float] = FIR,
    ):
        super().__init__()
        if architecture not in ("resnet", "orig"):
            raise ConfigError(f"discriminator architecture {architecture!r} is not supported; use 'resnet' or 'orig'")
        self.architecture = architecture
        conv = dict(conv_clamp=conv_clamp, resample_filter=resample_filter)
        self.fromrgb = DiscriminatorConv(img_channels, tmp_channels, 1, **conv) if in_channels == 0 else None
        self.conv0 = DiscriminatorConv(tmp_channels, tmp_channels, 3, **conv)
        self.conv1 = DiscriminatorConv(tmp_channels, out_channels, 3, down=2, **conv)
        self.skip = (
            DiscriminatorConv(
                tmp_channels, out_channels, 1, bias=False, activation=None, down=2, resample_filter=resample_filter
            )
            if architecture == "resnet"
            else None
        )

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(img)  # [N, tmp, R, R]
        if self.skip is None:
            return self.conv1(self.conv0(x))
        y = self.skip(x, gain=SQRT_HALF)  # [N, out, R/2, R/2]
        x = self.conv1(self.conv0(x), gain=SQRT_HALF)  # [N, out, R/2, R/2]
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch stddev, 3x3 conv, fully connected, output (StyleGAN2 App. B; ProGAN Sec. 3).

    With a label mapping (``cmap_dim > 0``) the output is the projection
    ``<out(x), cmap(c)> / sqrt(cmap_dim)``.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        cmap_dim: int = 0,
        resolution: int = 4,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdDev(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = DiscriminatorConv(in_channels + mbstd_num_channels, in_channels, 3, conv_clamp=conv_clamp)
        self.fc = EqualizedLinear(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = EqualizedLinear(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[N, C, 4, 4]`` -> logits ``[N, 1]``."""
        if self.mbstd is not None:
            x = self.mbstd(x)  # [N, C + F, 4, 4]
        x = self.conv(x)  # [N, C, 4, 4]
        x = self.fc(x.flatten(1))  # [N, C]
        x = self.out(x)  # [N, 1] or [N, cmap_dim]
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))  # [N, 1]
        return x


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator, ``D(img, c=None) -> logits [N]``.

    ``mbstd_group_size`` is the official ``mbstd`` of each config (4 for config F, 8 for paper256,
    32 for cifar); a batch must be a multiple of it or smaller than it.
    """

    def __init__(
        self,
        *,
        c_dim: int = 0,
        img_resolution: int = 1024,
        img_channels: int = 3,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
        cmap_dim: int | None = None,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        mapping_layers: int = 8,
        resample_filter: Sequence[float] = FIR,
    ):
        super().__init__()
        check_resolution(img_resolution)
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.architecture = architecture
        channels = channels_per_resolution(img_resolution, channel_base, channel_max)
        self.block_resolutions = [r for r in sorted(channels, reverse=True) if r > 4]
        self.blocks = nn.ModuleDict()
        for res in self.block_resolutions:
            self.blocks[f"b{res}"] = DiscriminatorBlock(
                channels[res] if res < img_resolution else 0,
                channels[res],
                channels[res // 2],
                img_channels=img_channels,
                architecture=architecture,
                conv_clamp=conv_clamp,
                resample_filter=tuple(resample_filter),
            )
        cmap_dim = (channels[4] if cmap_dim is None else cmap_dim) if c_dim > 0 else 0
        # The label mapping of the official D: the generator's mapping network without z or w_avg.
        self.mapping = (
            MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, num_layers=mapping_layers, w_avg_beta=None
            )
            if c_dim > 0
            else None
        )
        self.epilogue = DiscriminatorEpilogue(
            channels[4],
            cmap_dim=cmap_dim,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
            conv_clamp=conv_clamp,
        )

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """``img`` ``[N, C, R, R]`` (and labels ``[N]``) -> logits ``[N]``."""
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(
                f"D expects images [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
                f"got {tuple(img.shape)}"
            )
        x = None
        for block in self.blocks.values():
            x = block(x, img)  # [N, C, R/2, R/2]
        cmap = self.mapping(None, c) if self.mapping is not None else None  # [N, cmap_dim]
        return self.epilogue(x, cmap).flatten()  # [N]


# -- registry ----------------------------------------------------------------------------------
LOSS_DEFAULTS: dict[str, Any] = {
    "loss": "nonsat",
    "r1_gamma": 10.0,
    "r1_interval": 16,
    "pl_weight": 2.0,
    "pl_interval": 4,
    "pl_batch_shrink": 2,
    "pl_decay": 0.01,
    "style_mixing_prob": 0.9,
    # StyleGAN2-ADA corrects G's Adam for an interval of 4 even when pl_weight = 0 (cfg 'cifar').
    "g_reg_interval": 4,
}


def _style_objective(loss: dict[str, Any] | None, optim: dict[str, Any] | None) -> StyleObjective:
    loss_cfg = {**LOSS_DEFAULTS, **dict(loss or {})}
    unknown = sorted(set(loss_cfg) - set(LOSS_DEFAULTS))
    if unknown:
        raise ConfigError(f"model.loss (stylegan2) has no option(s) {unknown}. Allowed: {sorted(LOSS_DEFAULTS)}.")
    optim = dict(optim or {})
    unknown = sorted(set(optim) - {"G", "D"})
    if unknown:
        raise ConfigError(f"model.optim (stylegan2) has no module(s) {unknown}. Allowed: ['D', 'G'].")
    adam = OptimizerSpec(lr=0.002, betas=(0.0, 0.99), eps=1e-8)  # StyleGAN2 App. B (config F)
    # StyleObjective applies the lazy-regularisation correction (lr and betas ** (k / (k + 1))).
    return StyleObjective(
        optim_G=optimizer_spec(optim.get("G"), adam), optim_D=optimizer_spec(optim.get("D"), adam), **loss_cfg
    )


# Presets. The numbers of the paper configs come from StyleGAN2-ADA's train.py (cfg_specs) and
# StyleGAN2 App. B; per-run settings (batch size, kimg) live in conf/experiment/stylegan2_*.yaml.
PRESETS: dict[str, dict[str, Any]] = {
    # Default for this CPU: StyleGAN2-ADA's 'auto' config at 32x32 / batch 64 (map 2, mbstd 4,
    # ema = 64 * 10 / 32 kimg with ramp-up 0.05, lr 0.0025) with fewer channels (channel_base 1024,
    # channel_max 64 -> 64, 64, 64, 32) and z = w = 128. R1 gamma 1 instead of auto's
    # 0.0002 * 32^2 / 64 = 0.0032: without ADA that collapsed to one mode within 50 kimg on CPU.
    "stylegan2": dict(
        resolution=32,
        channel_base=1024,
        channel_max=64,
        optim={"G": {"lr": 0.0025}, "D": {"lr": 0.0025}},
        G={"z_dim": 128, "w_dim": 128, "mapping_layers": 2},
        D={"mbstd_group_size": 4},
        loss={"r1_gamma": 1.0},
        ema={"half_life_kimg": 20.0, "rampup": 0.05},
    ),
    # Config F (StyleGAN2 App. B; StyleGAN2-ADA cfg 'stylegan2'): FFHQ 1024, gamma 10, mbstd 4.
    "stylegan2_f": dict(
        resolution=1024,
        channel_base=32768,
        channel_max=512,
        conv_clamp=256,
        optim={"G": {"lr": 0.002}, "D": {"lr": 0.002}},
        G={"z_dim": 512, "w_dim": 512, "mapping_layers": 8},
        D={"mbstd_group_size": 4},
        loss={"r1_gamma": 10.0},
        ema={"half_life_kimg": 10.0, "rampup": None},
    ),
    # StyleGAN2-ADA cfg 'paper256': fmaps 0.5, mbstd 8, lr 0.0025, gamma 1, ema 20 kimg.
    "stylegan2_paper256": dict(
        resolution=256,
        channel_base=16384,
        channel_max=512,
        conv_clamp=256,
        optim={"G": {"lr": 0.0025}, "D": {"lr": 0.0025}},
        G={"z_dim": 512, "w_dim": 512, "mapping_layers": 8},
        D={"mbstd_group_size": 8},
        loss={"r1_gamma": 1.0},
        ema={"half_life_kimg": 20.0, "rampup": None},
    ),
    # StyleGAN2-ADA cfg 'cifar': fmaps 1, map 2, mbstd 32, lr 0.0025, gamma 0.01, ema 500 kimg with
    # ramp-up 0.05; no path-length regularisation, no style mixing, 'orig' (non-residual) D.
    "stylegan2_cifar": dict(
        resolution=32,
        channel_base=32768,
        channel_max=512,
        conv_clamp=256,
        optim={"G": {"lr": 0.0025}, "D": {"lr": 0.0025}},
        G={"z_dim": 512, "w_dim": 512, "mapping_layers": 2},
        D={"mbstd_group_size": 32, "architecture": "orig"},
        loss={"r1_gamma": 0.01, "pl_weight": 0.0, "style_mixing_prob": 0.0},
        ema={"half_life_kimg": 500.0, "rampup": 0.05},
    ),
    # Tests and smoke runs: 16x16, 32 channels at most, z = w = 32.
    "stylegan2_tiny": dict(
        resolution=16,
        channel_base=256,
        channel_max=32,
        optim={"G": {"lr": 0.0025}, "D": {"lr": 0.0025}},
        G={"z_dim": 32, "w_dim": 32, "mapping_layers": 2},
        D={"mbstd_group_size": 4},
        loss={"r1_gamma": 0.01},
        ema={"half_life_kimg": 1.0, "rampup": 0.05},
    ),
}


def stylegan2(
    *,
    resolution: int = 32,
    img_channels: int = 3,
    c_dim: int = 0,
    channel_base: int = 1024,
    channel_max: int = 64,
    conv_clamp: float | None = None,
    G: dict[str, Any] | None = None,
    D: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
    ema: dict[str, Any] | None = None,
) -> Bundle:
    """StyleGAN2 (Karras et al. 2020): skip G, residual D, lazy R1 + path length, style mixing.

    ``channel_base``, ``channel_max`` and ``conv_clamp`` are shared by G and D (as in the official
    train.py). ``optim.G`` / ``optim.D`` override fields of Adam(0.002, betas (0, 0.99), eps 1e-8).
    """
    check_resolution(resolution)
    if not isinstance(c_dim, int) or c_dim < 0:
        raise ConfigError(f"model.c_dim must be an integer >= 0 (or 'auto'), got {c_dim!r}")
    shared = dict(
        img_resolution=resolution,
        img_channels=img_channels,
        c_dim=c_dim,
        channel_base=channel_base,
        channel_max=channel_max,
        conv_clamp=conv_clamp,
    )
    gen = construct(Generator, G, where="model.G (stylegan2)", **shared)
    disc = construct(Discriminator, D, where="model.D (stylegan2)", **shared)
    objective = _style_objective(loss, optim)
    ema_spec = construct(EMASpec, {"half_life_kimg": 10.0, "rampup": None, **(ema or {})}, where="model.ema")
    return gan_bundle(
        gen,
        disc,
        objective,
        ema=ema_spec,
    )


_DESCRIPTIONS = {
    "stylegan2": "StyleGAN2 at 32x32 sized for a CPU (StyleGAN2-ADA 'auto' settings, fewer channels)",
    "stylegan2_f": "StyleGAN2 config F at 1024x1024 (FFHQ; StyleGAN2-ADA cfg 'stylegan2')",
    "stylegan2_paper256": "StyleGAN2 at 256x256, StyleGAN2-ADA cfg 'paper256' (half the channels)",
    "stylegan2_cifar": "StyleGAN2 at 32x32, StyleGAN2-ADA cfg 'cifar' (no pl reg, no mixing, orig D)",
    "stylegan2_tiny": "StyleGAN2 at 16x16 with at most 32 channels (tests and smoke runs)",
}

for _name, _presets in PRESETS.items():
    register_model(_name, family="style", builder=stylegan2, description=_DESCRIPTIONS[_name], **_presets)
