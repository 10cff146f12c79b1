"""``ganzoo generate``: rebuild a model from a checkpoint and draw seeded images.

The checkpoint carries its own model config, so no other file is needed. EMA weights are used
when the checkpoint has them (``--raw`` takes the trained weights instead). Three modes:

- ``grid``: seeded images, optionally truncated (``--psi``, ``--cutoff``; StyleGAN Sec. 4),
- ``interp``: a latent interpolation strip and GIF (lerp in W or slerp in Z; StyleGAN Sec. 4.2),
- ``mix``: a style-mixing grid (StyleGAN Sec. 3.1, Fig. 3).

See ``docs/sampling.md``.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from ..bundle import Bundle
from ..errors import CheckpointError, ConfigError
from ..training.checkpoint import Snapshot, load_module_weights, load_snapshot
from ..training.trainer import build_bundle, select_device
from .images import save_gif, save_grid, save_individual, to_uint8
from .interpolation import interpolate, seed_latents
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


MODES = ("grid", "interp", "mix")
NOISE_MODES = ("const", "random", "none")
# Flags that belong to one mode: argparse dest -> (flag, mode).
MODE_FLAGS = {
    "n": ("--n", "grid"),
    "seed": ("--seed", "grid"),
    "steps": ("--steps", "interp"),
    "space": ("--space", "interp"),
    "gif": ("--gif", "interp"),
    "pingpong": ("--pingpong", "interp"),
    "frame_ms": ("--frame-ms", "interp"),
    "rows": ("--rows", "mix"),
    "cols": ("--cols", "mix"),
    "crossover": ("--crossover", "mix"),
}
RESERVED_OPTS = {"truncation_psi": "--psi", "truncation_cutoff": "--cutoff", "noise_mode": "--noise"}


def add_generate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="run folder, checkpoints/ folder or snapshot-*.safetensors")
    parser.add_argument("--mode", choices=MODES, default="grid",
                        help="grid: seeded images (default); interp: interpolation strip + GIF; mix: style mixing")
    parser.add_argument("--out", default=None,
                        help="output PNG (interp: <out>.png strip and <out>.gif); default <run>/generated/<name>.png")
    parser.add_argument("--seeds", default=None, metavar="LIST",
                        help="grid: one image per seed; interp: keyframe seeds (>= 2). E.g. 1,2,3 or 0-7 or 0-3,9")
    parser.add_argument("--class", dest="label", type=int, default=None, help="class index for conditional models")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="extra generator option")
    parser.add_argument("--raw", action="store_true", help="use the trained weights, not the EMA copy")
    parser.add_argument("--batch", type=int, default=32, help="images per forward pass")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--nrow", type=int, default=None, help="images per row (grid, interp strip)")
    parser.add_argument("--individual", default=None, metavar="DIR",
                        help="also write one PNG per image (grid) or frame (interp) into DIR")

    grid = parser.add_argument_group("grid (--mode grid)")
    grid.add_argument("--n", type=int, default=None, help="number of images drawn from --seed (default 64)")
    grid.add_argument("--seed", type=int, default=None, help="seed of the --n latents (default 0)")

    style = parser.add_argument_group("style-based generators (stylegan, stylegan2)")
    style.add_argument("--psi", type=float, default=None, help="truncation psi in W: 1 = none, 0.7 typical, 0 = mean")
    style.add_argument("--cutoff", type=int, default=None, help="truncate only the first CUTOFF ws (needs --psi)")
    style.add_argument("--noise", choices=NOISE_MODES, default=None, help="per-pixel noise inputs (default const)")

    interp = parser.add_argument_group("interpolation (--mode interp)")
    interp.add_argument("--steps", type=int, default=None, help="frames per seed-to-seed segment (default 16)")
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
    for dest, (flag, flag_mode) in MODE_FLAGS.items():
        if flag_mode != mode and _given(args, dest):
            raise ConfigError(f"{flag} only applies to --mode {flag_mode}; add --mode {flag_mode} or drop {flag}")
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
    if args.cutoff is not None and args.psi is None:
        raise ConfigError("--cutoff limits truncation to the first ws; give --psi too, e.g. --psi 0.7 --cutoff 8")
    for flag, value in (("--n", args.n), ("--steps", args.steps), ("--batch", args.batch), ("--nrow", args.nrow),
                        ("--frame-ms", args.frame_ms)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if args.cutoff is not None and args.cutoff < 0:
        raise ConfigError(f"--cutoff must be >= 0, got {args.cutoff}")
    keys = {o.split("=", 1)[0] for o in args.opt}
    reserved = [f"{k} (use {flag})" for k, flag in RESERVED_OPTS.items() if k in keys]
    if reserved:
        raise ConfigError(f"--opt cannot set {', '.join(reserved)}")


def _check_model_args(args: argparse.Namespace, bundle: Bundle, G: nn.Module | None) -> None:
    """Flag combinations that depend on the model: truncation, W space, classes."""
    model = f"{bundle.info.get('name', 'this model')} ({bundle.family or 'unknown family'})"
    if G is None and args.mode != "grid":
        raise ConfigError(f"--mode {args.mode} needs a GAN generator G; {model} has none. Use --mode grid")
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
    if args.label is not None and not 0 <= args.label < max(c_dim, 1):
        raise ConfigError(f"--class {args.label} is out of range: this model has {c_dim} classes")
    if c_dim > 0 and args.label is None and args.mode != "grid":
        raise ConfigError(f"{model} is class-conditional ({c_dim} classes): pass --class K (0 <= K < {c_dim}) to "
                          f"--mode {args.mode}, which keeps one class for every image")


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
    return tag + (f"_cut{args.cutoff}" if args.cutoff is not None else "")


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
    style = G is not None and is_style_generator(G)
    opts = dict(bundle.sample_opts(state) if bundle.sample_opts else {})
    user_opts = parse_opts(args.opt)
    if G is not None:
        uses_synthesis = args.mode == "mix" or (args.mode == "interp" and (args.space or "w") == "w" and style)
        check_opts(G, user_opts, fn=G.synthesis if uses_synthesis else None)
    opts.update(user_opts)
    trunc = {"truncation_psi": 1.0 if args.psi is None else args.psi, "truncation_cutoff": args.cutoff}
    noise_mode = args.noise or "const"
    generated = _run_dir(args.checkpoint) / "generated"

    if args.mode == "interp":
        seeds = parse_seeds(args.seeds)
        space = args.space or ("w" if style else "z")
        frames = interpolate(G, seeds=seeds, steps=args.steps or 16, space=space, c=args.label, noise_mode=noise_mode,
                             batch=args.batch, **trunc, **opts).float().cpu()  # [T, C, H, W]
        name = f"interp_{space}_seeds{_seed_label(seeds)}{_truncation_tag(args)}"
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
        grid = style_mixing_grid(G, row_seeds=rows, col_seeds=cols, crossover=crossover, c=args.label,
                                 noise_mode=noise_mode, batch=args.batch, **trunc, **opts)
        name = f"mix_{crossover.replace('-', 'to')}_rows{_seed_label(rows)}_cols{_seed_label(cols)}"
        out = Path(args.out) if args.out else generated / f"{name}{_truncation_tag(args)}.png"
        return [save_grid(grid.float().cpu(), out, nrow=len(cols) + 1)]

    # grid
    if style:
        opts["noise_mode"] = noise_mode
        if args.psi is not None:
            opts.update(trunc)
    c_dim = bundle.c_dim
    z_dim = int(bundle.info.get("z_dim", 0))
    chunks = []
    if args.seeds is not None:
        seeds = parse_seeds(args.seeds)
        name = f"seeds{_seed_label(seeds)}"
        if z_dim:
            z, c = seed_latents(seeds, z_dim, c_dim=c_dim, label=args.label)
            for i in range(0, len(seeds), args.batch):
                cc = c[i : i + args.batch] if c is not None else None
                chunks.append(bundle.sample(modules, z=z[i : i + args.batch], c=cc, **opts).float().cpu())
        else:  # no latent to draw (e.g. a code prior): the seed drives the sampler's own randomness
            for s in seeds:
                gen = torch.Generator().manual_seed(s)
                c = torch.full((1,), args.label) if args.label is not None else None
                chunks.append(bundle.sample(modules, 1, c=c, generator=gen, **opts).float().cpu())
    else:
        n, seed = args.n or 64, args.seed or 0
        name = f"seed{seed}"
        gen = torch.Generator().manual_seed(seed)
        for i in range(0, n, args.batch):
            m = min(args.batch, n - i)
            z = torch.randn(m, z_dim, generator=gen) if z_dim else None
            c = None
            if c_dim > 0:
                c = (torch.full((m,), args.label) if args.label is not None
                     else torch.randint(0, c_dim, (m,), generator=gen))
            chunks.append(bundle.sample(modules, m, z=z, c=c, generator=gen, **opts).float().cpu())
    imgs = torch.cat(chunks)
    out = Path(args.out) if args.out else generated / f"{name}{_truncation_tag(args)}.png"
    paths = [save_grid(imgs, out, nrow=args.nrow)]
    if args.individual:
        paths += save_individual(imgs, args.individual, prefix=f"{name}_")
    return paths
