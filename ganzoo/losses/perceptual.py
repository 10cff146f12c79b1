"""Perceptual (LPIPS) loss for autoencoder training (VQ-GAN Sec. 3.1; taming's ``LPIPS``).

The network is the LPIPS v0.1 metric of ``ganzoo.metrics.lpips_distance`` (the same calibrated linear
heads on a frozen VGG-16 trunk as taming's ``LPIPS``), so the weights are found the same way: an explicit
file, the torch hub cache, or torchvision's download. :class:`LazyPerceptual` defers that search to
training start (``objective.to(device)`` in the trainer), so a bundle still builds offline (parameter
counts, ``ganzoo list``); a missing trunk is then a :class:`ConfigError` that names every way out, never a
silently random network.
"""

from __future__ import annotations

import os

import torch

from ..errors import ConfigError
from ..metrics.features import WeightsNotFoundError, hub_checkpoint_dir
from ..metrics.lpips_distance import LPIPS_BACKBONES, DistanceFn, lpips_distance

__all__ = ["perceptual_loss", "move_perceptual", "LazyPerceptual"]


def perceptual_loss(
    net: str = "vgg",
    weights: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool = True,
    random_backbone: bool = False,
) -> DistanceFn:
    """``distance(x, x_rec) -> [N]``, differentiable in both images, the network itself frozen.

    ``random_backbone=True`` is for tests only (an explicit choice; never a fallback).
    """
    try:
        return lpips_distance(net, weights, allow_download=allow_download, random_backbone=random_backbone)
    except WeightsNotFoundError as err:
        filename = LPIPS_BACKBONES[net].rsplit("/", 1)[1]
        raise ConfigError(
            f"the perceptual (LPIPS-{net}) loss needs torchvision's ImageNet backbone {filename}, which is not "
            f"available here.\n{err}\nWays out, any one of:\n"
            f"  1. copy {filename} into the torch hub cache: {hub_checkpoint_dir()}/ ;\n"
            f"  2. point to it: model.loss.lpips_weights=/path/to/{filename} ;\n"
            "  3. run once on a machine with internet access (model.loss.lpips_download=true, the default) and "
            "copy the cached file here;\n"
            "  4. train without the perceptual term: model.loss.perceptual_weight=0 ."
        ) from err


class LazyPerceptual:
    """:func:`perceptual_loss` built on first use (or by :meth:`to`): ``distance(x, x_rec) -> [N]``."""

    def __init__(self, net: str = "vgg", weights: str | os.PathLike[str] | None = None, *,
                 allow_download: bool = True, random_backbone: bool = False):
        self.net, self.weights = net, weights
        self.allow_download, self.random_backbone = allow_download, random_backbone
        self._fn: DistanceFn | None = None
        self._device: torch.device | None = None

    def load(self) -> DistanceFn:
        if self._fn is None:
            self._fn = perceptual_loss(self.net, self.weights, allow_download=self.allow_download,
                                       random_backbone=self.random_backbone)
            if self._device is not None:
                self._fn.model.to(self._device)  # type: ignore[attr-defined]
        return self._fn

    def to(self, device: torch.device) -> LazyPerceptual:
        self._device = torch.device(device)
        self.load().model.to(self._device)  # type: ignore[attr-defined]
        return self

    @property
    def model(self) -> torch.nn.Module:
        return self.load().model  # type: ignore[attr-defined]

    def __call__(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        return self.load()(img0, img1)


def move_perceptual(distance: DistanceFn | None, device: torch.device) -> None:
    """Move the frozen LPIPS network of ``distance`` (if any) to ``device``; loads a lazy one."""
    if isinstance(distance, LazyPerceptual):
        distance.to(device)
        return
    model = getattr(distance, "model", None)
    if model is not None:
        model.to(device)
