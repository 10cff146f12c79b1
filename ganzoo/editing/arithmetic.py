"""Latent vector arithmetic (Radford, Metz & Chintala, DCGAN, ICLR 2016, Sec. 6.3, Fig. 7).

"Experiments working on only single samples per concept were unstable, but averaging the Z vector for three
exemplars showed consistent and stable generations": each group's latents are averaged, the expression (e.g.
``A - B + C``) is evaluated on the means, and the result is drawn together with neighbours, the result plus
uniform noise in ``[-0.25, 0.25]`` (Fig. 7: "uniform noise sampled with scale +-0.25 was added to Y to
produce the 8 other samples"; drawn here from a seeded generator). The same works in W for style generators.
``ganzoo generate RUN --mode arithmetic`` uses it; a group is seeds or a latent file of ``ganzoo project``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

NEIGHBOURS = 8
NOISE_SCALE = 0.25


def group_names(count: int) -> list[str]:
    if count > len(string.ascii_uppercase):
        raise ConfigError(f"--groups: at most {len(string.ascii_uppercase)} groups (A-Z), got {count}")
    return list(string.ascii_uppercase[:count])


def parse_groups(spec: str) -> list[list[int] | Path]:
    """``"1,2,3;4-6;a.safetensors"`` -> seed lists and latent-file paths, one per group (A, B, C, ...)."""
    from ..sampling.generate_args import parse_seeds

    parts = [p.strip() for p in spec.split(";")]
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--groups expects at least two groups separated by ';' (seeds like 1,2,3 or a latent "
                          f"file of `ganzoo project`), e.g. \"1,2,3;4,5,6;7,8,9\"; got {spec!r}")
    groups: list[list[int] | Path] = []
    for p in parts:
        if p.endswith(".safetensors") or "/" in p:
            groups.append(Path(p))
        else:
            groups.append(parse_seeds(p, "--groups"))
    group_names(len(groups))
    return groups


def parse_expr(expr: str, names: Sequence[str]) -> list[tuple[float, str]]:
    """``"A-B+C"`` or ``"0.5*A + 0.5*B"`` -> ``[(coefficient, name), ...]``; every name must be a group."""
    text = expr.replace(" ", "").upper()
    terms = re.findall(r"([+-]?)(?:(\d+(?:\.\d*)?|\.\d+)\*)?([A-Z])", text)
    rebuilt = "".join(f"{s}{f'{k}*' if k else ''}{n}" for s, k, n in terms)
    if not terms or rebuilt.lstrip("+") != text.lstrip("+"):
        raise ConfigError(f"--expr expects a sum of groups such as A-B+C (optional factors: 0.5*A+0.5*B), "
                          f"got {expr!r}")
    unknown = sorted({n for _, _, n in terms} - set(names))
    if unknown:
        raise ConfigError(f"--expr names group(s) {', '.join(unknown)}, but --groups gives {', '.join(names)}")
    return [((-1.0 if s == "-" else 1.0) * (float(k) if k else 1.0), n) for s, k, n in terms]


def group_means(groups: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean of each group's latents ``[n_i, ...]`` -> ``[G, ...]`` (float64 sums, input dtype out)."""
    return torch.stack([g.double().mean(0).to(g.dtype) for g in groups])


