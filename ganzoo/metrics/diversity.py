"""LPIPS diversity: the mean perceptual distance between random pairs of generated samples, as used to
measure sample variety (Zhu et al. 2017, "Toward Multimodal Image-to-Image Translation" (BicycleGAN),
Sec. 5; LPIPS from Zhang et al. 2018). Higher means more diverse; a collapsed generator scores ~0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ganzoo.errors import ConfigError, DataError

__all__ = ["diversity_from_images", "diversity_from_sampler"]

DistanceFn = Callable[[Tensor, Tensor], Tensor]


@torch.no_grad()
def diversity_from_images(
    images: Tensor,
    distance_fn: DistanceFn,
    *,
    num_pairs: int = 1000,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean and std of ``distance_fn`` over ``num_pairs`` random pairs ``(i, j), i != j`` of ``images``."""
    n = images.shape[0]
    if n < 2:
        raise DataError(f"diversity needs at least 2 images, got {n}")
    if num_pairs < 1:
        raise ConfigError(f"num_pairs must be >= 1, got {num_pairs}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=num_pairs)
    j = (i + rng.integers(1, n, size=num_pairs)) % n  # uniform over the other n - 1 images
    dists = []
    for start in range(0, num_pairs, batch_size):
        a = torch.as_tensor(i[start : start + batch_size], device=images.device)
        b = torch.as_tensor(j[start : start + batch_size], device=images.device)
        dists.append(distance_fn(images[a], images[b]).reshape(-1).double().cpu())
    d = torch.cat(dists)
    return float(d.mean()), float(d.std(unbiased=False))


@torch.no_grad()
def diversity_from_sampler(
    sample_fn: Callable[[int], Tensor],
    distance_fn: DistanceFn,
    *,
    num_pairs: int = 1000,
    batch_size: int = 64,
) -> tuple[float, float]:
    """Mean and std of ``distance_fn(sample_fn(n), sample_fn(n))`` over ``num_pairs`` independent pairs.

    ``sample_fn(n)`` returns ``n`` fresh images in ``[-1, 1]``; seed it yourself for reproducibility.
    """
    if num_pairs < 1:
        raise ConfigError(f"num_pairs must be >= 1, got {num_pairs}")
    dists = []
    done = 0
    while done < num_pairs:
        n = min(batch_size, num_pairs - done)
        dists.append(distance_fn(sample_fn(n), sample_fn(n)).reshape(-1).double().cpu())
        done += n
    d = torch.cat(dists)
    return float(d.mean()), float(d.std(unbiased=False))
