"""``ganzoo reconstruct``: what a trained VQ autoencoder (VQ-GAN, ViT-VQGAN) does to images.

For a set of images (fixed, seeded ones from the run's own dataset, or a folder) it writes

- ``reconstruct.png``: rows of inputs and their reconstructions, one above the other;
- ``codes.png``: the code indices as an image (one colour per code, see :func:`code_colors`);
- ``metrics.json``: PSNR, SSIM, codebook usage and perplexity over these images, LPIPS when its
  weights exist, and where the numbers come from;
- ``histogram.png`` (``--histogram``): how often each code is used (:func:`usage_histogram`).

The library functions (:func:`reconstruct_images`, :func:`reconstruction_metrics`, ...) are also
what ``ganzoo eval`` uses for autoencoder runs.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from ..bundle import Bundle
from ..errors import ConfigError
from ..metrics.reconstruction import codebook_usage, psnr, ssim
from ..training.checkpoint import atomic_write
from .images import save_grid

__all__ = [
    "add_reconstruct_args",
    "check_autoencoder",
    "code_colors",
    "codes_image",
    "dataset_images",
    "folder_images",
    "reconstruct_images",
    "reconstruction_metrics",
    "run_reconstruct",
    "usage_histogram",
]


def check_autoencoder(bundle: Bundle, what: str = "this command") -> None:
    """A :class:`ConfigError` unless ``bundle`` is a VQ autoencoder (``info["kind"] == "autoencoder"``)."""
    if bundle.info.get("kind") != "autoencoder":
        raise ConfigError(
            f"{what} needs an autoencoder run (vqgan, vit_vqgan...), but this checkpoint is a "
            f"{bundle.info.get('name', '?')!r} model; use `ganzoo generate` for GANs"
        )


@torch.no_grad()
def reconstruct_images(
    G: nn.Module, images: torch.Tensor, *, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstructions ``[N, C, H, W]`` (float32, CPU) and code indices ``[N, h, w]`` of ``images`` in ``[-1, 1]``."""
    device = next(G.parameters()).device
    recs, codes = [], []
    for i in range(0, images.shape[0], batch_size):
        rec, q = G(images[i : i + batch_size].to(device))
        recs.append(rec.float().cpu())
        codes.append(q.indices.cpu())
    return torch.cat(recs), torch.cat(codes)


def reconstruction_metrics(
    inputs: torch.Tensor,
    recs: torch.Tensor,
    indices: torch.Tensor,
    n_embed: int,
    *,
    lpips_fn: Any = None,
) -> dict[str, float]:
    """PSNR (dB, data range 2), SSIM (when the images are at least 11x11), codebook usage, number of
    codes used, perplexity and, given ``lpips_fn(a, b) -> [N]``, the mean LPIPS."""
    recs = recs.clamp(-1, 1)  # the images a user sees; the decoder output is unbounded (no tanh)
    out: dict[str, float] = {"psnr": float(psnr(inputs, recs))}
    if min(inputs.shape[-2:]) >= 11:
        out["ssim"] = float(ssim(inputs, recs))
    stats = codebook_usage(indices, n_embed)
    out.update(usage=stats["usage"], num_used=stats["num_used"], perplexity=stats["perplexity"])
    if lpips_fn is not None:
        values = [lpips_fn(a, b).float().cpu() for a, b in zip(inputs.split(64), recs.split(64))]
        out["lpips"] = float(torch.cat(values).mean())
    return out


def code_colors(n_embed: int) -> torch.Tensor:
    """A fixed colour per code ``[n_embed, 3]`` in ``[0, 1]``: hue, saturation and value from
    low-discrepancy sequences of the index, so neighbouring indices get distinct colours."""
    k = torch.arange(n_embed, dtype=torch.float64)
    h = torch.frac(k * 0.6180339887498949)  # golden-ratio hues
    s = 0.55 + 0.45 * torch.frac(k * 0.7548776662466927)
    v = 0.6 + 0.4 * torch.frac(k * 0.5698402909980532)
    # HSV -> RGB (the standard piecewise form)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    r = torch.stack([v, q, p, p, t, v], dim=1).gather(1, i[:, None])[:, 0]
    g = torch.stack([t, v, v, q, p, p], dim=1).gather(1, i[:, None])[:, 0]
    b = torch.stack([p, p, t, v, v, q], dim=1).gather(1, i[:, None])[:, 0]
    return torch.stack([r, g, b], dim=1).float()  # [K, 3]


