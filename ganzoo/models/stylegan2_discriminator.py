"""StyleGAN2 discriminator (Karras et al., CVPR 2020, Sec. 4.1, Fig. 7c).

Residual blocks ``(skip(x) + conv1(conv0(x))) * sqrt(0.5)`` with FIR-filtered downsampling, FromRGB
only at the top, and an epilogue with the minibatch standard deviation (ProGAN Sec. 3), a 3x3 conv,
a fully connected layer and the output layer (a projection onto a mapped label embedding when
class-conditional, Miyato & Koyama 2018). Follows the official StyleGAN2-ADA PyTorch code
(``training/networks.py``); the whole model is in :mod:`ganzoo.models.stylegan2`.

Mixed precision (StyleGAN2-ADA): after ``set_fp16(True)`` the blocks at the ``num_fp16_res`` highest
resolutions run in float16 and channels-last (features and the image cast on entry, weights at use,
every conv clamped to ``conv_clamp``); the epilogue and the label mapping stay float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import (
    Blur,
    Downsample2d,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    bias_act,
    downsample2d_padding,
)
from .stylegan2_generator import (
    FIR,
    SQRT_HALF,
    MappingNetwork,
    block_dtype,
    channels_per_resolution,
    check_resolution,
    conv_memory_format,
    fp16_resolution,
    warn_unclamped,
)


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

    ``use_fp16``: one of the ``num_fp16_res`` highest resolutions; float16 while ``fp16_enabled``.
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
        use_fp16: bool = False,
    ):
        super().__init__()
        if architecture not in ("resnet", "orig"):
            raise ConfigError(f"discriminator architecture {architecture!r} is not supported; use 'resnet' or 'orig'")
        self.architecture = architecture
        self.use_fp16, self.fp16_enabled = use_fp16, False
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
        dtype = block_dtype(self.use_fp16, self.fp16_enabled)
        half = dtype == torch.float16
        # Into a float16 block (channels-last, the official NHWC option), or out of one into float32;
        # other dtypes (bfloat16 under autocast) pass untouched.
        if x is not None and x.dtype != dtype and (half or x.dtype == torch.float16):
            x = x.to(dtype=dtype, memory_format=torch.channels_last if half else conv_memory_format(x))
        if self.fromrgb is not None:
            if half:
                img = img.to(dtype=dtype, memory_format=torch.channels_last)
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
        num_fp16_res: int = 0,
    ):
        super().__init__()
        check_resolution(img_resolution)
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.architecture = architecture
        self.conv_clamp, self.num_fp16_res = conv_clamp, num_fp16_res
        self.fp16_resolution = fp16_resolution(img_resolution, num_fp16_res)
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
                use_fp16=res >= self.fp16_resolution,
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
        img = img.contiguous(memory_format=conv_memory_format(img))  # the layout every block keeps
        x = None
        for block in self.blocks.values():
            x = block(x, img)  # [N, C, R/2, R/2]
        if x.dtype == torch.float16:  # the epilogue computes in float32 (official DiscriminatorEpilogue)
            x = x.to(dtype=torch.float32, memory_format=conv_memory_format(x))
        cmap = self.mapping(None, c) if self.mapping is not None else None  # [N, cmap_dim]
        return self.epilogue(x, cmap).flatten()  # [N]

    def set_fp16(self, enabled: bool) -> int:
        """Mixed-precision hook of the trainer (``trainer.precision=fp16``): float16 in the blocks chosen by
        ``num_fp16_res``. Returns how many blocks now run in float16."""
        for block in self.blocks.values():
            block.fp16_enabled = bool(enabled) and block.use_fp16
        count = sum(block.fp16_enabled for block in self.blocks.values())
        warn_unclamped(count, self.conv_clamp, "D")
        return count
