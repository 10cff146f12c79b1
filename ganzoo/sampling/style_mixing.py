"""Style-mixing grids (Karras et al., StyleGAN, CVPR 2019, Sec. 3.1 and Fig. 3).

Each synthesis layer reads its own ``w`` (``ws[:, i]``). Taking a row source A's ``ws`` and
copying a column source B's ``ws`` into a range of layers shows what those layers control:

- ``coarse``: ws 0-3, resolutions 4x4-8x8 (pose, face shape, glasses),
- ``middle``: ws 4-7, resolutions 16x16-32x32 (features, hair style, eyes open/closed),
- ``fine``:   ws 8-end, resolutions 64x64 up to full (colour scheme, micro-structure).

Two ws per resolution, as in StyleGAN/StyleGAN2 (``num_ws = 2 log2(resolution) - 2``). Ranges are
clipped to ``num_ws``: a 32x32 model has 8 ws, so ``fine`` does not exist there (pick an explicit
range instead); a 16x16 model has 6, so ``middle`` is ws 4-5.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .interpolation import NoiseMode, expand_labels, seed_latents
from .truncation import require_style

CROSSOVERS: dict[str, tuple[int, int | None]] = {"coarse": (0, 4), "middle": (4, 8), "fine": (8, None)}

Crossover = str | range | Sequence[int]


def crossover_layers(crossover: Crossover, num_ws: int) -> list[int]:
    """The ws indices that come from the column source.

    ``crossover``: ``coarse`` / ``middle`` / ``fine`` (see the module docstring), an inclusive
    range string ``"a-b"`` or single index ``"a"``, a ``range`` or a list of indices.
    """
    if isinstance(crossover, str):
        name = crossover.strip().lower()
        if name in CROSSOVERS:
            start, stop = CROSSOVERS[name]
            layers = list(range(start, min(num_ws, stop if stop is not None else num_ws)))
            if not layers:
                raise ConfigError(
                    f"crossover {name!r} (ws {start}{'+' if stop is None else f'-{stop - 1}'}) does not exist in this "
                    f"model: it has only {num_ws} ws. Use coarse, or an explicit range such as 2-{num_ws - 1}"
                )
            return layers
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", name)
        if m is None:
            raise ConfigError(
                f"unknown crossover {crossover!r}: use coarse, middle, fine or a layer range such as 0-3 (inclusive)"
            )
        start = int(m.group(1))
        stop = int(m.group(2)) if m.group(2) is not None else start
        if stop < start:
            raise ConfigError(f"crossover range {crossover!r} is empty: write it low-high, e.g. {stop}-{start}")
        layers = list(range(start, stop + 1))
    else:
        layers = [int(i) for i in crossover]
    bad = [i for i in layers if not 0 <= i < num_ws]
    if bad or not layers:
        raise ConfigError(f"crossover layers {bad or layers} are outside this model's ws 0-{num_ws - 1}")
    return sorted(set(layers))


@torch.no_grad()
def style_mixing_grid(
    G: nn.Module,
    *,
    row_seeds: Sequence[int],
    col_seeds: Sequence[int],
    crossover: Crossover = "coarse",
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    c: int | torch.Tensor | None = None,
    noise_mode: NoiseMode = "const",
    batch: int = 32,
    **opts: Any,
) -> torch.Tensor:
    """A ``(rows + 1) x (cols + 1)`` style-mixing grid, row-major ``[(R+1)*(C+1), C, H, W]`` (Fig. 3).

    Top-left is blank (white); the first row holds the column sources B_j, the first column the row
    sources A_i, and cell (i, j) is A_i's ws with B_j's ws copied into the ``crossover`` layers.
    Save it with ``save_grid(grid, path, nrow=len(col_seeds) + 1)``.
    """
    require_style(G, "style mixing")
    if not row_seeds or not col_seeds:
        raise ConfigError("style mixing needs at least one row seed and one column seed")
    layers = crossover_layers(crossover, int(G.num_ws))
    device = next(G.parameters()).device
    seeds = list(dict.fromkeys([*row_seeds, *col_seeds]))  # unique, in order
    z, _ = seed_latents(seeds, int(G.z_dim))
    ws = G.mapping(z.to(device), expand_labels(c, len(seeds), device),
                   truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)  # [S, num_ws, w_dim]
    index = {s: i for i, s in enumerate(seeds)}
    ws_a = ws[[index[s] for s in row_seeds]]  # [R, num_ws, w_dim]
    ws_b = ws[[index[s] for s in col_seeds]]  # [C, num_ws, w_dim]
    mixed = ws_a[:, None].repeat(1, len(col_seeds), 1, 1)  # [R, C, num_ws, w_dim]
    mixed[:, :, layers] = ws_b[None, :, layers].expand(len(row_seeds), -1, -1, -1)
    all_ws = torch.cat([ws_b, torch.cat([ws_a[:, None], mixed], dim=1).flatten(0, 1)])  # header row, then rows
    imgs = torch.cat([G.synthesis(w, noise_mode=noise_mode, **opts) for w in all_ws.split(batch)])
    blank = torch.ones_like(imgs[:1])  # white in [-1, 1]
    return torch.cat([blank, imgs])  # [(R+1)*(C+1), C, H, W]
