"""Sampling a code-conditioned prior on a code grid larger than its training grid (``--mode condition --grid``).

VQ-GAN Sec. 3.2 / Fig. 3 and taming's ``scripts/sample_conditional.py``: the image codes are drawn with the sliding
window, and the condition's tokens follow the window: each cell is predicted from the condition of the window
around it, not of the whole image. Here the condition of a window is that of the window's pixels: the window's crop
of the full-size image goes through ``cond_stage.derive`` and ``encode`` (or, for a condition image given at the
larger scale, the window's crop of it through ``encode``). For the per-pixel providers (down-sampling, edges) this
is the crop of the whole condition's tokens, as in taming; for a condition tokenizer it is the crop re-encoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .autoregressive import sample_sliding_window


def condition_scale(stage: nn.Module, code_shape: tuple[int, int]) -> int:
    """Condition pixels per image code (a condition given at a larger scale is cropped with the window)."""
    h, w = code_shape
    r = int(stage.cond_resolution)
    if r % h or r % w:
        return 0
    return r // h


def window_tiles(grid: tuple[int, int], window: tuple[int, int]) -> list[tuple[int, int]]:
    """Window origins that cover the grid: a tiling, the last row/column of tiles clamped inside it."""
    (gh, gw), (h, w) = grid, window
    tops = sorted({min(a, gh - h) for a in range(0, gh, h)})
    lefts = sorted({min(b, gw - w) for b in range(0, gw, w)})
    return [(t, q) for t in tops for q in lefts]


@torch.no_grad()
def sample_condition_grid(modules: Mapping[str, nn.Module], source: torch.Tensor, *, full: bool,
                          grid: tuple[int, int], n: int, cond_tokens: str, generator: torch.Generator,
                          batch: int, opts: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples ``[n, C, H*f, W*f]`` for ``grid = (H, W)`` from one input ``source [1, ...]`` (a full-size image
    of that grid when ``full``, else its condition at the larger scale), and the stitched preview of the
    condition ``[1, C, H*f, W*f]``."""
    from ..models.vq_prior import build_prefix

    gpt, tokenizer, stage = modules["prior"], modules["tokenizer"], modules["cond_stage"]
    device = next(gpt.parameters()).device
    (h, w), (gh, gw) = tokenizer.code_shape, grid
    f = int(tokenizer.img_resolution) // h
    s = f if full else condition_scale(stage, (h, w))
    crops: dict[tuple[int, int], torch.Tensor] = {}

    def cond_at(top: int, left: int) -> torch.Tensor:  # the window's condition image [1, Cc, r, r]
        if (top, left) not in crops:
            crop = source[..., top * s : (top + h) * s, left * s : (left + w) * s].to(device)
            crops[(top, left)] = stage.derive(crop) if full else crop
        return crops[(top, left)]

    outs = []
    for start in range(0, n, batch):
        m = min(batch, n - start)

        def window_prefix(top: int, left: int, m: int = m) -> torch.Tensor:
            cond = cond_at(top, left)
            return build_prefix(modules, m, cond_img=cond.expand(m, *cond.shape[1:]), cond_tokens=cond_tokens,
                                n_embed=tokenizer.n_embed)

        codes = sample_sliding_window(gpt, window_prefix(0, 0), grid, (h, w), generator=generator,
                                      allowed=tokenizer.n_embed, window_prefix=window_prefix, **opts)
        outs.append(tokenizer.decode(codes).float().cpu())
    preview = torch.ones(1, int(tokenizer.img_channels), gh * f, gw * f)
    for top, left in window_tiles(grid, (h, w)):
        preview[..., top * f : (top + h) * f, left * f : (left + w) * f] = stage.preview(cond_at(top, left)).cpu()
    return torch.cat(outs), preview


def check_grid_input(stage: nn.Module, code_shape: tuple[int, int], grid: tuple[int, int], f: int,
                     channels: int) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """The geometries an input may have for ``grid``: ``(full size, channels)`` and the larger-scale condition
    (``None`` when the condition's pixels do not divide into codes)."""
    gh, gw = grid
    if gh != gw:
        raise ConfigError(f"--grid {gh}x{gw}: give a square code grid for --mode condition (e.g. {gh}x{gh})")
    s = condition_scale(stage, code_shape)
    return (gh * f, channels), ((gh * s, int(stage.cond_channels)) if s else None)