def codes_image(indices: torch.Tensor, n_embed: int, *, size: int | None = None) -> torch.Tensor:
    """Code indices ``[N, h, w]`` -> RGB images ``[N, 3, size, size]`` in ``[-1, 1]`` (nearest upscaling)."""
    rgb = code_colors(n_embed)[indices.long().cpu()]  # [N, h, w, 3]
    img = rgb.permute(0, 3, 1, 2) * 2.0 - 1.0  # [N, 3, h, w]
    if size is not None and size != img.shape[-1]:
        img = F.interpolate(img, size=(size, size), mode="nearest")
    return img


def usage_histogram(indices: torch.Tensor, n_embed: int, path: str | Path, *, title: str = "") -> Path:
    """Bar plot of how often each code index is used (codes sorted by index), with usage and perplexity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = torch.bincount(indices.reshape(-1).long().cpu(), minlength=n_embed).numpy()
    stats = codebook_usage(indices, n_embed)
    fig, ax = plt.subplots(figsize=(8, 3), dpi=120)
    ax.bar(range(n_embed), counts, width=1.0, color="#3b6ea5", linewidth=0)
    ax.set_xlim(-0.5, n_embed - 0.5)
    ax.set_xlabel("code index")
    ax.set_ylabel("count")
    summary = (f"{int(stats['num_used'])}/{n_embed} codes used ({100 * stats['usage']:.1f}%), "
               f"perplexity {stats['perplexity']:.1f}, {counts.sum()} vectors")
    ax.set_title(f"{title}\n{summary}" if title else summary, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


# -- inputs ------------------------------------------------------------------------------------------
def dataset_items(data_cfg: Mapping[str, Any], n: int, *, seed: int, resolution: int,
                  channels: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """``(indices, images [n, C, R, R], labels [n])`` of ``n`` dataset images chosen by a seeded permutation
    (the same images for the same seed; labels -1 for unlabelled data)."""
    from ..data import build_dataset

    cfg = dict(data_cfg)
    cfg["flip"] = False
    dataset = build_dataset(cfg, resolution=resolution, channels=channels)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=g)[: min(n, len(dataset))].tolist()
    items = [dataset[i] for i in idx]
    labels = torch.as_tensor([int(label) for _, label in items], dtype=torch.long)
    return idx, torch.stack([img for img, _ in items]), labels


def dataset_images(data_cfg: Mapping[str, Any], n: int, *, seed: int, resolution: int, channels: int) -> torch.Tensor:
    """``n`` images of a dataset chosen by a seeded permutation (the same images for the same seed)."""
    return dataset_items(data_cfg, n, seed=seed, resolution=resolution, channels=channels)[1]


def folder_images(folder: str | Path, n: int, *, resolution: int, channels: int, fit: str = "crop") -> torch.Tensor:
    """The first ``n`` images (sorted paths) of a folder, fitted to the model's geometry."""
    from ..data import build_dataset

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(f"--images {str(folder)!r} is not a folder of images")
    dataset = build_dataset({"name": "folder", "root": str(root), "fit": fit, "flip": False, "max_images": n},
                            resolution=resolution, channels=channels)
    return torch.stack([dataset[i][0] for i in range(min(n, len(dataset)))])


