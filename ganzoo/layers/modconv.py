"""Modulated convolution with weight demodulation (StyleGAN2, Karras et al. 2020, Sec. 2.2)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .equalized import EqualizedLinear
from .resample import setup_filter, upfirdn2d


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per sample by a style (StyleGAN2 Sec. 2.2, eq. 1-3).

    ``s = affine(w)`` (bias initialised to 1), ``w'_ijk = s_i * w_ijk`` (eq. 1) and, with
    ``demodulate``, ``w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk ** 2 + eps)`` (eq. 3) so that every
    output channel has unit expected variance again. There is no bias: the caller adds bias,
    noise and activation (StyleGAN2's ``SynthesisLayer`` owns its own bias).

    The stored weight ``[out, in, k, k]`` is N(0, 1) / lr_mul, used times
    ``lr_mul / sqrt(in * k * k)`` (equalized learning rate). With demodulation that scale cancels
    (up to ``eps``); without it (ToRGB layers) it is the official ``weight_gain`` of ``ToRGBLayer``.

    ``up=2`` doubles the resolution like the official ``conv2d_resample``: a stride-2 transposed
    convolution followed by the FIR filter ``resample_filter`` with gain ``up ** 2``. As in the
    official code, ``up=1`` is a correlation (``F.conv2d``) and ``up=2`` a true convolution of the
    zero-upsampled input (the kernel is not flipped for ``conv_transpose2d``); this matters only
    when loading official weights.

    Two equivalent execution paths (StyleGAN2 App. B):

    * ``fused=True``: per-sample weights, the batch folded into channels, ONE grouped convolution
      with ``groups = N``.
    * ``fused=False``: the style scales the input activations, one convolution with the shared
      weight, the demodulation coefficients scale the output. The official code trains with
      this path; it is also the reference the fused path is tested against.

    Float16 inputs (StyleGAN2-ADA mixed precision, official ``modulated_conv2d``): styles, modulated
    weights and demodulation coefficients stay float32 and are cast to float16 only for the
    convolution. When demodulating, the weight is first divided by its largest ``|w|`` per output
    channel (times ``1 / sqrt(in * k * k)``) and the styles by their largest ``|s|`` per sample: the
    demodulation undoes both scales, and the un-normalised activations could overflow float16.
    Other dtypes (float32, bfloat16 under autocast) take the plain path.
    """

    resample_filter: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        *,
        demodulate: bool = True,
        up: int = 1,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        lr_mul: float = 1.0,
        eps: float = 1e-8,
    ):
        super().__init__()
        if up not in (1, 2):
            raise ValueError(f"ModulatedConv2d supports up=1 or up=2, got {up}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.up = up
        self.eps = eps
        self.lr_mul = lr_mul
        self.padding = kernel_size // 2
        self.affine = EqualizedLinear(style_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul)
        self.weight_gain = lr_mul / math.sqrt(in_channels * kernel_size * kernel_size)
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)

    def modulated_weight(self, styles: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample weights ``[N, out, in, k, k]`` for styles ``[N, in]`` (eq. 1; eq. 3 if demodulating).

        With demodulation every ``weight[n, o]`` has unit L2 norm over ``(in, k, k)`` (up to ``eps``).
        ``weight`` replaces the scaled parameter ``[out, in, k, k]`` (the float16 path's pre-normalised one).
        """
        w = self.weight.to(styles.dtype) * self.weight_gain if weight is None else weight  # [O, I, k, k]
        w = w.unsqueeze(0) * styles[:, None, :, None, None]  # [N, O, I, k, k]
        if self.demodulate:
            w = w * self._demod_coefs(w)[:, :, None, None, None]
        return w

    def _demod_coefs(self, w: torch.Tensor) -> torch.Tensor:
        """``1 / sqrt(sum_{in, k, k} w ** 2 + eps)``: modulated weights ``[N, O, I, k, k]`` -> ``[N, O]``."""
        return torch.rsqrt(w.square().sum(dim=(2, 3, 4)) + self.eps)

    def _conv(self, x: torch.Tensor, w: torch.Tensor, groups: int) -> torch.Tensor:
        """Convolve ``x`` with ``w`` ``[O*groups, I, k, k]``, upsampling by ``self.up`` if needed."""
        if self.up == 1:
            return F.conv2d(x, w, padding=self.padding, groups=groups)
        # Transposed convolution wants [in, out / groups, k, k] per group.
        o, i, kh, kw = w.shape
        w = w.reshape(groups, o // groups, i, kh, kw).transpose(1, 2)  # [groups, I, O/groups, k, k]
        w = w.reshape(groups * i, o // groups, kh, kw)  # [groups*I, O/groups, k, k]
        x = F.conv_transpose2d(x, w, stride=self.up, groups=groups)  # [.., up*(H-1)+k, ..]
        # Padding of the official conv2d_resample (up > 1 path): the FIR blur brings the size to up*H.
        fh, fw = self.resample_filter.shape
        px0 = self.padding + (fw + self.up - 1) // 2 - (kw - 1)
        px1 = self.padding + (fw - self.up) // 2 - (kw - self.up)
        py0 = self.padding + (fh + self.up - 1) // 2 - (kh - 1)
        py1 = self.padding + (fh - self.up) // 2 - (kh - self.up)
        return upfirdn2d(x, self.resample_filter, padding=(px0, px1, py0, py1), gain=self.up**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, fused: bool = True) -> torch.Tensor:
        """``x`` ``[N, in, H, W]``, ``w`` ``[N, style_dim]`` -> ``[N, out, up*H, up*W]``."""
        n, c, h, wd = x.shape
        if c != self.in_channels:
            raise ValueError(f"ModulatedConv2d expects {self.in_channels} input channels, got {c}")
        half = x.dtype == torch.float16
        dtype = torch.float32 if half else x.dtype  # of styles, weights and demodulation coefficients
        styles = self.affine(w).to(dtype)  # [N, I]
        weight = self.weight.to(dtype) * self.weight_gain  # [O, I, k, k]
        if half and self.demodulate:
            weight, styles = self.prenormalize(weight, styles)

        if fused:
            weight = self.modulated_weight(styles, weight)  # [N, O, I, k, k]
            k = self.kernel_size
            weight = weight.reshape(n * self.out_channels, c, k, k).to(x.dtype)  # [N*O, I, k, k]
            y = self._conv(x.reshape(1, n * c, h, wd), weight, groups=n)  # [1, N*O, H', W']
            return y.reshape(n, self.out_channels, *y.shape[2:])  # [N, O, H', W']

        y = self._conv(x * styles.to(x.dtype)[:, :, None, None], weight.to(x.dtype), groups=1)  # [N, O, H', W']
        if self.demodulate:
            # sum_{i,k} (s_i w_oik)^2 = sum_i s_i^2 sum_k w_oik^2: eq. 3 without the [N, O, I, k, k] tensor.
            sq = styles.square() @ weight.square().sum(dim=(2, 3)).t()  # [N, O]
            y = y * torch.rsqrt(sq + self.eps).to(y.dtype)[:, :, None, None]
        return y

    def prenormalize(self, weight: torch.Tensor, styles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The official float16 pre-normalisation: ``weight / max_Ikk |weight| / sqrt(I k k)`` per output
        channel and ``styles / max_I |styles|`` per sample. Demodulation makes the layer invariant to both
        scales (up to ``eps``), so only the float16 intermediate values change: they stay below 1."""
        fan_in = self.in_channels * self.kernel_size**2
        weight = weight * (1 / math.sqrt(fan_in) / weight.abs().amax(dim=(1, 2, 3), keepdim=True))
        styles = styles / styles.abs().amax(dim=1, keepdim=True)
        return weight, styles

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"demodulate={self.demodulate}, up={self.up}"
        )
