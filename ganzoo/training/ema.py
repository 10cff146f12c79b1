"""Exponential moving average of a module's weights (Karras et al. 2018, Sec. 5; StyleGAN2-ADA)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` in eval mode, to be updated by :func:`update_ema`."""
    ema = copy.deepcopy(module).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, module: nn.Module, beta: float) -> None:
    """``ema = beta * ema + (1 - beta) * module`` for parameters; buffers are copied.

    Buffers (BatchNorm statistics, StyleGAN's tracked ``w_avg``) are themselves running
    averages, so they are copied as StyleGAN2-ADA does.
    """
    for p_ema, p in zip(ema.parameters(), module.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(ema.buffers(), module.buffers()):
        b_ema.copy_(b)
