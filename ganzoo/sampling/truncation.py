"""Truncation tricks: in W (StyleGAN) and in Z (BigGAN).

StyleGAN (Karras et al., CVPR 2019, Sec. 4 and App. B):

``w' = w_avg + psi * (w - w_avg)``: ``psi < 1`` pulls every latent towards the running mean of
the mapping network's output, trading variety for quality; ``psi = 0`` gives the "mean image",
negative ``psi`` its "opposite". ``cutoff`` applies it only to the first ``cutoff`` of the
``num_ws`` style inputs (the coarse resolutions), as StyleGAN's ``truncation_cutoff`` does.

BigGAN (Brock et al., ICLR 2019, Sec. 3.1): draw ``z`` from a normal truncated to ``[-T, T]`` by
resampling the values outside (:func:`truncated_normal`); smaller ``T`` trades variety for
fidelity, for any GAN (no W space needed).
"""

from __future__ import annotations

import math

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


# -- BigGAN's truncation in Z ----------------------------------------------------------------------
def resample_out_of_range(z: torch.Tensor, threshold: float, generator: torch.Generator | None = None,
                          *, max_rounds: int = 1_000_000) -> torch.Tensor:
    """Replace every entry of ``z`` with ``|z| > threshold`` by a fresh normal draw until none is left.

    The BigGAN truncation trick (Brock et al., ICLR 2019, Sec. 3.1): "sampling z from a truncated
    normal (where values which fall outside a range are resampled to fall inside that range)".
    Each round draws a full ``z``-shaped tensor from ``generator`` and uses it only where an entry is
    still out of range. So every entry sees the same sequence of candidates ``z, r1, r2, ...`` at
    every threshold and takes the first one inside it: the same seed gives the same underlying
    draws at every threshold, and wherever the result at threshold ``T`` already lies inside a
    smaller ``T'`` the result at ``T'`` is the same value (what makes a truncation sweep show one
    latent at several thresholds). Entries inside the range are kept as they are.
    """
    if not threshold > 0:
        raise ConfigError(f"the truncation threshold must be > 0 (BigGAN uses 2 down to 0.04), got {threshold}")
    out = z.clone()
    bad = out.abs() > threshold
    rounds = 0
    while bool(bad.any()):
        rounds += 1
        if rounds > max_rounds:
            raise ConfigError(f"truncation threshold {threshold} is too small to sample by resampling; use >= 0.01")
        candidate = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        out = torch.where(bad, candidate, out)
        bad = out.abs() > threshold
    return out


def truncated_normal(shape: tuple[int, ...] | torch.Size, threshold: float | None,
                     generator: torch.Generator | None = None, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``N(0, 1)`` draws restricted to ``[-threshold, threshold]`` by resampling (BigGAN Sec. 3.1).

    The first round is ``torch.randn(shape, generator=generator)``, so ``threshold=None`` (or
    ``inf``) returns exactly the untruncated latents of the same seed. Draws on the generator's
    device (a CPU generator: the same latents on every device).
    """
    device = generator.device if generator is not None else None
    z = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)
    if threshold is None or threshold == float("inf"):
        return z
    return resample_out_of_range(z, threshold, generator)


def truncated_normal_std(threshold: float) -> float:
    """The standard deviation of ``N(0, 1)`` truncated to ``[-T, T]``: ``sqrt(1 - 2 T phi(T) / (2 Phi(T) - 1))``."""
    t = float(threshold)
    pdf = math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    mass = math.erf(t / math.sqrt(2))  # 2 Phi(T) - 1
    return math.sqrt(max(1.0 - 2.0 * t * pdf / mass, 0.0))
