"""Standard datasets through torchvision: CIFAR-10, MNIST, Fashion-MNIST, CelebA, LSUN.

They need a download (or files put in place by hand) under ``root``, by default
``~/.cache/ganzoo/datasets/<name>``. Any failure to build them becomes a ``DataError`` that says
what failed, where the files are expected, how to fetch them manually, and that the embedded
``data=fashion`` / ``data=emoji`` work offline.

Labels: class indices for CIFAR-10, MNIST and Fashion-MNIST; LSUN is labelled by category when
several categories are loaded and unlabelled for one; CelebA is unlabelled (its 40 attributes are
not classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ganzoo.data.base import ImageDataset
from ganzoo.data.geometry import TORCHVISION_NATIVE
from ganzoo.data.transforms import prepare_image, prepare_native
from ganzoo.errors import ConfigError, DataError

TORCHVISION_SETS = ("cifar10", "mnist", "fashion_mnist", "celeba", "lsun")
CACHE_DIR = Path("~/.cache/ganzoo/datasets")
LSUN_CATEGORIES = (
    "bedroom",
    "bridge",
    "church_outdoor",
    "classroom",
    "conference_room",
    "dining_room",
    "kitchen",
    "living_room",
    "restaurant",
    "tower",
)

_OFFLINE = "Without network access, data=fashion or data=emoji work offline (they ship with ganzoo)."

_MANUAL = {
    "cifar10": "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it so that "
    "{root}/cifar-10-batches-py/ exists.",
    "mnist": "download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
    "and t10k-labels-idx1-ubyte.gz from https://ossci-datasets.s3.amazonaws.com/mnist/ and gunzip them "
    "into {root}/MNIST/raw/.",
    "fashion_mnist": "download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from "
    "https://github.com/zalandoresearch/fashion-mnist (Debian: package dataset-fashion-mnist, "
    "/usr/share/datasets/fashion-mnist/) and gunzip them into {root}/FashionMNIST/raw/.",
    "celeba": "download img_align_celeba.zip, list_attr_celeba.txt, identity_CelebA.txt, "
    "list_bbox_celeba.txt, list_landmarks_align_celeba.txt and list_eval_partition.txt from "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html into {root}/celeba/ and unzip img_align_celeba.zip "
    "there (automatic download needs `pip install gdown` and often hits Google Drive quotas).",
    "lsun": "`pip install lmdb`, fetch the categories with the script at https://github.com/fyu/lsun "
    "(`python download.py -c church_outdoor`; LSUN has no automatic download) and unzip them so that "
    "{root}/church_outdoor_train_lmdb/ exists.",
}


def default_root(name: str) -> Path:
    """Where a dataset lives when ``data.root`` is null."""
    return (CACHE_DIR / name).expanduser()


def _train_flag(name: str, split: str) -> bool:
    if split not in ("train", "test"):
        raise ConfigError(f"data.split={split!r} is not available for {name}; use train or test.")
    return split == "train"


def lsun_class_list(split: str, lsun_classes: str | Sequence[str] | None) -> list[str]:
    """Full LSUN database names, e.g. ``['church_outdoor_train']``.

    Entries without a ``_train``/``_val`` suffix get the suffix of ``split`` (train -> _train,
    valid or test -> _val: the LSUN scene test set has no categories). null means church_outdoor.
    """
    if split not in ("train", "valid", "test"):
        raise ConfigError(f"data.split={split!r} is not available for lsun; use train or valid.")
    suffix = "_train" if split == "train" else "_val"
    names = (
        ["church_outdoor"]
        if lsun_classes is None
        else [lsun_classes]
        if isinstance(lsun_classes, str)
        else list(lsun_classes)
    )
    if not names:
        raise ConfigError(
            "data.lsun_classes is empty; give one or more LSUN categories, e.g. [church_outdoor]."
        )
    out = []
    for c in names:
        base = c.removesuffix("_train").removesuffix("_val")
        if base not in LSUN_CATEGORIES:
            raise ConfigError(
                f"unknown LSUN category {c!r} in data.lsun_classes; use one of {', '.join(LSUN_CATEGORIES)}."
            )
        out.append(c if c != base else base + suffix)
    return out


def _build(
    name: str, root: Path, split: str, download: bool, lsun_classes: Any
) -> tuple[Any, list[str] | None]:
    """The torchvision dataset and its class names (None when unlabelled)."""
    from torchvision import datasets  # imported here to keep `import ganzoo.data` light

    if name == "cifar10":
        ds = datasets.CIFAR10(str(root), train=_train_flag(name, split), download=download)
        return ds, list(ds.classes)
    if name == "mnist":
        ds = datasets.MNIST(str(root), train=_train_flag(name, split), download=download)
        return ds, [str(i) for i in range(10)]
    if name == "fashion_mnist":
        ds = datasets.FashionMNIST(str(root), train=_train_flag(name, split), download=download)
        return ds, list(ds.classes)
    if name == "celeba":
        if split not in ("train", "valid", "test", "all"):
            raise ConfigError(
                f"data.split={split!r} is not available for celeba; use train, valid, test or all."
            )
        return datasets.CelebA(str(root), split=split, target_type=[], download=download), None
    if name == "lsun":
        classes = lsun_class_list(split, lsun_classes)
        ds = datasets.LSUN(str(root), classes=classes)
        return ds, (classes if len(classes) > 1 else None)
    raise ConfigError(
        f"{name!r} is not a torchvision dataset known to ganzoo; use one of {', '.join(TORCHVISION_SETS)}."
    )


class TorchvisionDataset(ImageDataset):
    """A torchvision dataset behind the ``ImageDataset`` interface."""

    def __init__(
        self,
        name: str,
        *,
        resolution: int,
        channels: int,
        root: str | Path | None = None,
        split: str = "train",
        download: bool = True,
        fit: str = "crop",
        pad_color: Any = "border",
        flip: bool = False,
        max_images: int | None = None,
        lsun_classes: str | Sequence[str] | None = None,
    ) -> None:
        root = default_root(name) if root is None else Path(root).expanduser()
        try:
            tv, class_names = _build(name, root, split, download, lsun_classes)
        except ConfigError:
            raise
        except Exception as err:  # torchvision raises RuntimeError, OSError, URLError, ImportError...
            how = "downloading" if download and name != "lsun" else "reading"
            manual = _MANUAL[name].format(root=root)
            if download or name == "lsun":
                advice = f"To get it manually: {manual}"
            else:
                advice = f"Set data.download=true to fetch it (needs network), or get it manually: {manual}"
            raise DataError(
                f"{how} the {name} dataset (split={split}) under {str(root)!r} failed: {type(err).__name__}: "
                f"{str(err).rstrip('. ')}. {advice} Then run with data.root={root} data.download=false. "
                f"{_OFFLINE}"
            ) from err
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
        self.root = root
        self.split = split
        self.tv = tv
        if len(tv) == 0:
            raise DataError(f"the {name} dataset under {str(root)!r} is empty; check the files. {_OFFLINE}")

    def _source_len(self) -> int:
        return len(self.tv)

    def _native(self) -> tuple[int, int, int]:
        return TORCHVISION_NATIVE[self.name]  # published sizes: no image is read

    def _fetch(self, index: int) -> tuple[np.ndarray, int]:
        img, target = self.tv[index]
        if not isinstance(img, Image.Image):
            img = Image.fromarray(np.asarray(img))
        label = int(target) if self.class_names is not None else -1
        return prepare_image(img, resolution=self.resolution, channels=self.channels, fit=self.fit,
                             pad_color=self.pad_color), label

    def _native_fetch(self, index: int) -> tuple[np.ndarray, int]:
        img, target = self.tv[index]
        if not isinstance(img, Image.Image):
            img = Image.fromarray(np.asarray(img))
        label = int(target) if self.class_names is not None else -1
        return prepare_native(img, channels=self.channels, fit=self.fit), label

    @property
    def uniform_native(self) -> bool:  # type: ignore[override]
        """Every set but LSUN (whose images vary in size) has one image size."""
        return self.name != "lsun"

    def _load(self, index: int) -> Image.Image:
        return self.tv[index][0]

    def _label(self, index: int) -> int:
        return self._fetch(index)[1]
