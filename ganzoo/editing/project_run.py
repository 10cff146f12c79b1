"""``ganzoo project``: load a run, check every input, project (or encode), write the results.

Outputs, in ``<run>/projected/<targets>_<space>[_<distance>]/`` (or ``--out``):

- ``latent.safetensors``: the :class:`~ganzoo.editing.latents.Latent` (the targets' paths and sha256 in its meta);
- ``target_vs_projection.png``: one row per image, target | projection;
- ``mean_latent.png``: target | the image of the starting (mean) latent | projection;
- ``optimization.gif``: target | the image being optimised, about ``--gif-frames`` frames;
- ``metrics.json``: final distance, PSNR, SSIM, the same for the mean latent, steps, distance, time.

A VQ tokenizer run is encoded instead (no optimisation): a ``codes`` latent, its reconstruction, PSNR and SSIM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from ..errors import ConfigError
from ..metrics.reconstruction import psnr, ssim
from ..training.checkpoint import atomic_write
from .latents import Latent, model_hash, save_latent
from .targets import Targets, check_files, data_targets, read_targets


def _metrics(images: torch.Tensor, targets: torch.Tensor) -> dict[str, list[float]]:
    x, y = images.float().clamp(-1, 1), targets.float()
    out = {"psnr": [float(v) for v in psnr(x, y, reduction="none")]}
    if min(x.shape[-2:]) >= 11:
        out["ssim"] = [float(v) for v in ssim(x, y, reduction="none")]
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _write_json(path: Path, record: dict[str, Any]) -> Path:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
    return path


def _rows(*columns: torch.Tensor) -> torch.Tensor:
    """Images ``[N, C, H, W]`` per column -> ``[N * K, C, H, W]``: row ``i`` holds image ``i`` of each column."""
    return torch.stack([c.float().cpu().clamp(-1, 1) for c in columns], 1).flatten(0, 1)


def _printer(what: str, steps: int, distance: str, every_s: float = 5.0):
    """A ``progress(step, d)`` that prints a line at most every ``every_s`` seconds, and at the last step."""
    last = [0.0]

    def progress(step: int, d: float) -> None:
        if time.time() - last[0] > every_s or step == steps - 1:
            last[0] = time.time()
            print(f"{what}: step {step + 1}/{steps} {distance} {d:.4f}", file=sys.stderr)

    return progress


def _classes(k: int | None, c_dim: int, targets: Targets, name: str) -> torch.Tensor | None:
    """The class of each target: ``--class K`` for all, else (``--from-data``) each image's dataset label."""
    n = targets.images.shape[0]
    if not c_dim:
        return None
    if k is not None:
        return torch.full((n,), int(k), dtype=torch.long)
    labels = targets.labels
    if labels is None or bool(((labels < 0) | (labels >= c_dim)).any()):
        raise ConfigError(f"{name} is class-conditional ({c_dim} classes) and these images carry no labels in "
                          f"0-{c_dim - 1}: pass --class K, the class every image is projected with")
    print(f"classes: each image's dataset label ({', '.join(map(str, labels.tolist()))})", file=sys.stderr)
    return labels


def _check_args(args: argparse.Namespace) -> None:
    if bool(args.images) == bool(args.from_data):
        raise ConfigError("pass image files (IMAGE...) or --from-data SPLIT, exactly one of them")
    if args.from_data is None and args.n is not None:
        raise ConfigError("--n chooses how many dataset images --from-data takes; pass --from-data SPLIT too")
    for flag, value, low in (("--steps", args.steps, 1), ("--n", args.n, 1), ("--batch", args.batch, 1),
                             ("--gif-frames", args.gif_frames, 1), ("--save-every", args.save_every, 1)):
        if value is not None and value < low:
            raise ConfigError(f"{flag} must be >= {low}, got {value}")
    if args.lr is not None and not args.lr > 0:
        raise ConfigError(f"--lr must be > 0, got {args.lr}")
    if args.gif_frames is not None and args.save_every is not None:
        raise ConfigError("--gif-frames and --save-every both set the GIF's frames; pass one of them")
    if args.noise_reg is not None and args.noise_reg < 0:
        raise ConfigError(f"--noise-reg must be >= 0, got {args.noise_reg}")


