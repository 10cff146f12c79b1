"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", Sec. 4 / Appendix D).

KID is the squared maximum mean discrepancy between real and generated Inception features under the
cubic polynomial kernel ``k(x, y) = (x . y / d + 1)^3``, estimated without bias on random subsets:

    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] - 2/m^2 sum_{i, j} k(x_i, y_j)

and reported as the mean and standard deviation over subsets.
"""

from __future__ import annotations

import numpy as np

from ganzoo.errors import ConfigError, DataError

__all__ = ["kernel_inception_distance", "mmd2_unbiased", "polynomial_kernel"]


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic polynomial kernel matrix ``(x y^T / d + 1)^3`` (Bińkowski et al. 2018, Sec. 4)."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equally sized samples ``[m, d]`` with the cubic kernel."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ConfigError(f"need two samples of equal size >= 2, got {x.shape[0]} and {y.shape[0]}")
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    f_real: np.ndarray,
    f_fake: np.ndarray,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID mean and standard deviation over ``num_subsets`` random subsets.

    Each subset draws ``subset_size`` rows without replacement from each side; ``subset_size`` is
    clipped to the smaller sample count. Uses ``np.random.default_rng(seed)``.
    """
    real = np.asarray(f_real, dtype=np.float64)
    fake = np.asarray(f_fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ConfigError(f"feature matrices must be [N, D] with the same D, got {real.shape} and {fake.shape}")
    if num_subsets < 1:
        raise ConfigError(f"num_subsets must be >= 1, got {num_subsets}")
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise DataError(f"KID needs at least 2 real and 2 generated samples, got {real.shape[0]} and {fake.shape[0]}")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        values[i] = mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())
