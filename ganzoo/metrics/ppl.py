"""Perceptual path length (Karras et al. 2019, "A Style-Based Generator Architecture for Generative
Adversarial Networks", Sec. 3.1 / Eqs. 2-3; used as in StyleGAN2 Sec. 4.2).

    l = E[ d(g(lerp(w0, w1, t)), g(lerp(w0, w1, t + eps))) / eps^2 ]

in W (linear interpolation), or in Z with spherical interpolation and the mapping applied after
interpolating. ``sampling="end"`` takes t = 0 (path endpoints, StyleGAN2's choice), ``"full"`` draws
t ~ U[0, 1]. Like the official code, distances outside the 1st/99th percentiles are discarded before
averaging, images are optionally centre-cropped (faces) and box-downsampled to at most 256x256.

The generator is abstract: pass ``mapping(z, c) -> w`` and ``synthesis(w) -> img``. ``synthesis`` must be
deterministic in ``w`` (constant noise), otherwise the two images of a pair differ by noise, not by eps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganzoo.errors import ConfigError

__all__ = ["perceptual_path_length", "ppl_distances", "slerp", "trimmed_mean"]

MappingFn = Callable[[Tensor, Tensor | None], Tensor]
SynthesisFn = Callable[[Tensor], Tensor]
DistanceFn = Callable[[Tensor, Tensor], Tensor]


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation of ``[N, D]`` directions; returns unit vectors (as the official code).

    ``t`` is ``[N, 1]``; it may exceed 1 slightly (t + eps), which continues along the great circle.
    """
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    angle = t * torch.acos(cos)
    ortho = b - cos * a  # component of b orthogonal to a
    ortho = ortho / ortho.norm(dim=-1, keepdim=True)
    out = a * torch.cos(angle) + ortho * torch.sin(angle)
    return out / out.norm(dim=-1, keepdim=True)


def trimmed_mean(values: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> float:
    """Mean of the values within the [lo, hi] percentiles (lower/higher sample, as the official code)."""
    v = np.asarray(values, dtype=np.float64)
    lo = np.percentile(v, lo_pct, method="lower")
    hi = np.percentile(v, hi_pct, method="higher")
    return float(v[(v >= lo) & (v <= hi)].mean())


def _broadcast_t(t: Tensor, like: Tensor) -> Tensor:
    return t.reshape([-1] + [1] * (like.ndim - 1))  # [N, 1, ...] for [N, D] or [N, num_ws, D]


@torch.no_grad()
def ppl_distances(
    mapping: MappingFn,
    synthesis: SynthesisFn,
    distance_fn: DistanceFn,
    *,
    z_dim: int,
    num_samples: int,
    epsilon: float = 1e-4,
    space: str = "w",
    sampling: str = "end",
    crop: bool = False,
    batch_size: int = 16,
    seed: int = 0,
    c_fn: Callable[[int], Tensor | None] | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Per-sample scaled distances ``d / eps^2``, ``[num_samples]`` (before outlier rejection).

    Latents and t come from a CPU ``torch.Generator`` seeded with ``seed`` (same values on every
    device). ``c_fn(n)`` supplies labels for conditional generators (None: unconditional).
    """
    if space not in ("w", "z"):
        raise ConfigError(f"space must be 'w' or 'z', got {space!r}")
    if sampling not in ("end", "full"):
        raise ConfigError(f"sampling must be 'end' or 'full', got {sampling!r}")
    if num_samples < 1 or batch_size < 1 or epsilon <= 0:
        raise ConfigError("num_samples and batch_size must be >= 1 and epsilon > 0")
    gen = torch.Generator().manual_seed(seed)
    out: list[Tensor] = []
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        t = torch.rand(n, generator=gen) * (1.0 if sampling == "full" else 0.0)
        z0 = torch.randn(n, z_dim, generator=gen)
        z1 = torch.randn(n, z_dim, generator=gen)
        t, z0, z1 = t.to(device), z0.to(device), z1.to(device)
        c = c_fn(n) if c_fn is not None else None
        c2 = torch.cat([c, c]) if c is not None else None
        if space == "w":
            w0, w1 = mapping(torch.cat([z0, z1]), c2).chunk(2)
            tb = _broadcast_t(t, w0).to(w0.dtype)
            wt0 = torch.lerp(w0, w1, tb)
            wt1 = torch.lerp(w0, w1, tb + epsilon)
        else:
            zt0 = slerp(z0, z1, t.unsqueeze(1))
            zt1 = slerp(z0, z1, t.unsqueeze(1) + epsilon)
            wt0, wt1 = mapping(torch.cat([zt0, zt1]), c2).chunk(2)
        img = synthesis(torch.cat([wt0, wt1]))  # [2n, C, H, W]
        if crop:
            if img.shape[2] != img.shape[3]:
                raise ConfigError(f"crop=True needs square images, got {tuple(img.shape[2:])}")
            q = img.shape[2] // 8
            img = img[:, :, q * 3 : q * 7, q * 2 : q * 6]  # face-centred crop of the official code
        factor = img.shape[2] // 256
        if factor > 1:
            img = F.avg_pool2d(img, factor)  # [2n, C, H / factor, W / factor]
        img0, img1 = img.chunk(2)
        dist = distance_fn(img0, img1).reshape(n).double() / epsilon**2
        out.append(dist.cpu())
        done += n
    return torch.cat(out).numpy()


def perceptual_path_length(
    mapping: MappingFn,
    synthesis: SynthesisFn,
    distance_fn: DistanceFn,
    *,
    z_dim: int,
    num_samples: int = 50_000,
    epsilon: float = 1e-4,
    space: str = "w",
    sampling: str = "end",
    crop: bool = False,
    batch_size: int = 16,
    seed: int = 0,
    c_fn: Callable[[int], Tensor | None] | None = None,
    device: torch.device | str = "cpu",
) -> float:
    """PPL: mean of :func:`ppl_distances` after discarding values outside the 1st/99th percentiles.

    ``distance_fn`` is LPIPS-VGG for the paper's numbers (see
    :func:`ganzoo.metrics.lpips_distance.lpips_distance`); any ``(img0, img1) -> [N]`` works.
    """
    dist = ppl_distances(
        mapping,
        synthesis,
        distance_fn,
        z_dim=z_dim,
        num_samples=num_samples,
        epsilon=epsilon,
        space=space,
        sampling=sampling,
        crop=crop,
        batch_size=batch_size,
        seed=seed,
        c_fn=c_fn,
        device=device,
    )
    return trimmed_mean(dist)
