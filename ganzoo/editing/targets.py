"""The images a projection aims at: image files checked against the model's geometry, or dataset images.

Every check runs before anything is written: a missing or unreadable file, or one whose size or channels
differ from the model's (unless ``--resize``), is a :class:`ConfigError` that says what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..metrics.features import file_sha256


@dataclass
class Targets:
    """``images`` ``[N, C, H, W]`` in ``[-1, 1]``; ``tag`` names the output folder; ``sources`` one dict per image."""

    images: torch.Tensor
    tag: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    labels: torch.Tensor | None = None  # [N] dataset labels (--from-data), -1 where unlabelled


def check_files(paths: Sequence[str]) -> list[Path]:
    """The image files, each of which must exist (checked before the model is even loaded)."""
    out = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise ConfigError(f"image {p!r} does not exist (or is not a file); pass PNG or JPEG files")
        out.append(path)
    return out


def read_targets(paths: Sequence[Path], *, resolution: int, channels: int, resize: bool) -> Targets:
    """Read image files at the model's ``resolution`` and ``channels``; ``resize`` converts and centre-crops."""
    import numpy as np

    from ..data.folder import read_image
    from ..data.geometry import mode_channels
    from ..data.transforms import prepare_image, to_tensor

    geometry = f"{resolution}x{resolution} {'RGB' if channels == 3 else 'grey'}"
    images, sources = [], []
    for path in paths:
        try:
            img = read_image(path)
        except Exception as err:  # noqa: BLE001  (PIL raises many kinds for a file that is no image)
            raise ConfigError(f"image {str(path)!r} cannot be read as an image ({type(err).__name__}); pass PNG or "
                              "JPEG files") from None
        got_ch = mode_channels(img.mode)
        if not resize and (img.size != (resolution, resolution) or got_ch != channels):
            got = f"{img.size[0]}x{img.size[1]} {'RGB' if got_ch == 3 else 'grey'}"
            raise ConfigError(f"image {str(path)!r} is {got}; this model takes {geometry} images. Pass --resize to "
                              "convert its channels and centre-crop and resize it")
        arr = prepare_image(img, resolution=resolution, channels=channels, fit="crop")  # [H, W, C] uint8
        images.append(to_tensor(np.ascontiguousarray(arr)))
        sources.append({"path": str(path.resolve()), "sha256": file_sha256(path)})
    stem = paths[0].stem if len(paths) == 1 else f"{paths[0].stem}_and{len(paths) - 1}"
    return Targets(torch.stack(images), stem, sources)


def data_targets(data_cfg: Mapping[str, Any], split: str, n: int, seed: int, *, resolution: int,
                 channels: int) -> Targets:
    """``n`` images of the run's dataset ``split``, chosen by a seeded permutation: the same images as
    ``ganzoo reconstruct --split SPLIT --n N --seed S`` (``sampling.reconstruct.dataset_images``), with their
    dataset indices and labels (``Targets.labels``, -1 for unlabelled data)."""
    from ..sampling.reconstruct import dataset_items

    cfg = {**data_cfg, "split": split}
    idx, images, labels = dataset_items(cfg, n, seed=seed, resolution=resolution, channels=channels)
    sources = [{"dataset": str(cfg.get("name")), "split": split, "index": i, "label": int(label)}
               for i, label in zip(idx, labels.tolist())]
    return Targets(images, f"{cfg.get('name')}_{split}_n{images.shape[0]}_seed{seed}", sources, labels)