def run_project(args: argparse.Namespace) -> tuple[list[Path], dict[str, Any]]:
    """Run ``ganzoo project`` from parsed arguments; returns the paths written and the metrics record."""
    from ..metrics.features import file_sha256
    from ..sampling.generate import _run_dir, load_generator
    from ..sampling.truncation import is_style_generator
    from ..training.checkpoint import load_snapshot
    from .distance import build_distance
    from .projector import ProjectConfig, check_space, project

    _check_args(args)
    files = check_files(args.images) if args.images else []
    snap = load_snapshot(args.checkpoint, with_state=False)
    bundle, modules, state = load_generator(snap, ema=not args.raw, device=args.device)
    name = str(bundle.info.get("name", "?"))
    kind = bundle.info.get("kind")
    if kind == "prior":
        model_cfg = OmegaConf.create(snap.metadata.get("model_config", "{}"))
        stage1 = model_cfg.get("stage1") or "<its tokenizer run>"
        raise ConfigError(f"{args.checkpoint} is a code prior ({name}, VQ stage 2): it has no latent to project "
                          f"into. Project into its tokenizer run instead: `ganzoo project {stage1} IMAGE`")
    G = modules["G"]
    run_dir = _run_dir(args.checkpoint)
    opts = dict(bundle.sample_opts(state) if bundle.sample_opts else {})
    if kind == "autoencoder":
        given = [f for f, v in (("--space", args.space), ("--steps", args.steps), ("--class", args.cls),
                                ("--distance", args.distance), ("--optimize-class", args.optimize_class or None))
                 if v is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: {name} is a VQ tokenizer, which projects by encoding (no "
                              "optimisation); drop these options")
        resolution, channels, space = bundle.resolution, bundle.channels, "codes"
    else:
        space = args.space or ("w" if is_style_generator(G) else "z")
        check_space(G, space, f"{name} ({bundle.family})")
        with torch.no_grad():  # the image size at the run's schedule state (a progressive model's level)
            probe = bundle.sample(modules, 1, generator=torch.Generator().manual_seed(0), **opts)
        resolution, channels = int(probe.shape[-1]), int(probe.shape[1])
    c_dim = bundle.c_dim if kind != "autoencoder" else 0
    if kind != "autoencoder":
        if c_dim and args.cls is None and not args.from_data:
            raise ConfigError(f"{name} is class-conditional ({c_dim} classes): pass --class K (0 <= K < {c_dim}), "
                              "the class every image is projected with")
        if args.cls is not None and not c_dim:
            raise ConfigError(f"--class: {name} is unconditional (it has no classes); drop --class")
        if args.cls is not None and not 0 <= args.cls < c_dim:
            raise ConfigError(f"--class {args.cls} is out of range: this model has {c_dim} classes (0-{c_dim - 1})")
        if args.optimize_class and not c_dim:
            raise ConfigError(f"--optimize-class: {name} is unconditional (it has no class embedding); drop it")
    if files:
        targets = read_targets(files, resolution=resolution, channels=channels, resize=args.resize)
    else:
        config = OmegaConf.create(snap.config_yaml) if snap.config_yaml else None
        if config is None or "data" not in config:
            raise ConfigError(f"{snap.path} does not record its training data: pass image files instead")
        data_cfg = OmegaConf.to_container(config.data, resolve=True)
        targets = data_targets(data_cfg, args.from_data, args.n or 8, args.seed if args.seed is not None else 0,
                               resolution=resolution, channels=channels)
    cls = _classes(args.cls, c_dim, targets, name)
    meta = {"model": name, "family": str(bundle.family), "run": str(run_dir.resolve()),
            "snapshot": str(snap.path.resolve()), "snapshot_sha256": file_sha256(snap.path),
            "model_hash": model_hash(G), "weights": "trained" if args.raw or "G" not in snap.ema else "ema",
            "targets": json.dumps(targets.sources)}
    if kind == "autoencoder":
        return _encode(args, bundle, G, targets, meta, run_dir)

    from ..runtime import select_device

    distance = build_distance(args.distance or "auto", weights=args.lpips_weights,
                              allow_download=not args.no_download, device=select_device(args.device))
    print(f"distance: {distance.name} ({distance.reason})", file=sys.stderr)
    cfg = ProjectConfig(seed=args.seed if args.seed is not None else 0, frames=args.gif_frames or 50)
    cfg.steps = args.steps or cfg.steps
    if args.save_every:
        cfg.frames = max(1, cfg.steps // args.save_every)
    cfg.lr = args.lr or cfg.lr
    cfg.noise_reg = cfg.noise_reg if args.noise_reg is None else args.noise_reg
    suffix = "" if distance.name == "lpips" else f"_{distance.name}"
    out = Path(args.out) if args.out else run_dir / "projected" / f"{targets.tag}_{space.replace('+', 'plus')}{suffix}"

    n = targets.images.shape[0]
    batch = args.batch or n
    results = []
    t0 = time.time()
    for i in range(0, n, batch):
        tgt = targets.images[i : i + batch]
        progress = _printer(f"images {i}-{i + tgt.shape[0] - 1}", cfg.steps, distance.name)
        results.append(project(G, tgt, distance, space=space, c=None if cls is None else cls[i : i + batch],
                               optimize_class=args.optimize_class, cfg=cfg, opts=opts, progress=progress))
    seconds = time.time() - t0
    cat = lambda key: torch.cat([getattr(r, key) for r in results])  # noqa: E731
    images, start_images = cat("images"), cat("start_images")
    extra = {f"noise.{k}": torch.cat([r.noise[k] for r in results]) for k in results[0].noise}
    if results[0].embedding is not None:
        extra["class_embedding"] = cat("embedding")
    meta.update(distance=distance.name, steps=str(cfg.steps), seed=str(cfg.seed), space=space)
    latent = Latent(space=space, value=cat("latent"), c=cls, extra=extra, meta=meta)

    from ..sampling.images import make_grid, save_gif, save_grid

    paths = [save_latent(out / "latent.safetensors", latent)]
    paths.append(save_grid(_rows(targets.images, images), out / "target_vs_projection.png", nrow=2, pad=1))
    paths.append(save_grid(_rows(targets.images, start_images, images), out / "mean_latent.png", nrow=3, pad=1))
    steps_kept = [s for s, _ in results[0].frames]
    frames = [make_grid(_rows(targets.images, torch.cat([r.frames[k][1] for r in results])), nrow=2, pad=1)
              for k in range(len(steps_kept))]
    paths.append(save_gif(frames, out / "optimization.gif", duration_ms=80))
    final, start = _metrics(images, targets.images), _metrics(start_images, targets.images)
    dist, dist0 = cat("distance"), cat("start_distance")
    history = torch.cat([r.history for r in results], 1)  # [steps, N]
    record: dict[str, Any] = {
        "model": name, "run": meta["run"], "snapshot": meta["snapshot"], "snapshot_sha256": meta["snapshot_sha256"],
        "model_hash": meta["model_hash"], "weights": meta["weights"], "space": space, "steps": cfg.steps,
        "lr": cfg.lr, "noise_reg": cfg.noise_reg, "seed": cfg.seed,
        "class": args.cls if args.cls is not None else ("dataset labels" if cls is not None else None),
        "optimize_class": bool(args.optimize_class), "distance": distance.name, "distance_reason": distance.reason,
        "num_images": n, "seconds": round(seconds, 2),
        "final": {"distance": _mean(dist.tolist()), **{k: _mean(v) for k, v in final.items()}},
        "mean_latent": {"distance": _mean(dist0.tolist()), **{k: _mean(v) for k, v in start.items()}},
        "per_image": [{"target": targets.sources[j], "distance": float(dist[j]),
                       "mean_latent_distance": float(dist0[j]), **{k: v[j] for k, v in final.items()},
                       **{f"mean_latent_{k}": v[j] for k, v in start.items()}}
                      for j in range(n)],
        "distance_curve": {str(s): float(history[s].mean()) for s in steps_kept},
    }
    paths.append(_write_json(out / "metrics.json", record))
    _summary(record, out)
    return paths, record


def _encode(args: argparse.Namespace, bundle: Any, G: torch.nn.Module, targets: Targets, meta: dict[str, str],
            run_dir: Path) -> tuple[list[Path], dict[str, Any]]:
    """A VQ tokenizer projects by encoding: codes, reconstruction, PSNR/SSIM."""
    from ..sampling.images import save_grid
    from ..sampling.reconstruct import reconstruct_images

    out = Path(args.out) if args.out else run_dir / "projected" / f"{targets.tag}_codes"
    recs, codes = reconstruct_images(G, targets.images, batch_size=args.batch or 64)
    meta.update(space="codes", n_embed=str(bundle.info.get("n_embed", "")))
    paths = [save_latent(out / "latent.safetensors", Latent(space="codes", value=codes.long(), meta=meta))]
    paths.append(save_grid(_rows(targets.images, recs), out / "target_vs_projection.png", nrow=2, pad=1))
    final = _metrics(recs, targets.images)
    record = {"model": meta["model"], "run": meta["run"], "snapshot": meta["snapshot"],
              "snapshot_sha256": meta["snapshot_sha256"], "model_hash": meta["model_hash"], "space": "codes",
              "steps": 0, "distance": None, "num_images": int(targets.images.shape[0]),
              "code_shape": list(codes.shape[1:]),
              "final": {k: _mean(v) for k, v in final.items()},
              "per_image": [{"target": targets.sources[j], **{k: v[j] for k, v in final.items()}}
                            for j in range(targets.images.shape[0])]}
    paths.append(_write_json(out / "metrics.json", record))
    _summary(record, out)
    return paths, record


def _summary(record: dict[str, Any], out: Path) -> None:
    final = record["final"]
    line = f"projected {record['num_images']} image(s) into {record['space']} of {record['model']}"
    line += f" ({record['steps']} steps, {record['distance']})" if record["steps"] else " (encoded)"
    parts = [f"{k} {final[k]:.4f}" if k != "psnr" else f"PSNR {final[k]:.2f} dB" for k in final]
    print(f"{line}: " + ", ".join(parts), file=sys.stderr)
    if "mean_latent" in record:
        m = record["mean_latent"]
        parts = [f"{k} {m[k]:.4f}" if k != "psnr" else f"PSNR {m[k]:.2f} dB" for k in m]
        print("  the mean latent: " + ", ".join(parts), file=sys.stderr)
    print(f"  written to {out}", file=sys.stderr)