# -- the command -------------------------------------------------------------------------------------
def add_reconstruct_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="run folder, checkpoints/ folder or snapshot-*.safetensors")
    parser.add_argument("--images", default=None, help="folder of images (default: the run's own dataset)")
    parser.add_argument("--n", type=int, default=16, help="number of images (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="which dataset images (seeded choice, default 0)")
    parser.add_argument("--split", default=None, help="dataset split (default: the one the run trained on)")
    parser.add_argument("--nrow", type=int, default=8, help="images per row (default 8)")
    parser.add_argument("--out", default=None, help="output folder (default <run>/reconstruct)")
    parser.add_argument("--histogram", action="store_true", help="also draw the code-usage histogram")
    parser.add_argument("--lpips-weights", default=None, help="torchvision AlexNet weights file for LPIPS")
    parser.add_argument("--raw", action="store_true", help="use the trained weights, not the EMA copy")
    parser.add_argument("--batch", type=int, default=64, help="images per forward pass (default 64)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:1, "
                        "mps")


def _interleave_rows(a: torch.Tensor, b: torch.Tensor, cols: int) -> list[torch.Tensor]:
    """Rows of ``cols`` images from ``a`` and ``b`` alternately (a row of inputs, then theirs)."""
    rows = []
    for i in range(0, a.shape[0], cols):
        rows += [a[i : i + cols], b[i : i + cols]]
    return rows


def _pad_row(row: torch.Tensor, cols: int) -> torch.Tensor:
    if row.shape[0] == cols:
        return row
    blank = torch.ones(cols - row.shape[0], *row.shape[1:])  # white
    return torch.cat([row, blank])


def _optional_lpips(weights: str | None, device: torch.device) -> tuple[Any, str | None]:
    """LPIPS (AlexNet) when its backbone weights exist, else ``(None, why)``; never downloads."""
    from ..metrics import WeightsNotFoundError, lpips_distance

    try:
        return lpips_distance("alex", weights, device=device, allow_download=False), None
    except WeightsNotFoundError as err:
        return None, str(err).split("\n")[0]


def run_reconstruct(args: argparse.Namespace) -> tuple[list[Path], dict[str, Any]]:
    """Run ``ganzoo reconstruct`` from parsed arguments; returns the paths written and the metrics record."""
    from ..metrics.features import file_sha256
    from ..runtime import select_device
    from ..training.checkpoint import load_snapshot
    from .generate import load_generator

    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    snap = load_snapshot(args.checkpoint, with_state=False)
    bundle, modules, _ = load_generator(snap, ema=not args.raw, device=args.device)
    check_autoencoder(bundle, "`ganzoo reconstruct`")
    G = modules["G"]
    res, ch = bundle.resolution, bundle.channels
    if args.images:
        images = folder_images(args.images, args.n, resolution=res, channels=ch)
        source: dict[str, Any] = {"images": str(Path(args.images).resolve())}
    else:
        config = OmegaConf.create(snap.config_yaml) if snap.config_yaml else None
        if config is None or "data" not in config:
            raise ConfigError(f"{str(snap.path)!r} does not record its training data: pass --images DIR")
        data_cfg = OmegaConf.to_container(config.data, resolve=True)
        if args.split:
            data_cfg["split"] = args.split
        images = dataset_images(data_cfg, args.n, seed=args.seed, resolution=res, channels=ch)
        source = {"dataset": data_cfg.get("name"), "split": data_cfg.get("split"), "seed": args.seed}
    recs, indices = reconstruct_images(G, images, batch_size=args.batch)
    n_embed = int(bundle.info.get("n_embed", getattr(G, "n_embed", 0)))
    lpips_fn, lpips_why = _optional_lpips(args.lpips_weights, select_device(args.device))
    metrics = reconstruction_metrics(images, recs, indices, n_embed, lpips_fn=lpips_fn)

    run_dir = snap.path.parent.parent
    out = Path(args.out) if args.out else run_dir / "reconstruct"
    cols = max(1, min(args.nrow, images.shape[0]))
    rows = _interleave_rows(images, recs.clamp(-1, 1), cols)
    paths = [save_grid(torch.cat([_pad_row(r, cols) for r in rows]), out / "reconstruct.png", nrow=cols, pad=1)]
    codes = codes_image(indices, n_embed, size=res)
    paths.append(save_grid(codes, out / "codes.png", nrow=cols, pad=1))
    images_seen = int(snap.metadata.get("images_seen", "0"))
    if args.histogram:
        title = f"{bundle.info.get('name')} at {images_seen / 1000:g} kimg"
        paths.append(usage_histogram(indices, n_embed, out / "histogram.png", title=title))
    record = {
        "model": bundle.info.get("name"),
        "checkpoint_path": str(snap.path),
        "checkpoint_sha256": file_sha256(snap.path),
        "images_seen": images_seen,
        "weights": "ema" if (not args.raw and "G" in snap.ema) else "trained",
        "num_images": int(images.shape[0]),
        "code_shape": list(indices.shape[1:]),
        "n_embed": n_embed,
        "source": source,
        **{k: (v if math.isfinite(v) else str(v)) for k, v in metrics.items()},
    }
    if lpips_why:
        record["lpips_skipped"] = lpips_why
    metrics_path = out / "metrics.json"
    atomic_write(metrics_path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
    paths.append(metrics_path)
    return paths, record
