"""Image preparation: channel conversion, fitting to a square, conversion to a [-1, 1] tensor.

Every dataset goes through the same three steps, in this order:

1. ``convert_channels``: transparency is composited on white, then the image becomes ``RGB``
   (grey images are replicated to three channels) or ``L`` (colour images are reduced with PIL's
   ITU-R 601-2 luma transform ``L = 0.299 R + 0.587 G + 0.114 B``).
2. ``fit_square``: the image becomes ``resolution x resolution`` by one of ``FIT_MODES``:

   - ``crop``: the largest centred square is cut out, then resized (fills the frame, loses borders);
   - ``pad``: the longer side is resized to ``resolution`` and the image is centred on a square
     filled with ``pad_color`` (keeps the whole image). The default ``border`` takes the median
     colour of the image's own outermost pixels, so black-background data (Fashion-MNIST) pads
     with black and white-background data (the emoji set, product photos) with white;
     ``white``, ``black``, a grey level 0-255 or an ``[r, g, b]`` list fix it instead;
   - ``stretch``: both sides are resized independently (keeps everything, distorts the aspect).

   Shrinking uses ``LANCZOS`` (antialiased, sharp); enlarging uses ``BICUBIC`` (less ringing than
   Lanczos on upscaled pixel art such as the 28x28 Fashion-MNIST images).
3. ``to_tensor``: ``uint8 [H, W, C]`` -> ``float32 [C, H, W]`` in ``[-1, 1]`` (``x / 127.5 - 1``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from ganzoo.errors import ConfigError

FIT_MODES = ("crop", "pad", "stretch")
WHITE = 255

_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def check_pad_color(pad_color: Any) -> Any:
    """Return ``pad_color`` if valid (``border``, ``white``, ``black``, 0-255 or [r, g, b]), else raise."""
    ok = pad_color in ("border", "white", "black")
    if isinstance(pad_color, int) and not isinstance(pad_color, bool):
        ok = 0 <= pad_color <= 255
    elif isinstance(pad_color, (list, tuple)):
        ok = len(pad_color) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in pad_color)
    if not ok:
        raise ConfigError(
            f"data.pad_color={pad_color!r} is not valid; use border (the image's own border colour), white, "
            "black, a grey level 0-255 or an [r, g, b] list of 0-255 values."
        )
    return pad_color


def _pad_fill(img: Image.Image, pad_color: Any) -> int | tuple[int, ...]:
    """The fill colour of ``fit=pad`` in ``img``'s mode (``L`` or ``RGB``)."""
    bands = len(img.getbands())
    check_pad_color(pad_color)
    if pad_color == "border":
        arr = np.asarray(img).reshape(img.size[1], img.size[0], bands)  # [H, W, C]
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])  # [P, C]
        fill = tuple(int(v) for v in np.median(border, axis=0).round())
    elif pad_color in ("white", "black"):
        fill = (WHITE if pad_color == "white" else 0,) * bands
    elif isinstance(pad_color, int):
        fill = (pad_color,) * bands
    else:  # [r, g, b]: reduced to grey with PIL's luma weights for one-channel images
        r, g, b = pad_color
        fill = tuple(pad_color) if bands == 3 else (int(round(0.299 * r + 0.587 * g + 0.114 * b)),)
    return fill[0] if bands == 1 else fill


def check_fit(fit: str) -> str:
    """Return ``fit`` if it is one of ``FIT_MODES``, else raise ConfigError."""
    if fit not in FIT_MODES:
        raise ConfigError(f"data.fit={fit!r} is not known; use one of {', '.join(FIT_MODES)}.")
    return fit


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit grey images: PIL's ``convert('L')`` clips instead of scaling, so scale here."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == "F" and arr.size and arr.max() <= 1.0:
        arr = arr * 255.0  # float images are conventionally in [0, 1]
    elif arr.size and arr.max() > 255:
        arr = arr / 257.0  # 16-bit range [0, 65535] -> [0, 255]
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def convert_channels(img: Image.Image, channels: int) -> Image.Image:
    """Convert ``img`` to ``RGB`` (channels=3) or ``L`` (channels=1), compositing alpha on white."""
    if channels not in (1, 3):
        raise ConfigError(f"channels={channels} is not supported; use 1 (grey) or 3 (RGB).")
    if img.mode in _HIGH_DEPTH_MODES:
        img = _high_depth_to_l(img)
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (WHITE, WHITE, WHITE, 255))
        img = Image.alpha_composite(background, rgba)
    target = "RGB" if channels == 3 else "L"
    return img if img.mode == target else img.convert(target)


def _resample(src: tuple[int, int], dst: tuple[int, int]) -> Image.Resampling:
    shrinking = dst[0] * dst[1] < src[0] * src[1]
    return Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    if img.size == size:
        return img
    return img.resize(size, _resample(img.size, size))


def fit_square(img: Image.Image, resolution: int, fit: str, pad_color: Any = "border") -> Image.Image:
    """Make ``img`` a ``resolution x resolution`` image according to ``fit`` (see module doc)."""
    w, h = img.size
    if fit == "stretch" or w == h:
        return _resize(img, (resolution, resolution))
    if fit == "crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        return _resize(img.crop((left, top, left + side, top + side)), (resolution, resolution))
    if fit == "pad":
        scale = resolution / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        fill = _pad_fill(img, pad_color)
        canvas = Image.new(img.mode, (resolution, resolution), fill)
        canvas.paste(_resize(img, size), ((resolution - size[0]) // 2, (resolution - size[1]) // 2))
        return canvas
    raise ConfigError(f"data.fit={fit!r} is not known; use one of {', '.join(FIT_MODES)}.")


def prepare_image(
    img: Image.Image, *, resolution: int, channels: int, fit: str, pad_color: Any = "border"
) -> np.ndarray:
    """Channel conversion + fitting: returns ``uint8 [resolution, resolution, channels]``."""
    grey_fill = not (isinstance(pad_color, (list, tuple)) and len(set(pad_color)) > 1)
    if channels == 3 and img.mode == "L" and grey_fill:  # same result, a third of the resizing work
        one = prepare_image(img, resolution=resolution, channels=1, fit=fit, pad_color=pad_color)
        return np.repeat(one, 3, axis=-1)
    img = fit_square(convert_channels(img, channels), resolution, fit, pad_color)
    arr = np.array(img, dtype=np.uint8)  # a writable copy, so torch can wrap it without a warning
    return arr[:, :, None] if arr.ndim == 2 else arr  # [H, W, C]


def prepare_native(img: Image.Image, *, channels: int, fit: str) -> np.ndarray:
    """The exact pixel steps of :func:`prepare_image` without the resize: channels converted and, for
    ``fit=crop``, the centre square cut out. ``uint8 [h, w, C]``; ``ganzoo.data.device_resize`` fits it
    on the training device."""
    img = convert_channels(img, channels)
    w, h = img.size
    if fit == "crop" and w != h:
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    arr = np.array(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr  # [h, w, C]


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """``uint8 [..., H, W, C]`` -> ``float32 [..., C, H, W]`` in ``[-1, 1]``.

    Done in NumPy on purpose: single-threaded, so data preparation never competes with (or waits
    on) torch's intra-op threads used by the training step.
    """
    out = np.ascontiguousarray(np.moveaxis(np.asarray(arr), -1, -3)).astype(np.float32)
    out /= 127.5
    out -= 1.0
    return torch.from_numpy(out)
