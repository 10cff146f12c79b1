"""Resizing whole batches on the training device, with the result of the per-image CPU path.

The CPU path (``ganzoo.data.transforms``) fits every image with PIL on each access; at 256x256 from
28x28 Fashion-MNIST that costs more than a GPU training step. With ``data.resize_on_device`` the
loader yields the images at their native size instead (uint8, channels converted and, for
``fit=crop``, the centre square cut out: both exact pixel operations), and :class:`BatchFit` does the
rest on the device for the whole batch: PIL's resampling (LANCZOS when shrinking, BICUBIC when
enlarging), the ``pad`` canvas with its fill colour, and the conversion to ``[-1, 1]``.

PIL's 8-bit resampling (``libImaging/Resample.c``) is reproduced exactly: the same filter taps and
windows, coefficients normalised and rounded to 22-bit fixed point, a horizontal pass then a
vertical pass, each rounded (``floor(x + 1/2)``) and clipped to ``0..255``. The sums are integers
below 2^40, computed in float64 matrix products, so they are exact (on MPS, which has no float64,
float32 is used and a pixel may be off by one grey level). Horizontal flips are applied to the
native image before resizing; PIL's filters are symmetric, so this equals flipping afterwards.

``data.resize_on_device``: ``auto`` (on when training on CUDA and the dataset's images share one
size), ``true`` or ``false``. Folders and LSUN hold images of several sizes, which cannot be stacked
into a batch before resizing, so they always use the CPU path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ganzoo.data.transforms import WHITE, check_pad_color
from ganzoo.errors import ConfigError

PRECISION_BITS = 32 - 8 - 2  # PIL's fixed point for 8-bit images
_SUPPORT = {"lanczos": 3.0, "bicubic": 2.0}


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _tap(kind: str, x: float) -> float:
    """PIL's filter functions (``lanczos_filter``, ``bicubic_filter`` with a = -0.5)."""
    if kind == "lanczos":
        return _sinc(x) * _sinc(x / 3) if -3.0 <= x < 3.0 else 0.0
    a = -0.5
    x = -x if x < 0.0 else x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


