"""Moving latents along a direction and drawing them: ``ganzoo edit`` and the walk grids of ``ganzoo directions``.

Latents are held in one of four spaces: ``z`` ``[N, z_dim]``, ``w+`` ``[N, num_ws, w_dim]`` (a ``w`` latent is
broadcast to every ws, so a layer-range edit can move some of them only: GANSpace Sec. 3.4 "layer-wise
edits", StyleGAN's coarse/middle/fine of ``sampling/style_mixing.py``), ``embedding`` (``z`` plus the class
code ``e`` of ``sampling/class_interp.py``, for class-mean directions of BigGAN-like generators) and ``codes``
(a VQ tokenizer's code grid, which only :func:`swap_region` edits).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class Base:
    """What an edit starts from: ``value`` in ``space`` (z, w+ or embedding), classes ``c`` and, for the
    embedding space, the fixed ``z``."""

    space: str
    value: torch.Tensor
    c: torch.Tensor | None = None
    z: torch.Tensor | None = None


def strengths(spec: str, steps: int) -> list[float]:
    """``"-3,3"`` and 7 steps -> 7 evenly spaced strengths from -3 to 3 (``"2"``: just 2)."""
    try:
        ends = [float(v) for v in spec.replace(" ", "").split(",") if v]
    except ValueError:
        ends = []
    if len(ends) not in (1, 2):
        raise ConfigError(f"--strength expects S or A,B (e.g. -3,3), got {spec!r}")
    if steps < 1 or (len(ends) == 2 and steps < 2):
        raise ConfigError(f"--steps must be at least 2 for a range of strengths, got {steps}")
    if len(ends) == 1:
        return ends
    return torch.linspace(ends[0], ends[1], steps, dtype=torch.float64).tolist()


def apply_direction(base: Base, direction: torch.Tensor, amounts: Sequence[float],
                    ws: Sequence[int] | None = None) -> torch.Tensor:
    """``base.value`` moved by ``amount * direction`` for each amount: ``[N, S, ...]``.

    ``direction`` is ``[D]`` in the base's space (``[w_dim]`` for ``w+``, added only to the ws in ``ws``;
    all of them when None). An amount of 0 returns the base exactly.
    """
    value = base.value
    a = torch.as_tensor(list(amounts), dtype=value.dtype, device=value.device)  # [S]
    d = direction.to(value)
    if base.space == "w+":
        step = torch.zeros(value.shape[1:], dtype=value.dtype, device=value.device)  # [num_ws, w_dim]
        step[list(range(value.shape[1])) if ws is None else list(ws)] = d
        return value[:, None] + a[None, :, None, None] * step[None, None]  # [N, S, num_ws, w_dim]
    if ws is not None:
        raise ConfigError(f"--layers only applies to W directions of style generators; this edit is in "
                          f"{base.space.upper()}")
    shape = (1, -1, *[1] * (value.dim() - 1))
    return value[:, None] + a.reshape(shape) * d.reshape(1, 1, *value.shape[1:])  # [N, S, ...]


@torch.no_grad()
def render(G: nn.Module, bundle: Any, modules: dict[str, nn.Module], space: str, values: torch.Tensor,
           c: torch.Tensor | None, z: torch.Tensor | None, opts: dict[str, Any], *, batch: int = 32) -> torch.Tensor:
    """Images ``[M, C, H, W]`` (float, CPU) of ``M`` latents in ``space`` (see the module docstring).

    ``z`` goes through ``bundle.sample`` (the family's own sampling), ``w+`` through ``G.synthesis`` with the
    constant noise, ``embedding`` through ``G(z, embedding=e)``; ``codes`` through the tokenizer's decoder.
    """
    dev = next(G.parameters()).device
    out = []
    for i in range(0, values.shape[0], batch):
        v = values[i:i + batch].to(dev)
        cc = None if c is None else c[i:i + batch].to(dev)
        if space == "z":
            img = bundle.sample(modules, z=v, c=cc, **opts)
        elif space == "w+":
            syn = {k: val for k, val in opts.items() if k in ("level", "alpha")}
            img = G.synthesis(v.to(torch.float32), noise_mode="const", **syn)
        elif space == "embedding":
            img = G(z[i:i + batch].to(dev), None, embedding=v, **opts)
        elif space == "codes":
            img = G.decode_indices(v.long()).clamp(-1, 1)
        else:
            raise ConfigError(f"cannot draw latents of space {space!r}")
        out.append(img.float().cpu())
    return torch.cat(out)


REGIONS = ("top", "bottom", "left", "right")


def region_mask(spec: str, shape: tuple[int, int]) -> torch.Tensor:
    """A boolean ``[h, w]`` mask of a code grid: a named half or ``X0,Y0,X1,Y1`` (x from the left, end
    exclusive, in code cells)."""
    h, w = shape
    mask = torch.zeros(h, w, dtype=torch.bool)
    name = spec.strip().lower()
    if name in REGIONS:
        sl = {"top": (slice(0, h // 2), slice(None)), "bottom": (slice(h // 2, h), slice(None)),
              "left": (slice(None), slice(0, w // 2)), "right": (slice(None), slice(w // 2, w))}[name]
        mask[sl] = True
        return mask
    m = re.fullmatch(r"(\d+),(\d+),(\d+),(\d+)", name.replace(" ", ""))
    if m is None:
        raise ConfigError(f"--region expects top, bottom, left, right or X0,Y0,X1,Y1 in code cells, got {spec!r}")
    x0, y0, x1, y1 = map(int, m.groups())
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ConfigError(f"--region {spec}: needs 0 <= X0 < X1 <= {w} and 0 <= Y0 < Y1 <= {h} (the code grid "
                          f"is {h}x{w})")
    mask[y0:y1, x0:x1] = True
    return mask


def swap_region(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``a`` ``[N, h, w]`` with the cells under ``mask`` copied from ``b`` (bit-exact code indices)."""
    if a.shape[1:] != b.shape[1:]:
        raise ConfigError(f"--swap: the code grids differ ({tuple(a.shape[1:])} vs {tuple(b.shape[1:])})")
    b = b.expand(a.shape[0], -1, -1) if b.shape[0] == 1 else b
    if b.shape[0] != a.shape[0]:
        raise ConfigError(f"--swap holds {b.shape[0]} code grids and --latent {a.shape[0]}; give one, or as many")
    return torch.where(mask[None], b, a)
