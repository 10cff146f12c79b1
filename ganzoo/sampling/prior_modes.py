"""``ganzoo generate`` for code priors (VQ stage 2): sampling options from the command line and one row
of draws per class. A prior has no latent ``z``: a seed drives its sampler's own randomness."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..bundle import Bundle
from ..errors import ConfigError


def prior_opts(args: argparse.Namespace) -> dict[str, Any]:
    """``temperature``, ``top_k``, ``top_p`` and ``grid`` from the flags that were given."""
    opts: dict[str, Any] = {}
    if args.temperature is not None:
        if not (args.temperature > 0 and math.isfinite(args.temperature)):
            raise ConfigError(f"--temperature must be a finite number > 0 (1 = the model's own distribution; "
                              f"lower is sharper), got {args.temperature}")
        opts["temperature"] = args.temperature
    if args.top_k is not None:
        if args.top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
        opts["top_k"] = args.top_k
    if args.top_p is not None:
        if not 0 < args.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], got {args.top_p}")
        opts["top_p"] = args.top_p
    if args.grid is not None:
        opts["grid"] = parse_grid(args.grid)
    return opts


def parse_grid(spec: str) -> tuple[int, int]:
    parts = spec.lower().replace(",", "x").split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"--grid expects a code grid HxW such as 16x16 (or one number), got {spec!r}")
    return int(parts[0]), int(parts[1])


def prior_tag(args: argparse.Namespace) -> str:
    """File-name suffix naming the sampling options that were given."""
    tag = ""
    for flag, value in (("T", args.temperature), ("k", args.top_k), ("p", args.top_p)):
        if value is not None:
            tag += f"_{flag}{value:g}"
    if args.grid is not None:
        h, w = parse_grid(args.grid)
        tag += f"_grid{h}x{w}"
    return tag


MAX_WINDOW_PASSES = 100_000  # --grid above this many forward passes needs --force (issue 19.20)


def check_grid_work(args: argparse.Namespace, code_shape: tuple[int, int], images: int, batches: int) -> int:
    """Estimate the work of ``--grid`` (forward passes of the sliding window) for ``images`` images drawn in
    ``batches`` batches; refuse it above :data:`MAX_WINDOW_PASSES` unless ``--force``. Returns the estimate."""
    if args.grid is None:
        return 0
    (gh, gw), (h, w) = parse_grid(args.grid), code_shape
    if (gh, gw) == (h, w):
        return 0
    passes = batches * gh * gw
    if passes > MAX_WINDOW_PASSES and not getattr(args, "force", False):
        normal = batches * h * w
        raise ConfigError(
            f"--grid {gh}x{gw} needs about {passes:,} forward passes of the prior ({gh * gw:,} codes per image, one "
            f"pass each, for {images} image(s) in {batches} batch(es)), {passes / normal:,.0f}x the {normal:,} of a "
            f"draw at the {h}x{w} training grid; the bound is {MAX_WINDOW_PASSES:,}. Ask for a smaller --grid or "
            "fewer images (--n, --seeds), or add --force to run it anyway (with a progress bar)")
    return passes


@torch.no_grad()
def prior_class_rows(bundle: Bundle, modules: Mapping[str, nn.Module], classes: Sequence[int], *, n: int, seed: int,
                     batch: int, opts: Mapping[str, Any]) -> tuple[torch.Tensor, int]:
    """``n`` draws per class, one row each; returns ``(images [R * n, C, H, W], n)``."""
    gen = torch.Generator().manual_seed(int(seed))
    labels = torch.as_tensor(list(classes), dtype=torch.long).repeat_interleave(n)  # [R * n]
    chunks = [bundle.sample(modules, c=labels[i : i + batch], generator=gen, **opts).float().cpu()
              for i in range(0, labels.shape[0], batch)]
    return torch.cat(chunks), n
