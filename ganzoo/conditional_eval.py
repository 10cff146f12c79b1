"""``ganzoo eval --task``: score a code prior on a conditional task instead of on free samples.

- ``complete:KEEP`` (any code prior): the first ``num_fake`` images of the split are encoded, the codes of the
  ``KEEP`` region (``top``, ``bottom:0.25``, a mask image, as ``generate --keep``) are kept and the rest sampled
  once per image (:mod:`ganzoo.sampling.completion`). ``complete:top`` keeps the top half and completes the bottom
  half, the paper's completion (VQ-GAN, Esser et al. 2021, Sec. 3.2).
- ``condition`` (a code-conditioned prior, e.g. super-resolution): the condition of each of those images is derived
  from it (the ground truth) and one image sampled from it.

FID / KID / precision-recall compare the outputs with the images of the split (the same reference statistics and
cache as ``ganzoo eval``); PSNR and SSIM (Wang et al. 2004) compare each output with its own ground truth, and
LPIPS (AlexNet) too when its weights are on this machine (else it is reported as skipped; asked for with
``--metrics lpips`` it is downloaded). Records go to ``eval.jsonl`` named ``<task>/<metric>`` (e.g.
``complete:top/fid``), with the task, the sampling options and the usual provenance.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .bundle import Bundle
from .errors import ConfigError
from .metrics import FEATURE_METRICS, MetricsResult, Provenance, compute_metrics, load_inception, psnr, ssim

TASK_METRICS = ("fid", "kid", "pr", "psnr", "ssim", "lpips")
DEFAULT_TASK_METRICS = {"complete": ("fid", "kid"), "condition": ("fid", "kid", "psnr", "ssim")}
SAMPLE_KEYS = ("temperature", "top_k", "top_p")


def parse_task(spec: str) -> tuple[str, str | None]:
    """``complete:KEEP`` -> ``("complete", KEEP)``; ``condition`` -> ``("condition", None)``."""
    kind, _, arg = spec.partition(":")
    if kind == "complete":
        if not arg:
            raise ConfigError("--task complete needs the kept region: complete:top (keep the top half, complete the "
                              "bottom), complete:left, complete:top:0.25, or complete:MASK.png")
        return kind, arg
    if kind == "condition" and not arg:
        return kind, None
    raise ConfigError(f"--task {spec!r}: use complete:KEEP (e.g. complete:top) or condition")


def check_task(bundle: Bundle, modules: Mapping[str, nn.Module], spec: str, metrics: tuple[str, ...]) -> None:
    """The run can do the task, and the metrics are ones a task has."""
    from .sampling.conditional_modes import check_prior

    kind, _ = parse_task(spec)
    check_prior(bundle, modules, kind, "this run", flag="--task")
    bad = [m for m in metrics if {"precision_recall": "pr"}.get(m, m) not in TASK_METRICS]
    if bad:
        raise ConfigError(f"--metrics {','.join(bad)}: a --task is scored with {', '.join(TASK_METRICS)}")


class _Outputs:
    """The task's outputs batch by batch, with per-image PSNR / SSIM / LPIPS against the ground truth."""

    def __init__(self, evaluator: Any, bundle: Bundle, modules: Mapping[str, nn.Module], spec: str, n: int,
                 cond_tokens: str, opts: Mapping[str, Any], lpips_fn: Any):
        self.ev, self.bundle, self.modules, self.n = evaluator, bundle, modules, n
        self.kind, self.keep_spec = parse_task(spec)
        self.cond_tokens, self.opts, self.lpips_fn = cond_tokens, dict(opts), lpips_fn
        self.stats: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "lpips": []}

    def _truth(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        ds, bs = self.ev.dataset, self.ev.protocol.batch_size
        for start in range(0, self.n, bs):
            items = [ds[i] for i in range(start, min(start + bs, self.n))]
            yield torch.stack([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items], dtype=torch.long)

    def __call__(self) -> Iterator[torch.Tensor]:
        from .sampling.completion import complete_images, keep_region

        for s in self.stats.values():
            s.clear()
        gen = torch.Generator().manual_seed(self.ev.protocol.seed)
        device = next(self.modules["prior"].parameters()).device
        keep = keep_region(self.keep_spec, self.modules["tokenizer"].code_shape) if self.kind == "complete" else None
        for x, y in self._truth():
            c = None
            if self.bundle.c_dim:
                if bool((y < 0).any()):
                    raise ConfigError("this prior is class-conditional, but the split's images have no labels")
                c = y
            if self.kind == "complete":
                out, _, _ = complete_images(self.modules, x, keep, c=c, cond_tokens=self.cond_tokens, generator=gen,
                                            batch=x.shape[0], **self.opts)
            else:
                cond = self.modules["cond_stage"].derive(x.to(device))  # from the ground truth
                out = self.bundle.sample(self.modules, x.shape[0], cond_img=cond, generator=gen, **self.opts)
            out = out.float().cpu().clamp(-1, 1)
            self.stats["psnr"].append(psnr(x, out, reduction="none"))
            if min(x.shape[-2:]) >= 11:
                self.stats["ssim"].append(ssim(x, out, reduction="none"))
            if self.lpips_fn is not None:
                self.stats["lpips"].append(self.lpips_fn(x.to(self.ev.device), out.to(self.ev.device)).float().cpu())
            yield out


@torch.no_grad()
def evaluate_task(evaluator: Any, bundle: Bundle, modules: Mapping[str, nn.Module], spec: str, *,
                  cond_tokens: str, provenance: dict[str, Any], sample_opts: Mapping[str, Any] | None = None
                  ) -> MetricsResult:
    """Score ``spec`` (``complete:KEEP`` or ``condition``) with ``evaluator`` (an :class:`~ganzoo.evaluation.
    Evaluator` on the split); ``provenance``: the checkpoint fields of every record."""
    from .evaluation import merge_prefixed

    proto = evaluator.protocol
    metrics = tuple({"precision_recall": "pr"}.get(m, m) for m in proto.metrics)
    n = min(proto.num_fake, len(evaluator.dataset))
    if n < 2:
        raise ConfigError(f"--task {spec}: the {proto.split} split has {len(evaluator.dataset)} image(s); at least 2 "
                          "are needed")
    opts = {k: v for k, v in (sample_opts or {}).items() if k in SAMPLE_KEYS and v is not None}
    lpips_fn, lpips_why = evaluator._optional_lpips()
    outputs = _Outputs(evaluator, bundle, modules, spec, n, cond_tokens, opts, lpips_fn)
    extra = dict(provenance.get("extra") or {}, task=spec, sample_opts=opts, num_inputs=n)
    prov = dict(provenance, extra=extra)
    feats = [m for m in metrics if m in FEATURE_METRICS]
    result = MetricsResult()
    if feats:
        if evaluator.extractor is None:
            evaluator.extractor = load_inception(proto.weights, device=evaluator.device,
                                                 allow_download=proto.allow_download)
        inner = compute_metrics(
            feats, fake_iter_fn=outputs, num_fake=n, real_iter_fn=evaluator._reals, num_real=evaluator.num_real,
            extractor=evaluator.extractor, reference={
                "dataset": str(evaluator.data_cfg.get("name")), "split": proto.split,
                "resolution": evaluator.resolution, "channels": evaluator.channels,
                "data_fingerprint": evaluator._fingerprint},
            cache_dir=proto.cache_dir, seed=proto.seed, provenance=prov)
        merge_prefixed(result, inner, f"{spec}/")
    else:
        for _ in outputs():
            pass
    common = dict(num_fake=n, num_real=n, seed=proto.seed, device=str(evaluator.device),
                  reference_dataset=str(evaluator.data_cfg.get("name")), reference_split=proto.split,
                  reference_resolution=evaluator.resolution, **prov)
    truth = [m for m in ("psnr", "ssim", "lpips") if m in metrics]
    if truth and "lpips" not in truth:
        truth.append("lpips")  # with the other ground-truth metrics whenever its weights are here (else: skipped)
    for metric in truth:
        if not outputs.stats[metric]:
            result.skipped[f"{spec}/{metric}"] = (lpips_why or "no LPIPS network") if metric == "lpips" else \
                "SSIM's 11x11 window needs images of at least 11x11 pixels"
            continue
        value = float(torch.cat(outputs.stats[metric]).mean())
        result.values[f"{spec}/{metric}"] = value
        result.records.append(Provenance(metric=f"{spec}/{metric}", value=value,
                                         extractor="lpips-alex" if metric == "lpips" else None, **common))
    return result


def task_provenance(checkpoint_path: str | Path, images_seen: int, bundle: Bundle, proto: Any) -> dict[str, Any]:
    """The provenance fields ``Evaluator.__call__`` gives every record, for a task."""
    from dataclasses import asdict

    from .metrics.features import file_sha256

    return {"images_seen": images_seen, "checkpoint_path": str(checkpoint_path),
            "checkpoint_sha256": file_sha256(checkpoint_path),
            "extra": {"model": bundle.info.get("name"), "protocol": asdict(proto)}}
