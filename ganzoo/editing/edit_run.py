"""``ganzoo directions`` and ``ganzoo edit``: from parsed arguments to files.

Both check every input (run kind, method, classes, layer range, latent and directions files and their model
hash, direction index) before the first file is written, so a refused command leaves nothing behind.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..sampling.generate import _run_dir, _seed_label, load_generator
from ..sampling.generate_args import parse_opts, parse_seeds
from ..sampling.images import make_grid, save_gif, save_grid
from ..sampling.interpolation import seed_latents
from ..sampling.style_mixing import crossover_layers
from ..sampling.truncation import is_style_generator
from .directions import class_mean, ganspace, load_directions, save_directions, sefa
from .latents import Latent, load_latent, model_hash, save_latent
from .walk import Base, apply_direction, region_mask, render, strengths, swap_region


def _load(args: argparse.Namespace, command: str) -> tuple[Any, dict[str, nn.Module], nn.Module, dict[str, Any]]:
    bundle, modules, state = load_generator(args.checkpoint, ema=not args.raw, device=args.device)
    G = modules.get("G")
    name = f"{bundle.info.get('name', 'this model')} ({bundle.family or 'unknown family'})"
    kind = bundle.info.get("kind")
    if G is None or kind == "prior":
        raise ConfigError(f"`ganzoo {command}` needs a GAN generator; {name} is a code prior. Edit its tokenizer's "
                          "codes instead: `ganzoo project TOKENIZER_RUN IMAGE`, then `ganzoo edit TOKENIZER_RUN "
                          "--latent a.safetensors --swap b.safetensors --region top`")
    opts = dict(bundle.sample_opts(state) if bundle.sample_opts else {})
    opts.update(parse_opts(getattr(args, "opt", None) or []))
    return bundle, modules, G, opts


def _layers(spec: str | None, G: nn.Module) -> list[int] | None:
    if spec is None or spec == "all":
        return None
    if not is_style_generator(G):
        raise ConfigError(f"--layers {spec}: only style generators (stylegan, stylegan2) have per-layer ws; drop "
                          "--layers")
    return crossover_layers(spec, int(G.num_ws))


def _classes(bundle: Any, cls: int | None) -> None:
    c_dim = int(bundle.c_dim)
    if cls is not None and c_dim == 0:
        raise ConfigError("--class: this model is unconditional (it has no classes); drop --class")
    if cls is not None and not 0 <= cls < c_dim:
        raise ConfigError(f"--class {cls} is out of range: this model has {c_dim} classes (0-{c_dim - 1})")


def _seed_base(G: nn.Module, seeds: list[int], space: str, cls: int | None) -> Base:
    """Latents of ``seeds`` in ``space`` (w+ for W directions); classes from ``cls`` or drawn from each seed."""
    c_dim = int(getattr(G, "c_dim", 0))
    z, c = seed_latents(seeds, int(G.z_dim), c_dim=c_dim, label=cls)
    dev = next(G.parameters()).device
    if space == "w":
        with torch.no_grad():
            ws = G.mapping(z.to(dev), None if c is None else c.to(dev)).float().cpu()
        return Base("w+", ws, c)
    if space == "embedding":
        with torch.no_grad():
            e = G.class_embedding(c.to(dev)).float().cpu()
        return Base("embedding", e, None, z)
    return Base("z", z, c)


def _latent_base(G: nn.Module, lat: Latent, space: str, cls: int | None, what: str) -> Base:
    c = lat.c if cls is None else torch.full((len(lat),), cls, dtype=torch.long)
    if space == "w":
        if lat.space not in ("w", "w+"):
            raise ConfigError(f"{what} holds a {lat.space!r} latent; W directions need a w or w+ latent (project with "
                              "--space w or w+), or use --seeds")
        value = lat.value.float()
        return Base("w+", value[:, None].repeat(1, int(G.num_ws), 1) if lat.space == "w" else value, c)
    if lat.space != "z":
        raise ConfigError(f"{what} holds a {lat.space!r} latent; {space.upper()} directions need a z latent "
                          "(project with --space z), or use --seeds")
    if space == "embedding":
        if c is None:
            raise ConfigError(f"{what} has no classes: pass --class K, the class whose code the direction moves")
        dev = next(G.parameters()).device
        with torch.no_grad():
            e = G.class_embedding(c.to(dev)).float().cpu()
        return Base("embedding", e, None, lat.value.float())
    return Base("z", lat.value.float(), c)


def _draw_rows(G: nn.Module, bundle: Any, modules: dict[str, nn.Module], base: Base, moved: torch.Tensor,
               opts: dict[str, Any], batch: int) -> torch.Tensor:
    """Images ``[N * S, C, H, W]`` of ``moved [N, S, ...]``, row-major (row = latent, column = strength)."""
    n, s = moved.shape[:2]
    flat = moved.flatten(0, 1)
    c = None if base.c is None else base.c.repeat_interleave(s)
    z = None if base.z is None else base.z.repeat_interleave(s, dim=0)
    return render(G, bundle, modules, base.space, flat, c, z, _style_opts(G, base.space, opts), batch=batch)


def _style_opts(G: nn.Module, space: str, opts: dict[str, Any]) -> dict[str, Any]:
    out = dict(opts)
    if space == "z" and is_style_generator(G):
        out.setdefault("noise_mode", "const")
    return out


@contextmanager
def _noise_images(G: nn.Module, images: dict[str, torch.Tensor]) -> Iterator[None]:
    """Swap a projected latent's noise images (``extra["noise.<buffer>"]``, ``[1, 1, R, R]``) into ``G``."""
    from .projector import noise_buffers

    owners = noise_buffers(G)
    unknown = sorted(set(images) - set(owners))
    if unknown:
        raise ConfigError(f"the latent carries noise images {unknown[:2]} that this generator does not have")
    saved = {name: mod._buffers[key] for name, (mod, key) in owners.items()}
    try:
        for name, img in images.items():
            mod, key = owners[name]
            mod._buffers[key] = img.to(saved[name])
        yield
    finally:
        for name, (mod, key) in owners.items():
            mod._buffers[key] = saved[name]


