"""Native geometry of a dataset: the square side and channel count its images have before resizing.

``model.resolution: auto`` and ``model.img_channels: auto`` ask for a model that matches the data, so
the trainer needs these numbers before it builds the model, and so before the dataset (which is
prepared at the model's resolution). Everything here is a cheap peek: array shapes for the embedded
sets, image headers of a few files for a folder (PIL reads the size and mode without decoding), and
published sizes for the torchvision sets (nothing is downloaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

# Modes with one channel after ``transforms.convert_channels`` (alpha is composited away, high-depth
# grey is scaled to 8 bits); every other mode (RGB, RGBA, P, CMYK, YCbCr, ...) becomes RGB.
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")

# (width, height, channels) as distributed. LSUN images are scaled so the shorter side is 256 px
# and the longer side varies, so 256 stands for both; CelebA's aligned crops are 178x218.
TORCHVISION_NATIVE: dict[str, tuple[int, int, int]] = {
    "cifar10": (32, 32, 3),
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "celeba": (178, 218, 3),
    "lsun": (256, 256, 3),
}

FOLDER_SAMPLE = 16  # image headers read from a folder (evenly spaced in sorted order)


def mode_channels(mode: str) -> int:
    """1 for PIL modes that the data pipeline turns into grey, 3 for those it turns into RGB."""
    return 1 if mode in GREY_MODES else 3


def square_side(width: int, height: int, fit: str = "crop") -> int:
    """The side of the square image that ``fit`` keeps at full detail: ``crop`` keeps the centre
    square (the shorter side); ``pad`` and ``stretch`` keep the whole image (the longer side)."""
    return min(width, height) if fit == "crop" else max(width, height)


def sample_files(files: Sequence[Path], k: int = FOLDER_SAMPLE) -> list[Path]:
    """Up to ``k`` files spread evenly over ``files`` (first and last included)."""
    n = len(files)
    if n <= k:
        return list(files)
    return [files[round(i * (n - 1) / (k - 1))] for i in range(k)]


def header_geometry(files: Sequence[Path], fit: str = "crop") -> tuple[int, int] | None:
    """``(square side, channels)`` from the headers of ``files``: the largest side (so no image is
    upsampled more than it must be) and 3 when any file is in colour. None when none can be opened."""
    side, channels, seen = 0, 1, 0
    for path in files:
        try:
            with Image.open(path) as img:  # lazy: reads the header only
                w, h, mode = img.width, img.height, img.mode
        except Exception:  # an unreadable file says nothing about the geometry; the dataset reports it
            continue
        side, channels, seen = max(side, square_side(w, h, fit)), max(channels, mode_channels(mode)), seen + 1
    return (side, channels) if seen else None
