"""Minibatch standard deviation (ProGAN, Karras et al. 2018, Sec. 3; StyleGAN2 formulation)."""

from __future__ import annotations

import torch
from torch import nn


class MinibatchStdDev(nn.Module):
    """Append the within-group feature standard deviation as extra feature maps.

    The batch is split into groups of ``G = min(group_size, N)`` samples and the channels into
    ``num_channels`` (F) parts. For each group and part the std over the group members is averaged
    over channels and pixels, giving one value that is tiled over ``H x W`` and appended to every
    member of the group: output ``[N, C + F, H, W]``.

    As in the official reshape ``[G, N/G, ...]``, group membership is strided: samples ``i`` and
    ``j`` share a group when ``i % (N / G) == j % (N / G)``. The variance is the biased (1/G) one
    and ``std = sqrt(var + eps)``.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8):
        super().__init__()
        if group_size < 1 or num_channels < 1:
            raise ValueError("group_size and num_channels must be >= 1")
        self.group_size = group_size
        self.num_channels = num_channels
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        f = self.num_channels
        if n % g != 0:
            raise ValueError(
                f"MinibatchStdDev: batch size {n} is not divisible by the group size {g}; "
                f"use a batch size that is a multiple of {self.group_size} (or smaller than it)"
            )
        if c % f != 0:
            raise ValueError(f"MinibatchStdDev: {c} channels are not divisible by num_channels={f}")
        y = x.reshape(g, n // g, f, c // f, h, w)  # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)  # [G, n, F, c, H, W]
        y = (y.square().mean(dim=0) + self.eps).sqrt()  # [n, F, c, H, W]
        y = y.mean(dim=(2, 3, 4))  # [n, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y.to(x.dtype)], dim=1)  # [N, C + F, H, W]

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
