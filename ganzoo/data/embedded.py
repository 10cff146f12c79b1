"""Datasets shipped inside the package: they work offline, with no download.

- ``fashion``: a class-balanced subset of the Fashion-MNIST training set (28x28 grey, 10 classes), and with
  ``data.split=test`` 1,000 images of its test set (100 per class) that no model here trains on.
- ``emoji``: the Noto Color Emoji glyphs rendered to 32x32 RGB on white (9 coarse classes).

``scripts/build_embedded_data.py`` rebuilds both files; ``embedded/NOTICE.md`` gives provenance and
licences. Images are prepared once at construction (when the result fits in ``CACHE_BYTES``), so
``num_workers=0`` is the fastest choice for these datasets.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np
import torch
from PIL import Image

from ganzoo.data.base import ImageDataset, Key, Sample
from ganzoo.data.transforms import to_tensor
from ganzoo.errors import ConfigError, DataError

EMBEDDED_FILES = {"fashion": "fashion_mnist.npz", "emoji": "emoji32.npz"}
# Splits other than train: (dataset, split) -> file.
EMBEDDED_SPLITS = {("fashion", "test"): "fashion_mnist_test.npz"}
CACHE_BYTES = 512 * 2**20  # prepared images above this size are prepared per access instead


def embedded_splits(name: str) -> list[str]:
    """The splits embedded set ``name`` has (always ``train``)."""
    return ["train", *(s for n, s in EMBEDDED_SPLITS if n == name)]


@functools.lru_cache(maxsize=len(EMBEDDED_FILES) + len(EMBEDDED_SPLITS))
def load_embedded(name: str, split: str = "train") -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read ``(images uint8 [N, H, W] or [N, H, W, 3], labels int64 [N], class_names)`` for ``name``."""
    if name not in EMBEDDED_FILES:
        raise ConfigError(f"no embedded dataset {name!r}; the embedded ones are {', '.join(EMBEDDED_FILES)}.")
    if split != "train" and (name, split) not in EMBEDDED_SPLITS:
        raise ConfigError(f"the embedded dataset {name!r} has no split {split!r}; it has "
                          f"{', '.join(embedded_splits(name))}: set data.split to one of them.")
    filename = EMBEDDED_FILES[name] if split == "train" else EMBEDDED_SPLITS[(name, split)]
    ref = resources.files("ganzoo.data") / "embedded" / filename
    try:
        with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"].astype(np.int64)
            names = tuple(str(s) for s in z["class_names"])
    except (OSError, KeyError, ValueError) as err:
        raise DataError(
            f"the embedded dataset file {filename} could not be read ({err}). Reinstall ganzoo, "
            "or rebuild it with `python scripts/build_embedded_data.py` (needs the Debian packages "
            "dataset-fashion-mnist and fonts-noto-color-emoji)."
        ) from err
    if len(images) == 0 or len(images) != len(labels):
        raise DataError(
            f"the embedded dataset file {filename} is empty or inconsistent; rebuild it."
        )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels, names


def embedded_native(name: str) -> tuple[int, int, int]:
    """``(width, height, channels)`` of embedded set ``name``, from its array shape."""
    images = load_embedded(name)[0]  # [N, H, W] grey or [N, H, W, 3]
    return images.shape[2], images.shape[1], 3 if images.ndim == 4 else 1


class EmbeddedDataset(ImageDataset):
    """An in-memory dataset read from ``ganzoo/data/embedded/<file>.npz``."""

    def __init__(
        self,
        name: str,
        *,
        resolution: int,
        channels: int,
        fit: str = "crop",
        pad_color: Any = "border",
        flip: bool = False,
        max_images: int | None = None,
        split: str = "train",
    ) -> None:
        images, labels, class_names = load_embedded(name, split)
        super().__init__(
            name=name,
            resolution=resolution,
            channels=channels,
            fit=fit,
            pad_color=pad_color,
            flip=flip,
            max_images=max_images,
            class_names=class_names,
        )
        self._images, self._labels = images, labels
        self._cache: np.ndarray | None = None  # uint8 [N, R, R, C]
        self._native_cache: np.ndarray | None = None  # uint8 [N, h, w, C], built by native_items
        if len(self) * resolution * resolution * channels <= CACHE_BYTES:
            self._cache = np.stack([self._array(i) for i in range(len(self))])

    uniform_native = True  # one array: every image has the same size

    def _source_len(self) -> int:
        return len(self._images)

    def native_items(self, keys: Sequence[Key]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Native images from a cache built on first use (``uint8 [N, h, w, C]``, a few MB)."""
        if self._native_cache is None:
            self._native_cache = np.stack([self._native_fetch(i)[0] for i in range(len(self))])
        index = np.array([self._index(k)[0] for k in keys], dtype=np.int64)
        flip = np.array([self._index(k)[1] for k in keys], dtype=bool)
        batch = self._native_cache[index]  # [B, h, w, C], a copy
        batch[flip] = batch[flip, :, ::-1]
        imgs = torch.from_numpy(np.ascontiguousarray(np.moveaxis(batch, -1, 1)))  # [B, C, h, w]
        labels = torch.from_numpy(self._labels[index])
        return list(zip(imgs.unbind(0), labels.unbind(0)))

    def _native(self) -> tuple[int, int, int]:
        return embedded_native(self.name)

    def _load(self, index: int) -> Image.Image:
        return Image.fromarray(self._images[index])

    def _label(self, index: int) -> int:
        return int(self._labels[index])

    def _array(self, index: int) -> np.ndarray:
        return super()._array(index) if self._cache is None else self._cache[index]

    def __getitems__(self, keys: Sequence[Key]) -> list[Sample]:
        if self._cache is None:
            return super().__getitems__(keys)
        pairs = [self._index(k) for k in keys]
        index = np.array([i for i, _ in pairs], dtype=np.int64)
        flip = np.array([f for _, f in pairs], dtype=bool)
        batch = self._cache[index]  # [B, R, R, C], a copy
        batch[flip] = batch[flip, :, ::-1]
        imgs = to_tensor(batch)  # [B, C, R, R]
        labels = torch.from_numpy(self._labels[index])  # [B]
        return list(zip(imgs.unbind(0), labels.unbind(0)))