# -- ganzoo directions -----------------------------------------------------------------------------------
def run_directions(args: argparse.Namespace) -> list[Path]:
    bundle, modules, G, opts = _load(args, "directions")
    if bundle.info.get("kind") == "autoencoder":
        raise ConfigError("directions do not apply to a VQ tokenizer's codes (they are discrete); edit codes with "
                          "`ganzoo edit RUN --latent a.safetensors --swap b.safetensors --region top`")
    for flag, value in (("--k", args.k), ("--n", args.n), ("--steps", args.steps)):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    ws = _layers(args.layers, G)
    _classes(bundle, args.cls)
    c_dim = int(bundle.c_dim)
    amounts = strengths(f"{-abs(args.strength)},{abs(args.strength)}", args.steps)
    pairs: list[tuple[int, int | None]] = []
    if args.method == "class-mean":
        if c_dim == 0:
            raise ConfigError(f"--method class-mean needs a class-conditional model; {bundle.info.get('name')} has no "
                              "classes (use --method sefa or pca)")
        if args.classes:
            got = parse_seeds(args.classes, "--classes")
            if len(got) != 2:
                raise ConfigError(f"--classes expects two classes A,B (the direction A minus B), got {args.classes!r}")
            pairs = [(got[0], got[1])]
        else:
            pairs = [(k, None) for k in range(min(c_dim, args.k))]
    elif args.classes:
        raise ConfigError("--classes only applies to --method class-mean")
    c = torch.tensor([args.cls if args.cls is not None else 0]) if c_dim else None
    if args.method == "sefa":
        found = sefa(G, args.k, ws, c=c, opts=opts)
    elif args.method == "pca":
        found = ganspace(G, args.k, n=args.n, seed=args.seed, c=c, opts=opts)
    else:
        found = class_mean(G, pairs, n=args.n, seed=args.seed)
    layers_tag = (args.layers or "all").replace("-", "to")
    name = f"{args.method}_{layers_tag}"
    if args.method == "class-mean" and args.classes:
        name += f"_classes{pairs[0][0]}minus{pairs[0][1]}"
    found.meta.update(method=args.method, space=found.space, layers=args.layers or "all",
                      ws="" if ws is None else str(ws), model=str(bundle.info.get("name", "")),
                      model_hash=model_hash(G), run=str(_run_dir(args.checkpoint).resolve()), n=str(args.n),
                      seed=str(args.seed), pairs=str(pairs) if pairs else "",
                      scales="stdev (GANSpace sigma)" if args.method == "pca" else
                      ("1 (unit W/Z step)" if args.method == "sefa" else "the norm of the class difference"))
    out_dir = Path(args.out) if args.out else _run_dir(args.checkpoint) / "directions"
    # the walk: one row per direction around the --seed sample (classes: the 'b' class, or --class)
    rows = []
    for k in range(len(found)):
        cls = args.cls
        if found.space == "embedding" and cls is None:
            cls = pairs[k][1] if pairs[k][1] is not None else 0
        base = _seed_base(G, [args.seed], found.space, cls)
        moved = apply_direction(base, found.directions[k], [a * float(found.scales[k]) for a in amounts],
                                ws if found.space == "w" else None)
        rows.append(_draw_rows(G, bundle, modules, base, moved, opts, args.batch))
    paths = [save_directions(out_dir / f"{name}.safetensors", found)]
    paths.append(save_grid(torch.cat(rows), out_dir / f"{name}_walk_seed{args.seed}.png", nrow=len(amounts)))
    return paths


