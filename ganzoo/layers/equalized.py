"""Layers with an equalized learning rate (Karras et al. 2018, ProGAN Sec. 4.1).

The stored weight is drawn from N(0, 1) and the He constant is applied at run time,
``w_eff = w * gain * lr_mul / sqrt(fan_in)``. Adam's updates are invariant to the scale of a
parameter, so every weight then learns at the same speed relative to its effective size.

``lr_mul`` (StyleGAN, Karras et al. 2019, App. C: 0.01 in the mapping network) slows a layer
down: the parameter is initialised to ``N(0, 1) / lr_mul`` and multiplied by ``lr_mul`` at run
time, so the function at initialisation is unchanged while gradient steps shrink by ``lr_mul``.
The bias follows the same rule (stored ``bias_init / lr_mul``, used times ``lr_mul``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = (None, "linear", "lrelu", "relu")
LRELU_SLOPE = 0.2
# StyleGAN2's bias_act gains: relu and lrelu are followed by sqrt(2) to keep unit variance.
_ACT_GAIN = {None: 1.0, "linear": 1.0, "lrelu": math.sqrt(2.0), "relu": math.sqrt(2.0)}


def _check_activation(activation: str | None) -> str | None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; use one of {ACTIVATIONS}")
    return None if activation == "linear" else activation


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    activation: str | None = None,
    dim: int = 1,
    gain: float = 1.0,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add ``bias`` along ``dim``, apply the activation, scale, clamp (StyleGAN2's ``bias_act``).

    ``"lrelu"`` is leaky ReLU with slope 0.2 and ``"relu"`` plain ReLU, both followed by a
    multiplication by ``sqrt(2)`` (their default gain in the official code); ``gain`` multiplies
    on top of that (StyleGAN2's residual blocks pass ``sqrt(0.5)``). ``clamp`` limits the output
    to ``[-clamp, clamp]`` (StyleGAN2-ADA's ``conv_clamp`` for mixed precision).
    """
    activation = _check_activation(activation)
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + bias.to(x.dtype).reshape(shape)
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif activation == "relu":
        x = F.relu(x)
    total_gain = _ACT_GAIN[activation] * gain
    if total_gain != 1.0:
        x = x * total_gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class EqualizedLinear(nn.Module):
    """Fully connected layer with an equalized learning rate, optional bias and activation.

    ``weight`` ``[out, in]`` and ``bias`` ``[out]`` are plain parameters (same count as
    ``nn.Linear``); ``weight_gain = gain * lr_mul / sqrt(in)`` and ``bias_gain = lr_mul`` are
    applied in :meth:`forward`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        gain: float = 1.0,
        activation: str | None = None,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = _check_activation(activation)
        self.lr_mul = lr_mul
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul)) if bias else None
        self.weight_gain = gain * lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.weight_gain

    def effective_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else self.bias * self.bias_gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.effective_weight().to(x.dtype)
        b = self.effective_bias()
        if self.activation is None:
            return F.linear(x, w, None if b is None else b.to(x.dtype))
        return bias_act(F.linear(x, w), b, activation=self.activation, dim=x.ndim - 1)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, lr_mul={self.lr_mul}, activation={self.activation}"
        )


class EqualizedConv2d(nn.Module):
    """2-D convolution with an equalized learning rate; ``fan_in = in_channels * k * k``.

    ``padding`` defaults to ``kernel_size // 2`` ("same" for odd kernels at stride 1). For
    StyleGAN2's FIR-resampled convolutions combine it with :class:`~ganzoo.layers.resample.Blur`
    (downsampling) or use :class:`~ganzoo.layers.modconv.ModulatedConv2d` (upsampling).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
        bias_init: float = 0.0,
        gain: float = 1.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.activation = _check_activation(activation)
        self.lr_mul = lr_mul
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_channels,), bias_init / lr_mul)) if bias else None
        self.weight_gain = gain * lr_mul / math.sqrt(in_channels * kernel_size * kernel_size)
        self.bias_gain = lr_mul

    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.weight_gain

    def effective_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else self.bias * self.bias_gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.effective_weight().to(x.dtype)
        b = self.effective_bias()
        if self.activation is None:
            b = None if b is None else b.to(x.dtype)
            return F.conv2d(x, w, b, stride=self.stride, padding=self.padding)
        x = F.conv2d(x, w, stride=self.stride, padding=self.padding)
        return bias_act(x, b, activation=self.activation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}, "
            f"lr_mul={self.lr_mul}, activation={self.activation}"
        )
