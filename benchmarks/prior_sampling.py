"""Sampling speed of a code prior: key/value cache against full forward passes (VQ stage 2).

Draws ``--n`` sequences of ``--grid``^2 codes (a 16x16 grid is 256 codes) from a GPT of the given size with
``sample_tokens(use_cache=True)`` (one forward over the newest token per step) and ``use_cache=False`` (the
whole sequence every step), checks both give the same codes, and prints a markdown row per setting.

    python benchmarks/prior_sampling.py --grid 16 --n 8 --layers 8 --width 256
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from ganzoo.layers.gpt import GPT
from ganzoo.sampling.autoregressive import sample_tokens


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grid", type=int, default=16)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--device", default="cpu")
    return p


def build_gpt(args: argparse.Namespace) -> GPT:
    """The GPT the benchmark samples from: ``--layers`` x ``--width``, one position per code of the grid."""
    return GPT(vocab_size=args.vocab, block_size=args.grid * args.grid, n_layer=args.layers, n_head=args.heads,
               n_embd=args.width)


def main() -> None:
    args = parser().parse_args()
    torch.manual_seed(0)
    steps = args.grid * args.grid
    gpt = build_gpt(args).to(args.device).eval()
    prefix = torch.zeros(args.n, 1, dtype=torch.long, device=args.device)
    times, codes = {}, {}
    for cache in (True, False):
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        codes[cache] = sample_tokens(gpt, prefix, steps, top_k=100, generator=gen, use_cache=cache)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times[cache] = time.perf_counter() - t0
    same = torch.equal(codes[True], codes[False])
    params = sum(p.numel() for p in gpt.parameters())
    print(f"{platform.platform()}, {torch.get_num_threads()} threads, torch {torch.__version__}, device {args.device}")
    print("| GPT | codes per image | images | with KV cache (s) | full forwards (s) | speed-up | same codes |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.layers} layers x {args.width} ({params / 1e6:.1f}M) | {steps} | {args.n} | {times[True]:.2f} | "
          f"{times[False]:.2f} | {times[False] / times[True]:.1f}x | {same} |")


if __name__ == "__main__":
    main()
