#!/usr/bin/env python
"""PSNR / SSIM of plain up-sampling, the baseline for a super-resolution prior's `ganzoo eval --task condition`.

The condition a down-sampling prior sees (the image area-averaged to the condition size and quantized to its
levels, `cond_stage.dequantize(cond_stage.encode(cond_stage.derive(img)))`) is enlarged back to the image size
with nearest, bilinear and bicubic interpolation and compared with the original image, on the same images the
eval uses (the first N of the split, in order).

usage: sr_upsampling_baseline.py RUN [--split test] [--n 1000]
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args(argv)
    from pathlib import Path

    from omegaconf import OmegaConf

    from ganzoo.data import build_dataset
    from ganzoo.metrics.reconstruction import psnr, ssim
    from ganzoo.sampling.generate import load_generator

    bundle, modules, _ = load_generator(args.run, device="cpu")
    stage = modules["cond_stage"]
    data_cfg = OmegaConf.to_container(OmegaConf.load(Path(args.run) / "config.yaml").data, resolve=True)
    dataset = build_dataset({**data_cfg, "split": args.split, "flip": False}, resolution=bundle.resolution,
                            channels=bundle.channels)
    img = torch.stack([dataset[i][0] for i in range(min(args.n, len(dataset)))])
    low = stage.dequantize(stage.encode(stage.derive(img)))
    size = (bundle.resolution, bundle.resolution)
    for mode in ("nearest", "bilinear", "bicubic"):
        kw = {} if mode == "nearest" else {"align_corners": False}
        up = F.interpolate(low, size=size, mode=mode, **kw).clamp(-1, 1)
        print(f"{mode:>8}: PSNR {float(psnr(up, img)):.2f} dB, SSIM {float(ssim(up, img)):.4f} ({img.shape[0]} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
