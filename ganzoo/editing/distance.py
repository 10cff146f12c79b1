"""The image distance a projection minimises: LPIPS-VGG16, or a stated pixel fallback.

StyleGAN2-ADA's projector (Karras et al. 2020, ``projector.py``) minimises the LPIPS distance of
VGG16 features (Zhang et al. 2018, Eq. 1) between the target and the synthesised image, after
area-downsampling images above 256 px to 256. ``lpips`` here is the same distance with the calibrated
LPIPS v0.1 heads, through :func:`ganzoo.metrics.lpips_distance` (weights found the way ``eval`` finds
them: an explicit file, the torch hub cache, or a download unless forbidden).

Fallback ``ssim-l1`` when the VGG16 backbone is not available offline, never chosen silently::

    d(x, y) = (1 - SSIM(x, y)) + 1/3 * sum_{s=0..2} mean |pool_{2^s}(x) - pool_{2^s}(y)|

Why this one: it costs a few small convolutions per step, next to the generator's own passes (the
Inception network ``eval`` has would add a 299x299 forward and backward pass to every step of a 32x32
projection), and it recovers images (docs/editing.md measures it). SSIM (Wang et al. 2004) matches local
structure and contrast, which a plain L2 trades for blur; the L1 pyramid (SSIM mixed with L1 as in Zhao
et al. 2017, "Loss Functions for Image Restoration with Neural Networks", Sec. 3) pins brightness and the
coarse layout that SSIM's normalisation ignores. It is a pixel distance, not a perceptual one: it does not
weigh differences the way people see them, as LPIPS was calibrated to.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..metrics.reconstruction import ssim

DISTANCES = ("auto", "lpips", "ssim-l1")
LPIPS_MAX_SIZE = 256  # StyleGAN2-ADA projector.py: larger images are area-downsampled to 256x256 first


@dataclass
class Distance:
    """``fn(a, b) -> [N]`` on ``[N, C, H, W]`` images in ``[-1, 1]``; ``name`` and why it was chosen."""

    fn: Callable[[Tensor, Tensor], Tensor]
    name: str
    reason: str

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        return self.fn(a, b)


def ssim_l1_distance(a: Tensor, b: Tensor) -> Tensor:
    """The fallback distance of the module docstring, per image ``[N]`` (differentiable)."""
    side = min(a.shape[-2:])
    win = min(11, side if side % 2 else side - 1)
    d_ssim = 1.0 - ssim(a, b, win_size=win, reduction="none").to(a.dtype)  # [N]
    l1 = a.new_zeros(a.shape[0])
    x, y = a, b
    for _ in range(3):
        l1 = l1 + (x - y).abs().flatten(1).mean(1)
        if min(x.shape[-2:]) < 2:
            break
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return d_ssim + l1 / 3.0


def _lpips(weights: str | os.PathLike[str] | None, allow_download: bool, device: torch.device) -> Distance:
    from ..metrics import lpips_distance

    fn = lpips_distance("vgg", weights, device=device, allow_download=allow_download)

    def dist(a: Tensor, b: Tensor) -> Tensor:
        if a.shape[-1] > LPIPS_MAX_SIZE:
            a = F.interpolate(a, size=(LPIPS_MAX_SIZE, LPIPS_MAX_SIZE), mode="area")
            b = F.interpolate(b, size=(LPIPS_MAX_SIZE, LPIPS_MAX_SIZE), mode="area")
        return fn(a, b)

    return Distance(dist, "lpips", "LPIPS-VGG16 (the StyleGAN2-ADA projector's distance)")


def build_distance(choice: str = "auto", *, weights: str | os.PathLike[str] | None = None,
                   allow_download: bool = True, device: torch.device | str = "cpu") -> Distance:
    """The distance for ``--distance choice``.

    ``lpips`` fails (``ConfigError`` naming the ways to provide the weights) without the backbone; ``auto``
    takes LPIPS when it can and otherwise ``ssim-l1``, with the reason in ``Distance.reason``.
    """
    from ..metrics import WeightsNotFoundError

    if choice not in DISTANCES:
        raise ConfigError(f"--distance {choice!r} is not known; use one of {', '.join(DISTANCES)}")
    device = torch.device(device)
    if choice == "ssim-l1":
        return Distance(ssim_l1_distance, "ssim-l1", "chosen with --distance ssim-l1")
    try:
        return _lpips(weights, allow_download, device)
    except WeightsNotFoundError as err:
        if choice == "lpips":
            raise ConfigError(f"--distance lpips: {err}") from None
        why = str(err).split("\n")[0]
        return Distance(ssim_l1_distance, "ssim-l1",
                        f"fallback: {why} (pass --lpips-weights FILE for LPIPS, or --distance ssim-l1 to silence this)")
