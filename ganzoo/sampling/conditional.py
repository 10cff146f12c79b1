"""Seeded latents and class layouts: one row per class, truncation sweeps.

Latents come from seeds, drawn on the CPU so a seed gives the same image on every device:

- ``seeds=[s, ...]``: one latent per seed from ``torch.Generator().manual_seed(s)``: ``z`` first,
  then (conditional models without a given class) the class, as
  :func:`ganzoo.sampling.interpolation.seed_latents` does;
- ``n=N, seed=S``: ``N`` latents in a row from one generator seeded with ``S``, then their classes.

With a truncation threshold the out-of-range entries are then resampled from the same generator
(:func:`~ganzoo.sampling.truncation.resample_out_of_range`), so the untruncated draws and the
classes do not depend on the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .truncation import resample_out_of_range


def _labels(n: int, classes: Sequence[int] | None, c_dim: int, gen: torch.Generator) -> torch.Tensor | None:
    if c_dim <= 0:
        return None
    if classes:
        return torch.as_tensor([classes[i % len(classes)] for i in range(n)], dtype=torch.long)
    return torch.randint(0, c_dim, (n,), generator=gen)


def draw_latents(
    z_dim: int,
    *,
    seeds: Sequence[int] | None = None,
    n: int | None = None,
    seed: int = 0,
    c_dim: int = 0,
    classes: Sequence[int] | None = None,
    thresholds: Sequence[float | None] = (None,),
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Seeded latents at each truncation threshold and their class indices.

    Returns ``([z_T [N, z_dim] for T in thresholds], c [N] or None)``. ``None`` in ``thresholds``
    means no truncation. ``classes``: None draws a class per latent (conditional models), a list
    gives latent ``i`` the class ``classes[i % len(classes)]``. Every ``z_T`` starts from the same
    normal draws; see the module docstring.
    """
    if (seeds is None) == (n is None):
        raise ValueError("pass either seeds or n")
    gens = ([torch.Generator().manual_seed(int(s)) for s in seeds] if seeds is not None
            else [torch.Generator().manual_seed(int(seed))])
    counts = [1] * len(gens) if seeds is not None else [int(n)]
    base, labels, states = [], [], []
    start = 0
    for gen, m in zip(gens, counts):
        base.append(torch.randn(m, z_dim, generator=gen))  # [m, z_dim]
        cls = None if classes is None else [classes[(start + i) % len(classes)] for i in range(m)]
        labels.append(_labels(m, cls, c_dim, gen))
        states.append(gen.get_state())
        start += m
    zs = []
    for t in thresholds:
        out = []
        for z0, gen, state in zip(base, gens, states):
            if t is None:
                out.append(z0)
                continue
            gen.set_state(state)  # the same resampling stream at every threshold
            out.append(resample_out_of_range(z0, float(t), gen))
        zs.append(torch.cat(out))
    c = torch.cat(labels) if c_dim > 0 else None
    return zs, c


def class_grid_shape(n: int, c_dim: int) -> tuple[int, int]:
    """``(rows, cols)`` of a per-class grid of at most ``n`` images; row ``k`` shows class ``k``.

    Columns: ``n // c_dim`` (every class fits), kept between ``round(sqrt(n) / 2)`` (enough samples
    per class to judge variety) and ``2 ceil(sqrt(n))`` (not a strip); rows: as many classes as
    then fit, at most ``c_dim``: e.g. 64 images of 10 classes -> 10 x 6, of 1000 classes -> the
    first 16 classes x 4, 16 images of 10 classes -> the first 8 classes x 2.
    """
    if n < 1 or c_dim < 1:
        raise ValueError(f"class grid needs n >= 1 and c_dim >= 1, got {n}, {c_dim}")
    lo = max(1, round(math.sqrt(n) / 2))
    hi = 2 * math.ceil(math.sqrt(n))
    cols = min(max(n // c_dim, lo), hi, n)
    return min(c_dim, n // cols), cols


def class_rows(z: torch.Tensor, classes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents of a grid with one row per class and one column per latent of ``z [cols, z_dim]``.

    Returns ``z [R * cols, z_dim]`` (the same ``z`` in every row of a column) and ``c [R * cols]``
    (row ``r`` is ``classes[r]``), row-major: save with ``nrow=cols``.
    """
    rows, cols = len(classes), z.shape[0]
    c = torch.as_tensor(list(classes), dtype=torch.long).repeat_interleave(cols)  # [R * cols]
    return z.repeat(rows, 1), c  # [R * cols, z_dim]
