"""``ganzoo generate --mode complete`` and ``--mode condition``: a code prior given an image.

- ``complete`` (any code prior, class-conditional ones included): per input image one row of the input with the
  dropped region greyed, ``--n`` completions and the original (:mod:`ganzoo.sampling.completion`).
- ``condition`` (a code-conditioned prior, ``modules["cond_stage"]``: super-resolution, map-to-image): per input one
  row of the condition's preview, ``--n`` samples and, when a full-size image was given (the condition derived
  from it), the original. A prior on label maps (``cond_input=labels``) reads ``--image`` as label maps. With
  ``--grid`` the condition follows the sliding window (:mod:`.cond_window`).

Inputs are ``--image`` files or ``--from-data SPLIT --n-images K`` (the first K images of the run's dataset split).
Every input is checked before anything is sampled or written.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from ..bundle import Bundle
from ..errors import ConfigError
from ..training.checkpoint import Snapshot, load_snapshot
from .completion import complete_images, grey_out, keep_region, load_image, load_label_map
from .cond_window import check_grid_input, sample_condition_grid
from .generate_args import _labels
from .images import save_grid
from .prior_modes import check_grid_work, prior_opts, prior_tag

COND_MODES = ("complete", "condition")


def check_cond_args(args: argparse.Namespace) -> None:
    """Flag combinations of the two modes that need no model."""
    if args.mode not in COND_MODES:
        return
    images, data = args.image or [], args.from_data
    if bool(images) == (data is not None):
        raise ConfigError(f"--mode {args.mode} needs its inputs: --image FILE (repeatable) or --from-data SPLIT "
                          "(with --n-images K), one of the two")
    if args.n_images is not None and data is None:
        raise ConfigError("--n-images counts the images taken with --from-data SPLIT; add --from-data or drop it")
    if args.n_images is not None and args.n_images < 1:
        raise ConfigError(f"--n-images must be at least 1, got {args.n_images}")
    if args.seeds is not None:
        raise ConfigError(f"--mode {args.mode} draws --n samples per image from --seed; use --seed, not --seeds")
    for flag, value in (("--psi", args.psi), ("--cutoff", args.cutoff), ("--noise", args.noise),
                        ("--nrow", args.nrow), ("--individual", args.individual), ("--opt", args.opt or None)):
        if value is not None:
            raise ConfigError(f"{flag} does not apply to --mode {args.mode} (a code prior's rows: input | samples | "
                              "original); drop it")


def snapshot_model_config(snap: Snapshot) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.create(snap.metadata.get("model_config") or "{}"), resolve=True)


def check_prior(bundle: Bundle, modules: Mapping[str, nn.Module], mode: str, run: str, flag: str = "--mode") -> None:
    """``complete`` needs a code prior; ``condition`` a code-conditioned one (``flag``: the option that asked)."""
    name = bundle.info.get("name") or "this run"
    kind = bundle.info.get("kind") or "gan"
    if kind != "prior":
        what = "a VQ tokenizer (stage 1)" if kind == "autoencoder" else "a GAN"
        raise ConfigError(f"{flag} {mode} needs a code prior (VQ stage 2: vqgan_prior, vit_vqgan_prior...); {run} is "
                          f"{name}, {what}. Train a prior on a tokenizer (`ganzoo train model=vqgan_prior "
                          "model.stage1=<vq run>`) and use that run")
    if mode == "condition" and "cond_stage" not in modules:
        has = f"its {bundle.c_dim} classes" if bundle.c_dim else "nothing (unconditional)"
        other = "--mode complete" if flag == "--mode" else "--task complete:KEEP"
        raise ConfigError(f"{flag} condition needs a code-conditioned prior (trained with model.cond_stage=...); "
                          f"{name} conditions on {has}. Use {other} to complete images with it")


def _data_images(snap: Snapshot, split: str, k: int, *, resolution: int, channels: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` images of the run's data at ``split`` and their labels (-1 without)."""
    from ..data import build_dataset

    config = OmegaConf.create(snap.config_yaml) if snap.config_yaml else None
    if config is None or "data" not in config:
        raise ConfigError(f"--from-data: {str(snap.path)!r} records no training data; pass --image files instead")
    cfg = OmegaConf.to_container(config.data, resolve=True)
    cfg.update(split=split, flip=False)
    dataset = build_dataset(cfg, resolution=resolution, channels=channels)
    items = [dataset[i] for i in range(min(k, len(dataset)))]
    return torch.stack([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items], dtype=torch.long)


