"""Writing images: ``[-1, 1]`` tensors to PNG grids, individual files and GIFs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..training.checkpoint import atomic_write


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``[N, C, H, W]`` in ``[-1, 1]`` -> ``[N, H, W, C]`` uint8 (C = 1 squeezed to gray later)."""
    x = ((img.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()  # [N, H, W, C]


def _pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


def make_grid(img: torch.Tensor, *, nrow: int | None = None, pad: int = 0) -> np.ndarray:
    """Tile ``[N, C, H, W]`` images into one ``[rows*H, cols*W, C]`` uint8 array."""
    arr = to_uint8(img)
    n, h, w, c = arr.shape
    cols = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y : y + h, x : x + w] = arr[i]
    return grid


def save_grid(img: torch.Tensor, path: str | os.PathLike, *, nrow: int | None = None, pad: int = 0) -> Path:
    path = Path(path)
    grid = _pil(make_grid(img, nrow=nrow, pad=pad))
    atomic_write(path, lambda tmp: grid.save(tmp, format="PNG"))
    return path


def save_individual(img: torch.Tensor, folder: str | os.PathLike, *, prefix: str = "", start: int = 0) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, arr in enumerate(to_uint8(img)):
        p = folder / f"{prefix}{start + i:06d}.png"
        _pil(arr).save(p)
        paths.append(p)
    return paths


def save_gif(frames: list[np.ndarray], path: str | os.PathLike, *, duration_ms: int = 80) -> Path:
    """An animated GIF (looping) from uint8 ``[H, W, C]`` frames."""
    path = Path(path)
    images = [_pil(f) for f in frames]
    atomic_write(
        path,
        lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                   duration=duration_ms, loop=0),
    )
    return path