def evaluate(terms: Sequence[tuple[float, str]], means: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """``sum_k coefficient_k * mean[name_k]``, ``[...]``."""
    index = {n: i for i, n in enumerate(names)}
    total = torch.zeros_like(means[0], dtype=torch.float64)
    for coef, name in terms:
        total += coef * means[index[name]].double()
    return total.to(means.dtype)


def neighbours(result: torch.Tensor, *, seed: int, n: int = NEIGHBOURS, scale: float = NOISE_SCALE) -> torch.Tensor:
    """``n`` copies of ``result`` plus uniform noise in ``[-scale, scale]`` from a seeded CPU generator."""
    gen = torch.Generator().manual_seed(seed)
    noise = (torch.rand((n, *result.shape), generator=gen, dtype=torch.float64) * 2 - 1) * scale
    return (result.double().cpu()[None] + noise).to(result.dtype)


def figure_layout(group_sizes: Sequence[int], n_neighbours: int) -> tuple[int, list[int | None]]:
    """``(columns, cells)`` of the figure: one row per group (its samples, then its mean) and the result row
    (the result, then its neighbours); ``cells`` index the image list ``[*samples, *means, result,
    *neighbours]`` row-major, None where the row is shorter (white)."""
    cols = max(max(group_sizes) + 1, 1 + n_neighbours)
    cells: list[int | None] = []
    total = sum(group_sizes)
    start = 0
    for g, size in enumerate(group_sizes):
        row = list(range(start, start + size)) + [total + g]
        cells += row + [None] * (cols - len(row))
        start += size
    first = total + len(group_sizes)
    row = list(range(first, first + 1 + n_neighbours))
    cells += row + [None] * (cols - len(row))
    return cols, cells


def _expr_tag(expr: str) -> str:
    text = expr.replace(" ", "").upper()
    return text.replace("+", "plus").replace("-", "minus").replace("*", "x")


def _group_tag(group: list[int] | Path) -> str:
    from ..sampling.generate import _seed_label

    return group.stem if isinstance(group, Path) else _seed_label(group)


@torch.no_grad()
def run_arithmetic(args: Any, bundle: Any, modules: dict[str, nn.Module], G: nn.Module, opts: dict[str, Any],
                   generated: Path, suffix: str) -> list[Path]:
    """``ganzoo generate RUN --mode arithmetic``: the figure PNG and the vectors (a latent file).

    Every input is checked before anything is written: the groups (seeds or latent files of this model, in
    the chosen space), the expression, the class of a conditional model.
    """
    from ..sampling.generate import _run_dir
    from ..sampling.generate_args import _labels
    from ..sampling.interpolation import seed_latents
    from ..sampling.truncation import is_style_generator, require_style
    from .latents import Latent, load_latent, model_hash, save_latent
    from .walk import render

    if args.groups is None or args.expr is None:
        raise ConfigError('--mode arithmetic needs --groups and --expr, e.g. --groups "1,2,3;4,5,6;7,8,9" '
                          '--expr A-B+C (DCGAN Sec. 6.3)')
    if args.seeds is not None:
        raise ConfigError("--mode arithmetic takes its seeds in --groups (e.g. \"1,2,3;4,5,6\"), not --seeds")
    groups = parse_groups(args.groups)
    names = group_names(len(groups))
    terms = parse_expr(args.expr, names)
    style = is_style_generator(G)
    space = args.space or ("w" if style else "z")
    if space == "w":
        require_style(G, "--space w (arithmetic in W)", "Use --space z")
    labels = _labels(args)
    c_dim = int(bundle.c_dim)
    if c_dim > 0 and (labels is None or len(labels) != 1):
        raise ConfigError(f"--mode arithmetic on a class-conditional model ({c_dim} classes) keeps one class for "
                          f"every image: pass one --class K (0 <= K < {c_dim})")
    label = labels[0] if c_dim > 0 else None
    ghash = model_hash(G)
    dev = next(G.parameters()).device
    trunc = {"truncation_psi": 1.0 if args.psi is None else args.psi, "truncation_cutoff": args.cutoff}
    vectors: list[torch.Tensor] = []
    plus = False  # a w+ latent file among the groups: the result is a w+ latent
    for name, group in zip(names, groups):
        if isinstance(group, Path):
            lat = load_latent(group, expected_hash=ghash, what=f"--groups ({name})",
                              expected_model=str(bundle.info.get("name")))
            want = ("z",) if space == "z" else ("w", "w+")
            if lat.space not in want:
                raise ConfigError(f"--groups ({name}) {group} holds a {lat.space!r} latent; --space {space} needs "
                                  f"{' or '.join(repr(w) for w in want)} (project with --space {want[0]})")
            value = lat.value.float()
            if lat.space == "w":
                value = value[:, None].repeat(1, int(G.num_ws), 1)
            plus |= lat.space == "w+"
        else:
            z, _ = seed_latents(group, int(G.z_dim))
            if space == "z":
                value = z
            else:
                c = None if label is None else torch.full((z.shape[0],), label, device=dev)
                value = G.mapping(z.to(dev), c, **trunc).float().cpu()  # [n, num_ws, w_dim]
        vectors.append(value)
    means = group_means(vectors)
    result = evaluate(terms, means, names)
    seed = args.seed or 0
    near = neighbours(result, seed=seed)
    allv = torch.cat([*vectors, means, result[None], near])
    c_all = None if label is None else torch.full((allv.shape[0],), label, dtype=torch.long)
    opts = dict(opts)
    if style and space == "z":
        opts.update(noise_mode="const", **trunc)
    imgs = render(G, bundle, modules, "z" if space == "z" else "w+", allv, c_all, None, opts, batch=args.batch)
    cols, cells = figure_layout([v.shape[0] for v in vectors], NEIGHBOURS)
    blank = torch.ones_like(imgs[:1])
    figure = torch.cat([imgs[i:i + 1] if i is not None else blank for i in cells])
    name = (f"arithmetic_{space}_{_expr_tag(args.expr)}_{'__'.join(_group_tag(g) for g in groups)}_seed{seed}"
            f"{suffix}")
    base = Path(args.out) if args.out else generated / f"{name}.png"
    from ..sampling.images import save_grid

    paths = [save_grid(figure, base.with_suffix(".png"), nrow=cols)]
    keep = torch.cat([result[None], means])
    lat_space = space if space == "z" else ("w+" if plus else "w")
    if lat_space == "w":
        keep = keep[:, 0]
    meta = {"model": str(bundle.info.get("name", "")), "model_hash": ghash, "run": str(_run_dir(args.checkpoint)),
            "expr": args.expr,
            "groups": args.groups, "rows": "0: the result " + args.expr + ", then the means of " + ", ".join(names),
            "neighbour_noise": f"uniform +-{NOISE_SCALE}, seed {seed}"}
    out = Latent(lat_space, keep, None if label is None else torch.full((keep.shape[0],), label), meta=meta)
    paths.append(save_latent(base.with_suffix(".safetensors"), out))
    return paths


def _register() -> None:
    from ..sampling.generate import MODE_RUNNERS

    MODE_RUNNERS["arithmetic"] = run_arithmetic


_register()  # `ganzoo generate --mode arithmetic` runs here (sampling never imports editing)
