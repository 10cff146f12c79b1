"""BigGAN's "standing statistics" for BatchNorm at sampling time (Brock et al. 2019, App. C.1;
BigGAN-PyTorch ``utils.accumulate_standing_stats``).

A generator with BatchNorm normally samples with the running averages collected during training.
Standing statistics replace them by the plain average of the batch statistics of ``N`` fresh
forward passes of the (final, often EMA) generator, which the paper found to improve samples,
especially with truncation. Here: every BatchNorm's running mean and variance are reset, its
momentum is set to ``None`` (PyTorch's cumulative average: after ``k`` passes the buffers hold the
mean of the ``k`` batch means and of the ``k`` unbiased batch variances), ``N`` passes run with
only the BatchNorm layers in training mode, and the generator is left in eval mode.

Differences from the official code, neither of which changes the statistics' meaning:
BigGAN-PyTorch averages biased batch variances (its ``myBN``) and runs the whole generator in
training mode, which also advances the spectral-norm power iteration; here the variance is
PyTorch's unbiased one (as its ordinary running variance) and the spectral-norm state is left alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorm_layers(module: nn.Module) -> list[_BatchNorm]:
    """Every BatchNorm layer (conditional BNs hold one) that tracks running statistics."""
    return [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def accumulate_standing_stats(
    G: nn.Module,
    *,
    num_accumulations: int = 16,
    batch_size: int = 64,
    sample_z: Callable[[int], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Replace ``G``'s BatchNorm running statistics by standing statistics; returns ``G`` in eval mode.

    Args:
        G: a ganzoo generator, ``G(z, c)`` with attributes ``z_dim`` and ``c_dim``.
        num_accumulations: forward passes averaged (BigGAN-PyTorch's ``num_standing_accumulations``, 16).
        batch_size: samples per pass.
        sample_z: ``sample_z(n) -> z [n, z_dim]``; default ``N(0, I)`` drawn with ``generator``
            (the official code uses untruncated normal latents here).
        generator: CPU random generator for the latents and the uniform random classes.

    Returns:
        The number of BatchNorm layers updated (0 for a generator without BatchNorm).
    """
    if num_accumulations < 1:
        raise ValueError(f"num_accumulations must be >= 1, got {num_accumulations}")
    layers = batchnorm_layers(G)
    if not layers:
        G.eval()
        return 0
    device = next(G.parameters()).device
    momenta = [bn.momentum for bn in layers]
    G.eval()
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average over the passes
        bn.train()
    try:
        c_dim = int(getattr(G, "c_dim", 0))
        for _ in range(num_accumulations):
            z = sample_z(batch_size) if sample_z is not None else torch.randn(batch_size, G.z_dim, generator=generator)
            c = torch.randint(0, c_dim, (batch_size,), generator=generator).to(device) if c_dim > 0 else None
            G(z.to(device), c)
    finally:
        for bn, momentum in zip(layers, momenta):
            bn.momentum = momentum
        G.eval()
    return len(layers)
