"""Image completion with a code prior (VQ-GAN, Esser et al. 2021, Sec. 3.2, conditioned synthesis; taming's
``scripts/sample_conditional.py`` with "Image Completion"): encode an image with the prior's tokenizer, keep the
codes of a region, sample the others with the prior, decode.

The kept codes are forced into the autoregressive sampler (:func:`~ganzoo.sampling.autoregressive.sample_tokens`
with ``forced``/``forced_mask``), so they are bit-exact in code space; the sampled codes see the kept ones that
come *before* them in raster order (the prior is causal). Keeping the top rows (``top``, ``top:F``) is therefore the
paper's completion: every sampled code sees all of the kept region. With ``bottom``, ``right`` or a mask, the codes
sampled before a kept one cannot see it, and the seam may show. A code-conditioned prior (``cond_stage``) is
conditioned on the condition of the image being completed (on a larger grid: of each window's crop of it).

Regions (``--keep``):

- ``top``, ``bottom``, ``left``, ``right``: that half of the code grid (``h // 2`` rows or ``w // 2`` columns);
- ``top:F`` (also ``bottom:F``, ``left:F``, ``right:F``): that fraction of the rows or columns, rounded to the
  nearest whole number of codes (half up);
- a mask image (white = keep): each code cell covers a block of the image; the cell is kept when more than half of
  its pixels are white (> 127 in grey), the *majority rule*. Any mask size works (the blocks are the adaptive
  average pooling of the mask to the code grid), but the image's own size is the natural one.

A region that keeps no code or every code is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..errors import ConfigError
from .autoregressive import sample_sliding_window, sample_tokens

SIDES = ("top", "bottom", "left", "right")


def keep_region(spec: str, code_shape: tuple[int, int]) -> torch.Tensor:
    """``--keep`` as a bool mask ``[h, w]`` of the code grid (True = keep the input's code).

    ``spec``: a side (``top``...), a side with a fraction (``top:0.25``) or the path of a mask image."""
    h, w = code_shape
    side, _, frac = spec.partition(":")
    if side in SIDES:
        f = 0.5
        if frac:
            try:
                f = float(frac)
            except ValueError:
                f = -1.0
            if not 0 < f < 1:
                raise ConfigError(f"--keep {spec}: the fraction after ':' must lie strictly between 0 and 1, e.g. "
                                  f"{side}:0.25")
        size = h if side in ("top", "bottom") else w
        k = size // 2 if not frac else int(f * size + 0.5)  # a half: rounded down; a fraction: to the nearest
        mask = torch.zeros(h, w, dtype=torch.bool)
        if side == "top":
            mask[:k] = True
        elif side == "bottom":
            mask[h - k :] = True
        elif side == "left":
            mask[:, :k] = True
        else:
            mask[:, w - k :] = True
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"--keep {spec!r} is neither a region ({', '.join(SIDES)}, or e.g. top:0.25) nor a mask "
                              "image file (white = keep)")
        mask = mask_from_image(path, code_shape)
    check_keep(mask, spec)
    return mask


def mask_from_image(path: str | Path, code_shape: tuple[int, int]) -> torch.Tensor:
    """A mask image (white = keep) -> bool ``[h, w]`` by the majority rule (module docstring)."""
    try:
        with Image.open(path) as im:
            grey = np.asarray(im.convert("L"), dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise ConfigError(f"--keep {str(path)!r}: cannot read it as an image ({err})") from None
    white = torch.from_numpy((grey > 127).astype(np.float32))[None, None]  # [1, 1, H, W]
    if white.shape[-2] < code_shape[0] or white.shape[-1] < code_shape[1]:
        raise ConfigError(f"--keep {str(path)!r} is {white.shape[-1]}x{white.shape[-2]} pixels, smaller than the "
                          f"{code_shape[1]}x{code_shape[0]} code grid; draw the mask at the image's size")
    share = F.adaptive_avg_pool2d(white, code_shape)[0, 0]  # [h, w]: white share of each cell
    return share > 0.5


def check_keep(mask: torch.Tensor, spec: str = "the mask") -> None:
    """Refuse a region that keeps nothing (nothing to complete from) or everything (nothing to sample)."""
    kept, total = int(mask.sum()), mask.numel()
    if kept == 0:
        raise ConfigError(f"--keep {spec} keeps no code of the {mask.shape[-2]}x{mask.shape[-1]} code grid: there is "
                          "nothing to complete from. Keep a larger region (white = keep in a mask image), or draw "
                          "unconditional samples with --mode grid")
    if kept == total:
        raise ConfigError(f"--keep {spec} keeps every code of the {mask.shape[-2]}x{mask.shape[-1]} code grid: there "
                          "is nothing left to sample. Keep a smaller region (black = sample in a mask image)")


def load_image(path: str | Path, *, resolution: int, channels: int, resize: bool = False,
               also: tuple[int, int] | None = None) -> torch.Tensor:
    """One image file -> ``[1, C, H, W]`` in ``[-1, 1]``, checked against the expected geometry.

    ``resolution``/``channels``: what the model takes. ``also = (resolution, channels)``: a second accepted geometry
    (a condition image). A fully opaque alpha channel is dropped; ``resize`` resizes to ``resolution`` (bicubic,
    aspect not kept) instead of refusing another size. Never a silent conversion between grey and colour."""
    try:
        with Image.open(Path(path).expanduser()) as im:
            im.load()
            img = im.convert("RGBA" if "transparency" in im.info else "RGB") if im.mode == "P" else im.copy()
    except (OSError, ValueError) as err:
        raise ConfigError(f"--image {str(path)!r}: cannot read it as an image ({err})") from None
    if img.mode in ("1", "I", "I;16", "F"):
        img = img.convert("L")
    bands = img.getbands()
    if "A" in bands:
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() < 255:
            raise ConfigError(f"--image {str(path)!r} has transparent pixels; flatten it onto a background first")
        img = img.convert("L" if bands[0] == "L" else "RGB")
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    c = 1 if img.mode == "L" else 3
    geometries = [(resolution, channels)] + ([also] if also else [])
    wanted = " or ".join(f"{r}x{r} {'grey' if ch == 1 else 'RGB'}" for r, ch in geometries)
    if c not in {ch for _, ch in geometries}:
        raise ConfigError(f"--image {str(path)!r} is {'grey' if c == 1 else 'RGB'} ({c} channel{'s' * (c > 1)}), but "
                          f"this model takes {wanted} images; convert it first")
    size = img.size
    fits = [(r, ch) for r, ch in geometries if size == (r, r) and ch == c]
    if not fits:
        if not resize:
            raise ConfigError(f"--image {str(path)!r} is {size[0]}x{size[1]}, but this model takes {wanted} images; "
                              f"add --resize to resize it to {resolution}x{resolution} (aspect not kept)")
        if c != channels:
            raise ConfigError(f"--image {str(path)!r}: --resize resizes to the model's {resolution}x{resolution} "
                              f"{'grey' if channels == 1 else 'RGB'} images, and this one has {c} channel(s)")
        img = img.resize((resolution, resolution), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32)
    arr = arr[..., None] if arr.ndim == 2 else arr  # [H, W, C]
    return torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1.0  # [1, C, H, W]


def load_label_map(path: str | Path, *, n_labels: int, resolution: int, resize: bool = False) -> torch.Tensor:
    """A label-map file (a grey or palette PNG whose pixel values are the labels ``0 .. n_labels - 1``, as taming's
    segmentation data reads them) -> the one-hot condition ``[1, n_labels, r, r]``; ``resize`` takes the nearest
    label, never a blend."""
    from ..models.vq_cond import one_hot

    try:
        with Image.open(Path(path).expanduser()) as im:
            im.load()
            img = im.copy()
    except (OSError, ValueError) as err:
        raise ConfigError(f"--image {str(path)!r}: cannot read it as a label map ({err})") from None
    if img.mode not in ("L", "P", "I", "I;16"):
        raise ConfigError(f"--image {str(path)!r} is a {img.mode} image; a label map is a grey or palette PNG whose "
                          f"pixel values are the labels 0..{n_labels - 1}")
    if img.size != (resolution, resolution):
        if not resize:
            raise ConfigError(f"--image {str(path)!r} is {img.size[0]}x{img.size[1]}, but this prior's label maps are "
                              f"{resolution}x{resolution}; add --resize (nearest label) or resize it first")
        img = img.resize((resolution, resolution), Image.NEAREST)
    labels = torch.from_numpy(np.asarray(img).astype(np.int64))
    if int(labels.min()) < 0 or int(labels.max()) >= n_labels:
        raise ConfigError(f"--image {str(path)!r} holds label {int(labels.max())}, but this prior knows {n_labels} "
                          f"labels (0..{n_labels - 1})")
    return one_hot(labels[None], n_labels)


def grey_out(images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The input with the dropped region mid-grey: ``keep [h, w]`` (or ``[N, h, w]``) upsampled to the pixels."""
    m = keep.to(images.dtype).reshape(-1, 1, *keep.shape[-2:])  # [N or 1, 1, h, w]
    m = F.interpolate(m, size=images.shape[-2:], mode="nearest")
    return images * m  # 0 = mid-grey in [-1, 1]


def prior_prefix(modules: Mapping[str, nn.Module], n: int, *, c: torch.Tensor | None, cond_img: torch.Tensor | None,
                 cond_tokens: str) -> torch.Tensor:
    """The tokens before the first image code ``[N, P]`` (:func:`~ganzoo.models.vq_prior.build_prefix`: the class or
    start token, or a condition's tokens and the class token)."""
    from ..models.vq_prior import build_prefix

    return build_prefix(modules, n, c=c, cond_img=cond_img, cond_tokens=cond_tokens,
                        n_embed=modules["tokenizer"].n_embed)


@torch.no_grad()
def complete_codes(
    modules: Mapping[str, nn.Module],
    codes: torch.Tensor,
    keep: torch.Tensor,
    prefix: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    window_prefix: Callable[[int, int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sample the codes of ``codes [N, H, W]`` where ``keep [H, W]`` (or ``[N, H, W]``) is False -> ``[N, H, W]``.

    A grid larger than the tokenizer's training grid is sampled with the sliding window (Sec. 3.2, Fig. 3), with
    ``window_prefix(top, left)`` as the prefix of each window when given (a spatial condition)."""
    gpt, tokenizer = modules["prior"], modules["tokenizer"]
    n, gh, gw = codes.shape
    mask = keep.to(torch.bool).expand(n, gh, gw).reshape(n, gh * gw)
    opts = dict(temperature=float(temperature), top_k=top_k, top_p=top_p, generator=generator,
                allowed=tokenizer.n_embed, forced=codes.reshape(n, gh * gw), forced_mask=mask)
    h, w = tokenizer.code_shape
    if (gh, gw) == (h, w):
        return sample_tokens(gpt, prefix, h * w, use_cache=use_cache, **opts).view(n, h, w)
    return sample_sliding_window(gpt, prefix, (gh, gw), (h, w), window_prefix=window_prefix, **opts)


@torch.no_grad()
def complete_images(
    modules: Mapping[str, nn.Module],
    images: torch.Tensor,
    keep: torch.Tensor,
    *,
    n: int = 1,
    c: torch.Tensor | None = None,
    cond_tokens: str = "separate",
    generator: torch.Generator | None = None,
    batch: int = 32,
    **opts: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` completions of each of ``images [B, C, H, W]`` -> ``(completions [B * n, C, H, W], their codes
    [B * n, h, w], the inputs' codes [B, h, w])``, image by image, ``n`` in a row.

    ``c [B]``: the class of each image (class-conditional priors). A code-conditioned prior is conditioned on the
    condition of the image being completed (``cond_stage.derive``); on a grid larger than the training one, on that
    of each window's crop of it (the condition follows the sliding window). ``opts``: temperature, top_k, top_p,
    use_cache."""
    tokenizer, stage = modules["tokenizer"], modules.get("cond_stage")
    device = next(modules["prior"].parameters()).device
    source = tokenizer.encode(images.to(device)).cpu()  # [B, H, W]
    (h, w), (gh, gw) = tokenizer.code_shape, source.shape[-2:]
    f = images.shape[-1] // gw
    rep = torch.arange(images.shape[0]).repeat_interleave(n)  # image index of every output
    outs, codes = [], []
    for i in range(0, rep.shape[0], batch):
        idx = rep[i : i + batch]
        cc = c[idx] if c is not None else None
        x = images[idx].to(device)
        window_prefix = None
        if stage is not None and (gh, gw) != (h, w):
            def window_prefix(top: int, left: int, x: torch.Tensor = x, cc: torch.Tensor | None = cc) -> torch.Tensor:
                crop = x[..., top * f : (top + h) * f, left * f : (left + w) * f]
                return prior_prefix(modules, x.shape[0], c=cc, cond_img=stage.derive(crop), cond_tokens=cond_tokens)
            prefix = window_prefix(0, 0)
        else:
            cond = stage.derive(x) if stage is not None else None
            prefix = prior_prefix(modules, idx.shape[0], c=cc, cond_img=cond, cond_tokens=cond_tokens)
        k = keep[idx] if keep.dim() == 3 else keep
        drawn = complete_codes(modules, source[idx].to(device), k.to(device), prefix, generator=generator,
                               window_prefix=window_prefix, **opts)
        codes.append(drawn.cpu())
        outs.append(tokenizer.decode(drawn).float().cpu())
    return torch.cat(outs), torch.cat(codes), source
