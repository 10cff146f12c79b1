"""Edit directions found without labels: SeFa, GANSpace PCA and class-mean differences.

- **SeFa** (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021, Sec. 3.2, eq. 5):
  the directions ``n`` that the first projection of the latent changes most, ``argmax ||A n||^2``, are the
  eigenvectors of ``A^T A`` with the largest eigenvalues. For style generators ``A`` stacks the style affine
  maps (StyleGAN2's modulated-conv affines, StyleGAN's AdaIN affines) of the chosen ws; for every other GAN it
  is the first layer that reads ``z`` (DCGAN's 4x4 transposed conv, ProGAN's dense, BigGAN/SAGAN's linear),
  restricted to the input columns that carry ``z``. As the official genforce/sefa ``factorize_weight`` does,
  every row of ``A`` (one output unit's weights) is scaled to unit L2 norm before stacking, and StyleGAN2's
  ToRGB affines enter only for the last ws, which no conv reads (their ``output`` layer).
- **GANSpace** (Härkönen et al., NeurIPS 2020, Sec. 2): PCA of ``N`` sampled latents. Style generators: ``w``
  (the paper uses 10^6 samples; default 10,000 here). Others: Z is isotropic, so PCA of ``z`` finds nothing;
  as the paper does for BigGAN (Sec. 2.2) the PCA runs on the output of the first layer that reads ``z`` and
  each component is carried back to Z by linear regression of ``z`` on the component scores, then the Z
  directions are orthonormalised in order (Gram-Schmidt). ``scales`` are the components' standard deviations,
  so a strength is in units of sigma, as in GANSpace's edits.
- **class means** (conditional models): style generators: mean ``w`` of class ``a`` minus mean ``w`` of class
  ``b`` over the same ``z`` draws (W space). Generators with a class embedding (BigGAN, SAGAN, conditional
  DCGAN; the protocol of ``sampling/class_interp.py``): the difference of the class codes ``e(a) - e(b)``,
  applied to the code at a fixed ``z`` (space ``embedding``); strength 1 turns class ``b`` into class ``a``.

A :class:`Directions` file is safetensors: ``directions [K, D]`` (unit rows), ``values [K]`` (eigenvalues or
variances), ``scales [K]`` (what strength 1 moves along each unit direction) and JSON metadata with the
method, space, ws, ``model_hash``, run, N and seed. A file of another model is refused on load.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..layers.equalized import EqualizedLinear
from ..layers.modconv import ModulatedConv2d
from ..layers.norms import AdaIN
from ..sampling.class_interp import has_class_embedding
from ..sampling.truncation import is_style_generator

FORMAT = "ganzoo.directions"
METHODS = ("sefa", "pca", "class-mean")


@dataclass
class Directions:
    """``directions [K, D]`` unit rows, ``values [K]``, ``scales [K]``; ``space`` z, w or embedding."""

    directions: torch.Tensor
    values: torch.Tensor
    scales: torch.Tensor
    space: str
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def ws(self) -> list[int] | None:
        """The ws a SeFa direction was factorised from (None: all of them / not a W direction)."""
        text = self.meta.get("ws", "")
        return json.loads(text) if text else None

    def __len__(self) -> int:
        return self.directions.shape[0]


def save_directions(path: str | Path, d: Directions) -> Path:
    from safetensors.torch import save_file

    from ..training.checkpoint import atomic_write

    path = Path(path)
    tensors = {"directions": d.directions.detach().cpu().float().contiguous(),
               "values": d.values.detach().cpu().float().contiguous(),
               "scales": d.scales.detach().cpu().float().contiguous()}
    header = {"format": FORMAT, "space": d.space, "meta": json.dumps({k: str(v) for k, v in d.meta.items()})}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))
    return path


def load_directions(path: str | Path, *, expected_hash: str | None = None, what: str = "--direction") -> Directions:
    """Read a file written by :func:`save_directions`; refuse a missing file, another format, another model."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    hint = "write one with `ganzoo directions RUN --method sefa|pca|class-mean`"
    if not path.is_file():
        raise ConfigError(f"{what} {path}: no such file; {hint}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ConfigError(f"{what} {path} is not a directions file (not safetensors: {e}); {hint}") from None
    if header.get("format") != FORMAT or not {"directions", "values", "scales"} <= set(tensors):
        raise ConfigError(f"{what} {path} is not a ganzoo directions file; {hint}")
    meta = json.loads(header.get("meta", "{}"))
    if expected_hash is not None and meta.get("model_hash") != expected_hash:
        raise ConfigError(f"{what} {path} was computed from {meta.get('model', 'another model')} (run "
                          f"{meta.get('run', '?')}, weights {meta.get('model_hash', '?')}), not from this run's "
                          f"generator (weights {expected_hash}); run `ganzoo directions` on this run instead")
    return Directions(tensors["directions"], tensors["values"], tensors["scales"], header.get("space", ""),
                      {k: str(v) for k, v in meta.items()})


# -- where the latent enters the generator ---------------------------------------------------------
class _Stop(Exception):
    """Raised by a hook to end a forward pass once the layer of interest has been seen."""


def _device(G: nn.Module) -> torch.device:
    p = next(G.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def style_affines(G: nn.Module, opts: dict[str, Any] | None = None) -> list[tuple[int, EqualizedLinear, bool]]:
    """``(ws index, affine, is_torgb)`` for every style affine of a style generator, in call order.

    Found by running ``G.synthesis`` once on ws that differ per index and matching each affine's input
    (modulated convs and AdaIN layers, the hook the design names), so no model class is looked at.
    """
    owners = {m.affine: m for m in G.synthesis.modules() if isinstance(m, (ModulatedConv2d, AdaIN))}
    if not owners:
        raise ConfigError(f"SeFa needs style affine layers; {type(G).__name__} has none")
    dev = _device(G)
    ws = torch.randn(1, int(G.num_ws), int(G.w_dim), generator=torch.Generator().manual_seed(0)).to(dev)
    seen: list[tuple[int, EqualizedLinear, bool]] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        w = inputs[0].detach()
        index = [i for i in range(ws.shape[1]) if torch.equal(w[0], ws[0, i])]
        owner = owners[module]
        seen.append((index[0] if index else -1, module, isinstance(owner, ModulatedConv2d) and not owner.demodulate))

    handles = [a.register_forward_pre_hook(hook) for a in owners]
    try:
        with torch.no_grad():
            G.synthesis(ws, noise_mode="const", **(opts or {}))
    finally:
        for h in handles:
            h.remove()
    return [s for s in seen if s[0] >= 0]


def _layer_matrix(layer: nn.Module) -> torch.Tensor:
    """The weight of a first layer as ``[units, in_features]`` (its effective value where it has one)."""
    if isinstance(layer, EqualizedLinear):
        return layer.effective_weight()
    weight = layer.sn_weight() if hasattr(layer, "sn_weight") else layer.weight
    if isinstance(layer, nn.ConvTranspose2d):  # [in, out, k, k] on a 1x1 input: out*k*k units
        return weight.permute(1, 2, 3, 0).reshape(-1, weight.shape[0])
    return weight.reshape(weight.shape[0], -1)


FIRST_LAYERS = (nn.Linear, nn.ConvTranspose2d, EqualizedLinear)


def first_layer(G: nn.Module, c: torch.Tensor | None, opts: dict[str, Any], *, n: int = 256,
                seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """The first weight layer ``G(z, c)`` calls and the input column that carries each ``z`` dimension.

    Returns ``(layer, cols [z_dim])`` with ``cols[j] = -1`` where ``z_j`` does not enter that layer (BigGAN's
    hierarchical chunks). Columns are matched by correlation over ``n`` draws, which also holds through
    ProGAN's pixel norm of ``z`` (a per-sample scale).
    """
    z = torch.randn(n, int(G.z_dim), generator=torch.Generator().manual_seed(seed)).to(_device(G))
    got: dict[str, Any] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        got["layer"], got["x"] = module, inputs[0].detach()
        raise _Stop

    handles = [m.register_forward_pre_hook(hook) for m in G.modules() if isinstance(m, FIRST_LAYERS)]
    try:
        with torch.no_grad():
            G(z, None if c is None else c.expand(n).to(z.device), **opts)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    if "layer" not in got:
        raise ConfigError(f"{type(G).__name__}: found no linear or transposed-conv layer that reads z")
    x = got["x"]
    if x.dim() == 4 and x.shape[2:] != (1, 1):
        raise ConfigError(f"the first layer of {type(G).__name__} reads a {tuple(x.shape[2:])} map, not the latent")
    x = x.reshape(n, -1).double()
    zc, xc = z.double() - z.double().mean(0), x - x.mean(0)
    corr = (zc.t() @ xc) / (zc.norm(dim=0)[:, None] * xc.norm(dim=0)[None, :]).clamp_min(1e-12)  # [z_dim, in]
    best = corr.abs().max(dim=1)
    cols = torch.where(best.values > 0.9, best.indices, torch.full_like(best.indices, -1))
    return got["layer"], cols.cpu()


def _unit_rows(a: torch.Tensor) -> torch.Tensor:
    return a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _top_eigh(m: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors as rows of a symmetric matrix, the top ``k``."""
    vals, vecs = torch.linalg.eigh(m.double())
    order = torch.argsort(vals, descending=True)[:k]
    return vals[order], vecs[:, order].t()


def sefa_matrix(G: nn.Module, ws: Sequence[int] | None, *, c: torch.Tensor | None = None,
                opts: dict[str, Any] | None = None) -> torch.Tensor:
    """The row-normalised stack ``A`` whose ``A^T A`` SeFa factorises (see the module docstring)."""
    opts = dict(opts or {})
    if is_style_generator(G):
        found = style_affines(G, {k: v for k, v in opts.items() if k in ("level", "alpha")})
        chosen = set(range(int(G.num_ws)) if ws is None else ws)
        rows = []
        for i in sorted(chosen):
            convs = [a for j, a, rgb in found if j == i and not rgb]
            rows += [a.effective_weight() for a in (convs or [a for j, a, rgb in found if j == i])]
        if not rows:
            raise ConfigError(f"no style affine reads ws {sorted(chosen)}")
        return _unit_rows(torch.cat(rows).detach().double())  # [sum of units, w_dim]
    layer, cols = first_layer(G, c, opts)
    weight = _layer_matrix(layer).detach().double()  # [units, in]
    a = torch.zeros(weight.shape[0], cols.shape[0], dtype=torch.float64, device=weight.device)
    used = cols >= 0
    a[:, used] = weight[:, cols[used].to(weight.device)]
    return _unit_rows(a)


def sefa(G: nn.Module, k: int, ws: Sequence[int] | None = None, **kw: Any) -> Directions:
    """SeFa directions: the top ``k`` eigenvectors of ``A^T A`` (eq. 5), eigenvalues as ``values``."""
    a = sefa_matrix(G, ws, **kw)
    vals, vecs = _top_eigh(a.t() @ a, k)
    space = "w" if is_style_generator(G) else "z"
    return Directions(vecs.float().cpu(), vals.float().cpu(), torch.ones(vecs.shape[0]), space)


def pca_components(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(components [k, D] orthonormal rows, variances [k] descending, mean [D])`` of samples ``x [N, D]``."""
    x = x.double()
    mean = x.mean(0)
    xc = x - mean
    cov = xc.t() @ xc / max(1, x.shape[0] - 1)
    vals, vecs = _top_eigh(cov, k)
    return vecs, vals.clamp_min(0), mean


@torch.no_grad()
def sample_w(G: nn.Module, n: int, seed: int, *, batch: int = 1000) -> torch.Tensor:
    """``n`` mapped latents ``w [n, w_dim]`` (classes drawn uniformly for conditional models)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, int(G.z_dim), generator=gen)
    c = torch.randint(0, int(G.c_dim), (n,), generator=gen) if int(getattr(G, "c_dim", 0)) else None
    dev = _device(G)
    out = [G.mapping(z[i:i + batch].to(dev), None if c is None else c[i:i + batch].to(dev))[:, 0].double().cpu()
           for i in range(0, n, batch)]
    return torch.cat(out)


@torch.no_grad()
def first_layer_features(G: nn.Module, z: torch.Tensor, c: torch.Tensor | None, opts: dict[str, Any],
                         layer: nn.Module, *, batch: int = 1000) -> torch.Tensor:
    """The output of ``layer`` (flattened) for each latent of ``z``; the forward pass stops there."""
    feats: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        feats.append(output.detach().reshape(output.shape[0], -1).double().cpu())
        raise _Stop

    handle = layer.register_forward_hook(hook)
    dev = _device(G)
    try:
        for i in range(0, z.shape[0], batch):
            try:
                G(z[i:i + batch].to(dev), None if c is None else c[i:i + batch].to(dev), **opts)
            except _Stop:
                pass
    finally:
        handle.remove()
    return torch.cat(feats)


def ganspace(G: nn.Module, k: int, *, n: int = 10_000, seed: int = 0, c: torch.Tensor | None = None,
             opts: dict[str, Any] | None = None) -> Directions:
    """GANSpace PCA directions (see the module docstring); ``scales`` are the standard deviations."""
    if is_style_generator(G):
        comps, var, _ = pca_components(sample_w(G, n, seed), k)
        return Directions(comps.float(), var.float(), var.sqrt().float(), "w")
    opts = dict(opts or {})
    layer, _ = first_layer(G, c, opts)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, int(G.z_dim), generator=gen)
    cs = None if c is None else c.reshape(-1)[:1].expand(n)
    y = first_layer_features(G, z, cs, opts, layer)  # [n, F]
    comps, var, mean = pca_components(y, min(k, y.shape[1]))
    scores = (y - mean) @ comps.t()  # [n, k]
    u = torch.linalg.lstsq(scores, z.double()).solution  # [k, z_dim]: z ~ scores @ u (GANSpace Sec. 2.2)
    q, r = torch.linalg.qr(u.t())  # orthonormal in the order of the components
    dirs = (q * torch.sign(torch.diagonal(r))[None, :]).t()  # keep each regressed direction's sign
    std = (z.double() @ dirs.t()).std(0)
    return Directions(dirs.float(), var.float(), std.float(), "z")


@torch.no_grad()
def class_mean(G: nn.Module, pairs: Sequence[tuple[int, int | None]], *, n: int = 10_000,
               seed: int = 0) -> Directions:
    """One direction per ``(a, b)``: class ``a`` minus class ``b`` (``b`` None: minus the mean of all classes)."""
    c_dim = int(getattr(G, "c_dim", 0))
    if c_dim <= 0:
        raise ConfigError("--method class-mean needs a class-conditional model; this generator has no classes "
                          "(use --method sefa or pca)")
    for a, b in pairs:
        for k in (a, b):
            if k is not None and not 0 <= k < c_dim:
                raise ConfigError(f"class {k} is out of range: this model has {c_dim} classes (0-{c_dim - 1})")
    dev = _device(G)
    if is_style_generator(G):
        z = torch.randn(n, int(G.z_dim), generator=torch.Generator().manual_seed(seed)).to(dev)

        def mean_w(k: int) -> torch.Tensor:
            return torch.cat([G.mapping(zz, torch.full((zz.shape[0],), k, device=dev))[:, 0]
                              for zz in z.split(1000)]).double().mean(0)

        means = {k: mean_w(k) for k in range(c_dim)} if any(b is None for _, b in pairs) else {}
        space = "w"
    elif has_class_embedding(G):
        means = {k: G.class_embedding(torch.tensor([k], device=dev)).double().reshape(-1) for k in range(c_dim)}
        space = "embedding"
    else:
        raise ConfigError(f"--method class-mean: {type(G).__name__} has neither a W space nor a class embedding")

    def get(k: int) -> torch.Tensor:
        if k not in means:
            means[k] = mean_w(k)
        return means[k]

    rows = []
    for a, b in pairs:
        rows.append(get(a) - (torch.stack([get(j) for j in range(c_dim)]).mean(0) if b is None else get(b)))
    diff = torch.stack(rows).cpu()
    norms = diff.norm(dim=1)
    return Directions(_unit_rows(diff).float(), norms.float(), norms.float(), space)
