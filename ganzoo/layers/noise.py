"""Per-pixel noise inputs of the style-based generators (StyleGAN Sec. 2, StyleGAN2 Sec. 2)."""

from __future__ import annotations

import torch
from torch import nn

from ..training import distributed as dist

NOISE_MODES = ("random", "const", "none")


class NoiseInjection(nn.Module):
    """Add single-channel Gaussian noise scaled by a learned strength: ``x + strength * noise``.

    ``channels`` given: one strength per channel, ``[C]`` (StyleGAN, Karras et al. 2019, Sec. 2:
    "learned per-channel scaling factors"). ``channels=None``: one scalar strength (StyleGAN2).
    The strength starts at 0, so the layer is the identity at initialisation.

    ``resolution`` registers a fixed noise image ``noise_const`` ``[1, 1, R, R]`` (saved with the
    model) for ``mode="const"``, used for reproducible samples.
    """

    noise_const: torch.Tensor

    def __init__(self, channels: int | None = None, *, resolution: int | None = None):
        super().__init__()
        self.channels = channels
        self.resolution = resolution
        self.strength = nn.Parameter(torch.zeros([] if channels is None else [channels]))
        if resolution is not None:
            self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None, *, mode: str = "random") -> torch.Tensor:
        """``x`` ``[N, C, H, W]``. An explicit ``noise`` (broadcastable to ``x``) overrides ``mode``.

        ``mode``: ``"random"`` draws fresh ``[N, 1, H, W]`` N(0, 1) noise on ``x``'s device,
        ``"const"`` uses ``noise_const``, ``"none"`` adds nothing.
        """
        if mode not in NOISE_MODES:
            raise ValueError(f"unknown noise mode {mode!r}; use one of {NOISE_MODES}")
        if noise is None:
            if mode == "none":
                return x
            n, _, h, w = x.shape
            if mode == "random":
                noise = dist.randn(n, 1, h, w, device=x.device, dtype=x.dtype)  # rank's rows under torchrun
            else:
                if self.resolution is None:
                    raise ValueError("mode='const' needs NoiseInjection(resolution=...)")
                if (h, w) != (self.resolution, self.resolution):
                    raise ValueError(f"const noise is {self.resolution}x{self.resolution}, input is {h}x{w}")
                noise = self.noise_const.to(x.dtype)
        strength = self.strength.to(x.dtype)
        if self.channels is not None:
            strength = strength.reshape(1, -1, 1, 1)  # [1, C, 1, 1]
        return x + noise * strength

    def extra_repr(self) -> str:
        return f"channels={self.channels}, resolution={self.resolution}"