# -- ganzoo edit ----------------------------------------------------------------------------------------
def _direction_spec(spec: str) -> tuple[Path, int]:
    path, sep, k = spec.rpartition(":")
    if not sep or not k.isdigit():
        return Path(spec), 0
    return Path(path), int(k)


def run_edit(args: argparse.Namespace) -> list[Path]:
    if (args.latent is None) == (args.seeds is None):
        raise ConfigError("pass either --latent FILE (a latent of `ganzoo project`) or --seeds LIST")
    if (args.direction is None) == (args.swap is None):
        raise ConfigError("pass either --direction FILE:K (move along a direction) or --swap FILE --region R "
                          "(swap code regions of a VQ tokenizer's latents)")
    if args.swap is not None and args.region is None:
        raise ConfigError("--swap needs --region top|bottom|left|right|X0,Y0,X1,Y1")
    if args.region is not None and args.swap is None:
        raise ConfigError("--region only applies to --swap")
    bundle, modules, G, opts = _load(args, "edit")
    ghash, name = model_hash(G), str(bundle.info.get("name", ""))
    lat = (load_latent(args.latent, expected_hash=ghash, expected_model=name) if args.latent is not None else None)
    if args.swap is not None:
        return _swap(args, bundle, modules, G, lat, ghash, name)
    if bundle.info.get("kind") == "autoencoder" or (lat is not None and lat.space == "codes"):
        raise ConfigError("directions do not apply to code latents (a VQ tokenizer's codes are discrete): swap "
                          "regions instead, `ganzoo edit RUN --latent a.safetensors --swap b.safetensors --region "
                          "top`")
    path, k = _direction_spec(args.direction)
    found = load_directions(path, expected_hash=ghash)
    if not 0 <= k < len(found):
        raise ConfigError(f"--direction {args.direction}: index {k} is out of range; {path.name} holds {len(found)} "
                          f"directions (0-{len(found) - 1})")
    _classes(bundle, args.cls)
    ws = _layers(args.layers, G) if args.layers else found.ws
    if found.space != "w" and args.layers:
        raise ConfigError(f"--layers only applies to W directions; {path.name} is in {found.space.upper()}")
    amounts = strengths(args.strength, args.steps)
    if args.seeds is not None:
        seeds = parse_seeds(args.seeds)
        base = _seed_base(G, seeds, found.space, args.cls)
        tag = f"seeds{_seed_label(seeds)}"
    else:
        base = _latent_base(G, lat, found.space, args.cls, f"--latent {args.latent}")
        tag = Path(args.latent).parent.name if Path(args.latent).name == "latent.safetensors" else \
            Path(args.latent).stem
    if int(bundle.c_dim) and base.space == "z" and base.c is None:
        raise ConfigError("this model is class-conditional and the latent has no classes: pass --class K")
    scale = float(found.scales[k])
    moved = apply_direction(base, found.directions[k], [a * scale for a in amounts], ws)
    noise = {k[len("noise."):]: v for k, v in (lat.extra if lat is not None else {}).items() if k.startswith("noise.")}
    if noise:  # a projection's own noise images (any space), so that strength 0 is the projection
        rows = []
        for i in range(moved.shape[0]):
            with _noise_images(G, {k: v[i:i + 1] for k, v in noise.items()}):
                rows.append(_draw_rows(G, bundle, modules, Base(base.space, base.value[i:i + 1]), moved[i:i + 1],
                                       opts, args.batch))
        imgs = torch.cat(rows)
    else:
        imgs = _draw_rows(G, bundle, modules, base, moved, opts, args.batch)  # [N * S, C, H, W]
    s_tag = "_".join(f"{a:g}" for a in (amounts[0], amounts[-1]))
    out = f"edit_{path.stem}_k{k}_{tag}_s{s_tag}_steps{len(amounts)}"
    out += f"_layers{args.layers.replace('-', 'to')}" if args.layers else ""
    out += f"_class{args.cls}" if args.cls is not None else ""
    base_path = Path(args.out) if args.out else _run_dir(args.checkpoint) / "edited" / out
    if base_path.suffix.lower() in (".png", ".gif"):
        base_path = base_path.with_suffix("")
    n, s = moved.shape[:2]
    paths = [save_grid(imgs, base_path.with_name(base_path.name + ".png"), nrow=s)]
    per_strength = imgs.reshape(n, s, *imgs.shape[1:]).transpose(0, 1)  # [S, N, C, H, W]
    frames = [make_grid(f, nrow=n) for f in per_strength]
    frames += frames[-2:0:-1]  # and back
    paths.append(save_gif(frames, base_path.with_name(base_path.name + ".gif"), duration_ms=args.frame_ms))
    return paths


