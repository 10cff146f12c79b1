"""The truncation trick in W (Karras et al., StyleGAN, CVPR 2019, Sec. 4 and App. B).

``w' = w_avg + psi * (w - w_avg)``: ``psi < 1`` pulls every latent towards the running mean of
the mapping network's output, trading variety for quality; ``psi = 0`` gives the "mean image",
negative ``psi`` its "opposite". ``cutoff`` applies it only to the first ``cutoff`` of the
``num_ws`` style inputs (the coarse resolutions), as StyleGAN's ``truncation_cutoff`` does.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

STYLE_ATTRS = ("mapping", "synthesis", "w_avg", "num_ws", "w_dim")


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    """Lerp ``ws`` towards ``w_avg`` by ``1 - psi`` (StyleGAN Sec. 4, App. B).

    Args:
        ws: ``[N, num_ws, w_dim]`` per-layer latents (or ``[N, w_dim]``, then ``cutoff`` must be None).
        w_avg: ``[w_dim]`` tracked mean of the mapping network's output.
        psi: truncation strength; 1 leaves ``ws`` unchanged, 0 collapses it to ``w_avg``.
        cutoff: truncate only the layers ``< cutoff``; None truncates every layer.
    """
    if psi == 1 or cutoff == 0:
        return ws
    w_avg = w_avg.to(device=ws.device, dtype=ws.dtype)
    out = torch.lerp(w_avg.expand_as(ws), ws, psi)  # w_avg + psi * (ws - w_avg)
    if cutoff is None:
        return out
    if ws.dim() != 3:
        raise ValueError(f"truncation cutoff needs per-layer ws [N, num_ws, w_dim], got shape {tuple(ws.shape)}")
    layer = torch.arange(ws.shape[1], device=ws.device)[None, :, None]  # [1, num_ws, 1]
    return torch.where(layer < cutoff, out, ws)


def is_style_generator(G: nn.Module) -> bool:
    """True for generators with a mapping network and a W space (StyleGAN, StyleGAN2)."""
    G = getattr(G, "module", G)  # DistributedDataParallel wrapper
    return all(hasattr(G, attr) for attr in STYLE_ATTRS)


def require_style(G: nn.Module | None, what: str, hint: str = "") -> None:
    """Raise a :class:`ConfigError` saying that ``what`` needs a style-based generator (and what to do)."""
    if G is None or not is_style_generator(G):
        name = "no generator G" if G is None else type(getattr(G, "module", G)).__name__
        raise ConfigError(
            f"{what} needs a style-based generator (stylegan, stylegan2); this model's generator is "
            f"{name}, which has no mapping network / W space" + (f". {hint}" if hint else "")
        )
