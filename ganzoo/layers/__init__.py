"""Shared, paper-agnostic building blocks, one concept per file."""

from .attention import SelfAttention2d
from .equalized import ACTIVATIONS, EqualizedConv2d, EqualizedLinear, bias_act
from .mbstd import MinibatchStdDev
from .modconv import ModulatedConv2d
from .noise import NOISE_MODES, NoiseInjection
from .norms import AdaIN, ConditionalBatchNorm2d, PixelNorm, maybe_spectral_norm
from .resample import (
    Blur,
    Downsample2d,
    Upsample2d,
    avg_downsample,
    downsample2d_padding,
    nearest_upsample,
    parse_padding,
    setup_filter,
    upfirdn2d,
    upsample2d_padding,
)

__all__ = [
    "ACTIVATIONS",
    "NOISE_MODES",
    "AdaIN",
    "Blur",
    "ConditionalBatchNorm2d",
    "Downsample2d",
    "EqualizedConv2d",
    "EqualizedLinear",
    "MinibatchStdDev",
    "ModulatedConv2d",
    "NoiseInjection",
    "PixelNorm",
    "SelfAttention2d",
    "Upsample2d",
    "avg_downsample",
    "bias_act",
    "downsample2d_padding",
    "maybe_spectral_norm",
    "nearest_upsample",
    "parse_padding",
    "setup_filter",
    "upfirdn2d",
    "upsample2d_padding",
]
