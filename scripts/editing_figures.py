#!/usr/bin/env python
"""Assemble the pictures of docs/editing.md and docs/models/vqgan.md from the commands' own outputs.

Nothing is redrawn: cells are cut from the 1-px padded grids that `ganzoo project` writes and pasted into
rows, and small grids are enlarged by an integer factor with nearest-neighbour resampling (each pixel
becomes a square), so the pictures show exactly the pixels the commands produced.

usage:
  editing_figures.py projection OUT.png MEAN_LATENT_DIR [OTHER_PROJECTION_DIR ...]
      rows = targets, the mean latent's images, then the projection of each folder (one column per image)
  editing_figures.py enlarge OUT IN [--scale 2]
      a PNG or GIF (every frame) enlarged `scale` times
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageSequence

CELL = 32  # image side of the CPU runs; the grids put 1 px of padding around every cell


def _cells(path: Path, ncols: int) -> list[list[Image.Image]]:
    im = Image.open(path)
    step = CELL + 1
    rows = (im.size[1] - 1) // step
    return [[im.crop((1 + c * step, 1 + r * step, 1 + c * step + CELL, 1 + r * step + CELL)) for c in range(ncols)]
            for r in range(rows)]


def projection(out: Path, first: Path, others: list[Path], scale: int = 2) -> None:
    grid = _cells(first / "mean_latent.png", 3)  # per image: target | mean latent | projection
    rows = [[r[0] for r in grid], [r[1] for r in grid], [r[2] for r in grid]]
    for folder in others:
        rows.append([r[1] for r in _cells(folder / "target_vs_projection.png", 2)])
    step = CELL + 1
    canvas = Image.new("L", (len(rows[0]) * step + 1, len(rows) * step + 1), 255)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            canvas.paste(cell.convert("L"), (1 + j * step, 1 + i * step))
    canvas.resize((canvas.size[0] * scale, canvas.size[1] * scale), Image.NEAREST).save(out, optimize=True)


def enlarge(out: Path, src: Path, scale: int = 2) -> None:
    im = Image.open(src)
    size = (im.size[0] * scale, im.size[1] * scale)
    if src.suffix.lower() == ".gif":
        frames = [f.convert("RGB").resize(size, Image.NEAREST) for f in ImageSequence.Iterator(im)]
        frames[0].save(out, save_all=True, append_images=frames[1:], loop=0, duration=im.info.get("duration", 80))
    else:
        im.resize(size, Image.NEAREST).save(out, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("projection")
    p.add_argument("out", type=Path)
    p.add_argument("first", type=Path)
    p.add_argument("others", type=Path, nargs="*")
    e = sub.add_parser("enlarge")
    e.add_argument("out", type=Path)
    e.add_argument("src", type=Path)
    e.add_argument("--scale", type=int, default=2)
    args = parser.parse_args(argv)
    if args.what == "projection":
        projection(args.out, args.first, args.others)
    else:
        enlarge(args.out, args.src, args.scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
