"""Evaluate a generator under one protocol: used by ``ganzoo eval``, periodic evaluation while
training (``trainer.eval.every_kimg``) and ``ganzoo bench``.

The protocol (metrics, numbers of real and fake images, split, seed, truncation, feature
weights) is explicit and recorded with every score (``ganzoo.metrics.Provenance``). Real-image
statistics are cached per (dataset, split, resolution, extractor, N, data fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .bundle import Bundle
from .data import build_dataset
from .errors import ConfigError
from .metrics import (
    FEATURE_METRICS,
    MetricsResult,
    Provenance,
    WeightsNotFoundError,
    codebook_usage,
    compute_metrics,
    data_fingerprint,
    diversity_from_sampler,
    load_inception,
    lpips_distance,
    perceptual_path_length,
    psnr,
    ssim,
)
from .metrics.features import file_sha256

# Metrics computed on generated images with LPIPS rather than on Inception features.
PERCEPTUAL_METRICS = ("ppl", "lpips_diversity")
# Metrics of autoencoders (bundle.info["kind"] == "autoencoder") between inputs and reconstructions;
# "fid"/"kid"/"pr" of such a bundle are also measured that way (rFID, ...). See _reconstruction_metrics.
RECONSTRUCTION_METRICS = ("rfid", "psnr", "ssim", "lpips", "codebook")
# What each kind of run can be scored with (`ganzoo eval --metrics`): a GAN or a code prior is scored on its samples,
# a tokenizer (stage-1 autoencoder) on its reconstructions of real images (fid/kid/pr there mean rFID, ...).
METRICS_BY_KIND = {
    "gan": ("fid", "kid", "pr", "is", "ppl", "lpips_diversity"),
    "prior": ("fid", "kid", "pr", "is", "lpips_diversity"),
    "autoencoder": ("rfid", "fid", "kid", "pr", "psnr", "ssim", "lpips", "codebook"),
}
KIND_NAMES = {"gan": "a GAN", "prior": "a code prior (VQ stage 2)", "autoencoder": "a VQ tokenizer (stage 1)"}
_METRIC_ALIASES = {"precision_recall": "pr", "inception_score": "is"}


def merge_prefixed(result: Any, inner: Any, prefix: str) -> None:
    """Add ``inner``'s values, skips and records to ``result`` as ``prefix + name`` (``rfid``, ``complete:top/fid``)."""
    result.values.update({f"{prefix}{k}": v for k, v in inner.values.items()})
    result.skipped.update({f"{prefix}{k}": v for k, v in inner.skipped.items()})
    for rec in inner.records:
        rec.metric = f"{prefix}{rec.metric}"
        result.records.append(rec)


def check_metrics_for(bundle: Bundle, metrics: tuple[str, ...] | list[str], *, where: str = "--metrics") -> None:
    """A :class:`ConfigError` naming the metrics this run can have when ``metrics`` holds one its kind cannot
    (PSNR of a GAN, IS of a tokenizer, ...): they would be computed from nothing and silently left out."""
    kind = bundle.info.get("kind") or "gan"
    allowed = METRICS_BY_KIND.get(kind, METRICS_BY_KIND["gan"])
    bad = [m for m in metrics if _METRIC_ALIASES.get(m, m) not in allowed]
    if bad:
        name = bundle.info.get("name") or "this run"
        hint = {"gan": " (reconstruction metrics need a tokenizer run: `ganzoo eval <vqgan run> --metrics psnr`)",
                "prior": " (the reconstruction metrics belong to its tokenizer: `ganzoo eval <its stage-1 run>`)",
                "autoencoder": " (a tokenizer draws no samples: score its prior for sample metrics)"}.get(kind, "")
        raise ConfigError(f"{where} {','.join(bad)}: {name} is {KIND_NAMES.get(kind, kind)}, which cannot have "
                          f"{'this metric' if len(bad) == 1 else 'these metrics'}; it can have "
                          f"{', '.join(allowed)}{hint}")


