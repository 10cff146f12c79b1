"""``ImageDataset``: the one dataset interface the trainer sees."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ganzoo.data.geometry import mode_channels, square_side
from ganzoo.data.transforms import check_fit, check_pad_color, prepare_image, prepare_native, to_tensor
from ganzoo.errors import ConfigError

Key = int | tuple[int, bool]
Sample = tuple[torch.Tensor, torch.Tensor]


def check_geometry(resolution: int, channels: int) -> None:
    """Raise ConfigError unless ``resolution >= 4`` and ``channels`` is 1 or 3."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 4:
        raise ConfigError(f"resolution={resolution!r} is not supported; use an integer >= 4 (e.g. 32, 64).")
    if channels not in (1, 3):
        raise ConfigError(f"channels={channels!r} is not supported; use 1 (grey) or 3 (RGB).")


def check_max_images(max_images: int | None) -> int | None:
    """Return ``max_images`` if it is None or a positive integer, else raise ConfigError."""
    if max_images is None:
        return None
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ConfigError(
            f"data.max_images={max_images!r} is not valid; use null (all images) or an integer >= 1."
        )
    return max_images


class ImageDataset(Dataset):
    """A map-style dataset of ``(img, label)`` pairs.

    ``img`` is ``float32 [channels, resolution, resolution]`` in ``[-1, 1]``; ``label`` is an ``int64``
    scalar: the class index, or -1 when the dataset has no labels (``num_classes == 0``).

    Keys are an index, or ``(index, flip)`` where ``flip`` mirrors the image horizontally; the loader
    (``ganzoo.data.loader``) sends the second form so flips stay a pure function of the stream position.
    ``max_images`` keeps only the first N images in dataset order.

    Subclasses implement ``_source_len``, ``_load`` and ``_label``; they may override ``_array`` to
    serve prepared images from a cache.
    """

    def __init__(
        self,
        *,
        name: str,
        resolution: int,
        channels: int,
        fit: str = "crop",
        flip: bool = False,
        max_images: int | None = None,
        class_names: Sequence[str] | None = None,
        pad_color: Any = "border",
    ) -> None:
        check_geometry(resolution, channels)
        self.name = name
        self.resolution = resolution
        self.channels = channels
        self.fit = check_fit(fit)
        self.pad_color = check_pad_color(pad_color)
        self.flip = bool(flip)  # the configured default; the loader's ``flip`` argument decides
        self.max_images = check_max_images(max_images)
        self.class_names: list[str] | None = list(class_names) if class_names else None

    # --- to implement -------------------------------------------------------------------------
    def _source_len(self) -> int:
        """Number of images before ``max_images``."""
        raise NotImplementedError

    def _load(self, index: int) -> Image.Image:
        """The raw image at ``index`` (any PIL mode, any size)."""
        raise NotImplementedError

    def _label(self, index: int) -> int:
        """The class index at ``index``, or -1."""
        raise NotImplementedError

    def _native(self) -> tuple[int, int, int]:
        """``(width, height, channels)`` of the source images; here the first image's (one decode)."""
        img = self._load(0)
        return img.width, img.height, mode_channels(img.mode)

    # --- shared -------------------------------------------------------------------------------
    @property
    def native_resolution(self) -> int:
        """Side of the square the source images give under ``fit`` before resizing (28 for Fashion-MNIST)."""
        width, height, _ = self._native()
        return square_side(width, height, self.fit)

    @property
    def native_channels(self) -> int:
        """Channels of the source images as the pipeline reads them: 1 (grey) or 3 (colour)."""
        return self._native()[2]

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0

    def __len__(self) -> int:
        n = self._source_len()
        return n if self.max_images is None else min(n, self.max_images)

    def _array(self, index: int) -> np.ndarray:
        """The prepared image ``uint8 [R, R, C]``."""
        return prepare_image(
            self._load(index), resolution=self.resolution, channels=self.channels, fit=self.fit,
            pad_color=self.pad_color,
        )

    def _index(self, key: Key) -> tuple[int, bool]:
        if isinstance(key, tuple):
            index, flip = int(key[0]), bool(key[1])
        else:
            index, flip = int(key), False
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {self.name} with {n} images")
        return index, flip

    def _fetch(self, index: int) -> tuple[np.ndarray, int]:
        """The prepared image and its label."""
        return self._array(index), self._label(index)

    def __getitem__(self, key: Key) -> Sample:
        index, flip = self._index(key)
        arr, label = self._fetch(index)  # [R, R, C]
        if flip:
            arr = arr[:, ::-1]
        return to_tensor(arr), torch.tensor(label, dtype=torch.int64)  # [C, R, R], []

    def __getitems__(self, keys: Sequence[Key]) -> list[Sample]:
        """Batched fetch used by the DataLoader (one call per batch instead of one per sample)."""
        return [self[k] for k in keys]

    # --- native-size images, fitted on the training device (ganzoo.data.device_resize) ---------
    uniform_native = False  # True when every source image has one size (so native images stack)

    def _native_fetch(self, index: int) -> tuple[np.ndarray, int]:
        """The image before resizing (``transforms.prepare_native``, ``uint8 [h, w, C]``) and its label."""
        return prepare_native(self._load(index), channels=self.channels, fit=self.fit), self._label(index)

    def native_items(self, keys: Sequence[Key]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(uint8 [C, h, w], label)`` per key, flipped as ``__getitem__`` flips, not resized."""
        out = []
        for key in keys:
            index, flip = self._index(key)
            arr, label = self._native_fetch(index)
            if flip:
                arr = arr[:, ::-1]
            img = torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, -1, 0)))
            out.append((img, torch.tensor(label, dtype=torch.int64)))
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, len={len(self)}, resolution={self.resolution}, "
            f"channels={self.channels}, fit={self.fit!r}, num_classes={self.num_classes})"
        )
