"""Reconstruction metrics for vector-quantised autoencoders (VQ-GAN: Esser et al. 2021, "Taming
Transformers for High-Resolution Image Synthesis", Sec. 4.4; ViT-VQGAN: Yu et al. 2022, "Vector-quantized
Image Modeling with Improved VQGAN", Sec. 4.1 / Table 1: rFID, PSNR, SSIM, codebook usage).

* PSNR = 10 log10(R^2 / MSE) per image, R the data range (2 for [-1, 1]).
* SSIM (Wang et al. 2004, "Image Quality Assessment: From Error Visibility to Structural Similarity",
  Eq. 13 with the Sec. III-C Gaussian window: 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03), on images mapped
  from [-1, 1] to [0, 1], over the valid region (no padding), per channel, averaged.
* Codebook usage: fraction of codes used and perplexity exp(H(p)) of the code histogram.
* rFID: FID between features of the inputs and of their reconstructions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganzoo.errors import ConfigError
from ganzoo.metrics.fid import fid_from_features

__all__ = ["codebook_usage", "psnr", "reconstruction_fid", "ssim"]


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ConfigError(
            f"expected two [N, C, H, W] batches of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0, *, reduction: str = "mean") -> Tensor:
    """Peak signal-to-noise ratio in dB per image (``reduction="none"`` -> ``[N]``) or its mean.

    Identical images give ``inf``.
    """
    _check_pair(x, y)
    mse = (x.double() - y.double()).square().flatten(1).mean(dim=1)  # [N]
    values = 10.0 * torch.log10(data_range**2 / mse)  # inf where mse == 0
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    raise ConfigError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: Tensor,
    y: Tensor,
    *,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> Tensor:
    """Structural similarity (Wang et al. 2004) of ``[N, C, H, W]`` images in ``[-1, 1]``.

    Local statistics use a normalised Gaussian window (separable, valid region only); the SSIM map is
    averaged over pixels and channels. Identical images give 1.
    """
    _check_pair(x, y)
    if min(x.shape[2], x.shape[3]) < win_size:
        raise ConfigError(f"SSIM needs images at least {win_size}x{win_size}, got {tuple(x.shape[2:])}")
    a = (x.double() + 1.0) / 2.0  # data range 1
    b = (y.double() + 1.0) / 2.0
    n, c, _, _ = a.shape
    g = _gaussian_window(win_size, sigma, a.dtype, a.device)
    # Depthwise separable filter over the 5 statistics of all channels at once.
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1)  # [N, 5C, H, W]
    kh = g.view(1, 1, win_size, 1).expand(5 * c, 1, win_size, 1)
    kw = g.view(1, 1, 1, win_size).expand(5 * c, 1, 1, win_size)
    filt = F.conv2d(F.conv2d(stack, kh, groups=5 * c), kw, groups=5 * c)  # [N, 5C, H-10, W-10]
    mu_a, mu_b, e_aa, e_bb, e_ab = filt.split(c, dim=1)
    var_a = e_aa - mu_a**2
    var_b = e_bb - mu_b**2
    cov = e_ab - mu_a * mu_b
    c1, c2 = (k1 * 1.0) ** 2, (k2 * 1.0) ** 2
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    per_image = smap.flatten(1).mean(dim=1)  # [N]
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return per_image.mean()
    raise ConfigError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def codebook_usage(indices: Tensor | np.ndarray, codebook_size: int) -> dict[str, float]:
    """Usage statistics of code ``indices`` (any shape) from a codebook of ``codebook_size`` entries.

    Returns ``usage`` (fraction of codes used at least once), ``num_used``, ``perplexity``
    (``exp`` of the entropy of the code histogram; ``codebook_size`` for perfectly uniform use, 1 when
    a single code is used) and ``entropy_bits``.
    """
    idx = torch.as_tensor(indices).reshape(-1).long().cpu()
    if idx.numel() == 0:
        raise ConfigError("no code indices given")
    if int(idx.min()) < 0 or int(idx.max()) >= codebook_size:
        raise ConfigError(f"code indices must lie in [0, {codebook_size}), got [{int(idx.min())}, {int(idx.max())}]")
    counts = torch.bincount(idx, minlength=codebook_size).double()
    p = counts / counts.sum()
    nz = p[p > 0]
    entropy = float(-(nz * nz.log()).sum())
    used = int((counts > 0).sum())
    return {
        "usage": used / codebook_size,
        "num_used": float(used),
        "perplexity": math.exp(entropy),
        "entropy_bits": entropy / math.log(2),
    }


def reconstruction_fid(input_features: np.ndarray, recon_features: np.ndarray) -> float:
    """rFID: FID between Inception features of inputs ``[N, D]`` and of their reconstructions ``[N, D]``."""
    return fid_from_features(input_features, recon_features)
