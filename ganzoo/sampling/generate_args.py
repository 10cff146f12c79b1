"""`ganzoo generate`'s options: the parser, the values it accepts and the checks that need no model."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Mapping
from typing import Any

import yaml
from torch import nn

from ..errors import ConfigError


def parse_opts(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as YAML scalars (``0.7`` -> float, ``true`` -> bool)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--opt expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k] = yaml.safe_load(v) if v else v
    return out


def check_opts(G: nn.Module, opts: Mapping[str, Any], fn: Any = None) -> None:
    """Raise a :class:`ConfigError` for options that ``fn`` (default ``G.forward``) does not take."""
    fn = fn if fn is not None else G
    fn = getattr(fn, "forward", fn)  # a module's own signature, not nn.Module.__call__'s *args
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(opts) - set(params))
    if unknown:
        allowed = [p for p in params if p not in ("z", "c", "ws")]
        raise ConfigError(f"this generator does not take {unknown}; it accepts {allowed or 'no options'}")


def parse_seeds(spec: str, flag: str = "--seeds") -> list[int]:
    """``"1,2,3"``, ``"1-8"`` or a mix (``"0-3,10"``) -> a list of non-negative seeds, in order."""
    seeds: list[int] = []
    for part in spec.replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ConfigError(f"{flag} expects comma-separated seeds or ranges such as 1,2,3 or 0-7; got {spec!r}")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise ConfigError(f"{flag}: range {part!r} is empty; write it low-high ({b}-{a})")
        seeds.extend(range(a, b + 1))
    return seeds


def parse_floats(spec: str, flag: str) -> list[float]:
    """``"2,1,0.5"`` -> ``[2.0, 1.0, 0.5]``, every value > 0."""
    try:
        values = [float(v) for v in spec.replace(" ", "").split(",") if v]
    except ValueError:
        values = []
    if not values or not all(v > 0 for v in values):
        raise ConfigError(f"{flag} expects comma-separated positive numbers such as 2,1,0.5,0.04; got {spec!r}")
    return values


def parse_query(spec: str) -> tuple[int, int]:
    """``"X,Y"`` -> ``(x, y)``: image pixel, x from the left, y from the top."""
    parts = spec.replace(" ", "").split(",")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"--query expects a pixel X,Y (column, row from the top-left), e.g. --query 8,20; "
                          f"got {spec!r}")
    return int(parts[0]), int(parts[1])


MODES = ("grid", "interp", "mix", "classes", "truncation-sweep", "class-interp", "attention")
# Code priors given an image (conditional_modes.py): completion, and code-conditioned sampling.
IMAGE_MODES = ("complete", "condition")
MODES += IMAGE_MODES
MODES += ("arithmetic",)  # latent vector arithmetic, DCGAN Sec. 6.3 (ganzoo/editing/arithmetic.py)
# Modes that draw their latents from --seeds or --n/--seed, and may truncate them in Z.
LATENT_MODES = ("grid", "classes", "truncation-sweep", "class-interp", "attention")
# Modes with a fixed layout: no --nrow, no --individual.
LAYOUT_MODES = ("mix", "classes", "truncation-sweep", "class-interp", "attention", "arithmetic")
NOISE_MODES = ("const", "random", "none")
# Flags that belong to some modes: argparse dest -> (flag, modes).
MODE_FLAGS = {
    "n": ("--n", LATENT_MODES + IMAGE_MODES),
    "seed": ("--seed", LATENT_MODES + IMAGE_MODES + ("arithmetic",)),
    "groups": ("--groups", ("arithmetic",)),
    "expr": ("--expr", ("arithmetic",)),
    "image": ("--image", IMAGE_MODES),
    "keep": ("--keep", ("complete",)),
    "resize": ("--resize", IMAGE_MODES),
    "from_data": ("--from-data", IMAGE_MODES),
    "n_images": ("--n-images", IMAGE_MODES),
    "truncation": ("--truncation", tuple(m for m in LATENT_MODES if m != "truncation-sweep")),
    "steps": ("--steps", ("interp", "class-interp")),
    "space": ("--space", ("interp", "arithmetic")),
    "gif": ("--gif", ("interp",)),
    "pingpong": ("--pingpong", ("interp",)),
    "frame_ms": ("--frame-ms", ("interp",)),
    "rows": ("--rows", ("mix",)),
    "cols": ("--cols", ("mix",)),
    "crossover": ("--crossover", ("mix",)),
    "thresholds": ("--thresholds", ("truncation-sweep",)),
    "classes": ("--classes", ("class-interp",)),
    "query": ("--query", ("attention",)),
    "layer": ("--layer", ("attention",)),
}
RESERVED_OPTS = {"truncation_psi": "--psi", "truncation_cutoff": "--cutoff", "noise_mode": "--noise"}


def add_generate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="run folder, checkpoints/ folder or snapshot-*.safetensors")
    parser.add_argument("--mode", choices=MODES, default="grid",
                        help="grid: seeded images (default); interp: interpolation strip + GIF; mix: style mixing; "
                        "classes: one row per class; truncation-sweep: latents x thresholds; class-interp: class "
                        "interpolation at fixed z; attention: self-attention maps of query pixels; complete: a code "
                        "prior completes --image files from a kept region (--keep); condition: a code-conditioned "
                        "prior samples from the condition of --image files (super-resolution, map-to-image); "
                        "arithmetic: vector arithmetic on group means, DCGAN Fig. 7 (--groups, --expr)")
    parser.add_argument("--out", default=None,
                        help="output PNG (interp: <out>.png strip and <out>.gif), or an existing folder to write the "
                        "default file name into; default <run>/generated/<name>.png")
    parser.add_argument("--seeds", default=None, metavar="LIST",
                        help="grid: one image per seed; interp: keyframe seeds (>= 2); classes, truncation-sweep, "
                        "class-interp, attention: one latent per seed. E.g. 1,2,3 or 0-7 or 0-3,9")
    parser.add_argument("--class", dest="label", default=None, metavar="K[,K...]",
                        help="class(es) of conditional models: one for every image, or a list the images take in "
                        "turn (--mode classes: the rows)")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="extra generator option")
    parser.add_argument("--raw", action="store_true", help="use the trained weights, not the EMA copy")
    parser.add_argument("--batch", type=int, default=32, help="images per forward pass (default 32; lower it if "
                        "memory runs out)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:1, "
                        "mps")
    parser.add_argument("--nrow", type=int, default=None, help="images per row (grid, interp strip)")
    parser.add_argument("--individual", default=None, metavar="DIR",
                        help="also write one PNG per image (grid) or frame (interp) into DIR")

    grid = parser.add_argument_group("latents (--mode grid, classes, truncation-sweep, class-interp, attention)")
    grid.add_argument("--n", type=int, default=None,
                      help="latents drawn from --seed (default: grid 64; classes 8 columns; truncation-sweep, "
                      "class-interp and attention 4 rows)")
    grid.add_argument("--seed", type=int, default=None, help="seed of the --n latents (default 0)")
    grid.add_argument("--truncation", type=float, default=None, metavar="T",
                      help="BigGAN truncation in Z (any GAN): resample latent values with |z| > T")

    cond = parser.add_argument_group("conditional and attention modes")
    cond.add_argument("--thresholds", default=None, metavar="LIST",
                      help="truncation-sweep: thresholds, one column each (e.g. 2,1,0.5,0.04)")
    cond.add_argument("--classes", default=None, metavar="A,B[,...]",
                      help="class-interp: classes to walk through (--steps intervals between consecutive ones)")
    cond.add_argument("--query", action="append", default=None, metavar="X,Y",
                      help="attention: a query pixel (x from the left, y from the top); repeat for several "
                      "(default: the centres of the four quarters)")
    cond.add_argument("--layer", type=int, default=None,
                      help="attention: which self-attention layer of G, in module order (default 0)")

    prior = parser.add_argument_group("code priors (vqgan_prior, vit_vqgan_prior): --mode grid or classes")
    prior.add_argument("--temperature", type=float, default=None, help="softmax temperature of the codes (default 1)")
    prior.add_argument("--top-k", dest="top_k", type=int, default=None, help="draw only from the K likeliest codes")
    prior.add_argument("--top-p", dest="top_p", type=float, default=None,
                       help="draw only from the smallest set of codes with probability mass >= P (nucleus)")
    prior.add_argument("--grid", default=None, metavar="HxW",
                       help="code grid larger than the training one, sampled with a sliding window (VQ-GAN Fig. 3), "
                       "e.g. 16x16 for 2x larger images with an 8x8-code tokenizer; its work (one forward pass per "
                       "code) is estimated first, and above 100,000 passes refused unless --force")
    prior.add_argument("--force", action="store_true",
                       help="sample a --grid above the work bound anyway (a progress bar shows how far it got)")

    given = parser.add_argument_group(
        "code priors given an image (--mode complete: any prior; --mode condition: a code-conditioned prior)")
    given.add_argument("--image", action="append", default=None, metavar="FILE",
                       help="an input image at the model's size and channels (condition: or at the condition's); "
                       "repeat for several, one grid row each")
    given.add_argument("--from-data", dest="from_data", default=None, metavar="SPLIT",
                       help="take the inputs from the run's own dataset split instead of --image (e.g. train, test)")
    given.add_argument("--n-images", dest="n_images", type=int, default=None, metavar="K",
                       help="--from-data: the first K images of the split (default 4)")
    given.add_argument("--keep", default=None, metavar="REGION",
                       help="complete: the region whose codes are kept: top, bottom, left, right (halves), top:F "
                       "(fraction F of the rows; also bottom:F, left:F, right:F) or a mask image (white = keep; a "
                       "code cell is kept when most of its pixels are white). Default top")
    given.add_argument("--resize", action="store_true",
                       help="resize --image files of another size to the model's (bicubic, aspect not kept)")

    arith = parser.add_argument_group("latent arithmetic (--mode arithmetic, DCGAN Sec. 6.3)")
    arith.add_argument("--groups", default=None, metavar="G1;G2;...",
                       help="groups A, B, C, ... separated by ';': seeds (1,2,3) or a latent file of `ganzoo project`; "
                       "each group is averaged")
    arith.add_argument("--expr", default=None, help="expression on the group means, e.g. A-B+C or 0.5*A+0.5*B; --seed "
                       "seeds the +-0.25 noise of the 8 neighbours, --space z|w picks the space")

    style = parser.add_argument_group("style-based generators (stylegan, stylegan2)")
    style.add_argument("--psi", type=float, default=None, help="truncation psi in W: 1 = none, 0.7 typical, 0 = mean")
    style.add_argument("--cutoff", type=int, default=None, help="truncate only the first CUTOFF ws (needs --psi)")
    style.add_argument("--noise", choices=NOISE_MODES, default=None, help="per-pixel noise inputs (default const)")

    interp = parser.add_argument_group("interpolation (--mode interp)")
    interp.add_argument("--steps", type=int, default=None,
                        help="frames per seed-to-seed segment (default 16); class-interp: per class-to-class "
                        "segment (default 8)")
    interp.add_argument("--space", choices=("w", "z"), default=None,
                        help="w: lerp in W (style generators; default there); z: slerp in Z (any GAN)")
    interp.add_argument("--gif", action="store_true", help="also write an animated <out>.gif")
    interp.add_argument("--pingpong", action="store_true", help="GIF plays forward then backward")
    interp.add_argument("--frame-ms", dest="frame_ms", type=int, default=None, help="GIF frame duration (default 80)")

    mix = parser.add_argument_group("style mixing (--mode mix)")
    mix.add_argument("--rows", default=None, metavar="LIST", help="row sources A (seeds), e.g. 1,2,3")
    mix.add_argument("--cols", default=None, metavar="LIST", help="column sources B (seeds), e.g. 4-6")
    mix.add_argument("--crossover", default=None,
                     help="layers copied from B: coarse (ws 0-3, default), middle (4-7), fine (8+) or a range like 2-5")


def _given(args: argparse.Namespace, dest: str) -> bool:
    value = getattr(args, dest, None)
    return value is not False and value is not None


def check_args(args: argparse.Namespace) -> None:
    """Flag combinations that cannot work, checked before any model is loaded."""
    mode = args.mode
    for dest, (flag, modes) in MODE_FLAGS.items():
        if mode not in modes and _given(args, dest):
            raise ConfigError(f"{flag} only applies to --mode {' / '.join(modes)}; add --mode {modes[0]} or "
                              f"drop {flag}")
    labels = _labels(args)
    if labels is not None and len(labels) > 1 and mode in ("interp", "mix"):
        raise ConfigError(f"--mode {mode} keeps one class for every image; pass one --class K")
    if labels is not None and mode == "class-interp":
        raise ConfigError("--mode class-interp takes its classes as --classes A,B (e.g. --classes 3,5), not --class")
    if mode in LAYOUT_MODES and mode != "mix":
        for flag, value in (("--nrow", args.nrow), ("--individual", args.individual)):
            if value is not None:
                raise ConfigError(f"{flag} does not apply to --mode {mode} (its layout is fixed); drop it")
    if mode in LATENT_MODES and mode != "grid" and args.seeds is not None and (args.n is not None or
                                                                                 args.seed is not None):
        raise ConfigError("use either --seeds (one latent per seed) or --seed/--n (n latents from one seed), not both")
    if mode == "truncation-sweep":
        if args.thresholds is None:
            raise ConfigError("--mode truncation-sweep needs --thresholds, e.g. --thresholds 2,1,0.5,0.04")
        parse_floats(args.thresholds, "--thresholds")
    if mode == "class-interp" and (args.classes is None or len(parse_seeds(args.classes, "--classes")) < 2):
        raise ConfigError("--mode class-interp needs at least two classes, e.g. --classes 3,5")
    if args.truncation is not None and not args.truncation > 0:
        raise ConfigError(f"--truncation must be > 0 (BigGAN uses 2 down to 0.04), got {args.truncation}")
    for q in args.query or []:
        parse_query(q)
    if mode == "mix":
        if args.seeds is not None:
            raise ConfigError("--mode mix takes its seeds as --rows and --cols (e.g. --rows 1,2,3 --cols 4,5,6), "
                              "not --seeds")
        if args.rows is None or args.cols is None:
            raise ConfigError("--mode mix needs --rows and --cols, e.g. --rows 1,2,3 --cols 4,5,6")
        for flag, value in (("--nrow", args.nrow), ("--individual", args.individual)):
            if value is not None:
                raise ConfigError(f"{flag} does not apply to --mode mix (its layout is (rows+1) x (cols+1)); drop it")
    if mode == "grid" and args.seeds is not None and (args.n is not None or args.seed is not None):
        raise ConfigError("use either --seeds (one image per seed) or --seed/--n (n images from one seed), not both")
    if mode == "interp":
        if args.seeds is None or len(parse_seeds(args.seeds)) < 2:
            raise ConfigError("--mode interp needs at least two keyframe seeds, e.g. --seeds 1,2,3")
        if args.pingpong and not args.gif:
            raise ConfigError("--pingpong only changes the GIF; add --gif")
        if args.frame_ms is not None and not args.gif:
            raise ConfigError("--frame-ms only changes the GIF; add --gif")
    if getattr(args, "force", False) and args.grid is None:
        raise ConfigError("--force only lifts the work bound of a code prior's --grid; give --grid HxW or drop --force")
    if args.cutoff is not None and args.psi is None:
        raise ConfigError("--cutoff limits truncation to the first ws; give --psi too, e.g. --psi 0.7 --cutoff 8")
    for flag, value in (("--n", args.n), ("--steps", args.steps), ("--batch", args.batch), ("--nrow", args.nrow),
                        ("--frame-ms", args.frame_ms)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if args.layer is not None and args.layer < 0:
        raise ConfigError(f"--layer must be >= 0 (the generator's self-attention layers in module order, 0 = the "
                          f"first), got {args.layer}")
    if args.cutoff is not None and args.cutoff < 0:
        raise ConfigError(f"--cutoff must be >= 0, got {args.cutoff}")
    keys = {o.split("=", 1)[0] for o in args.opt}
    reserved = [f"{k} (use {flag})" for k, flag in RESERVED_OPTS.items() if k in keys]
    if reserved:
        raise ConfigError(f"--opt cannot set {', '.join(reserved)}")


def _labels(args: argparse.Namespace) -> list[int] | None:
    if args.label is None:
        return None
    try:
        return parse_seeds(args.label, "--class")
    except ConfigError:
        raise ConfigError(f"--class expects class indices such as 3 or 3,5 or 0-4; got {args.label!r}") from None


def _one_label(args: argparse.Namespace) -> int | None:
    labels = _labels(args)
    return labels[0] if labels else None