def _swap(args: argparse.Namespace, bundle: Any, modules: dict[str, nn.Module], G: nn.Module, lat: Latent | None,
          ghash: str, name: str) -> list[Path]:
    """Code-region swap between two code latents of a VQ tokenizer (bit-exact copy), decoded."""
    if lat is None or lat.space != "codes":
        got = "--seeds" if lat is None else f"a {lat.space!r} latent"
        raise ConfigError(f"--swap exchanges regions of VQ code latents (`ganzoo project` on a tokenizer run); "
                          f"--latent is {got}. Use --direction for GAN latents")
    other = load_latent(args.swap, expected_hash=ghash, what="--swap", expected_model=name)
    if other.space != "codes":
        raise ConfigError(f"--swap {args.swap} holds a {other.space!r} latent, not VQ codes")
    for flag in ("layers", "cls"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{'class' if flag == 'cls' else flag} does not apply to --swap")
    mask = region_mask(args.region, tuple(lat.value.shape[1:]))
    swapped = swap_region(lat.value.long(), other.value.long(), mask)
    b = other.value.long().expand_as(swapped) if other.value.shape[0] == 1 else other.value.long()
    rows = torch.stack([lat.value.long(), b, swapped], 1).flatten(0, 1)  # [N * 3, h, w]: a, b, swapped
    imgs = render(G, bundle, modules, "codes", rows, None, None, {}, batch=args.batch)
    region = args.region.replace(",", "-")
    out = f"swap_{Path(args.latent).parent.name}_{Path(args.swap).parent.name}_{region}"
    base_path = Path(args.out) if args.out else _run_dir(args.checkpoint) / "edited" / out
    if base_path.suffix.lower() in (".png", ".gif"):
        base_path = base_path.with_suffix("")
    meta = dict(lat.meta, swap_from=str(args.swap), region=args.region)
    return [save_grid(imgs, base_path.with_name(base_path.name + ".png"), nrow=3, pad=1),
            save_latent(base_path.with_name(base_path.name + ".safetensors"), Latent("codes", swapped, meta=meta))]
