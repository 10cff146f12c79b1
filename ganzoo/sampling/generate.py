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
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
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
from .generate_args import (  # noqa: F401  (re-exported: the generate API)
    LATENT_MODES,
    LAYOUT_MODES,
    MODE_FLAGS,
    MODES,
    NOISE_MODES,
    RESERVED_OPTS,
    _given,
    _labels,
    _one_label,
    add_generate_args,
    check_args,
    check_opts,
    parse_floats,
    parse_opts,
    parse_query,
    parse_seeds,
)
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
    if args.mode in ("complete", "condition"):  # a code prior given an image: its own checks and layout
        from .conditional_modes import run_conditional_mode

        return run_conditional_mode(args)
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

    if args.mode in MODE_RUNNERS:  # a mode a higher package provides (arithmetic: ganzoo/editing)
        return MODE_RUNNERS[args.mode](args, bundle, modules, G, opts, generated, _suffix(args))
    if args.mode not in BUILTIN_MODES:
        raise ConfigError(f"--mode {args.mode} is provided by a package that was not loaded: import "
                          "ganzoo.editing.arithmetic first (the `ganzoo generate` command does)")
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


# Modes run by packages above sampling (they depend on it, never the reverse): the package registers its runner
# ``(args, bundle, modules, G, opts, out_dir, name_suffix) -> paths`` here when imported.
MODE_RUNNERS: dict[str, Callable[..., list[Path]]] = {}
BUILTIN_MODES = ("grid", "interp", "mix", "classes", "truncation-sweep", "class-interp", "attention")

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