def _classes(args: argparse.Namespace, bundle: Bundle, labels: torch.Tensor | None, count: int) -> torch.Tensor | None:
    """The class of every input: ``--class`` (in turn), else the dataset's labels; refused when unknown."""
    c_dim, given = bundle.c_dim, _labels(args)
    if c_dim == 0:
        if given is not None:
            raise ConfigError(f"--class: {bundle.info.get('name')} is unconditional (it has no classes); drop --class")
        return None
    if given is not None:
        bad = [k for k in given if not 0 <= k < c_dim]
        if bad:
            raise ConfigError(f"--class {bad[0]} is out of range: this model has {c_dim} classes (0-{c_dim - 1})")
        return torch.as_tensor([given[i % len(given)] for i in range(count)], dtype=torch.long)
    if labels is not None and bool((labels >= 0).all()) and bool((labels < c_dim).all()):
        return labels
    raise ConfigError(f"{bundle.info.get('name')} is class-conditional ({c_dim} classes): pass --class K, the class "
                      "of each image (a list is taken in turn)")


def _out_path(args: argparse.Namespace, run_dir: Path, name: str) -> Path:
    if args.out is not None and Path(args.out).is_dir():
        return Path(args.out) / f"{name}.png"
    return Path(args.out) if args.out else run_dir / "generated" / f"{name}.png"


def _source_tag(args: argparse.Namespace, count: int) -> str:
    if args.from_data is not None:
        return f"{args.from_data}{count}"
    stems = [Path(p).stem for p in args.image]
    tag = "_".join(stems[:3]) + (f"_and{len(stems) - 3}" if len(stems) > 3 else "")
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in tag)


def _keep_tag(spec: str) -> str:
    if spec.partition(":")[0] in ("top", "bottom", "left", "right"):
        return spec.replace(":", "")
    return "mask-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in Path(spec).stem)


