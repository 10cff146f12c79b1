"""``ganzoo edit``: move a sampled or projected latent along a direction (grid + GIF), or swap VQ code regions.

The parser uses the standard library only, so ``ganzoo edit --help`` imports no torch.
"""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  ganzoo edit RUN --seeds 1,2 --direction RUN/directions/sefa_all.safetensors:0 --strength -3,3 --steps 7
  ganzoo edit RUN --latent RUN/projected/x/latent.safetensors --direction D.safetensors:2 --layers coarse
  ganzoo edit VQ_RUN --latent a/latent.safetensors --swap b/latent.safetensors --region top   # code regions
writes <run>/edited/<name>.png (rows = latents, columns = strengths) and .gif. See docs/editing.md."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganzoo edit", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Apply a direction of `ganzoo directions` to seeds or to a latent of "
                                "`ganzoo project`; or swap regions of two VQ code latents.")
    p.add_argument("checkpoint", help="run folder, checkpoints/ folder or snapshot-*.safetensors")
    p.add_argument("--latent", default=None, metavar="FILE", help="a latent file of `ganzoo project` (this run's)")
    p.add_argument("--seeds", default=None, metavar="LIST", help="or seeded latents, e.g. 1,2 or 0-3")
    p.add_argument("--direction", default=None, metavar="FILE:K", help="direction K (default 0) of a directions file")
    p.add_argument("--strength", default="-3,3", metavar="A,B",
                   help="strengths from A to B in units of the direction's scale (default -3,3)")
    p.add_argument("--steps", type=int, default=7, help="strengths drawn (default 7)")
    p.add_argument("--layers", default=None, metavar="coarse|middle|fine|A-B",
                   help="W directions: move only these ws (W+ edit; default: the file's SeFa layers, else all)")
    p.add_argument("--class", dest="cls", type=int, default=None, metavar="K",
                   help="conditional models: the class of every latent (default: the seed's or the latent's)")
    p.add_argument("--swap", default=None, metavar="FILE", help="VQ codes: the latent whose region is copied in")
    p.add_argument("--region", default=None, metavar="R", help="--swap: top, bottom, left, right or X0,Y0,X1,Y1 in "
                   "code cells")
    p.add_argument("--frame-ms", dest="frame_ms", type=int, default=120, help="GIF frame duration (default 120)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="extra generator option")
    p.add_argument("--out", default=None, help="output base name (default <run>/edited/<name>)")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--raw", action="store_true", help="use the trained weights, not the EMA copy")
    p.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:1, mps")
    return p


def _joined(argv: list[str]) -> list[str]:
    """``--strength -3,3`` -> ``--strength=-3,3``: argparse would take ``-3,3`` for an option."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--strength" and arg.startswith("-"):
            out[-1] = f"--strength={arg}"
        else:
            out.append(arg)
    return out


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(_joined(argv))
    from ..editing.edit_run import run_edit

    for path in run_edit(args):
        print(path)
    return 0
