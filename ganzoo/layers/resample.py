"""Resampling of feature maps: FIR up/down-sampling (StyleGAN2) and the simple ProGAN kinds.

:func:`upfirdn2d` is a pure-PyTorch version of the ``upfirdn2d`` op of StyleGAN2 (Karras et al.
2020, App. B: "we use bilinear filtering in all up/downsampling layers"), with the same semantics
as the official reference implementation:

1. upsample by inserting ``up - 1`` zeros after every pixel,
2. pad with zeros (negative padding crops),
3. convolve with the 2-D FIR filter ``f`` (a true convolution, i.e. the filter is flipped),
   keeping only outputs whose footprint lies inside the padded image,
4. downsample by keeping every ``down``-th pixel.

:func:`upfirdn2d` runs as one autograd function whose backward is again an ``upfirdn2d`` (the
adjoint: up and down swapped, the filter flipped, the padding mirrored), so gradients of any order
are available (R1 and path-length regularisation differentiate through it twice) without autograd
ever asking for the gradient of the constant filter, which for a depthwise convolution costs one
small convolution per channel in a double backward. The forward uses the cheapest equivalent
convolution: padding inside ``conv2d`` when it is symmetric, a strided ``conv2d`` for ``down > 1``
(only the kept pixels are filtered) and a strided depthwise ``conv_transpose2d`` for ``up > 1``
(no zero-inserted image). :func:`upfirdn2d_reference` is the plain composition of the four
steps, kept as the reference the fast path is tested against.
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


def _check_args(x: torch.Tensor, f: torch.Tensor, up: int, down: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got shape {tuple(x.shape)}")
    if f.ndim != 2:
        raise ValueError(f"upfirdn2d expects a 2-D filter (see setup_filter), got {tuple(f.shape)}")
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got up={up}, down={down}")


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
    _check_args(x, f, up, down)
    if f.requires_grad:  # a learned filter needs its own gradient: the plain composition gives it
        return upfirdn2d_reference(x, f, up=up, down=down, padding=padding, gain=gain, flip_filter=flip_filter)
    f = f.to(device=x.device, dtype=x.dtype) * gain
    return _UpFirDn2d.apply(x, f, up, down, parse_padding(padding), flip_filter)


def _depthwise_filter(f: torch.Tensor, channels: int, flip: bool) -> torch.Tensor:
    """``[fh, fw]`` -> ``[C, 1, fh, fw]`` (flipped when ``flip``), the weight of a depthwise conv."""
    if flip:
        f = f.flip([0, 1])
    return f[None, None].expand(channels, 1, *f.shape)


def _upfirdn2d_forward(
    x: torch.Tensor, f: torch.Tensor, up: int, down: int, pads: tuple[int, int, int, int], flip_filter: bool
) -> torch.Tensor:
    """The fast forward of :func:`upfirdn2d` for a filter already scaled by the gain (no autograd needed)."""
    n, c, h, w = x.shape
    fh, fw = f.shape
    px0, px1, py0, py1 = pads
    if up > 1:
        # Zero insertion + pad + true convolution = conv_transpose2d with the unflipped filter, whose
        # output is cropped by (f - 1 - p0) on both sides; usable when that crop is the same on both.
        qx, qy = fw - 1 - px0, fh - 1 - py0
        out_w, out_h = w * up + px0 + px1 - fw + 1, h * up + py0 + py1 - fh + 1
        if qx >= 0 and qy >= 0 and (w - 1) * up + fw - 2 * qx == out_w and (h - 1) * up + fh - 2 * qy == out_h:
            y = F.conv_transpose2d(x, _depthwise_filter(f, c, flip_filter), stride=up, padding=(qy, qx), groups=c)
            return y if down == 1 else y[:, :, ::down, ::down]
        x = x.reshape(n, c, h, 1, w, 1)  # [N, C, H, 1, W, 1]
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])  # [N, C, H, up, W, up]
        x = x.reshape(n, c, h * up, w * up)  # [N, C, H*up, W*up]
    # F.conv2d computes a correlation; flipping the filter turns it into a convolution. The stride
    # computes only the pixels that downsampling keeps.
    weight = _depthwise_filter(f, c, not flip_filter)
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return F.conv2d(x, weight, stride=down, padding=(py0, px0), groups=c)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    return F.conv2d(x, weight, stride=down, groups=c)


class _UpFirDn2d(torch.autograd.Function):
    """``upfirdn2d`` with a constant filter; its backward is the adjoint ``upfirdn2d``, itself differentiable.

    The adjoint of "zero-insert by u, pad (p0, p1), convolve with f, keep every d-th pixel" on a
    line of ``H`` input and ``Hy`` output pixels is "zero-insert by d, pad (fh - 1 - p0,
    (H - 1) u + 1 + p0 - Hy d), correlate with f, keep every u-th pixel" (transposes in reverse
    order; the transpose of a valid convolution is a full correlation).
    """

    @staticmethod
    def forward(ctx, x, f, up, down, pads, flip_filter):  # type: ignore[override]
        ctx.f, ctx.up, ctx.down, ctx.pads, ctx.flip_filter = f, up, down, pads, flip_filter
        ctx.in_hw = x.shape[2:]
        y = _upfirdn2d_forward(x, f, up, down, pads, flip_filter)
        ctx.out_hw = y.shape[2:]
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        f, up, down = ctx.f.to(dy.dtype), ctx.up, ctx.down
        (h, w), (hy, wy) = ctx.in_hw, ctx.out_hw
        fh, fw = f.shape
        px0, _, py0, _ = ctx.pads
        pads = (fw - 1 - px0, (w - 1) * up + 1 + px0 - wy * down, fh - 1 - py0, (h - 1) * up + 1 + py0 - hy * down)
        dx = _UpFirDn2d.apply(dy, f, down, up, pads, not ctx.flip_filter)
        return dx, None, None, None, None, None


def upfirdn2d_reference(
    x: torch.Tensor,
    f: torch.Tensor,
    *,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    gain: float = 1.0,
    flip_filter: bool = False,
) -> torch.Tensor:
    """:func:`upfirdn2d` as the plain composition of its four steps (differentiable in ``x`` and ``f``)."""
    _check_args(x, f, up, down)
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
