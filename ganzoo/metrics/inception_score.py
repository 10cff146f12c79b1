"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs", Sec. 4):

    IS = exp( E_x KL( p(y|x) || p(y) ) )

computed over ``splits`` consecutive chunks of the samples, reported as mean and standard deviation
over the chunks (the protocol of the original code and of StyleGAN2-ADA).
"""

from __future__ import annotations

import numpy as np

from ganzoo.errors import ConfigError, DataError, GanzooError

__all__ = ["NeedsLogitsError", "inception_score"]


class NeedsLogitsError(GanzooError):
    """The feature extractor has no classifier head, so the Inception Score cannot be computed."""


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def inception_score(probs_or_logits: np.ndarray, *, splits: int = 10, from_logits: bool = False) -> tuple[float, float]:
    """Inception Score ``(mean, std)`` from class probabilities ``[N, K]`` (or logits with ``from_logits``).

    Samples are cut into ``splits`` consecutive chunks ``[i*N//splits, (i+1)*N//splits)``.
    """
    p = np.asarray(probs_or_logits, dtype=np.float64)
    if p.ndim != 2:
        raise ConfigError(f"expected a [N, num_classes] matrix, got shape {p.shape}")
    if from_logits:
        p = _softmax(p)
    elif (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ConfigError("rows are not probability distributions; pass from_logits=True for logits")
    n = p.shape[0]
    if splits < 1 or n < splits:
        raise DataError(f"need at least `splits` ({splits}) samples, got {n}")
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        # 0 * log 0 = 0: use xlogy-style masking so confident rows do not produce NaN.
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
