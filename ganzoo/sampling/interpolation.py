"""Latent interpolation videos: linear in W, spherical in Z.

StyleGAN (Karras et al., CVPR 2019, Sec. 4.2) measures perceptual path length with linear
interpolation in W and spherical interpolation (slerp) in Z, "the most appropriate way of
interpolating in our normalized input latent space" (Z is Gaussian, so latents concentrate on a
sphere and a straight line through it passes through improbable, low-norm latents). The same
choices make the smoothest interpolation videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from ..errors import ConfigError
from .truncation import is_style_generator, require_style

Space = Literal["w", "z"]
NoiseMode = Literal["const", "random", "none"]


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``a + t (b - a)``, exact at ``t = 0`` and ``t = 1``."""
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    return torch.lerp(a, b, t)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor, *, dot_threshold: float = 0.9995) -> torch.Tensor:
    """Spherical linear interpolation along the last dimension (Shoemake 1985; StyleGAN Sec. 4.2).

    ``slerp = sin((1-t) omega) / sin(omega) * a + sin(t omega) / sin(omega) * b`` with ``omega``
    the angle between ``a`` and ``b``. Equal-norm inputs stay on their sphere; the endpoints are
    returned exactly. Near-parallel or anti-parallel inputs (``|cos omega| > dot_threshold``, i.e.
    within 1.8 degrees by default) fall back to :func:`lerp`: there ``sin(omega)`` is ~0 and the
    two huge coefficients would cancel catastrophically (or divide by zero); lerp differs from the
    arc by a relative ``omega^2 / 8`` there, and anti-parallel inputs have no unique arc anyway.

    Args:
        a, b: ``[..., D]`` latents.
        t: a float, or a tensor broadcastable to ``a[..., :1]`` (e.g. ``[T, 1]`` against ``[1, D]``
            gives ``[T, D]``).
    """
    dtype = torch.promote_types(a.dtype, torch.float32)
    a32, b32 = a.to(dtype), b.to(dtype)
    t = torch.as_tensor(t, dtype=dtype, device=a.device)
    if t.dim() == 0:
        t = t.reshape(1)
    a_unit = a32 / a32.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b_unit = b32 / b32.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (a_unit * b_unit).sum(-1, keepdim=True).clamp(-1.0, 1.0)  # [..., 1]
    omega = torch.acos(cos)
    sin = torch.sin(omega)
    parallel = cos.abs() > dot_threshold
    sin = torch.where(parallel, torch.ones_like(sin), sin)  # keeps the unused branch finite
    out = (torch.sin((1 - t) * omega) / sin) * a32 + (torch.sin(t * omega) / sin) * b32
    out = torch.where(parallel, torch.lerp(a32, b32, t), out)
    return out.to(torch.promote_types(a.dtype, b.dtype))


def seed_latents(
    seeds: Sequence[int], z_dim: int, *, c_dim: int = 0, label: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One latent per seed, drawn on the CPU so a seed gives the same image on every device.

    Returns ``z [S, z_dim]`` and class indices ``c [S]`` (``label`` everywhere, or drawn from the
    seed after ``z``) or None for unconditional models.
    """
    zs, cs = [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        zs.append(torch.randn(1, z_dim, generator=gen))
        if c_dim > 0:
            cs.append(torch.full((1,), label) if label is not None else torch.randint(0, c_dim, (1,), generator=gen))
    return torch.cat(zs), (torch.cat(cs) if cs else None)


def expand_labels(c: int | torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor | None:
    """One class index (int or one-element tensor) repeated ``n`` times, or None."""
    if c is None:
        return None
    c = torch.as_tensor(c, dtype=torch.long).reshape(-1)
    if c.numel() != 1:
        raise ValueError(f"pass one class index for the whole interpolation, got {c.numel()}")
    return c.expand(n).to(device)


def _device(G: nn.Module) -> torch.device:
    p = next(G.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _segments(points: torch.Tensor, steps: int, fn) -> torch.Tensor:
    """Interpolate consecutive rows of ``points [S, ...]`` with ``steps`` intervals each.

    Returns ``[(S - 1) * steps + 1, ...]``: every keyframe appears once, the last one at the end.
    """
    t = torch.arange(steps, dtype=torch.float32, device=points.device) / steps  # [steps], 0 .. 1 - 1/steps
    t = t.reshape(-1, *([1] * (points.dim() - 1)))  # [steps, 1, ...]
    frames = [fn(points[i : i + 1], points[i + 1 : i + 2], t) for i in range(points.shape[0] - 1)]
    return torch.cat(frames + [points[-1:]])


@torch.no_grad()
def interpolate(
    G: nn.Module,
    *,
    seeds: Sequence[int],
    steps: int,
    space: Space = "w",
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    c: int | torch.Tensor | None = None,
    noise_mode: NoiseMode = "const",
    batch: int = 32,
    **opts: Any,
) -> torch.Tensor:
    """Frames of a path through the latents of ``seeds`` (keyframes), ``[T, C, H, W]`` in [-1, 1].

    ``T = (len(seeds) - 1) * steps + 1``: ``steps`` intervals between consecutive seeds, the first
    frame is the first seed's image and the last frame the last seed's.

    ``space="w"`` maps each seed's ``z`` to ``ws`` (truncated) and lerps in W (StyleGAN Sec. 4.2);
    it needs a style-based generator. ``space="z"`` slerps in Z, then generates; it works for any
    GAN (``G(z, c, **opts)``), and style generators also get truncation and ``noise_mode``.
    ``opts`` go to ``G.synthesis`` (W) or ``G`` (Z), e.g. the progressive ``level``/``alpha``.
    """
    if len(seeds) < 2:
        raise ConfigError(f"interpolation needs at least two seeds, got {list(seeds)}")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if space not in ("w", "z"):
        raise ConfigError(f"unknown interpolation space {space!r}; use 'w' or 'z'")
    style = is_style_generator(G)
    if space == "w":
        require_style(G, "interpolation in W (space='w')")
    elif not style and (truncation_psi != 1 or truncation_cutoff is not None):
        require_style(G, "truncation (psi/cutoff)")
    device = _device(G)
    z, _ = seed_latents(seeds, int(G.z_dim))
    z = z.to(device)  # [S, z_dim]
    if space == "w":
        ws = G.mapping(z, expand_labels(c, len(seeds), device),
                       truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)  # [S, num_ws, w_dim]
        frames = _segments(ws, steps, lerp)  # [T, num_ws, w_dim]
        chunks = [G.synthesis(w, noise_mode=noise_mode, **opts) for w in frames.split(batch)]
    else:
        frames = _segments(z, steps, slerp)  # [T, z_dim]
        kwargs = dict(opts)
        if style:
            kwargs.update(truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, noise_mode=noise_mode)
        chunks = [G(zz, expand_labels(c, zz.shape[0], device), **kwargs) for zz in frames.split(batch)]
    return torch.cat(chunks)
