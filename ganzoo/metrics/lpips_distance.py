"""LPIPS distance (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", Sec. 3 / Eq. 1) with pretrained backbones only.

The ``lpips`` package ships the calibrated linear heads but takes the VGG-16 / AlexNet backbone from
torchvision, which downloads ImageNet weights on first use. Here the backbone state dict is read
explicitly (``torch.load(weights_only=True)``) from an explicit file, the torch hub cache, or (if
allowed) torchvision's URL, so a missing backbone is an error and never a silently random network.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ganzoo.metrics.features import WeightsNotFoundError, hub_checkpoint_dir

__all__ = ["DistanceFn", "LPIPS_BACKBONES", "lpips_distance"]

DistanceFn = Callable[[Tensor, Tensor], Tensor]

# torchvision's ImageNet weights of the LPIPS trunks (file name carries a sha256 prefix).
LPIPS_BACKBONES = {
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
}


def _load_state(path: Path, net: str) -> dict:
    """A torchvision state dict, loaded without running code; anything else is a clear error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (pickles with code, corrupt files: all "not a weights file")
        raise WeightsNotFoundError(
            f"{str(path)!r} is not a torchvision {net} weights file that can be loaded safely "
            f"({type(exc).__name__}); pass torchvision's {LPIPS_BACKBONES[net].rsplit('/', 1)[1]}"
        ) from exc
    if not isinstance(state, dict):
        raise WeightsNotFoundError(f"{str(path)!r} holds a {type(state).__name__}, not a torchvision state dict")
    return state


def _backbone_state(net: str, weights: str | os.PathLike[str] | None, allow_download: bool) -> dict:
    url = LPIPS_BACKBONES[net]
    filename = url.rsplit("/", 1)[1]
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"LPIPS backbone weights={weights} is not a file")
        return _load_state(path, net)
    cached = hub_checkpoint_dir() / filename
    if cached.is_file():
        return _load_state(cached, net)
    if allow_download:
        try:
            return torch.hub.load_state_dict_from_url(
                url, model_dir=str(hub_checkpoint_dir()), map_location="cpu", check_hash=True, weights_only=True
            )
        except Exception as exc:  # offline
            reason = f"download failed ({type(exc).__name__}: {exc})"
    else:
        reason = "download disabled (allow_download=False)"
    raise WeightsNotFoundError(
        f"LPIPS ({net}) needs torchvision's ImageNet backbone {filename}, which was not found: {reason}.\n"
        "Provide it in any one of these ways:\n"
        f"  1. lpips_distance(net={net!r}, weights='/path/to/{filename}');\n"
        f"  2. place {filename} in the torch hub cache: {hub_checkpoint_dir()}/;\n"
        f"  3. allow the download (needs internet) from {url}.\n"
        "(The lpips package ships only the linear heads; a random backbone is never used.)"
    )


def lpips_distance(
    net: str = "vgg",
    weights: str | os.PathLike[str] | None = None,
    *,
    device: torch.device | str | None = None,
    allow_download: bool = True,
    random_backbone: bool = False,
) -> DistanceFn:
    """Build ``distance_fn(img0, img1) -> [N]``: LPIPS v0.1 between images in ``[-1, 1]``.

    Gray images are replicated to RGB. ``net`` is ``"vgg"`` (used by PPL, StyleGAN Sec. 4.2) or
    ``"alex"`` (the LPIPS default, common for diversity). ``weights`` is a torchvision state dict of the
    backbone (``vgg16-397923af.pth`` / ``alexnet-owt-7be5be79.pth``). ``random_backbone=True`` keeps a
    randomly initialised trunk (tests only: chosen explicitly, never as a fallback).

    Raises:
        WeightsNotFoundError: no backbone weights; the message names each way to provide them.
    """
    if net not in LPIPS_BACKBONES:
        from ganzoo.errors import ConfigError

        raise ConfigError(f"unknown LPIPS net {net!r}; choose one of {sorted(LPIPS_BACKBONES)}")
    state = None if random_backbone else _backbone_state(net, weights, allow_download)

    import lpips  # deferred: pulls torchvision models

    # pnet_rand=True builds the trunk without torchvision downloading anything; the real weights are
    # copied in right below and every trunk tensor is checked to have been filled.
    model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    trunk = model.net
    trunk_state = trunk.state_dict()
    # torchvision names are features.<i>.<param>; lpips splits the same layers into slice<k>.<i>.<param>.
    by_index = {}
    for key in trunk_state:
        _slice, idx, param = key.split(".")
        by_index[f"features.{idx}.{param}"] = key
    if state is not None:
        missing = [k for k in by_index if k not in state]
        if missing:
            raise WeightsNotFoundError(
                f"the LPIPS backbone file does not look like torchvision's {net} weights (missing {missing[:3]})"
            )
        trunk.load_state_dict({by_index[k]: state[k] for k in by_index}, strict=True)
    model.eval().requires_grad_(False)
    if device is not None:
        model = model.to(device)

    def distance_fn(img0: Tensor, img1: Tensor) -> Tensor:
        """LPIPS between two ``[N, C, H, W]`` batches in ``[-1, 1]`` -> ``[N]``."""
        param = next(model.parameters())
        a = img0.to(param.device, torch.float32)
        b = img1.to(param.device, torch.float32)
        if a.shape[1] == 1:
            a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)  # [N, 3, H, W]
        return model(a, b).reshape(a.shape[0])

    distance_fn.model = model  # type: ignore[attr-defined]
    return distance_fn
