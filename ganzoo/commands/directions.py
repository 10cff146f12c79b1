"""``ganzoo directions``: discover edit directions without labels (SeFa, GANSpace PCA, class means).

The parser uses the standard library only, so ``ganzoo directions --help`` imports no torch.
"""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  ganzoo directions RUN --method sefa --k 8                 # closed-form factorisation of the style affines
  ganzoo directions RUN --method sefa --layers coarse       # only the ws of the 4-8 px layers
  ganzoo directions RUN --method pca --n 10000 --k 8        # GANSpace: PCA of sampled W (or of BigGAN's first layer)
  ganzoo directions RUN --method class-mean --classes 3,5   # mean W (or class code) of class 3 minus class 5
writes <run>/directions/<method>_<layers>.safetensors and a walk grid PNG (rows = directions, columns = strengths);
apply one with `ganzoo edit RUN --seeds 1,2 --direction FILE:K --strength -3,3`. See docs/editing.md."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganzoo directions", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Find edit directions of a trained GAN without labels and draw a grid "
                                "that walks the top k.")
    p.add_argument("checkpoint", help="run folder, checkpoints/ folder or snapshot-*.safetensors")
    p.add_argument("--method", choices=("sefa", "pca", "class-mean"), required=True,
                   help="sefa: eigenvectors of the stacked style affines (or of the first layer on z); pca: GANSpace; "
                   "class-mean: class differences (conditional models)")
    p.add_argument("--k", type=int, default=8, help="directions kept (default 8)")
    p.add_argument("--layers", default=None, metavar="all|coarse|middle|fine|A-B",
                   help="style generators: the ws SeFa factorises and the walk moves (default all)")
    p.add_argument("--n", type=int, default=10_000, help="pca, class-mean (W): latents sampled (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples and of the walk's latent (default 0)")
    p.add_argument("--classes", default=None, metavar="A,B", help="class-mean: one direction, class A minus class B "
                   "(default: each of the first k classes minus the mean of all)")
    p.add_argument("--class", dest="cls", type=int, default=None, metavar="K",
                   help="conditional models: the class of the walk's latent (and of the first-layer samples)")
    p.add_argument("--strength", type=float, default=3.0, help="the walk spans -S..S in units of the direction's "
                   "scale (pca: standard deviations; default 3)")
    p.add_argument("--steps", type=int, default=7, help="columns of the walk (default 7)")
    p.add_argument("--out", default=None, help="output folder (default <run>/directions)")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--raw", action="store_true", help="use the trained weights, not the EMA copy")
    p.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:1, mps")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from ..editing.directions import load_directions
    from ..editing.edit_run import run_directions

    paths = run_directions(args)
    found = load_directions(paths[0])
    what = {"sefa": "eigenvalue", "pca": "variance", "class-mean": "norm"}[args.method]
    total = float(found.values.sum())
    for k in range(len(found)):
        print(f"  {k}: {what} {float(found.values[k]):.4g}" + (f" ({float(found.values[k]) / total:.1%} of the top "
              f"{len(found)})" if args.method != "class-mean" and total > 0 else "")
              + f", scale {float(found.scales[k]):.4g}")
    for path in paths:
        print(path)
    return 0
