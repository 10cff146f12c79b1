"""Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models", Sec. 3, Eqs. 1-2).

Each sample set defines a manifold: the union of balls centred on its feature vectors with radius the
distance to the k-th nearest neighbour within the set. Precision is the fraction of generated samples
inside the real manifold, recall the fraction of real samples inside the generated manifold.

The paper uses VGG-16 fc2 features; ganzoo computes the metric on whatever features it is given (the FID
Inception pool3 features by default), so values are only comparable between runs using the same
extractor (recorded in the provenance).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ganzoo.errors import ConfigError, DataError

__all__ = ["knn_radii", "manifold_coverage", "precision_recall"]


def _as_tensor(x: np.ndarray | Tensor, device: torch.device | str | None, dtype: torch.dtype) -> Tensor:
    t = torch.as_tensor(x)
    return t.to(device=device if device is not None else t.device, dtype=dtype)


def knn_radii(manifold: Tensor, k: int, batch_size: int) -> Tensor:
    """Distance from each row of ``manifold`` ``[N, D]`` to its k-th nearest *other* row, ``[N]``."""
    n = manifold.shape[0]
    if not 1 <= k < n:
        raise DataError(f"k-NN radius needs 1 <= k < number of samples, got k={k} with {n} samples")
    radii = []
    for rows in manifold.split(batch_size):
        dist = torch.cdist(rows, manifold)  # [B, N], includes the zero distance to itself
        radii.append(dist.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def manifold_coverage(manifold: Tensor, radii: Tensor, probes: Tensor, batch_size: int) -> float:
    """Fraction of ``probes`` that lie within at least one ball ``(manifold_i, radii_i)`` (Eq. 1)."""
    inside = []
    for rows in probes.split(batch_size):
        dist = torch.cdist(rows, manifold)  # [B, N]
        inside.append((dist <= radii.unsqueeze(0)).any(dim=1))
    return float(torch.cat(inside).to(torch.float64).mean())


@torch.inference_mode()
def precision_recall(
    f_real: np.ndarray | Tensor,
    f_fake: np.ndarray | Tensor,
    *,
    k: int = 3,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[float, float]:
    """Improved precision and recall ``(precision, recall)`` with k-NN manifolds (Sec. 3).

    Distances are computed ``batch_size`` rows at a time with ``torch.cdist`` on ``device`` (default:
    where the tensors are), so 50k x 2048 features fit in GPU memory: each block is
    ``batch_size x N`` distances.
    """
    real = _as_tensor(f_real, device, dtype)
    fake = _as_tensor(f_fake, device, dtype)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ConfigError(
            f"feature matrices must be [N, D] with the same D, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    precision = manifold_coverage(real, knn_radii(real, k, batch_size), fake, batch_size)
    recall = manifold_coverage(fake, knn_radii(fake, k, batch_size), real, batch_size)
    return precision, recall
