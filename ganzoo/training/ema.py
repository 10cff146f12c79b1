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
    averages, so they are copied as StyleGAN2-ADA does. The update is StyleGAN2-ADA's
    ``p.lerp(p_ema, beta)`` (same rounding), done with multi-tensor ``foreach`` kernels: a handful
    of launches per step instead of two per tensor.
    """
    p_ema = list(ema.parameters())
    if p_ema:
        new = torch._foreach_lerp([p.detach() for p in module.parameters()], p_ema, beta)
        torch._foreach_copy_(p_ema, new)
    b_ema = list(ema.buffers())
    if b_ema:
        torch._foreach_copy_(b_ema, list(module.buffers()))
