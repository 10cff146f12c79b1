"""``ganzoo generate``: rebuild a model from a checkpoint and draw seeded images.

The checkpoint carries its own model config, so no other file is needed. EMA weights are used
when the checkpoint has them (``--raw`` takes the trained weights instead). Modes:

- ``grid``: seeded images, optionally truncated (``--psi``, ``--cutoff``; StyleGAN Sec. 4; or
  ``--truncation`` in Z, BigGAN Sec. 3.1),
- ``interp``: a latent interpolation strip and GIF (lerp in W or slerp in Z; StyleGAN Sec. 4.2),
- ``mix``: a style-mixing grid (StyleGAN Sec. 3.1, Fig. 3),
- ``classes``: one row per class, the same ``z`` down each column (conditional models),
- ``truncation-sweep``: the same latents at several Z truncation thresholds (BigGAN Fig. 2(a)),
- ``class-interp``: class interpolation at fixed ``z`` (the class-embedding protocol, class_interp.py),
- ``attention``: where a self-attention layer looks, per query pixel (SAGAN Fig. 1).

See ``docs/sampling.md``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from ..bundle import Bundle
from ..errors import CheckpointError, ConfigError
from ..runtime import build_bundle, select_device
from ..training.checkpoint import Snapshot, check_finite_weights, load_module_weights, load_snapshot
from .attention_maps import attention_layers, capture_attention, default_queries, render_attention
from .autoregressive import window_progress
from .class_interp import class_interpolation, require_class_embedding
from .conditional import class_rows, draw_latents
from .images import save_gif, save_grid, save_individual, to_uint8
from .interpolation import interpolate
from .prior_modes import check_grid_work, prior_class_rows, prior_opts, prior_tag
from .style_mixing import style_mixing_grid
from .truncation import is_style_generator, require_style


def load_generator(
    path: str | Snapshot, *, ema: bool = True, device: str = "auto"
) -> tuple[Bundle, dict[str, nn.Module], dict]:
    """Load ``(bundle, modules ready to sample, schedule state)`` from a run folder, snapshot file
    or an already loaded :class:`Snapshot`."""
    snap = path if isinstance(path, Snapshot) else load_snapshot(path, with_state=False)
    model_yaml = snap.metadata.get("model_config")
    if not model_yaml:
        raise CheckpointError(f"{str(snap.path)!r} carries no model config; it was not written by `ganzoo train`")
    model_cfg = OmegaConf.create(model_yaml)
    bundle = build_bundle(model_cfg)
    dev = select_device(device)
    modules: dict[str, nn.Module] = {}
    for name, module in bundle.modules.items():
        source = snap.ema.get(name) if ema and name in snap.ema else snap.weights.get(name)
        if source is None:
            raise CheckpointError(f"{str(snap.path)!r} has no weights for module {name!r}")
        load_module_weights(module, source, what=f"module {name} of {bundle.info.get('name')}")
        modules[name] = module.to(dev).eval()
    check_finite_weights(modules, snap.path)  # a diverged snapshot: refuse rather than draw black images
    images_seen = int(snap.metadata.get("images_seen", "0"))
    state = bundle.schedule.state(images_seen) if bundle.schedule else {}
    return bundle, modules, state


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
# Modes that draw their latents from --seeds or --n/--seed, and may truncate them in Z.
LATENT_MODES = ("grid", "classes", "truncation-sweep", "class-interp", "attention")
# Modes with a fixed layout: no --nrow, no --individual.
LAYOUT_MODES = ("mix", "classes", "truncation-sweep", "class-interp", "attention")
NOISE_MODES = ("const", "random", "none")
# Flags that belong to some modes: argparse dest -> (flag, modes).
MODE_FLAGS = {
    "n": ("--n", LATENT_MODES),
    "seed": ("--seed", LATENT_MODES),
    "truncation": ("--truncation", tuple(m for m in LATENT_MODES if m != "truncation-sweep")),
    "steps": ("--steps", ("interp", "class-interp")),
    "space": ("--space", ("interp",)),
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
                        "interpolation at fixed z; attention: self-attention maps of query pixels")
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


def _check_model_args(args: argparse.Namespace, bundle: Bundle, G: nn.Module | None) -> None:
    """Flag combinations that depend on the model: truncation, W space, classes, code-prior options."""
    model = f"{bundle.info.get('name', 'this model')} ({bundle.family or 'unknown family'})"
    is_prior = bundle.info.get("kind") == "prior"
    if G is None and args.mode not in (("grid", "classes") if is_prior else ("grid",)):
        raise ConfigError(f"--mode {args.mode} needs a GAN generator G; {model} has none. Use --mode grid"
                          + (" or classes" if is_prior else ""))
    if bundle.info.get("kind") == "autoencoder" and args.mode != "grid":
        raise ConfigError(f"--mode {args.mode}: {model} is a VQ tokenizer (stage 1), not a generator; use "
                          f"`ganzoo reconstruct {args.checkpoint}` to see its reconstructions, or train a code prior "
                          "on it and generate from that")
    if not is_prior:
        given = [f for f, v in (("--temperature", args.temperature), ("--top-k", args.top_k), ("--top-p", args.top_p),
                                ("--grid", args.grid)) if v is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} only apply to code priors (vqgan_prior, vit_vqgan_prior); "
                              f"{model} is not one")
    elif args.top_k is not None and args.top_k > int(bundle.info["n_embed"]):
        n_embed = int(bundle.info["n_embed"])
        raise ConfigError(f"--top-k {args.top_k} is above the {n_embed} codes of this prior's tokenizer (it would "
                          f"keep every code): use 1-{n_embed}, or drop --top-k to draw from all of them")
    for flag, value in (("--psi (truncation)", args.psi), ("--cutoff (truncation)", args.cutoff),
                        ("--noise", args.noise)):
        if value is not None:
            require_style(G, flag, f"Drop {flag.split()[0]} for {model}")
    if args.mode == "interp" and args.space == "w":
        require_style(G, "--space w (interpolation in W)", "Use --space z (slerp in Z) instead")
    if args.mode == "mix":
        require_style(G, "style mixing", f"{model} cannot mix styles; try --mode interp --space z")
    if G is not None and args.cutoff is not None and is_style_generator(G) and args.cutoff > int(G.num_ws):
        num_ws = int(G.num_ws)
        raise ConfigError(f"--cutoff {args.cutoff} is beyond this generator's {num_ws} ws; use 0-{num_ws}")
    c_dim = bundle.c_dim
    labels = _labels(args)
    if labels is not None and c_dim == 0:
        raise ConfigError(f"--class: {model} is unconditional (it has no classes); drop --class")
    walk = parse_seeds(args.classes, "--classes") if args.classes else None
    if (walk is not None or args.mode == "class-interp") and c_dim == 0:
        raise ConfigError(f"--mode class-interp: {model} is unconditional (it has no classes); class interpolation "
                          "needs a class-conditional model (e.g. biggan, sagan with c_dim: auto)")
    for flag, ks in (("--class", labels), ("--classes", walk)):
        bad = [k for k in ks or [] if not 0 <= k < c_dim]
        if bad:
            raise ConfigError(f"{flag} {bad[0]} is out of range: this model has {c_dim} classes (0-{c_dim - 1})")
    if c_dim > 0 and labels is None and args.mode in ("interp", "mix"):
        raise ConfigError(f"{model} is class-conditional ({c_dim} classes): pass --class K (0 <= K < {c_dim}) to "
                          f"--mode {args.mode}, which keeps one class for every image")
    if c_dim == 0 and args.mode in ("classes", "class-interp"):
        raise ConfigError(f"--mode {args.mode} needs a class-conditional model; {model} has no classes "
                          "(train one with model.c_dim=auto on labelled data)")
    if args.mode == "class-interp":
        require_class_embedding(G)
    if args.mode == "attention" and not attention_layers(G):
        raise ConfigError(f"--mode attention needs a generator with self-attention layers (sagan, biggan); "
                          f"{model} has none")
    for x, y in (parse_query(q) for q in args.query or []):
        res = bundle.resolution
        if not (0 <= x < res and 0 <= y < res):
            raise ConfigError(f"--query {x},{y} is outside the {res}x{res} image; use 0 <= X, Y < {res}")
    if args.truncation is not None and not int(bundle.info.get("z_dim", 0)):
        raise ConfigError(f"--truncation resamples the latent z; {model} draws no z. Drop --truncation")


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


def _run_dir(checkpoint: str) -> Path:
    path = Path(checkpoint)
    run_dir = path if path.is_dir() else path.parent.parent
    return run_dir.parent if run_dir.name == "checkpoints" else run_dir


def _seed_label(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    if len(seeds) > 8:
        return f"{seeds[0]}_to_{seeds[-1]}_n{len(seeds)}"
    return "_".join(map(str, seeds))


def _truncation_tag(args: argparse.Namespace) -> str:
    tag = f"_psi{args.psi:g}" if args.psi is not None else ""
    tag += f"_cut{args.cutoff}" if args.cutoff is not None else ""
    return tag + (f"_trunc{args.truncation:g}" if getattr(args, "truncation", None) is not None else "")


def _suffix(args: argparse.Namespace) -> str:
    """The rest of a default file name: every option that changes the images (class, truncation, noise, weights,
    --opt, a prior's sampling options), so that different requests never overwrite each other (issue 19.23)."""
    labels = _labels(args) if args.mode != "class-interp" else None
    tag = f"_class{_seed_label(labels)}" if labels else ""
    tag += _truncation_tag(args)
    tag += f"_noise{args.noise}" if args.noise not in (None, "const") else ""
    tag += "_raw" if args.raw else ""
    for pair in args.opt:
        key, _, value = pair.partition("=")
        tag += "_" + "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in f"{key}{value}")
    return tag + prior_tag(args)


def _steps_tag(args: argparse.Namespace, default: int) -> str:
    return f"_steps{args.steps}" if args.steps is not None and args.steps != default else ""


def _strip_cols(n: int, max_cols: int = 16) -> int:
    """One row up to ``max_cols`` frames, then balanced rows."""
    rows = -(-n // max_cols)
    return -(-n // rows)


@torch.no_grad()
def run_generate(args: argparse.Namespace) -> list[Path]:
    """Run ``ganzoo generate`` from parsed arguments; returns the paths written."""
    check_args(args)
    bundle, modules, state = load_generator(args.checkpoint, ema=not args.raw, device=args.device)
    G = modules.get("G")
    _check_model_args(args, bundle, G)
    with _grid_progress(_grid_work(args, bundle)):  # --grid: the work estimated, bounded and shown (issue 19.20)
        return _run(args, bundle, modules, G, state)


def _grid_work(args: argparse.Namespace, bundle: Bundle) -> int:
    """Forward passes a prior's ``--grid`` will take (0 without one); above the bound refused unless ``--force``."""
    if bundle.info.get("kind") != "prior" or args.grid is None:
        return 0
    if args.mode == "classes":
        images = len(_labels(args) or range(min(bundle.c_dim, MAX_CLASS_ROWS))) * (args.n or 8)
        batches = -(-images // args.batch)
    elif args.seeds is not None:  # one draw per seed
        images = batches = len(parse_seeds(args.seeds))
    else:
        images = args.n or 64
        batches = -(-images // args.batch)
    return check_grid_work(args, tuple(bundle.info["code_shape"]), images, batches)


@contextmanager
def _grid_progress(passes: int) -> Iterator[None]:
    """A progress bar (stderr) over the forward passes of a large sliding-window draw."""
    if passes < GRID_PROGRESS_FROM:
        yield
        return
    from tqdm.auto import tqdm

    with tqdm(total=passes, unit="pass", desc="--grid", file=sys.stderr, dynamic_ncols=True) as bar:
        with window_progress(bar.update):
            yield


GRID_PROGRESS_FROM = 2_000  # forward passes of a --grid draw from which a progress bar is shown


def _run(args: argparse.Namespace, bundle: Bundle, modules: dict[str, nn.Module], G: nn.Module | None,
         state: Mapping[str, Any]) -> list[Path]:
    if bundle.info.get("kind") == "autoencoder":
        from ..models.vq_prior import prior_for

        prior = prior_for(str(bundle.info.get("name")), type(G)) or "vqgan_prior"
        print(f"note: {bundle.info.get('name', 'this run')} is a VQ tokenizer (stage 1) with no prior of its own: "
              "these images decode uniformly random codes, not samples of the data. For samples, train a code prior "
              f"on it (`ganzoo train model={prior} model.stage1={args.checkpoint}`) and generate from that run; to "
              f"see how well it reconstructs images, `ganzoo reconstruct {args.checkpoint}`.",
              file=sys.stderr)
    if args.out is not None and Path(args.out).is_dir():
        args.out_dir, args.out = Path(args.out), None  # an existing folder: the default file name, inside it
    style = G is not None and is_style_generator(G)
    opts = dict(bundle.sample_opts(state) if bundle.sample_opts else {})
    user_opts = parse_opts(args.opt)
    if G is not None:
        uses_synthesis = args.mode == "mix" or (args.mode == "interp" and (args.space or "w") == "w" and style)
        check_opts(G, user_opts, fn=G.synthesis if uses_synthesis else None)
    opts.update(user_opts)
    opts.update(prior_opts(args))
    trunc = {"truncation_psi": 1.0 if args.psi is None else args.psi, "truncation_cutoff": args.cutoff}
    noise_mode = args.noise or "const"
    generated = getattr(args, "out_dir", None) or _run_dir(args.checkpoint) / "generated"

    if args.mode == "interp":
        seeds = parse_seeds(args.seeds)
        space = args.space or ("w" if style else "z")
        frames = interpolate(G, seeds=seeds, steps=args.steps or 16, space=space, c=_one_label(args),
                             noise_mode=noise_mode,
                             batch=args.batch, **trunc, **opts).float().cpu()  # [T, C, H, W]
        name = f"interp_{space}_seeds{_seed_label(seeds)}{_steps_tag(args, 16)}{_suffix(args)}"
        base = Path(args.out) if args.out else generated / name
        if base.suffix.lower() in (".png", ".gif"):
            base = base.with_suffix("")
        paths = [save_grid(frames, base.with_name(base.name + ".png"), nrow=args.nrow or _strip_cols(len(frames)))]
        if args.gif:
            arrs = list(to_uint8(frames))  # [H, W, C] each
            if args.pingpong:
                arrs += arrs[-2:0:-1]  # back again, without repeating the turning points
            paths.append(save_gif(arrs, base.with_name(base.name + ".gif"), duration_ms=args.frame_ms or 80))
        if args.individual:
            paths += save_individual(frames, args.individual, prefix=f"{base.name}_")
        return paths

    if args.mode == "mix":
        rows, cols = parse_seeds(args.rows, "--rows"), parse_seeds(args.cols, "--cols")
        crossover = args.crossover or "coarse"
        grid = style_mixing_grid(G, row_seeds=rows, col_seeds=cols, crossover=crossover, c=_one_label(args),
                                 noise_mode=noise_mode, batch=args.batch, **trunc, **opts)
        name = f"mix_{crossover.replace('-', 'to')}_rows{_seed_label(rows)}_cols{_seed_label(cols)}"
        out = Path(args.out) if args.out else generated / f"{name}{_suffix(args)}.png"
        return [save_grid(grid.float().cpu(), out, nrow=len(cols) + 1)]

    # modes drawing seeded latents: grid, classes, truncation-sweep, class-interp, attention
    if style:
        opts["noise_mode"] = noise_mode
        if args.psi is not None:
            opts.update(trunc)
    if args.mode == "classes" and G is None:  # a code prior: rows = classes, columns = draws from --seed
        classes = _labels(args) or list(range(min(bundle.c_dim, MAX_CLASS_ROWS)))
        imgs, nrow = prior_class_rows(bundle, modules, classes, n=args.n or 8, seed=args.seed or 0,
                                      batch=args.batch, opts=opts)
        name = f"classes_n{args.n or 8}_seed{args.seed or 0}{_suffix(args)}"
        out = Path(args.out) if args.out else generated / f"{name}.png"
        return [save_grid(imgs, out, nrow=nrow)]
    if args.mode != "grid":
        return _run_layout_mode(args, bundle, modules, G, opts, generated)
    c_dim = bundle.c_dim
    z_dim = int(bundle.info.get("z_dim", 0))
    labels = _labels(args)
    if z_dim:
        (z,), c, tag = _draw(args, z_dim, default_n=64, c_dim=c_dim, labels=labels, thresholds=(args.truncation,))
        name = f"grid_{tag}"
        imgs = _sample(bundle, modules, z, c, args.batch, opts)
    else:  # no latent to draw (e.g. a code prior): the seed drives the sampler's own randomness
        chunks = []
        if args.seeds is not None:
            seeds = parse_seeds(args.seeds)
            name = f"grid_seeds{_seed_label(seeds)}"
            for i, s in enumerate(seeds):
                gen = torch.Generator().manual_seed(s)
                c = torch.full((1,), labels[i % len(labels)]) if labels else None
                chunks.append(bundle.sample(modules, 1, c=c, generator=gen, **opts).float().cpu())
        else:
            n, seed = args.n or 64, args.seed or 0
            name = f"grid_n{n}_seed{seed}"
            gen = torch.Generator().manual_seed(seed)
            for i in range(0, n, args.batch):
                m = min(args.batch, n - i)
                c = None
                if c_dim > 0:
                    c = (torch.as_tensor([labels[(i + j) % len(labels)] for j in range(m)]) if labels
                         else torch.randint(0, c_dim, (m,), generator=gen))
                chunks.append(bundle.sample(modules, m, c=c, generator=gen, **opts).float().cpu())
        imgs = torch.cat(chunks)
    name += _suffix(args)
    out = Path(args.out) if args.out else generated / f"{name}.png"
    paths = [save_grid(imgs, out, nrow=args.nrow)]
    if args.individual:
        paths += save_individual(imgs, args.individual, prefix=f"{name}_")
    return paths


MAX_CLASS_ROWS = 32  # --mode classes without --class: the first classes, at most this many rows


def _draw(args: argparse.Namespace, z_dim: int, *, default_n: int, c_dim: int, labels: list[int] | None,
          thresholds: tuple[float | None, ...] | list[float]) -> tuple[list[torch.Tensor], torch.Tensor | None, str]:
    """Latents (one per threshold) and classes from --seeds or --n/--seed, and their file-name tag."""
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    seed = args.seed or 0
    zs, c = draw_latents(z_dim, seeds=seeds, n=None if seeds is not None else (args.n or default_n), seed=seed,
                         c_dim=c_dim, classes=labels, thresholds=thresholds)
    return zs, c, (f"seeds{_seed_label(seeds)}" if seeds is not None else f"n{args.n or default_n}_seed{seed}")


def _sample(bundle: Bundle, modules: dict[str, nn.Module], z: torch.Tensor, c: torch.Tensor | None, batch: int,
            opts: dict[str, Any]) -> torch.Tensor:
    chunks = []
    for i in range(0, z.shape[0], batch):
        cc = c[i : i + batch] if c is not None else None
        chunks.append(bundle.sample(modules, z=z[i : i + batch], c=cc, **opts).float().cpu())
    return torch.cat(chunks)  # [N, C, H, W]


def _run_layout_mode(args: argparse.Namespace, bundle: Bundle, modules: dict[str, nn.Module], G: nn.Module,
                     opts: dict[str, Any], generated: Path) -> list[Path]:
    """``classes``, ``truncation-sweep``, ``class-interp`` and ``attention``: one PNG with a fixed layout."""
    mode, c_dim, labels = args.mode, bundle.c_dim, _labels(args)
    z_dim = int(bundle.info.get("z_dim", G.z_dim))
    one = (args.truncation,)
    if mode == "classes":  # rows = classes, columns = latents (the same z down a column)
        classes = labels if labels is not None else list(range(min(c_dim, MAX_CLASS_ROWS)))
        (z,), _, tag = _draw(args, z_dim, default_n=8, c_dim=0, labels=None, thresholds=one)
        z_all, c_all = class_rows(z, classes)  # [R * cols, z_dim], [R * cols]
        imgs, nrow, name = _sample(bundle, modules, z_all, c_all, args.batch, opts), z.shape[0], f"classes_{tag}"
    elif mode == "truncation-sweep":  # rows = latents, columns = thresholds (BigGAN Fig. 2(a))
        ths = parse_floats(args.thresholds, "--thresholds")
        zs, c, tag = _draw(args, z_dim, default_n=4, c_dim=c_dim, labels=labels, thresholds=ths)
        z_all = torch.stack(zs, 1).flatten(0, 1)  # [N, K, z_dim] -> [N * K, z_dim]
        c_all = c.repeat_interleave(len(ths)) if c is not None else None
        imgs, nrow = _sample(bundle, modules, z_all, c_all, args.batch, opts), len(ths)
        name = f"truncation_sweep_{tag}_T{'_'.join(f'{t:g}' for t in ths)}"
    elif mode == "class-interp":  # rows = latents, columns = the class path
        classes, steps = parse_seeds(args.classes, "--classes"), args.steps or 8
        (z,), _, tag = _draw(args, z_dim, default_n=4, c_dim=0, labels=None, thresholds=one)
        imgs = class_interpolation(G, z, classes, steps=steps, batch=args.batch, **opts).float().cpu()
        nrow, name = (len(classes) - 1) * steps + 1, f"class_interp_{'to'.join(map(str, classes))}_{tag}"
        name += _steps_tag(args, 8)
    else:  # attention: rows = images; the image, then one panel per query
        (z,), c, tag = _draw(args, z_dim, default_n=4, c_dim=c_dim, labels=labels, thresholds=one)
        queries = [parse_query(q) for q in args.query] if args.query else default_queries(bundle.resolution)
        layer = args.layer or 0
        capture = capture_attention(G, z, c, layer=layer, batch=args.batch,
                                    sample=lambda zz, cc: bundle.sample(modules, z=zz, c=cc, **opts))
        scale = max(1, 128 // bundle.resolution)  # small images are enlarged so the dots and cells show
        imgs, nrow = render_attention(capture, queries, scale=scale), 1 + len(queries)
        name = f"attention_{tag}_layer{layer}" + ("_query" + "_".join(f"{x}-{y}" for x, y in queries)
                                                   if args.query else "")
    out = Path(args.out) if args.out else generated / f"{name}{_suffix(args)}.png"
    return [save_grid(imgs, out, nrow=nrow)]
