"""The trainer's sample grids: fixed latents (row k = class k), drawn without touching the training RNG."""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..bundle import Bundle
from ..sampling.conditional import class_grid_shape
from ..sampling.images import save_grid


def grid_reals(dataset: Any, n: int, seed: int) -> torch.Tensor:
    """``n`` training images picked by ``seed`` (the reals grid; an autoencoder's inputs to reconstruct)."""
    n = min(n, len(dataset))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=g)[:n].tolist()
    return torch.stack([dataset[i][0] for i in idx])


def fixed_latents(bundle: Bundle, dataset: Any, n: int, seed: int, c_dim: int) -> dict[str, Any]:
    """The grid's inputs, the same at every grid of a run: ``z`` and ``c`` (or ``reals`` to reconstruct)."""
    g = torch.Generator().manual_seed(seed)
    z_dim = int(bundle.info.get("z_dim", 0))
    z = torch.randn(n, z_dim, generator=g) if z_dim else None
    c, nrow = None, None
    if c_dim > 0:  # row k = class k (the first classes if not all fit), one z per column
        rows, nrow = class_grid_shape(n, c_dim)
        c = torch.arange(rows).repeat_interleave(nrow)  # [rows * nrow]
        z = z[:nrow].repeat(rows, 1) if z is not None else None  # [rows * nrow, z_dim]
    # Autoencoders reconstruct fixed real images instead of drawing from latents.
    reals = grid_reals(dataset, n, seed) if bundle.info.get("kind") == "autoencoder" else None
    return {"z": z, "c": c, "reals": reals, "nrow": nrow}


@torch.no_grad()
def draw_grid(bundle: Bundle, modules: Mapping[str, nn.Module], latents: Mapping[str, Any], *, n: int,
              batch_size: int, seed: int, device: torch.device, opts: Mapping[str, Any], path: Path) -> Path:
    """Sample the grid in eval mode and save it to ``path``; the global RNG streams are left as they were."""
    was_training = {k: m.training for k, m in modules.items()}
    for m in modules.values():
        m.eval()
    # Sampling must not disturb the training RNG stream (resume exactness).
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        chunks = []
        gen = torch.Generator().manual_seed(seed)  # samplers without latents (code priors)
        reals = latents.get("reals")
        total = reals.shape[0] if reals is not None else n
        total = latents["c"].shape[0] if latents["c"] is not None and reals is None else total
        for i in range(0, total, batch_size):
            z = latents["z"][i : i + batch_size] if latents["z"] is not None else None
            c = latents["c"][i : i + batch_size] if latents["c"] is not None else None
            k = z.shape[0] if z is not None else min(batch_size, total - i)
            extra = {"reals": reals[i : i + k]} if reals is not None else {}
            chunks.append(bundle.sample(modules, k, z=z, c=c, generator=gen, **extra, **opts).float().cpu())
        imgs = torch.cat(chunks)
        nrow = latents["nrow"]
        if reals is not None:  # each real image beside its reconstruction
            imgs = torch.stack([reals.float(), imgs], dim=1).flatten(0, 1)  # [2n, C, H, W]
            nrow = 2 * max(1, math.ceil(math.sqrt(reals.shape[0] / 2)))
    for k, m in modules.items():
        m.train(was_training[k])
    save_grid(imgs, path, nrow=nrow)
    return path