@lru_cache(maxsize=64)
def pil_coefficients(in_size: int, out_size: int, kind: str) -> np.ndarray:
    """``int64 [out_size, in_size]``: PIL's fixed-point resampling weights along one axis
    (``precompute_coeffs`` and ``normalize_coeffs_8bpp``; the same double-precision operations in
    the same order, so the rounded integers are PIL's)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _SUPPORT[kind] * filterscale
    out = np.zeros((out_size, in_size), dtype=np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [_tap(kind, (x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = sum(w)  # PIL adds left to right, as sum() does
        for x in range(xmax):
            k = w[x] / ww if ww != 0.0 else w[x]
            f = k * (1 << PRECISION_BITS)
            out[xx, xmin + x] = int(f + 0.5) if f >= 0.0 else int(f - 0.5)
    return out


def resample_kind(src: tuple[int, int], dst: tuple[int, int]) -> str:
    """The filter ``transforms._resize`` picks: LANCZOS when the area shrinks, else BICUBIC."""
    return "lanczos" if dst[0] * dst[1] < src[0] * src[1] else "bicubic"


def pad_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """``(w, h)`` of the resized image that ``fit=pad`` centres on its canvas (as ``fit_square``)."""
    scale = resolution / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class BatchFit:
    """``uint8 [B, C, h, w]`` native images on the device -> ``float32 [B, C, R, R]`` in ``[-1, 1]``,
    equal to what ``transforms.prepare_image`` + ``to_tensor`` give each image."""

    def __init__(self, resolution: int, fit: str, pad_color: Any = "border"):
        self.resolution, self.fit, self.pad_color = int(resolution), fit, check_pad_color(pad_color)
        self._weights: dict[tuple[int, int, str, str], torch.Tensor] = {}

    def _matrix(self, n_in: int, n_out: int, kind: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (n_in, n_out, kind, f"{device}{dtype}")
        if key not in self._weights:
            self._weights[key] = torch.from_numpy(pil_coefficients(n_in, n_out, kind)).to(device, dtype)
        return self._weights[key]

    def resize(self, x: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """PIL's ``Image.resize((width, height))`` of integer-valued ``x [B, C, h, w]`` (any float dtype)."""
        h, w = x.shape[-2:]
        if (w, h) == (width, height):
            return x
        kind = resample_kind((w, h), (width, height))
        half, one = float(1 << (PRECISION_BITS - 1)), float(1 << PRECISION_BITS)
        if w != width:  # horizontal pass first, rounded to 8 bits, as PIL
            x = (x @ self._matrix(w, width, kind, x.device, x.dtype).T + half).div_(one).floor_().clamp_(0, 255)
        if h != height:
            x = (self._matrix(h, height, kind, x.device, x.dtype) @ x + half).div_(one).floor_().clamp_(0, 255)
        return x

    def _fill(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, 1, 1]`` fill of the pad canvas (``transforms._pad_fill``; ``x`` before resizing)."""
        b, c = x.shape[:2]
        pad = self.pad_color
        if pad == "border":  # median of the outermost pixels (numpy's: mean of the two middle values), rounded
            border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1).sort(dim=-1).values
            p = border.shape[-1]  # 2 (w + h): even
            fill = ((border[..., p // 2 - 1] + border[..., p // 2]) / 2).round()
        elif pad in ("white", "black") or isinstance(pad, int):
            level = WHITE if pad == "white" else 0 if pad == "black" else pad
            fill = torch.full((b, c), float(level), device=x.device, dtype=x.dtype)
        else:  # [r, g, b]; grey images take PIL's luma of it
            r, g, bl = pad
            rgb = list(pad) if c == 3 else [int(round(0.299 * r + 0.587 * g + 0.114 * bl))]
            fill = torch.tensor(rgb, device=x.device, dtype=x.dtype).expand(b, c)
        return fill[..., None, None]

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.dtype != torch.uint8 or img.ndim != 4:
            raise ValueError(f"BatchFit expects uint8 [B, C, h, w] native images, got {img.dtype} {tuple(img.shape)}")
        dtype = torch.float32 if img.device.type == "mps" else torch.float64
        x = img.to(dtype)
        h, w = x.shape[-2:]
        r = self.resolution
        if self.fit == "pad" and w != h:
            sw, sh = pad_size(w, h, r)
            canvas = self._fill(x).expand(-1, -1, r, r).clone()
            top, left = (r - sh) // 2, (r - sw) // 2
            canvas[..., top : top + sh, left : left + sw] = self.resize(x, sw, sh)
            x = canvas
        else:  # crop (the loader cut the centre square), stretch, or a square image in any mode
            x = self.resize(x, r, r)
        return x.float().div_(127.5).sub_(1.0)  # as transforms.to_tensor: float32 x / 127.5 - 1


class NativeView(Dataset):
    """The loader's view of an ``ImageDataset`` that hands out native-size uint8 images."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.native_items([key])[0]

    def __getitems__(self, keys: Sequence[Any]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self.dataset.native_items(keys)


def device_batch_fit(cfg: Mapping[str, Any], dataset: Any, device: torch.device) -> BatchFit | None:
    """The :class:`BatchFit` of ``data.resize_on_device`` for training on ``device``, or None (the
    loader resizes on the CPU). ``true`` with images of several sizes is a :class:`ConfigError`."""
    mode = cfg.get("resize_on_device", "auto")
    supported = bool(getattr(dataset, "uniform_native", False))
    if mode is True and not supported:
        raise ConfigError(
            f"data.resize_on_device=true needs images of one size, but data={getattr(dataset, 'name', '?')} may hold "
            "several (folders, LSUN); set data.resize_on_device=auto or false to resize each image on the CPU."
        )
    on = supported and (mode is True or (mode == "auto" and device.type == "cuda"))
    return BatchFit(dataset.resolution, dataset.fit, dataset.pad_color) if on else None