@dataclass
class EvalProtocol:
    """How a score is measured. ``num_real=None`` uses the whole split."""

    metrics: tuple[str, ...] = ("fid", "kid", "pr")
    num_fake: int = 10_000
    num_real: int | None = None
    split: str = "train"
    seed: int = 0
    truncation_psi: float | None = None
    batch_size: int = 64
    weights: str | None = None
    lpips_weights: str | None = None  # torchvision VGG16 / AlexNet state dict for PPL / LPIPS diversity
    allow_download: bool = True
    cache_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | DictConfig) -> EvalProtocol:
        data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"unknown evaluation option(s) {unknown}; allowed: {sorted(allowed)}")
        if "metrics" in data:
            metrics = data["metrics"]
            data["metrics"] = tuple(metrics.split(",") if isinstance(metrics, str) else metrics)
        proto = cls(**data)
        known = (*FEATURE_METRICS, *PERCEPTUAL_METRICS, *RECONSTRUCTION_METRICS, "precision_recall", "inception_score")
        bad = [m for m in proto.metrics if m not in known]
        if bad:
            raise ConfigError(f"unknown metric(s) {bad}; choose from "
                              f"{list(FEATURE_METRICS + PERCEPTUAL_METRICS + RECONSTRUCTION_METRICS)}")
        if proto.num_fake < 2:
            raise ConfigError("the number of generated images (num_fake) must be at least 2")
        return proto


