"""Fréchet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium", Sec. 5 / Eq. 6):

    FID = ||mu_r - mu_g||^2 + Tr(Sigma_r + Sigma_g - 2 (Sigma_r Sigma_g)^(1/2))

between Gaussians fitted to Inception pool3 features. The matrix square root follows the reference
TTUR code: ``scipy.linalg.sqrtm`` of the product, an ``eps * I`` offset on both covariances when the
product is near singular and the root is not finite, and imaginary parts dropped once checked small.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ganzoo.errors import ConfigError, DataError

__all__ = ["feature_stats", "frechet_distance", "fid_from_features"]


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (as ``np.cov(rowvar=False)``) in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ConfigError(f"features must be a [N, D] matrix, got shape {f.shape}")
    if f.shape[0] < 2:
        raise DataError(f"need at least 2 feature vectors for a covariance, got {f.shape[0]}; use more images")
    mu = f.mean(axis=0)
    sigma = np.cov(f, rowvar=False)
    return mu, np.atleast_2d(sigma)


def _sqrtm(m: np.ndarray) -> np.ndarray:
    root = scipy.linalg.sqrtm(m)
    if isinstance(root, tuple):  # SciPy < 1.16 with disp=False-style return
        root = root[0]
    return np.asarray(root)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, *, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017, Eq. 6).

    Raises:
        ConfigError: shapes do not match.
        DataError: the square root has a large imaginary part (degenerate statistics).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ConfigError(
            f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}; "
            "both sides must come from the same feature extractor"
        )
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Near-singular product (e.g. fewer samples than dimensions): regularise as the reference does.
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        max_imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if max_imag > 1e-3:
            raise DataError(
                f"matrix square root has an imaginary component of {max_imag:.3g}; the statistics are "
                "degenerate. Use more images (at least the feature dimension) on both sides"
            )
        covmean = covmean.real
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    return value


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two feature matrices ``[N, D]`` and ``[M, D]``."""
    mu1, sigma1 = feature_stats(real)
    mu2, sigma2 = feature_stats(fake)
    return frechet_distance(mu1, sigma1, mu2, sigma2)
