"""Shared, paper-agnostic building blocks, one concept per file."""

from .attention import SelfAttention2d
from .equalized import ACTIVATIONS, EqualizedConv2d, EqualizedLinear, bias_act
from .mbstd import MinibatchStdDev
from .modconv import ModulatedConv2d
from .noise import NOISE_MODES, NoiseInjection
from .norms import AdaIN, ConditionalBatchNorm2d, PixelNorm
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
from .resblocks import BatchNorm2dIgnoringY, DBlock, GBlock, ProjectionHead, init_weights
from .spectral import SNConv2d, SNEmbedding, SNLinear, sn_conv2d, sn_embedding, sn_linear

__all__ = [
    "ACTIVATIONS",
    "NOISE_MODES",
    "AdaIN",
    "BatchNorm2dIgnoringY",
    "Blur",
    "ConditionalBatchNorm2d",
    "DBlock",
    "Downsample2d",
    "EqualizedConv2d",
    "EqualizedLinear",
    "GBlock",
    "MinibatchStdDev",
    "ModulatedConv2d",
    "NoiseInjection",
    "PixelNorm",
    "ProjectionHead",
    "SNConv2d",
    "SNEmbedding",
    "SNLinear",
    "SelfAttention2d",
    "Upsample2d",
    "avg_downsample",
    "bias_act",
    "downsample2d_padding",
    "init_weights",
    "nearest_upsample",
    "parse_padding",
    "setup_filter",
    "sn_conv2d",
    "sn_embedding",
    "sn_linear",
    "upfirdn2d",
    "upsample2d_padding",
]
