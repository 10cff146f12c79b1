"""StyleGAN2 generator (Karras et al., CVPR 2020): mapping network, synthesis layers, blocks and network.

Follows the official StyleGAN2-ADA PyTorch code (``training/networks.py``); see
:mod:`ganzoo.models.stylegan2` for the whole model, its presets and the training objective.

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

Mixed precision (StyleGAN2-ADA, ``num_fp16_res``): after ``set_fp16(True)`` (the trainer calls it
at ``trainer.precision=fp16``) the blocks at the ``num_fp16_res`` highest resolutions
(:func:`fp16_resolution`) run in float16 and channels-last: their input features are cast on entry,
weights are cast at use (parameters stay float32), the modulated convolutions pre-normalise
(:class:`~ganzoo.layers.ModulatedConv2d`), every layer clamps to ``conv_clamp``, and each ToRGB
output is cast back to float32 before it joins the float32 image. The mapping network stays float32.

The helpers shared with the discriminator (``FIR``, ``check_resolution``, ``channels_per_resolution``,
``fp16_resolution``, ``labels_to_onehot``) live here because the discriminator already depends on this file (its label
mapping is a :class:`MappingNetwork`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..bundle import is_power_of_two
from ..errors import ConfigError
from ..layers import (
    NOISE_MODES,
    EqualizedLinear,
    ModulatedConv2d,
    NoiseInjection,
    PixelNorm,
    Upsample2d,
    bias_act,
)
from ..sampling.truncation import truncate
from ..training import distributed as dist

FIR = (1, 3, 3, 1)  # the binomial filter of all StyleGAN2 resampling (App. B, "bilinear filtering")
SQRT_HALF = math.sqrt(0.5)  # residual branches are scaled by 1/sqrt(2) (Sec. 4.1)


def conv_memory_format(t: torch.Tensor) -> torch.memory_format:
    """The layout the StyleGAN2 networks keep their feature maps in on ``t``'s device.

    On the CPU oneDNN's convolutions run about 15% faster (forward and backward) on channels-last
    (NHWC) tensors than on NCHW ones, which it reorders on every call; elementwise ops and the
    FIR filters follow the layout of their input. Values are the same either way (up to rounding).
    """
    return torch.channels_last if t.device.type == "cpu" else torch.contiguous_format


def fp16_resolution(img_resolution: int, num_fp16_res: int) -> int:
    """The lowest resolution whose blocks run in float16: ``max(2 ** (log2(R) + 1 - num_fp16_res), 8)``
    (official ``SynthesisNetwork``/``Discriminator``); ``num_fp16_res=0`` gives ``2 R``, i.e. none."""
    if not isinstance(num_fp16_res, int) or isinstance(num_fp16_res, bool) or num_fp16_res < 0:
        raise ConfigError(f"model.num_fp16_res must be an integer >= 0 (0 = never float16), got {num_fp16_res!r}")
    return max(2 ** (int(math.log2(img_resolution)) + 1 - num_fp16_res), 8)


def warn_unclamped(num_fp16_blocks: int, conv_clamp: float | None, what: str) -> None:
    """Float16 without ``conv_clamp`` can overflow (the official configs use 256 with it): say so."""
    if num_fp16_blocks and conv_clamp is None:
        warnings.warn(f"StyleGAN2 {what} runs {num_fp16_blocks} block(s) in float16 without conv_clamp: activations "
                      "may overflow; set model.conv_clamp=256 as StyleGAN2-ADA does", stacklevel=3)


def block_dtype(use_fp16: bool, fp16_enabled: bool) -> torch.dtype:
    """float16 for a block chosen by ``num_fp16_res`` once ``set_fp16(True)`` was called, else float32."""
    return torch.float16 if use_fp16 and fp16_enabled else torch.float32


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
        # A label-only mapping (z_dim=0) may have no layers: the official MappingNetwork then returns the
        # normalised label embedding (the D label mapping of StyleGAN2-ADA TensorFlow networks, mapping_layers=0).
        if num_layers < 1 and not (num_layers == 0 and z_dim <= 0):
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
                # the global batch's mean under torchrun, so w_avg is the same on every rank
                self.w_avg.copy_(torch.lerp(dist.batch_mean_rows(x.detach().float()), self.w_avg, self.w_avg_beta))

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

    ``use_fp16``: the block is one of the ``num_fp16_res`` highest resolutions; it computes in
    float16 only while ``fp16_enabled`` (set by :meth:`SynthesisNetwork.set_fp16`).
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
        use_fp16: bool = False,
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.use_fp16, self.fp16_enabled = use_fp16, False
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
        fused_modconv: bool | None = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws`` ``[N, num_conv + 1, w_dim]``; returns features ``[N, C, R, R]`` (float16 in a float16
        block) and the float32 image ``[N, 3, R, R]``. ``fused_modconv=None``: the official choice,
        grouped conv in eval mode only, and in a float16 block only for a single sample."""
        dtype = block_dtype(self.use_fp16, self.fp16_enabled)
        half = dtype == torch.float16
        if fused_modconv is None:
            fused_modconv = (not self.training) and (not half or ws.shape[0] == 1)
        opts = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
        if self.conv0 is None:
            x = self.const.to(dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)  # [N, C, 4, 4]
            x = x.contiguous(memory_format=torch.channels_last if half else conv_memory_format(x))  # kept later
            x = self.conv1(x, ws[:, 0], **opts)
        else:
            if half:  # features enter a float16 block in float16, channels-last (official SynthesisBlock)
                x = x.to(dtype=dtype, memory_format=torch.channels_last)
            x = self.conv0(x, ws[:, 0], **opts)
            x = self.conv1(x, ws[:, 1], **opts)
        y = self.torgb(x, ws[:, self.num_conv], fused_modconv=fused_modconv)  # [N, img_channels, R, R]
        if half:
            y = y.to(dtype=torch.float32, memory_format=conv_memory_format(y))
        img = y if img is None else self.upsample(img) + y
        return x, img

    def extra_repr(self) -> str:
        fp16 = f", use_fp16=True, fp16_enabled={self.fp16_enabled}" if self.use_fp16 else ""
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, resolution={self.resolution}{fp16}"


