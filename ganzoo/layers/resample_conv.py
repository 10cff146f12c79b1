"""Equalized convolutions combined with 2x nearest upsampling or 2x box downsampling.

ProGAN (Karras et al. 2018, Sec. 3 and App. A.1) and StyleGAN (Karras et al. 2019, App. C) double
the resolution with nearest-neighbour upsampling followed by a 3x3 convolution, and halve it with a
3x3 convolution followed by 2x2 average pooling. Their official code can fuse each pair into one
operation (``upscale2d_conv2d`` / ``conv2d_downscale2d``): nearest upsampling followed by a ``k x k``
convolution is a stride-2 transposed convolution whose ``(k+1) x (k+1)`` kernel is the ``k x k``
kernel convolved with a 2x2 box; a ``k x k`` convolution followed by 2x2 average pooling is a
stride-2 convolution with that kernel divided by 4. Both forms compute the same function (up to
floating-point rounding) from the same ``[out, in, k, k]`` parameters; the fused one is cheaper
(16 instead of 36 multiply-adds per input pixel and channel pair for ``k = 3``).

The official code uses ``fused_scale=True`` everywhere in ProGAN and ``fused_scale='auto'``
(fused at 128x128 and above) in StyleGAN; here ``fused`` is a constructor argument.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .equalized import EqualizedConv2d, bias_act
from .resample import avg_downsample, nearest_upsample


def _box_sum_kernel(w: torch.Tensor) -> torch.Tensor:
    """``[out, in, k, k]`` -> ``[out, in, k+1, k+1]``: the kernel convolved with a 2x2 box of ones."""
    w = F.pad(w, [1, 1, 1, 1])  # [out, in, k+2, k+2]
    return w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]  # [out, in, k+1, k+1]


class UpConv2d(EqualizedConv2d):
    """2x nearest-neighbour upsampling followed by an equalized ``k x k`` convolution (odd ``k``).

    Output ``[N, out, 2H, 2W]``. With ``fused=True`` the pair runs as one transposed convolution
    (ProGAN/StyleGAN ``upscale2d_conv2d``). The kernel used there is the box-summed kernel flipped
    spatially, which makes the fused form exactly equal to the separate one (the official TF code
    leaves it unflipped, i.e. it equals the separate form with a flipped ``k x k`` kernel, the same
    model up to a relabelling of the weights).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, fused: bool = False, **kwargs):
        if kernel_size % 2 != 1:
            raise ValueError(f"UpConv2d needs an odd kernel size, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        if self.stride != 1 or self.padding != kernel_size // 2:
            raise ValueError("UpConv2d supports stride 1 and 'same' padding only")
        self.fused = bool(fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.effective_weight().to(x.dtype)
        b = self.effective_bias()
        b = None if b is None else b.to(x.dtype)
        if self.fused:
            k = _box_sum_kernel(w).flip([2, 3]).transpose(0, 1)  # [in, out, k+1, k+1] for conv_transpose2d
            x = F.conv_transpose2d(x, k, stride=2, padding=self.padding)  # [N, out, 2H, 2W]
        else:
            x = F.conv2d(nearest_upsample(x, 2), w, padding=self.padding)  # [N, out, 2H, 2W]
        if self.activation is None:
            return x if b is None else x + b.reshape(1, -1, 1, 1)
        return bias_act(x, b, activation=self.activation)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", up=2, fused={self.fused}"


class DownConv2d(EqualizedConv2d):
    """An equalized ``k x k`` convolution (odd ``k``) followed by 2x2 average pooling.

    Output ``[N, out, H/2, W/2]``. With ``fused=True`` the pair runs as one stride-2 convolution
    (ProGAN/StyleGAN ``conv2d_downscale2d``), exactly equal to the separate form.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, fused: bool = False, **kwargs):
        if kernel_size % 2 != 1:
            raise ValueError(f"DownConv2d needs an odd kernel size, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        if self.stride != 1 or self.padding != kernel_size // 2:
            raise ValueError("DownConv2d supports stride 1 and 'same' padding only")
        self.fused = bool(fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.effective_weight().to(x.dtype)
        b = self.effective_bias()
        b = None if b is None else b.to(x.dtype)
        if self.fused:
            x = F.conv2d(x, _box_sum_kernel(w) * 0.25, stride=2, padding=self.padding)  # [N, out, H/2, W/2]
        else:
            x = avg_downsample(F.conv2d(x, w, padding=self.padding), 2)  # [N, out, H/2, W/2]
        if self.activation is None:
            return x if b is None else x + b.reshape(1, -1, 1, 1)
        return bias_act(x, b, activation=self.activation)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", down=2, fused={self.fused}"
