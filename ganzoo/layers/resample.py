"""Resampling of feature maps: FIR up/down-sampling (StyleGAN2) and the simple ProGAN kinds.

:func:`upfirdn2d` is a pure-PyTorch version of the ``upfirdn2d`` op of StyleGAN2 (Karras et al.
2020, App. B: "we use bilinear filtering in all up/downsampling layers"), with the same semantics
as the official reference implementation:

1. upsample by inserting ``up - 1`` zeros after every pixel,
2. pad with zeros (negative padding crops),
3. convolve with the 2-D FIR filter ``f`` (a true convolution, i.e. the filter is flipped),
   keeping only outputs whose footprint lies inside the padded image,
4. downsample by keeping every ``down``-th pixel.

It is built only from differentiable ``torch`` ops, so it supports gradients of any order
(R1 and path-length regularisation differentiate through it twice).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Padding = int | Sequence[int]
FilterLike = Sequence[float] | torch.Tensor


def setup_filter(f: FilterLike, *, normalize: bool = True) -> torch.Tensor:
    """Prepare a 2-D FIR filter for :func:`upfirdn2d`.

    A 1-D filter ``[taps]`` becomes the separable outer product ``[taps, taps]``; a 2-D filter is
    kept as is. With ``normalize`` the filter sums to 1 so it preserves a constant (DC) signal.
    Returns a float32 CPU tensor (register it as a buffer; modules move it with the model).
    """
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f.reshape(1)
    if f.ndim == 1:
        f = torch.outer(f, f)  # [taps, taps]
    if f.ndim != 2 or f.numel() == 0:
        raise ValueError(f"FIR filter must be 1-D or 2-D and non-empty, got shape {tuple(f.shape)}")
    if normalize:
        f = f / f.sum()
    return f


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """``int`` | ``(px, py)`` | ``(px0, px1, py0, py1)`` -> ``(px0, px1, py0, py1)``."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = tuple(int(v) for v in padding)
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise ValueError(f"padding must be an int, (x, y) or (x0, x1, y0, y1), got {padding!r}")


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    *,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    gain: float = 1.0,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample ``x`` ``[N, C, H, W]`` (see the module docstring).

    Args:
        f: 2-D filter ``[fh, fw]`` from :func:`setup_filter`, applied to every channel.
        padding: with respect to the upsampled image; ``int``, ``(x, y)`` or ``(x0, x1, y0, y1)``.
        gain: multiplies the filter (``up ** 2`` keeps the magnitude after zero insertion).
        flip_filter: False = convolution (the official default), True = correlation.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got shape {tuple(x.shape)}")
    if f.ndim != 2:
        raise ValueError(f"upfirdn2d expects a 2-D filter (see setup_filter), got {tuple(f.shape)}")
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got up={up}, down={down}")
    n, c, h, w = x.shape
    px0, px1, py0, py1 = parse_padding(padding)

    if up > 1:
        # Zero insertion: each pixel is followed by up - 1 zeros along both axes.
        x = x.reshape(n, c, h, 1, w, 1)  # [N, C, H, 1, W, 1]
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])  # [N, C, H, up, W, up]
        x = x.reshape(n, c, h * up, w * up)  # [N, C, H*up, W*up]

    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    # F.conv2d computes a correlation; flipping the filter turns it into a convolution.
    f = f.to(device=x.device, dtype=x.dtype) * gain
    if not flip_filter:
        f = f.flip([0, 1])
    weight = f[None, None].expand(c, 1, *f.shape)  # [C, 1, fh, fw], one depthwise filter per channel
    x = F.conv2d(x, weight, groups=c)

    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d_padding(filter_size: int, factor: int) -> tuple[int, int]:
    """Padding ``(p0, p1)`` that makes :func:`upfirdn2d` output exactly ``factor * H`` pixels."""
    return (filter_size + factor - 1) // 2, (filter_size - factor) // 2


def downsample2d_padding(filter_size: int, factor: int) -> tuple[int, int]:
    """Padding ``(p0, p1)`` that makes :func:`upfirdn2d` output exactly ``H / factor`` pixels."""
    return (filter_size - factor + 1) // 2, (filter_size - factor) // 2


class Upsample2d(nn.Module):
    """FIR upsampling by an integer factor; output ``[N, C, factor*H, factor*W]``.

    Zero insertion keeps one sample in ``factor ** 2``, so the filter gain is ``factor ** 2`` to
    keep the signal magnitude (a constant image stays the same constant away from the border).
    """

    resample_filter: torch.Tensor

    def __init__(self, factor: int = 2, filter: FilterLike = (1, 3, 3, 1)):
        super().__init__()
        self.factor = factor
        self.register_buffer("resample_filter", setup_filter(filter), persistent=False)
        fh, fw = self.resample_filter.shape
        self.padding = (*upsample2d_padding(fw, factor), *upsample2d_padding(fh, factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.resample_filter, up=self.factor, padding=self.padding, gain=self.factor**2)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, filter_size={tuple(self.resample_filter.shape)}"


class Downsample2d(nn.Module):
    """FIR low-pass filter then decimation by an integer factor; output ``[N, C, H/f, W/f]``."""

    resample_filter: torch.Tensor

    def __init__(self, factor: int = 2, filter: FilterLike = (1, 3, 3, 1)):
        super().__init__()
        self.factor = factor
        self.register_buffer("resample_filter", setup_filter(filter), persistent=False)
        fh, fw = self.resample_filter.shape
        self.padding = (*downsample2d_padding(fw, factor), *downsample2d_padding(fh, factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.resample_filter, down=self.factor, padding=self.padding)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, filter_size={tuple(self.resample_filter.shape)}"


class Blur(nn.Module):
    """FIR filtering with explicit padding, e.g. before a strided convolution.

    StyleGAN2's downsampling 3x3 conv (``down=2``) is ``Blur(f, padding=2)`` followed by a
    stride-2 convolution without padding: the padding is ``k // 2 + (fw - 2 + 1) // 2`` on the
    left and ``k // 2 + (fw - 2) // 2`` on the right, i.e. 2 and 2 for ``k=3``, ``fw=4``.
    """

    blur_filter: torch.Tensor

    def __init__(self, filter: FilterLike, padding: Padding, gain: float = 1.0):
        super().__init__()
        self.register_buffer("blur_filter", setup_filter(filter), persistent=False)
        self.padding = parse_padding(padding)
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.blur_filter, padding=self.padding, gain=self.gain)

    def extra_repr(self) -> str:
        return f"filter_size={tuple(self.blur_filter.shape)}, padding={self.padding}, gain={self.gain}"


def nearest_upsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling (ProGAN / StyleGAN1): every pixel becomes a factor x factor block.

    Written with views only, so any order of gradient is available.
    """
    n, c, h, w = x.shape
    x = x[:, :, :, None, :, None].expand(n, c, h, factor, w, factor)  # [N, C, H, f, W, f]
    return x.reshape(n, c, h * factor, w * factor)  # [N, C, H*f, W*f]


def avg_downsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Box-filter downsampling (ProGAN / StyleGAN1): mean over non-overlapping factor x factor blocks."""
    return F.avg_pool2d(x, factor)