class SynthesisNetwork(nn.Module):
    """``ws`` ``[N, num_ws, w_dim]`` -> image ``[N, img_channels, R, R]`` (skip architecture).

    ``num_fp16_res``: the blocks at that many highest resolutions (at least 8x8) may run in float16,
    once :meth:`set_fp16` turns mixed precision on (StyleGAN2-ADA; 0 = never).
    """

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
        num_fp16_res: int = 0,
    ):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.channels = channels_per_resolution(img_resolution, channel_base, channel_max)
        self.conv_clamp, self.num_fp16_res = conv_clamp, num_fp16_res
        self.fp16_resolution = fp16_resolution(img_resolution, num_fp16_res)
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
                use_fp16=res >= self.fp16_resolution,
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
        fused = None if fused_modconv is None else bool(fused_modconv)  # None: each block decides
        x = img = None
        w_idx = 0
        for block in self.blocks.values():
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)  # [N, num_conv + 1, w_dim]
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused)
            w_idx += block.num_conv
        return img.contiguous()  # callers get the usual NCHW layout whatever the layers used

    def set_fp16(self, enabled: bool) -> int:
        """Run the ``num_fp16_res`` highest-resolution blocks in float16 (or not); returns how many now do."""
        for block in self.blocks.values():
            block.fp16_enabled = bool(enabled) and block.use_fp16
        count = sum(block.fp16_enabled for block in self.blocks.values())
        warn_unclamped(count, self.conv_clamp, "G")
        return count


class Generator(nn.Module):
    """StyleGAN2 generator: :class:`MappingNetwork` then :class:`SynthesisNetwork` (config F by default).

    Interface used by the objective and the sampling tools: ``z_dim, w_dim, c_dim, num_ws,
    img_resolution, img_channels``, ``w_avg``, ``mapping(z, c, ...)``, ``synthesis(ws, ...)``;
    ``set_fp16(enabled)`` for the trainer's mixed precision (see the module docstring).
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
        num_fp16_res: int = 0,
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
            num_fp16_res=num_fp16_res,
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

    def set_fp16(self, enabled: bool) -> int:
        """Mixed-precision hook of the trainer (``trainer.precision=fp16``): float16 in the synthesis
        blocks chosen by ``num_fp16_res``; the mapping stays float32. Returns the number of float16 blocks."""
        return self.synthesis.set_fp16(enabled)

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
