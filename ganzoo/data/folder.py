"""``ImageFolderDataset``: every image file under a directory, optionally labelled by subfolder.

Layout rules:

- Files are found recursively (symlinked folders are followed once) and kept in sorted path order.
  Extensions (any case): ``IMAGE_EXTENSIONS``. Hidden files and folders (``.name``) are ignored.
- If at least one top-level subfolder of ``root`` contains images, each such subfolder is a class
  (``class_names`` are the sorted subfolder names; images deeper inside a class folder belong to it).
  Image files lying directly in ``root`` then have no class: they are left out, with a warning.
- Otherwise (all images directly in ``root``) the dataset is unlabelled: label -1, ``num_classes == 0``.

With ``verify=True`` every file is opened and decoded once at construction; unreadable files are
left out with a single warning that counts them. With ``verify=False`` a file that fails to decode
later is replaced by the next readable image in dataset order (a warning names it), so a corrupt
file is never returned.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ganzoo.data.base import ImageDataset
from ganzoo.data.geometry import header_geometry, sample_files
from ganzoo.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def scan_images(root: Path) -> list[Path]:
    """All image files under ``root`` in sorted order; hidden entries skipped, symlink loops avoided."""
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames if not f.startswith(".") and is_image_file(f))
    return sorted(found)


_CHECKED: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime) -> readable, shared by all instances


def read_image(path: Path) -> Image.Image:
    """Open and fully decode ``path`` (the first frame of animations); raises on a corrupt file."""
    with Image.open(path) as img:
        img.load()
        return img.copy()  # detached from the file, which the context closes


def check_image(path: Path) -> bool:
    """True when ``path`` passes PIL's structural check and decodes completely (memoized per file version)."""
    try:
        stat = path.stat()
    except OSError:
        return False
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKED:
        try:
            with Image.open(path) as img:
                img.verify()  # structure and checksums; leaves the image unusable, hence the reopen
            with Image.open(path) as img:
                img.load()
            _CHECKED[key] = True
        except Exception:  # any decoder failure means the file is unusable
            _CHECKED[key] = False
    return _CHECKED[key]


def _examples(paths: list[Path], root: Path, k: int = 3) -> str:
    shown = ", ".join(str(p.relative_to(root)) for p in paths[:k])
    return shown + (", ..." if len(paths) > k else "")


class ImageFolderDataset(ImageDataset):
    """Images read from files under ``root`` (see the module docstring for the layout rules)."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        resolution: int,
        channels: int,
        fit: str = "crop",
        pad_color: Any = "border",
        flip: bool = False,
        max_images: int | None = None,
        verify: bool = True,
        name: str = "folder",
    ) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DataError(
                f"image folder {str(root)!r} does not exist or is not a directory; "
                "point data.root=/path/to/images at a folder of images (e.g. `ganzoo train data=folder "
                "data.root=/data/my_images`)."
            )
        files = scan_images(root)
        if not files:
            raise DataError(
                f"no images found under {str(root)!r} (looked for {' '.join(IMAGE_EXTENSIONS)}); "
                "set data.root=... to a folder that contains image files."
            )
        class_dirs = sorted(
            {p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1}
        )
        loose = [p for p in files if p.parent == root]
        if class_dirs and loose:
            warnings.warn(
                f"{len(loose)} image file(s) lie directly in {str(root)!r} next to class subfolders and are "
                f"left out (no class): {_examples(loose, root)}. Move them into a subfolder to use them.",
                stacklevel=2,
            )
            files = [p for p in files if p.parent != root]
        if verify:
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                ok = list(pool.map(check_image, files))
            bad = [p for p, good in zip(files, ok) if not good]
            if bad:
                warnings.warn(
                    f"skipped {len(bad)} unreadable image file(s) under {str(root)!r}: "
                    f"{_examples(bad, root)}",
                    stacklevel=2,
                )
                files = [p for p, good in zip(files, ok) if good]
            if not files:
                raise DataError(
                    f"none of the image files under {str(root)!r} could be read; check the files."
                )
        super().__init__(
            name=name,
            resolution=resolution,
            channels=channels,
            fit=fit,
            pad_color=pad_color,
            flip=flip,
            max_images=max_images,
            class_names=class_dirs or None,
        )
        self.root = root
        self.files = files
        class_index = {c: i for i, c in enumerate(class_dirs)}
        self._labels = [class_index[p.relative_to(root).parts[0]] if class_dirs else -1 for p in files]
        self._bad: set[int] = set()

    def _source_len(self) -> int:
        return len(self.files)

    def _native(self) -> tuple[int, int, int]:
        """The largest square side and any colour among a few evenly spaced files (headers only)."""
        found = header_geometry(sample_files(self.files[: len(self)]), self.fit)
        if found is None:  # the sampled files cannot be opened: ask the first readable image
            return super()._native()
        side, channels = found
        return side, side, channels

    def _label(self, index: int) -> int:
        return self._labels[index]

    def _load(self, index: int) -> Image.Image:
        return read_image(self.files[index])

    def _fetch(self, index: int) -> tuple[np.ndarray, int]:
        """Like the base, but an unreadable file is replaced by the next readable one (with its label)."""
        n = len(self)
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                continue
            try:
                return self._array(i), self._label(i)
            except Exception as err:  # any decoder failure means the file is unusable
                self._bad.add(i)
                warnings.warn(f"skipping unreadable image {str(self.files[i])!r}: {err}", stacklevel=2)
        raise DataError(f"none of the image files under {str(self.root)!r} could be read; check the files.")