@torch.no_grad()
def run_conditional_mode(args: argparse.Namespace) -> list[Path]:
    """Run ``--mode complete`` / ``--mode condition`` from parsed (and generically checked) arguments."""
    from .generate import _grid_progress, _run_dir, load_generator

    check_cond_args(args)
    snap = load_snapshot(args.checkpoint, with_state=False)
    bundle, modules, _ = load_generator(snap, ema=not args.raw, device=args.device)
    check_prior(bundle, modules, args.mode, str(args.checkpoint))
    opts = prior_opts(args)
    n_embed = int(bundle.info["n_embed"])
    if args.top_k is not None and args.top_k > n_embed:
        raise ConfigError(f"--top-k {args.top_k} is above the {n_embed} codes of this prior's tokenizer; use "
                          f"1-{n_embed}")
    n, seed = args.n or 4, args.seed or 0
    run_dir = _run_dir(args.checkpoint)
    count = len(args.image) if args.image else (args.n_images or 4)  # --grid: bounded and shown as in grid mode
    per_image = -(-n // args.batch) if args.mode == "condition" else None  # condition: batches of one image's n
    batches = count * per_image if per_image else -(-count * n // args.batch)
    with _grid_progress(check_grid_work(args, tuple(bundle.info["code_shape"]), count * n, batches)):
        draw = _complete if args.mode == "complete" else _condition
        imgs, nrow, name = draw(args, bundle, modules, snap, opts, n=n, seed=seed)
    return [save_grid(imgs, _out_path(args, run_dir, name + prior_tag(args) + ("_raw" if args.raw else "")),
                      nrow=nrow)]


def _complete(args: argparse.Namespace, bundle: Bundle, modules: Mapping[str, nn.Module], snap: Snapshot,
              opts: dict[str, Any], *, n: int, seed: int) -> tuple[torch.Tensor, int, str]:
    tokenizer = modules["tokenizer"]
    h, w = tokenizer.code_shape
    f = bundle.resolution // h
    grid = opts.pop("grid", None)
    if grid is not None and tuple(grid) != (h, w):
        if not getattr(tokenizer.ae, "decodes_any_size", False):
            raise ConfigError(f"--grid {args.grid}: this tokenizer only encodes and decodes its training grid {h}x{w}")
        if grid[0] < h or grid[1] < w or grid[0] != grid[1]:
            raise ConfigError(f"--grid {args.grid}: give a square code grid at least the training {h}x{w}")
    size = grid if grid is not None else (h, w)
    resolution = size[0] * f
    keep = keep_region(args.keep or "top", size)
    labels = None
    if args.from_data is not None:
        images, labels = _data_images(snap, args.from_data, args.n_images or 4, resolution=resolution,
                                      channels=bundle.channels)
    else:
        images = torch.cat([load_image(p, resolution=resolution, channels=bundle.channels, resize=args.resize)
                            for p in args.image])
    c = _classes(args, bundle, labels, images.shape[0])
    cond_tokens = snapshot_model_config(snap).get("cond_tokens", "separate")
    gen = torch.Generator().manual_seed(seed)
    outs, _, _ = complete_images(modules, images, keep, n=n, c=c, cond_tokens=cond_tokens, generator=gen,
                                 batch=args.batch, **opts)
    rows = []
    for i in range(images.shape[0]):
        rows += [grey_out(images[i : i + 1], keep), outs[i * n : (i + 1) * n], images[i : i + 1]]
    name = f"complete_keep-{_keep_tag(args.keep or 'top')}_{_source_tag(args, images.shape[0])}_n{n}_seed{seed}"
    name += f"_class{'-'.join(map(str, _labels(args)))}" if _labels(args) else ""
    return torch.cat(rows), n + 2, name


def _condition(args: argparse.Namespace, bundle: Bundle, modules: Mapping[str, nn.Module], snap: Snapshot,
               opts: dict[str, Any], *, n: int, seed: int) -> tuple[torch.Tensor, int, str]:
    stage, tokenizer = modules["cond_stage"], modules["tokenizer"]
    ch = bundle.channels
    code_shape = tuple(tokenizer.code_shape)
    grid = opts.pop("grid", None)
    grid = None if grid is None or tuple(grid) == code_shape else tuple(grid)
    if grid is not None:  # the condition follows the sliding window (cond_window.py)
        if not getattr(tokenizer.ae, "decodes_any_size", False):
            raise ConfigError(f"--grid {args.grid}: this tokenizer only decodes its training grid "
                              f"{code_shape[0]}x{code_shape[1]}")
        if grid[0] < code_shape[0] or grid[1] < code_shape[1]:
            raise ConfigError(f"--grid {args.grid} is smaller than the training code grid {code_shape[0]}x"
                              f"{code_shape[1]}")
        (res, _), cond_geometry = check_grid_input(stage, code_shape, grid, bundle.resolution // code_shape[0], ch)
    else:
        res, cond_geometry = bundle.resolution, (int(stage.cond_resolution), int(stage.cond_channels))
    labels = stage.kind == "labels"  # one-hot label maps: read from files, never derived from an image
    if labels and (args.from_data is not None or grid is not None):
        raise ConfigError(f"this prior is conditioned on label maps ({stage.cond_channels} labels): pass them with "
                          "--image labels.png; --from-data (the run's data holds none) and --grid do not apply")
    if labels:
        inputs = [load_label_map(p, n_labels=stage.cond_channels, resolution=stage.cond_resolution,
                                 resize=args.resize) for p in args.image]
    elif args.from_data is not None:
        full, _ = _data_images(snap, args.from_data, args.n_images or 4, resolution=res, channels=ch)
        inputs = list(full.split(1))
    else:
        inputs = [load_image(p, resolution=res, channels=ch, resize=args.resize, also=cond_geometry)
                  for p in args.image]
    if _labels(args) is not None:
        raise ConfigError("--class does not apply to --mode condition: the prior is conditioned on the image")
    device = next(modules["prior"].parameters()).device
    cond_tokens = snapshot_model_config(snap).get("cond_tokens", "separate")
    gen = torch.Generator().manual_seed(seed)
    rows, has_original = [], False
    for x in inputs:
        is_full = not labels and tuple(x.shape[1:]) == (ch, res, res)
        if grid is not None:
            samples, preview = sample_condition_grid(modules, x, full=is_full, grid=grid, n=n, cond_tokens=cond_tokens,
                                                     generator=gen, batch=args.batch, opts=opts)
        else:
            cond = stage.derive(x.to(device)) if is_full else x.to(device)  # [1, cch, cres, cres]
            preview = _fit(stage.preview(cond).float().cpu(), res, ch)
            samples = torch.cat([bundle.sample(modules, m, cond_img=cond.expand(m, *cond.shape[1:]), generator=gen,
                                               **opts).float().cpu() for m in _chunks(n, args.batch)])
        rows.append((preview, samples, x if is_full else None))
        has_original |= is_full
    tiles = []
    for preview, samples, original in rows:
        tiles += [preview, samples]
        if has_original:
            tiles.append(original if original is not None else torch.ones_like(preview))  # blank: white
    name = f"condition_{_source_tag(args, len(inputs))}_n{n}_seed{seed}"
    return torch.cat(tiles), n + 1 + int(has_original), name


def _chunks(n: int, batch: int) -> list[int]:
    return [min(batch, n - i) for i in range(0, n, batch)]


def _fit(img: torch.Tensor, resolution: int, channels: int) -> torch.Tensor:
    """A preview at the grid's tile size and channels (nearest, so a low-resolution condition shows its pixels)."""
    if img.shape[-1] != resolution or img.shape[-2] != resolution:
        img = F.interpolate(img, size=(resolution, resolution), mode="nearest")
    if img.shape[1] != channels:
        img = img.mean(1, keepdim=True) if channels == 1 else img.expand(-1, channels, -1, -1)
    return img


__all__ = ["COND_MODES", "check_cond_args", "check_prior", "run_conditional_mode"]
