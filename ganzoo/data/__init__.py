"""Data: embedded datasets, image folders, torchvision datasets, and a resumable batch stream.

``build_dataset(cfg, resolution=..., channels=...)`` reads the Hydra ``data:`` group::

    name: fashion        # fashion | emoji (embedded); cifar10 | mnist | fashion_mnist | celeba | lsun; folder
    root: null           # folder: required; torchvision sets: default ~/.cache/ganzoo/datasets/<name>
    split: train         # train | test (celeba also valid | all; lsun train | valid); folder: ignored
    fit: crop            # crop | pad | stretch (see ganzoo.data.transforms)
    pad_color: border    # fit=pad fill: border (the image's own) | white | black | 0-255 | [r, g, b]
    flip: false          # random horizontal flips; pass `flip=dataset.flip` to build_loader
    max_images: null     # keep only the first N images in dataset order
    download: true       # torchvision sets only
    lsun_classes: null   # lsun only: categories, e.g. [church_outdoor]
    verify: true         # folder only: decode every file at start and skip unreadable ones
    resize_on_device: auto  # auto | true | false: fit whole batches on the training device (auto: on CUDA)

``build_loader(dataset, batch_size=..., seed=..., start=images_seen, ...)`` gives the batches.
``native_geometry(cfg)`` peeks at the data's own square side and channels without building it
(what ``model.resolution: auto`` / ``model.img_channels: auto`` follow).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ganzoo.data.base import ImageDataset, check_geometry, check_max_images
from ganzoo.data.device_resize import BatchFit, NativeView, device_batch_fit
from ganzoo.data.embedded import EMBEDDED_FILES, EmbeddedDataset, embedded_native
from ganzoo.data.folder import IMAGE_EXTENSIONS, ImageFolderDataset, scan_images
from ganzoo.data.geometry import TORCHVISION_NATIVE, header_geometry, sample_files, square_side
from ganzoo.data.loader import StreamLoader, build_loader
from ganzoo.data.torchvision_sets import TORCHVISION_SETS, TorchvisionDataset, default_root
from ganzoo.data.transforms import FIT_MODES
from ganzoo.errors import ConfigError

DATASET_NAMES = (*EMBEDDED_FILES, *TORCHVISION_SETS, "folder")
DATA_KEYS = ("name", "root", "split", "fit", "pad_color", "flip", "max_images", "download", "lsun_classes", "verify",
             "resize_on_device")
DEFAULTS: dict[str, Any] = {
    "root": None,
    "split": "train",
    "fit": "crop",
    "pad_color": "border",
    "flip": False,
    "max_images": None,
    "download": True,
    "lsun_classes": None,
    "verify": True,
    "resize_on_device": "auto",
}

__all__ = [
    "DATASET_NAMES",
    "BatchFit",
    "NativeView",
    "device_batch_fit",
    "FIT_MODES",
    "IMAGE_EXTENSIONS",
    "EmbeddedDataset",
    "ImageDataset",
    "ImageFolderDataset",
    "StreamLoader",
    "TorchvisionDataset",
    "build_dataset",
    "build_loader",
    "default_root",
    "native_geometry",
]


def _plain(cfg: Mapping) -> dict[str, Any]:
    """A plain dict from a DictConfig or mapping (lists stay lists)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def _unknown_name(name: Any) -> ConfigError:
    close = difflib.get_close_matches(str(name).lower(), DATASET_NAMES, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return ConfigError(
        f"unknown dataset data.name={name!r}.{hint} Known datasets: {', '.join(DATASET_NAMES)}."
    )


def build_dataset(cfg: Mapping, *, resolution: int, channels: int) -> ImageDataset:
    """Build the dataset described by the ``data:`` config group (see the module docstring)."""
    opts = _plain(cfg)
    unknown = sorted(set(opts) - set(DATA_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) in data: {', '.join(unknown)}. Allowed keys: {', '.join(DATA_KEYS)}."
        )
    if "name" not in opts or opts["name"] is None:
        raise ConfigError(f"data.name is missing; choose one of {', '.join(DATASET_NAMES)}.")
    opts = {**DEFAULTS, **opts}
    name = opts["name"]
    if name not in DATASET_NAMES:
        raise _unknown_name(name)
    check_geometry(resolution, channels)
    check_max_images(opts["max_images"])
    if opts["fit"] not in FIT_MODES:
        raise ConfigError(f"data.fit={opts['fit']!r} is not known; use one of {', '.join(FIT_MODES)}.")
    common = dict(
        resolution=resolution,
        channels=channels,
        fit=opts["fit"],
        pad_color=opts["pad_color"],
        flip=bool(opts["flip"]),
        max_images=opts["max_images"],
    )
    if name in EMBEDDED_FILES:
        return EmbeddedDataset(name, split=opts["split"], **common)
    if name == "folder":
        if opts["root"] is None:
            raise ConfigError("data=folder needs a directory: set data.root=/path/to/images.")
        return ImageFolderDataset(opts["root"], verify=bool(opts["verify"]), **common)
    return TorchvisionDataset(
        name,
        root=opts["root"],
        split=opts["split"],
        download=bool(opts["download"]),
        lsun_classes=opts["lsun_classes"],
        **common,
    )


def native_geometry(cfg: Mapping) -> tuple[int, int]:
    """``(square side, channels)`` of the images the ``data:`` config describes, before any resizing.

    Cheap: array shapes for the embedded sets, published sizes for the torchvision sets (no download),
    the headers of a few files for a folder. The side is the one ``data.fit`` keeps (crop: the shorter
    side; pad, stretch: the longer one).
    """
    opts = {**DEFAULTS, **_plain(cfg)}
    name, fit = opts.get("name"), opts["fit"]
    if name not in DATASET_NAMES:
        raise _unknown_name(name)
    if fit not in FIT_MODES:
        raise ConfigError(f"data.fit={fit!r} is not known; use one of {', '.join(FIT_MODES)}.")
    if name in EMBEDDED_FILES:
        width, height, channels = embedded_native(name)
        return square_side(width, height, fit), channels
    if name in TORCHVISION_NATIVE:
        width, height, channels = TORCHVISION_NATIVE[name]
        return square_side(width, height, fit), channels
    if opts["root"] is None:
        raise ConfigError("data=folder needs a directory: set data.root=/path/to/images.")
    root = Path(opts["root"]).expanduser()
    files = scan_images(root) if root.is_dir() else []
    found = header_geometry(sample_files(files[: check_max_images(opts["max_images"])]), fit)
    if found is not None:
        return found
    # Nothing readable in the sample: building the dataset gives the precise error (or finds good files).
    dataset = build_dataset(cfg, resolution=8, channels=3)
    return dataset.native_resolution, dataset.native_channels
