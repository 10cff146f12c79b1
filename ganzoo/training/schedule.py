"""Schedules: functions of images seen. Progressive growing lives here (ProGAN Sec. 3, App. A.1).

The timeline starts at ``4 x 4`` (level 0, stabilise only); every later level first fades in
(alpha 0 -> 1 over ``fade_kimg``) and then stabilises (alpha 1 for ``stab_kimg``). After the last
level the state stays at full resolution, alpha 1. The state is a pure function of images
seen, so resuming needs no schedule state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..bundle import Schedule, is_power_of_two
from ..errors import ConfigError


class ProgressiveSchedule(Schedule):
    """Resolution level, fade-in alpha and per-resolution batch size for growing models.

    Args:
        resolution: final resolution (power of two >= 8).
        start_resolution: first resolution (4 in the papers).
        fade_kimg, stab_kimg: thousands of images per transition / stabilisation phase
            (ProGAN uses 800 each; scale them down for small runs).
        batch_sizes: ``{resolution: batch size}``; resolutions not listed use ``default_batch``
            (None = the trainer's ``trainer.batch_size``).
    """

    def __init__(
        self,
        *,
        resolution: int,
        start_resolution: int = 4,
        fade_kimg: float = 800.0,
        stab_kimg: float = 800.0,
        batch_sizes: Mapping[int | str, int] | None = None,
        default_batch: int | None = None,
    ):
        for name, r in (("resolution", resolution), ("start_resolution", start_resolution)):
            if not is_power_of_two(int(r)) or int(r) < 4:
                raise ConfigError(f"progressive {name}={r} must be a power of two >= 4")
        if start_resolution > resolution:
            raise ConfigError(f"start_resolution={start_resolution} exceeds resolution={resolution}")
        if fade_kimg < 0 or stab_kimg <= 0:
            raise ConfigError("fade_kimg must be >= 0 and stab_kimg > 0")
        self.resolution = int(resolution)
        self.start_level = int(math.log2(start_resolution)) - 2
        self.max_level = int(math.log2(resolution)) - 2
        self.fade_kimg, self.stab_kimg = float(fade_kimg), float(stab_kimg)
        self.batch_sizes = {int(k): int(v) for k, v in (batch_sizes or {}).items()}
        self.default_batch = default_batch

    def level_at(self, images_seen: int) -> tuple[int, float]:
        """``(level, alpha)``: level 0 is ``4 x 4``; alpha < 1 while a new level fades in."""
        t = images_seen / 1000.0 - self.stab_kimg
        if t < 0:
            return self.start_level, 1.0
        for level in range(self.start_level + 1, self.max_level + 1):
            if t < self.fade_kimg:
                return level, t / self.fade_kimg
            t -= self.fade_kimg
            if t < self.stab_kimg:
                return level, 1.0
            t -= self.stab_kimg
        return self.max_level, 1.0

    def total_kimg(self) -> float:
        """Images (in thousands) until the last level has stabilised once."""
        levels = self.max_level - self.start_level
        return self.stab_kimg + levels * (self.fade_kimg + self.stab_kimg)

    def state(self, images_seen: int) -> dict[str, Any]:
        level, alpha = self.level_at(images_seen)
        res = 4 * 2**level
        state: dict[str, Any] = {
            "level": level,
            "alpha": alpha,
            "resolution": res,
            "log": {"resolution": res, "alpha": alpha, "level": level},
        }
        bs = self.batch_sizes.get(res, self.default_batch)
        if bs is not None:
            state["batch_size"] = bs
        return state


def progressive_reals(img: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
    """Real images as D sees them while growing (ProGAN official ``process_reals``).

    Downscale to ``resolution`` by box filtering; during a fade-in blend with the image from the
    previous level, upscaled by nearest neighbour, so reals fade in exactly like the generator's
    output: ``lerp(up(down(x)), x, alpha)``.
    """
    if img.shape[-1] != resolution:
        img = F.adaptive_avg_pool2d(img, resolution) if img.shape[-1] > resolution else img
    if alpha < 1.0 and resolution > 4:
        low = F.interpolate(F.avg_pool2d(img, 2), scale_factor=2, mode="nearest")
        img = torch.lerp(low, img, alpha)
    return img