def _dataset_fingerprint(dataset) -> str:
    """Name, size and a few images from both ends: cheap and changes when the data changes."""
    n = len(dataset)
    idx = sorted({0, 1, 2, n // 2, n - 2, n - 1} & set(range(n)))
    items: list[Any] = [getattr(dataset, "name", "?"), n, dataset.resolution, dataset.channels]
    items += [dataset[i][0] for i in idx]
    return data_fingerprint(items)


class Evaluator:
    """Scores generators against one dataset split; the feature network is loaded once."""

    def __init__(
        self,
        protocol: EvalProtocol,
        data_cfg: Mapping[str, Any] | DictConfig,
        *,
        resolution: int,
        channels: int,
        device: torch.device | str = "cpu",
    ):
        self.protocol = protocol
        cfg = OmegaConf.to_container(data_cfg, resolve=True) if isinstance(data_cfg, DictConfig) else dict(data_cfg)
        cfg["split"] = protocol.split
        cfg["flip"] = False
        self.data_cfg = cfg
        self.dataset = build_dataset(cfg, resolution=resolution, channels=channels)
        self.resolution, self.channels = resolution, channels
        self.device = torch.device(device)
        self.num_real = len(self.dataset) if protocol.num_real is None else min(protocol.num_real, len(self.dataset))
        self.feature_metrics = [m for m in protocol.metrics if m not in (*PERCEPTUAL_METRICS, *RECONSTRUCTION_METRICS)]
        self._fingerprint: str | None = None
        # Weights are loaded now, so that a missing file fails at the start of a run, not at its first evaluation.
        self.extractor = (
            load_inception(protocol.weights, device=self.device, allow_download=protocol.allow_download)
            if self.feature_metrics or "rfid" in protocol.metrics
            else None
        )
        self.lpips: dict[str, Any] = {}
        # PPL: VGG (StyleGAN Sec. 4.2); reconstruction LPIPS: AlexNet (the LPIPS default).
        for metric, net in (("ppl", "vgg"), ("lpips_diversity", "alex"), ("lpips", "alex")):
            if metric in protocol.metrics and net not in self.lpips:
                self.lpips[net] = lpips_distance(
                    net, protocol.lpips_weights, device=self.device, allow_download=protocol.allow_download
                )

    def _reals(self) -> Iterator[torch.Tensor]:
        bs = self.protocol.batch_size
        for start in range(0, self.num_real, bs):
            stop = min(start + bs, self.num_real)
            yield torch.stack([self.dataset[i][0] for i in range(start, stop)])

    def _fakes(
        self, bundle: Bundle, modules: Mapping[str, nn.Module], state: Mapping[str, Any]
    ) -> Iterator[torch.Tensor]:
        proto = self.protocol
        gen = torch.Generator().manual_seed(proto.seed)
        opts = dict(bundle.sample_opts(state) if bundle.sample_opts else {})
        if proto.truncation_psi is not None:
            opts["truncation_psi"] = proto.truncation_psi
        c_dim = bundle.c_dim
        z_dim = int(bundle.info.get("z_dim", 0))
        done = 0
        while done < proto.num_fake:
            n = min(proto.batch_size, proto.num_fake - done)
            z = torch.randn(n, z_dim, generator=gen) if z_dim else None
            c = torch.randint(0, c_dim, (n,), generator=gen) if c_dim > 0 else None
            img = bundle.sample(modules, n, z=z, c=c, generator=gen, **opts).float()
            if img.shape[-1] != self.resolution:  # a growing model early on: compare at the data resolution
                img = F.interpolate(img, size=self.resolution, mode="nearest")
            done += n
            yield img.cpu()

    @torch.no_grad()
    def __call__(
        self,
        bundle: Bundle,
        modules: Mapping[str, nn.Module],
        state: Mapping[str, Any] | None = None,
        *,
        images_seen: int | None = None,
        checkpoint_path: str | Path | None = None,
    ) -> MetricsResult:
        if self._fingerprint is None:
            self._fingerprint = _dataset_fingerprint(self.dataset)
        proto = self.protocol
        training = {k: m.training for k, m in modules.items()}
        for m in modules.values():
            m.eval()
        provenance: dict[str, Any] = {
            "images_seen": images_seen,
            "truncation_psi": proto.truncation_psi,
            "extra": {"model": bundle.info.get("name"), "protocol": asdict(proto)},
        }
        if checkpoint_path is not None:
            provenance["checkpoint_path"] = str(checkpoint_path)
            provenance["checkpoint_sha256"] = file_sha256(checkpoint_path)
        try:
            # Scoring must not disturb a training run's RNG stream.
            with torch.random.fork_rng(devices=[]):
                if bundle.info.get("kind") == "autoencoder":
                    return self._reconstruction_metrics(bundle, modules, provenance)
                result = MetricsResult()
                if self.feature_metrics:
                    result = self._feature_metrics(bundle, modules, state, provenance)
                self._perceptual_metrics(result, bundle, modules, state or {}, provenance)
                return result
        finally:
            for k, m in modules.items():
                m.train(training[k])

    def _perceptual_metrics(self, result: MetricsResult, bundle: Bundle, modules: Mapping[str, nn.Module],
                            state: Mapping[str, Any], provenance: dict[str, Any]) -> None:
        """PPL (style generators, W space, path end points as StyleGAN2) and LPIPS diversity."""
        from .sampling.truncation import is_style_generator

        proto = self.protocol
        G = modules.get("G")
        opts = dict(bundle.sample_opts(state) if bundle.sample_opts else {})
        common = dict(num_fake=proto.num_fake, seed=proto.seed, device=str(self.device), **provenance)
        if "ppl" in proto.metrics:
            if G is None or not is_style_generator(G):
                result.skipped["ppl"] = "perceptual path length needs a style-based generator (stylegan, stylegan2)"
            else:
                c_dim = bundle.c_dim
                value = perceptual_path_length(
                    lambda z, c: G.mapping(z, c),
                    lambda ws: G.synthesis(ws, noise_mode="const", **opts),
                    self.lpips["vgg"],
                    z_dim=G.z_dim,
                    num_samples=proto.num_fake,
                    batch_size=proto.batch_size,
                    seed=proto.seed,
                    c_fn=(lambda n: torch.randint(0, c_dim, (n,), device=self.device)) if c_dim else None,
                    device=self.device,
                )
                result.values["ppl"] = value
                result.records.append(Provenance(metric="ppl", value=value, extractor="lpips-vgg", **common))
        if "lpips_diversity" in proto.metrics:
            gen = torch.Generator().manual_seed(proto.seed)

            def sample(n: int) -> torch.Tensor:
                c = torch.randint(0, bundle.c_dim, (n,), generator=gen) if bundle.c_dim else None
                return bundle.sample(modules, n, c=c, generator=gen, **opts).float()

            mean, std = diversity_from_sampler(sample, self.lpips["alex"], num_pairs=proto.num_fake,
                                               batch_size=proto.batch_size)
            result.values.update(lpips_diversity=mean, lpips_diversity_std=std)
            result.records.append(Provenance(metric="lpips_diversity", value={"mean": mean, "std": std},
                                             extractor="lpips-alex", **common))

    def _optional_lpips(self) -> tuple[Any, str | None]:
        """LPIPS-AlexNet when requested (loaded at start) or when its weights are already on this
        machine (never downloaded for an unrequested metric); else ``(None, why)``."""
        if "alex" in self.lpips:
            return self.lpips["alex"], None
        try:
            fn = lpips_distance("alex", self.protocol.lpips_weights, device=self.device, allow_download=False)
        except WeightsNotFoundError as err:
            return None, f"no LPIPS (AlexNet) weights: {str(err).splitlines()[0]} (pass --lpips-weights)"
        self.lpips["alex"] = fn
        return fn, None

    def _reconstruction_metrics(self, bundle: Bundle, modules: Mapping[str, nn.Module],
                                provenance: dict[str, Any]) -> MetricsResult:
        """Autoencoders: the first ``min(num_fake, num_real)`` images of the split and their reconstructions.

        rFID (and rKID / rPrecision-recall when asked) with the Inception features of the GAN metrics,
        inputs as the reference set (VQ-GAN Sec. 4.4, ViT-VQGAN Table 2); PSNR, SSIM (Wang et al. 2004),
        LPIPS when its weights exist, and codebook usage / perplexity over all the codes of these images.
        """
        proto = self.protocol
        G = modules["G"]
        n = min(proto.num_fake, self.num_real)
        feats = []
        for m in proto.metrics:
            name = {"rfid": "fid", "precision_recall": "pr", "inception_score": "is"}.get(m, m)
            if name in FEATURE_METRICS and name != "is" and name not in feats:
                feats.append(name)
        result = MetricsResult()
        lpips_fn, lpips_why = self._optional_lpips()
        stats: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "lpips": [], "codes": []}

        def inputs() -> Iterator[torch.Tensor]:
            done = 0
            for x in self._reals():
                x = x[: n - done]
                done += x.shape[0]
                yield x
                if done >= n:
                    return

        def reconstructions() -> Iterator[torch.Tensor]:
            for x in inputs():
                rec, q = G(x.to(self.device))
                rec = rec.float().cpu().clamp(-1, 1)  # the decoder output is unbounded (ViT-VQGAN: no tanh)
                stats["psnr"].append(psnr(x, rec, reduction="none"))
                if min(x.shape[-2:]) >= 11:
                    stats["ssim"].append(ssim(x, rec, reduction="none"))
                if lpips_fn is not None:
                    stats["lpips"].append(lpips_fn(x, rec).float().cpu())
                stats["codes"].append(q.indices.cpu())
                yield rec

        if feats:
            if self.extractor is None:  # e.g. only reconstruction metrics were configured at start
                self.extractor = load_inception(proto.weights, device=self.device,
                                                allow_download=proto.allow_download)
            inner = compute_metrics(
                feats,
                fake_iter_fn=reconstructions,
                num_fake=n,
                real_iter_fn=inputs,
                num_real=n,
                extractor=self.extractor,
                reference={"dataset": str(self.data_cfg.get("name")), "split": proto.split,
                           "resolution": self.resolution, "channels": self.channels,
                           "data_fingerprint": self._fingerprint},
                cache_dir=proto.cache_dir,
                seed=proto.seed,
                provenance=provenance,
            )
            # The same numbers as for a GAN, with reconstructions in place of samples: prefix "r".
            merge_prefixed(result, inner, "r")
        else:
            for _ in reconstructions():
                pass
        common = dict(num_real=n, num_fake=n, seed=proto.seed, device=str(self.device),
                      reference_dataset=str(self.data_cfg.get("name")), reference_split=proto.split,
                      reference_resolution=self.resolution, **provenance)
        values: dict[str, tuple[float | dict[str, float], str | None]] = {
            "psnr": (float(torch.cat(stats["psnr"]).mean()), None)}
        if stats["ssim"]:
            values["ssim"] = (float(torch.cat(stats["ssim"]).mean()), None)
        else:
            result.skipped["ssim"] = "SSIM's 11x11 window needs images of at least 11x11 pixels"
        if stats["lpips"]:
            values["lpips"] = (float(torch.cat(stats["lpips"]).mean()), "lpips-alex")
        else:
            result.skipped["lpips"] = lpips_why or "no LPIPS network"
        usage = codebook_usage(torch.cat(stats["codes"]), int(bundle.info["n_embed"]))
        values["codebook"] = ({k: usage[k] for k in ("usage", "num_used", "perplexity")}, None)
        for metric, (value, extractor) in values.items():
            result.records.append(Provenance(metric=metric, value=value, extractor=extractor, **common))
            if isinstance(value, dict):
                result.values.update({f"codebook_{k}": v for k, v in value.items()})
            else:
                result.values[metric] = value
        return result

    def _feature_metrics(self, bundle: Bundle, modules: Mapping[str, nn.Module], state: Mapping[str, Any] | None,
                         provenance: dict[str, Any]) -> MetricsResult:
        proto = self.protocol
        return compute_metrics(
            self.feature_metrics,
            fake_iter_fn=lambda: self._fakes(bundle, modules, state or {}),
            num_fake=proto.num_fake,
            real_iter_fn=self._reals,
            num_real=self.num_real,
            extractor=self.extractor,
            reference={
                "dataset": str(self.data_cfg.get("name")),
                "split": proto.split,
                "resolution": self.resolution,
                "channels": self.channels,
                "data_fingerprint": self._fingerprint,
            },
            cache_dir=proto.cache_dir,
            seed=proto.seed,
            provenance=provenance,
        )


def evaluate_checkpoint(
    path: str | Path,
    protocol: EvalProtocol,
    *,
    ema: bool = True,
    device: str = "auto",
    data_overrides: Mapping[str, Any] | None = None,
    task: str | None = None,
    sample_opts: Mapping[str, Any] | None = None,
) -> tuple[MetricsResult, Path]:
    """Score a checkpoint on the data it was trained on (from its stored config) and append the
    records with their provenance to ``<run>/eval.jsonl``. Returns ``(result, eval.jsonl path)``.

    ``task`` (a code prior): ``complete:KEEP`` or ``condition``, scored by :mod:`ganzoo.conditional_eval` with
    ``sample_opts`` (temperature, top_k, top_p)."""
    from .metrics import write_metrics_jsonl
    from .runtime import select_device
    from .sampling.generate import load_generator
    from .training.checkpoint import load_snapshot

    snap = load_snapshot(path, with_state=False)
    bundle, modules, state = load_generator(snap, ema=ema, device=device)
    if task is not None:
        from .conditional_eval import check_task

        check_task(bundle, modules, task, protocol.metrics)
    else:
        check_metrics_for(bundle, protocol.metrics)
    config = OmegaConf.create(snap.config_yaml) if snap.config_yaml else None
    if config is None or "data" not in config:
        raise ConfigError(f"{str(snap.path)!r} does not record its training data; it was not written by `ganzoo train`")
    data_cfg = OmegaConf.to_container(config.data, resolve=True)
    data_cfg.update(dict(data_overrides or {}))
    if data_cfg.get("name") == "folder" and not data_cfg.get("root"):
        raise ConfigError(f"{str(snap.path)!r} records no training images (an imported run has none): score it "
                          "against a folder of real images with `ganzoo eval RUN --data root=DIR`")
    evaluator = Evaluator(protocol, data_cfg, resolution=bundle.resolution, channels=bundle.channels,
                          device=select_device(device))
    images_seen = int(snap.metadata.get("images_seen", "0"))
    if task is not None:
        from .conditional_eval import evaluate_task, task_provenance

        evaluator._fingerprint = evaluator._fingerprint or _dataset_fingerprint(evaluator.dataset)
        model_cfg = OmegaConf.create(snap.metadata.get("model_config") or "{}")
        result = evaluate_task(evaluator, bundle, modules, task, cond_tokens=model_cfg.get("cond_tokens", "separate"),
                               provenance=task_provenance(snap.path, images_seen, bundle, protocol),
                               sample_opts=sample_opts)
    else:
        result = evaluator(bundle, modules, state, images_seen=images_seen, checkpoint_path=snap.path)
    out = snap.path.parent.parent / "eval.jsonl"
    write_metrics_jsonl(out, result.records)
    return result, out
