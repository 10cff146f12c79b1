"""BigGAN-PyTorch weights (ajbrock/BigGAN-PyTorch) as a ganzoo BigGAN or BigGAN-deep run.

``utils.save_weights`` writes ``G.pth``, ``G_ema.pth``, ``D.pth`` (each network's ``state_dict()``), the
optimizer files and ``state_dict.pth`` (``itr``, ``best_IS``, ``best_FID``, the training ``config``). The
importer takes that folder or one weight file: G.pth -> G, G_ema.pth -> G's EMA copy, D.pth -> D.
The architecture comes from the tensors' names and shapes (``BigGAN.py`` / ``BigGANdeep.py`` ``G_arch``,
``D_arch``); the config, when readable, adds ``SN_eps``, ``BN_eps`` and the training settings.

State mapping (``layers.py``; docs/pretrained/biggan_pytorch.md has the full table): ``SN``'s ``u0``
``[1, out]`` / ``sv0`` ``[1]`` -> ``weight_u`` ``[out]`` / ``weight_sigma`` ``[]`` (the same power iteration
and eval rule, ``power_iteration(update=False)``; ``u1, sv1...`` of ``num_svs > 1`` only feed logs and are
dropped); ``ccbn``/``bn`` ``stored_mean``/``stored_var`` (also under ``.bn.`` for myBN / SyncBN) ->
``running_mean``/``running_var`` with ``num_batches_tracked`` 0 (momentum 0.1 never reads it); ``ccbn``'s
per-class ``nn.Embedding`` tables ``[n_classes, C]`` (no shared embedding) -> one-hot linears ``[C, n_classes]``
(transposed); ``Attention``'s ``theta``/``phi``/``g``/``o`` -> ``f``/``g``/``h``/``o``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.biggan import D_CHANNELS, G_CHANNELS
from ..models.biggan_deep import D_DEEP, G_DEEP_RES
from .base import Converted, register_format
from .safe_pickle import Record, UnsafeFileError, load_torch

__all__ = ["convert", "sniff"]

# train.py stores nn.ReLU modules (utils.activation_dict) in the config: read as inert records.
_RECORDS = ("torch.nn.modules.activation.*",)
_FILE = re.compile(r"^(G_ema|G_optim|D_optim|state_dict|G|D)(?:_(.+))?\.pth$")
_ATTN = {"theta": "f", "phi": "g", "g": "h", "o": "o"}  # layers.Attention -> ganzoo SelfAttention2d
_cache: dict[str, Any] = {}


def _load(path: Path) -> Any:
    """``load_torch`` with a one-file cache, so that sniffing and converting one big file read it once."""
    key = f"{path.resolve()}:{path.stat().st_mtime_ns}:{path.stat().st_size}"
    if key not in _cache:
        _cache.clear()
        _cache[key] = load_torch(path, records=_RECORDS)
    return _cache[key]


def _kind(sd: Mapping[str, Any]) -> str | None:
    """``G``/``D``/``deepG``/``deepD`` from the keys of a BigGAN-PyTorch state dict, None if it is not one."""
    if not isinstance(sd, Mapping) or not sd or not all(isinstance(k, str) for k in sd):
        return None
    if not any(k.endswith(".u0") for k in sd):  # BigGAN-PyTorch's own SN buffers
        return None
    if "output_layer.0.gain" in sd or "output_layer.0.bn.stored_mean" in sd:
        return "deepG" if "blocks.0.0.conv4.weight" in sd else "G"
    if "embed.weight" in sd and "linear.weight" in sd:
        return "deepD" if "input_conv.weight" in sd else "D"
    return None


def sniff(path: Path) -> bool:
    """A folder with ``G.pth``/``G_ema.pth``/``D.pth`` (by name), or a ``.pth`` state dict with ``u0`` SN buffers.

    A file named as ``utils.save_weights`` names them that cannot be read (truncated) raises its error; any
    other unreadable file is simply not this format."""
    if path.is_dir():
        return bool(_weight_files(path))
    if path.suffix not in (".pth", ".pt") or not path.is_file():
        return False
    try:
        return _kind(_load(path)) is not None
    except UnsafeFileError:
        return False
    except CheckpointError:
        if _FILE.match(path.name):
            raise
        return False


def _weight_files(folder: Path) -> dict[str, Path]:
    return {n: folder / f"{n}.pth" for n in ("G", "G_ema", "D") if (folder / f"{n}.pth").is_file()}


def _gather(path: Path) -> tuple[dict[str, Path], Path | None, list[str]]:
    """The weight files (role -> path) and state_dict.pth of a folder or one file; plus lines for ``found``."""
    found: list[str] = []
    if path.is_dir():
        files = _weight_files(path)
        if not files:
            copies = sorted(p.name for p in path.glob("*.pth") if _FILE.match(p.name))
            raise CheckpointError(
                f"{str(path)!r} holds no G.pth, G_ema.pth or D.pth (BigGAN-PyTorch's utils.save_weights names)"
                + (f"; it has {', '.join(copies[:6])}: pass one of those files" if copies else ""))
        for name in sorted(p.name for p in path.glob("*optim*.pth")):
            found.append(f"{name}: optimizer state, not imported (the run starts fresh optimizers)")
        state = path / "state_dict.pth"
        return files, state if state.is_file() else None, found
    m = _FILE.match(path.name)
    if m and m.group(1) in ("G_optim", "D_optim", "state_dict"):
        raise CheckpointError(f"{str(path)!r} holds BigGAN-PyTorch's {m.group(1)}, no network weights: pass G.pth, "
                              "G_ema.pth, D.pth or the folder that holds them")
    sd = _load(path)
    kind = _kind(sd)
    if kind is None:
        raise CheckpointError(
            f"{str(path)!r} is not a BigGAN-PyTorch weight file: expected the state dict of BigGAN.py's or "
            "BigGANdeep.py's Generator or Discriminator (keys such as 'linear.u0', 'output_layer.0.gain', "
            f"'embed.weight'); found {_describe(sd)}")
    if kind.endswith("D"):
        role = "D"
    else:  # G_ema.pth, G_ema_best0.pth, or a renamed copy that says "ema"
        role = "G_ema" if (m and m.group(1) == "G_ema") or (not m and "ema" in path.name.lower()) else "G"
    return {role: path}, None, found


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:4]]
        return f"a mapping with keys {keys}{'...' if len(obj) > 4 else ''}"
    return f"a {type(obj).__name__}"


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.qualname
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def _read_state(path: Path | None, notes: list[str], found: list[str]) -> dict[str, Any]:
    """``state_dict.pth`` (train.py's ``state_dict``), or {} with a note when absent or unreadable."""
    if path is None:
        return {}
    try:
        state = load_torch(path, records=_RECORDS)
    except CheckpointError as err:
        notes.append(f"state_dict.pth could not be read ({str(err)[:150]}...); its config was not used")
        return {}
    if not isinstance(state, Mapping) or not isinstance(state.get("config"), Mapping):
        notes.append("state_dict.pth holds no training config; it was ignored")
        return {}
    found.append(f"state_dict.pth: itr {state.get('itr')}, epoch {state.get('epoch')}, best IS "
                 f"{state.get('best_IS')}, best FID {state.get('best_FID')} and the training config")
    return {k: _plain(v) for k, v in state.items()}


class _Mapper:
    """Renames one BigGAN-PyTorch state dict into ganzoo's names; every source key must be used once."""

    def __init__(self, sd: Mapping[str, torch.Tensor], what: str) -> None:
        self.sd, self.what = sd, what
        self.out: dict[str, torch.Tensor] = {}
        self.used: set[str] = set()
        self.dropped_svs = self.no_sv = 0

    def take(self, key: str) -> torch.Tensor:
        if key not in self.sd:
            raise CheckpointError(f"{self.what} lacks {key!r}, which BigGAN-PyTorch's networks of this shape "
                                  "have: the file is another variant or damaged")
        self.used.add(key)
        return self.sd[key].detach().clone()

    def sn(self, src: str, dst: str) -> None:
        """An SN conv/linear/embedding: weight, optional bias, ``u0`` -> ``weight_u``, ``sv0`` -> ``weight_sigma``."""
        w = self.take(f"{src}.weight")
        self.out[f"{dst}.weight"] = w
        if f"{src}.bias" in self.sd:
            self.out[f"{dst}.bias"] = self.take(f"{src}.bias")
        u = self.take(f"{src}.u0").reshape(-1)
        if u.numel() != w.shape[0]:
            raise CheckpointError(f"{self.what}: {src}.u0 has {u.numel()} entries for a weight of {w.shape[0]} "
                                  "rows; transposed spectral norm is not a BigGAN-PyTorch layout ganzoo reads")
        self.out[f"{dst}.weight_u"] = u
        if f"{src}.sv0" in self.sd:
            self.out[f"{dst}.weight_sigma"] = self.take(f"{src}.sv0").reshape(())
        else:  # TFHub/converter.py writes no sv0; ganzoo's weight_sigma is a logged value, recomputed each step
            self.out[f"{dst}.weight_sigma"] = torch.tensor(1.0)
            self.no_sv += 1
        k = 1
        while f"{src}.u{k}" in self.sd:  # num_svs > 1: further singular vectors, for logging only
            self.take(f"{src}.u{k}")
            self.take(f"{src}.sv{k}")
            self.dropped_svs += 1
            k += 1

    def stats(self, src: str, dst: str) -> None:
        """BN statistics of ``ccbn``/``bn``: own buffers, or those of the inner myBN / SyncBN."""
        for mean, var in (("stored_mean", "stored_var"), ("bn.stored_mean", "bn.stored_var"),
                          ("bn.running_mean", "bn.running_var")):
            if f"{src}.{mean}" in self.sd:
                self.out[f"{dst}.running_mean"] = self.take(f"{src}.{mean}")
                self.out[f"{dst}.running_var"] = self.take(f"{src}.{var}")
                for extra in ("bn.accumulation_counter", "bn.num_batches_tracked"):
                    if f"{src}.{extra}" in self.sd:
                        self.take(f"{src}.{extra}")
                self.out[f"{dst}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
                return
        raise CheckpointError(f"{self.what} has no BatchNorm statistics for {src!r} (stored_mean/stored_var): "
                              "norm_style 'in', 'gn' or 'nonorm' is not a BigGAN ganzoo can build")

    def ccbn(self, src: str, dst: str, shared: bool) -> None:
        self.stats(src, f"{dst}.bn")
        for part in ("gain", "bias"):
            if shared:
                self.sn(f"{src}.{part}", f"{dst}.{part}")
            else:  # nn.Embedding [n_classes, C] -> bias-free linear of the one-hot label [C, n_classes]
                self.out[f"{dst}.{part}.weight"] = self.take(f"{src}.{part}.weight").t().contiguous()

    def out_bn(self, src: str, dst: str) -> None:
        self.out[f"{dst}.weight"] = self.take(f"{src}.gain")
        self.out[f"{dst}.bias"] = self.take(f"{src}.bias")
        self.stats(src, dst)

    def attention(self, src: str, dst: str) -> None:
        for theirs, ours in _ATTN.items():
            self.sn(f"{src}.{theirs}", f"{dst}.{ours}")
        self.out[f"{dst}.gamma"] = self.take(f"{src}.gamma").reshape(())

    def finish(self) -> dict[str, torch.Tensor]:
        left = sorted(set(self.sd) - self.used)
        if left:
            raise CheckpointError(f"{self.what} holds tensors this BigGAN-PyTorch layout does not have: "
                                  f"{left[:4]}{'...' if len(left) > 4 else ''}")
        return self.out


def _indices(sd: Mapping[str, Any], prefix: str = "blocks.") -> list[int]:
    return sorted({int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)})


def _res_after(resolution: int, n_blocks: int, n_down: int) -> list[int]:
    """D's resolution after each block: the first ``n_down`` blocks halve it."""
    return [resolution >> min(i + 1, n_down) for i in range(n_blocks)]


def _attn_res(res_after: list[int], has: list[bool], what: str) -> list[int]:
    """ganzoo's ``attn_res`` (resolutions after each block) that places attention exactly where the file has it.

    BigGAN-PyTorch's D_arch labels all four 32-px blocks "16" although two keep 8x8 after pooling; ganzoo
    places attention by the actual resolution, so e.g. D_attn '16' at 32 px is ganzoo's [16, 8]."""
    chosen = sorted({r for r, h in zip(res_after, has) if h})
    if [r in chosen for r in res_after] != has:
        raise CheckpointError(f"{what}: attention after blocks {[i for i, h in enumerate(has) if h]} cannot be "
                              "placed by resolution in ganzoo's model")
    return chosen


def _biggan_G(sd: Mapping[str, torch.Tensor], what: str) -> tuple[dict[str, Any], _Mapper]:
    blocks = _indices(sd)
    res = 4 * 2 ** len(blocks)
    if res not in G_CHANNELS:
        raise CheckpointError(f"{what} has {len(blocks)} blocks; BigGAN.py's G_arch has 3 to 7 (32 to 512 px)")
    mults = G_CHANNELS[res]
    ch = sd["output_layer.0.gain"].numel() // mults[-1]
    for i in blocks:
        w = sd[f"blocks.{i}.0.conv1.weight"]
        if tuple(w.shape[:2]) != (ch * mults[i + 1], ch * mults[i]):
            raise CheckpointError(f"{what}: blocks.{i}.0.conv1 is {tuple(w.shape)}, not G_arch[{res}] with "
                                  f"G_ch {ch}")
    shared = "shared.weight" in sd
    gain = sd["blocks.0.0.bn1.gain.weight"]
    if shared:
        c_dim, shared_dim = sd["shared.weight"].shape
        z_chunk = gain.shape[1] - shared_dim
    else:
        c_dim, shared_dim, z_chunk = gain.shape[0], 128, 0
    lin_in = sd["linear.weight"].shape[1]
    if z_chunk and lin_in != z_chunk:
        raise CheckpointError(f"{what}: linear takes {lin_in} inputs but the BNs a z chunk of {z_chunk}")
    hier = z_chunk > 0
    arch = dict(resolution=res, img_channels=int(sd["output_layer.2.weight"].shape[0]), c_dim=int(c_dim),
                z_dim=int(z_chunk * (len(blocks) + 1) if hier else lin_in), ch=int(ch), shared=shared,
                shared_dim=int(shared_dim), hier=hier,
                attn_res=[8 * 2**i for i in blocks if f"blocks.{i}.1.gamma" in sd])
    m = _Mapper(sd, what)
    if shared:
        m.out["shared.weight"] = m.take("shared.weight")
    m.sn("linear", "linear")
    for i in blocks:
        for n in ("conv1", "conv2", "conv_sc"):
            if f"blocks.{i}.0.{n}.weight" in sd:
                m.sn(f"blocks.{i}.0.{n}", f"blocks.{i}.{n}")
        for n in (1, 2):
            m.ccbn(f"blocks.{i}.0.bn{n}", f"blocks.{i}.norm{n}", shared)
        if f"blocks.{i}.1.gamma" in sd:
            m.attention(f"blocks.{i}.1", f"attention.{i}")
    m.out_bn("output_layer.0", "out_bn")
    m.sn("output_layer.2", "out_conv")
    return arch, m


def _biggan_D(sd: Mapping[str, torch.Tensor], what: str) -> tuple[dict[str, Any], _Mapper]:
    blocks = _indices(sd)
    res = {4: 32, 5: 64, 6: 128, 7: 256}.get(len(blocks))
    if res is None:
        raise CheckpointError(f"{what} has {len(blocks)} blocks; BigGAN.py's D_arch has 4 to 7 (32 to 256 px)")
    mults, n_down = D_CHANNELS[res]
    ch = sd["blocks.0.0.conv2.weight"].shape[0] // mults[0]
    res_after = _res_after(res, len(blocks), n_down)
    arch = dict(resolution=res, img_channels=int(sd["blocks.0.0.conv1.weight"].shape[1]),
                c_dim=int(sd["embed.weight"].shape[0]), ch=int(ch),
                wide=all(sd[f"blocks.{i}.0.conv1.weight"].shape[0] == sd[f"blocks.{i}.0.conv2.weight"].shape[0]
                         for i in blocks),
                attn_res=_attn_res(res_after, [f"blocks.{i}.1.gamma" in sd for i in blocks], what))
    m = _Mapper(sd, what)
    for i in blocks:
        for n in ("conv1", "conv2", "conv_sc"):
            if f"blocks.{i}.0.{n}.weight" in sd:
                m.sn(f"blocks.{i}.0.{n}", f"blocks.{i}.{n}")
        if f"blocks.{i}.1.gamma" in sd:
            m.attention(f"blocks.{i}.1", f"attention.{i}")
    m.sn("linear", "head.linear")
    m.sn("embed", "head.embed")
    return arch, m


def _deep_layout(sd: Mapping[str, torch.Tensor], depth_hint: int | None, what: str) -> tuple[int, int, int]:
    """``(resolution, depth, ch)`` of a BigGANdeep G: the stage/depth split the block widths allow."""
    n, out = len(_indices(sd)), sd["output_layer.0.gain"].numel()
    fits = []
    for res in G_DEEP_RES:
        mults = G_CHANNELS[res]
        stages = len(mults) - 1
        if n % stages or n // stages < 2 or (depth_hint and n // stages != depth_hint):
            continue
        depth, ch = n // stages, out // mults[-1]
        ok = True
        for k in range(n):
            i, d = divmod(k, depth)
            cin = ch * mults[i]
            cout = cin if d < depth - 1 else ch * mults[i + 1]
            ok &= tuple(sd[f"blocks.{k}.0.conv1.weight"].shape[:2]) == (cin // 4, cin)
            ok &= sd[f"blocks.{k}.0.conv4.weight"].shape[0] == cout
            ok &= d == depth - 1 or f"blocks.{k}.1.gamma" not in sd
        if ok:
            fits.append((res, depth, ch))
    if len(fits) != 1:
        raise CheckpointError(f"{what}: its {n} blocks fit {'no' if not fits else 'several'} BigGANdeep G_arch "
                              f"layouts {fits}; put state_dict.pth (its config has G_depth) beside the weights")
    return fits[0]


def _deep_G(sd: Mapping[str, torch.Tensor], depth_hint: int | None, what: str) -> tuple[dict[str, Any], _Mapper]:
    if "shared.weight" not in sd:
        raise CheckpointError(f"{what} has no shared embedding: BigGANdeep.py's forward needs G_shared and hier")
    res, depth, ch = _deep_layout(sd, depth_hint, what)
    c_dim, shared_dim = sd["shared.weight"].shape
    cond = sd["blocks.0.0.bn1.gain.weight"].shape[1]
    if sd["linear.weight"].shape[1] != cond:
        raise CheckpointError(f"{what}: linear takes {sd['linear.weight'].shape[1]} inputs, the BNs {cond}")
    stages = len(G_CHANNELS[res]) - 1
    arch = dict(resolution=res, img_channels=int(sd["output_layer.2.weight"].shape[0]), c_dim=int(c_dim),
                z_dim=int(cond - shared_dim), ch=int(ch), depth=depth, shared_dim=int(shared_dim),
                attn_res=[8 * 2**i for i in range(stages) if f"blocks.{i * depth + depth - 1}.1.gamma" in sd])
    m = _Mapper(sd, what)
    m.out["shared.weight"] = m.take("shared.weight")
    m.sn("linear", "linear")
    for k in range(stages * depth):
        i, d = divmod(k, depth)
        for n in (1, 2, 3, 4):
            m.ccbn(f"blocks.{k}.0.bn{n}", f"stages.{i}.{d}.norm{n}", True)
            m.sn(f"blocks.{k}.0.conv{n}", f"stages.{i}.{d}.conv{n}")
        if f"blocks.{k}.1.gamma" in sd:
            m.attention(f"blocks.{k}.1", f"attention.{i}")
    m.out_bn("output_layer.0", "out_bn")
    m.sn("output_layer.2", "out_conv")
    return arch, m


def _deep_D(sd: Mapping[str, torch.Tensor], what: str) -> tuple[dict[str, Any], _Mapper]:
    stages = _indices(sd)
    res = {3: 32, 4: 64, 5: 128, 6: 256}.get(len(stages))
    if res is None:
        raise CheckpointError(f"{what} has {len(stages)} stages; BigGANdeep.py's D_arch has 3 to 6 (32 to 256 px)")
    depth = len([j for j in _indices(sd, "blocks.0.") if f"blocks.0.{j}.conv1.weight" in sd])
    ins, _outs, n_down = D_DEEP[res]
    res_after = _res_after(res, len(stages), n_down)
    arch = dict(resolution=res, img_channels=int(sd["input_conv.weight"].shape[1]),
                c_dim=int(sd["embed.weight"].shape[0]), ch=int(sd["input_conv.weight"].shape[0] // ins[0]),
                depth=depth, attn_res=_attn_res(res_after, [f"blocks.{i}.{depth}.gamma" in sd for i in stages], what))
    m = _Mapper(sd, what)
    m.sn("input_conv", "input_conv")
    for i in stages:
        for d in range(depth):
            for n in ("conv1", "conv2", "conv3", "conv4", "conv_sc"):
                if f"blocks.{i}.{d}.{n}.weight" in sd:
                    m.sn(f"blocks.{i}.{d}.{n}", f"stages.{i}.{d}.{n}")
        if f"blocks.{i}.{depth}.gamma" in sd:
            m.attention(f"blocks.{i}.{depth}", f"attention.{i}")
    m.sn("linear", "head.linear")
    m.sn("embed", "head.embed")
    return arch, m


def _labels(text: Any) -> list[int]:
    return [int(t) for t in str(text).split("_") if t.strip() and int(t) > 0]


def _other_side(deep: bool, geom: dict[str, int], have: dict[str, Any], config: Mapping[str, Any], want: str
                ) -> dict[str, Any]:
    """The missing network's settings: the config's flags, else the present one's width and attention."""
    res = geom["resolution"]
    if want == "G":
        slots = len(G_CHANNELS[res])
        hier = bool(config.get("hier", True))
        z = int(config.get("dim_z", 128 if deep or not hier else 20 * slots))
        out = dict(ch=int(config.get("G_ch", have["ch"])), attn_res=_labels(config.get("G_attn", "64")),
                   shared_dim=int(config.get("shared_dim") or z))
        if deep:
            return {**out, "z_dim": z, "depth": int(config.get("G_depth", have["depth"]))}
        return {**out, "z_dim": z // slots * slots if hier else z, "shared": bool(config.get("G_shared", True)),
                "hier": hier}
    n, n_down = (len(D_DEEP[res][0]), D_DEEP[res][2]) if deep else (len(D_CHANNELS[res][0]), D_CHANNELS[res][1])
    labels = _labels(config["D_attn"]) if "D_attn" in config else list(have["attn_res"])
    res_after = _res_after(res, n, n_down)
    official = [16] * n if res == 32 else res_after  # D_arch labels every 32-px block "16"
    out = dict(ch=int(config.get("D_ch", have["ch"])),
               attn_res=_attn_res(res_after, [lab in labels for lab in official], "D"))
    return {**out, "depth": int(config.get("D_depth", have["depth"]))} if deep else \
        {**out, "wide": bool(config.get("D_wide", True))}


def model_config(deep: bool, archs: dict[str, dict[str, Any]], config: Mapping[str, Any]
                 ) -> tuple[str, dict[str, Any], list[str]]:
    """The preset, the ``model_config`` overrides and notes for the networks found (and the config, if read)."""
    notes: list[str] = []
    g, d = archs.get("G") or archs.get("G_ema"), archs.get("D")
    geom = {k: (g or d)[k] for k in ("resolution", "img_channels", "c_dim")}  # type: ignore[index]
    if g and d and any(g[k] != d[k] for k in geom):
        raise CheckpointError(f"G and D disagree on (resolution, image channels, classes): G "
                              f"{[g[k] for k in geom]}, D {[d[k] for k in geom]}")
    if geom["resolution"] not in (D_DEEP if deep else D_CHANNELS):
        raise CheckpointError(f"a {geom['resolution']}-px G: ganzoo's BigGAN, like BigGAN-PyTorch's D_arch, has no "
                              "discriminator of that size, and a run needs both networks")
    if config.get("norm_style", "bn") != "bn":
        raise CheckpointError(f"this run used norm_style {config['norm_style']!r}; ganzoo's BigGAN has BatchNorm only")
    sn_eps, bn_eps = float(config.get("SN_eps", 1e-6)), float(config.get("BN_eps", 1e-5))
    if "SN_eps" not in config:
        notes.append("no readable config: SN_eps 1e-6 and BN_eps 1e-5 assumed (BigGAN-PyTorch's ImageNet scripts; "
                     "SN_eps only matters for a degenerate weight)")
    if int(config.get("num_G_SV_itrs", 1)) > 1 or int(config.get("num_D_SV_itrs", 1)) > 1:
        notes.append("num_G/D_SV_itrs > 1: ganzoo runs one power iteration per training step (eval-mode outputs "
                     "are the same: BigGAN-PyTorch repeats the iteration from the unchanged u)")
    if config.get("mybn") or config.get("cross_replica"):
        notes.append("BN statistics taken from myBN / cross-replica BN's stored running averages")
    g_keys = ("z_dim", "ch", "depth", "shared_dim", "attn_res") if deep else \
        ("z_dim", "ch", "shared", "shared_dim", "hier", "attn_res")
    G = {k: g[k] for k in g_keys} if g else _other_side(deep, geom, d, config, "G")
    D = {k: d[k] for k in ("ch", "depth" if deep else "wide", "attn_res")} if d else \
        _other_side(deep, geom, g, config, "D")
    for net, have in (("G", g), ("D", d)):
        if not have:
            notes.append(f"{net} built from " + ("the run's config" if f"{net}_ch" in config else "the other network"))
    cfg: dict[str, Any] = {**geom, "G": {**G, "sn_eps": sn_eps, "bn_eps": bn_eps}, "D": {**D, "sn_eps": sn_eps}}
    for key, ours in (("G_ch", G["ch"]), ("D_ch", D["ch"]), ("n_classes", geom["c_dim"]),
                      ("resolution", geom["resolution"])):
        if key in config and int(config[key]) != ours:
            notes.append(f"state_dict.pth's config says {key}={config[key]}, the weights {ours}: weights used")
    if config:
        _training(cfg, config)
    for net in ("G", "D"):  # irrelevant to the imported weights; kept so that the run's config says what trained it
        if config.get(f"{net}_init") in ("ortho", "N02", "xavier"):
            cfg[net]["init"] = config[f"{net}_init"]
    cifar = geom["resolution"] == 32 and not G.get("shared", True)  # launch_cifar_ema.sh's layout
    name = "biggan_deep_imagenet128" if deep else ("biggan_cifar" if cifar else "biggan_imagenet128")
    return name, cfg, notes


def _training(cfg: dict[str, Any], config: Mapping[str, Any]) -> None:
    """Training settings of the run (train.py's flags) for fine-tuning: lrs, Adam, D steps, ortho reg, EMA."""
    try:
        cfg["optim"] = {n: {"lr": float(config[f"{n}_lr"]), "eps": float(config["adam_eps"]),
                            "betas": [float(config[f"{n}_B1"]), float(config[f"{n}_B2"])]} for n in ("G", "D")}
        cfg["loss"] = {"d_repeats": int(config["num_D_steps"]), "ortho": float(config["G_ortho"])}
        if config.get("ema"):
            per_itr = int(config["batch_size"]) * int(config["num_D_accumulations"]) * int(config["num_D_steps"])
            cfg["ema"] = {"decay": float(config["ema_decay"]), "start_kimg": float(config["ema_start"]) * per_itr / 1e3}
    except (KeyError, TypeError, ValueError):
        cfg.pop("optim", None)
        cfg.pop("loss", None)


@register_format("biggan_pytorch", sniff=sniff,
                 description="BigGAN-PyTorch G.pth/G_ema.pth/D.pth (+ state_dict.pth), BigGAN and BigGAN-deep")
def convert(path: Path) -> Converted:
    """Convert a BigGAN-PyTorch weights folder or file (see the module docstring)."""
    try:
        return _convert(Path(path))
    finally:
        _cache.clear()  # the sniffed file's tensors are not kept after the conversion


def _convert(path: Path) -> Converted:
    files, state_path, found = _gather(path)
    notes: list[str] = []
    state = _read_state(state_path, notes, found)
    config = state.get("config", {})
    archs: dict[str, dict[str, Any]] = {}
    mapped: dict[str, dict[str, torch.Tensor]] = {}
    kinds: set[str] = set()
    dropped = no_sv = 0
    for role, file in files.items():
        sd = _load(file)
        kind = _kind(sd)
        expect = "D" if role == "D" else "G"
        if kind is None or not kind.endswith(expect):
            net = "Discriminator" if expect == "D" else "Generator"
            got = _describe(sd) if kind is None else f"a {kind} state dict"
            raise CheckpointError(f"{str(file)!r} should hold BigGAN-PyTorch's {net} state dict; found {got}")
        kinds.add("deep" if kind.startswith("deep") else "biggan")
        try:
            arch, m = _biggan_G(sd, file.name) if kind == "G" else _biggan_D(sd, file.name) if kind == "D" else \
                _deep_G(sd, config.get("G_depth"), file.name) if kind == "deepG" else _deep_D(sd, file.name)
        except KeyError as err:
            raise CheckpointError(f"{file.name} lacks {err}, which BigGAN-PyTorch's {kind} networks have: the file "
                                  "is another variant or damaged") from err
        archs[role], mapped[role] = arch, m.finish()
        dropped, no_sv = dropped + m.dropped_svs, no_sv + m.no_sv
        label = {"G": "G", "G_ema": "the EMA copy of G", "D": "D"}[role]
        found.append(f"{file.name}: {'BigGAN-deep' if kind.startswith('deep') else 'BigGAN'} "
                     f"{'discriminator' if role == 'D' else 'generator'} -> {label} ({len(sd)} tensors)")
    if len(kinds) > 1:
        raise CheckpointError(f"{str(path)!r} mixes BigGAN and BigGAN-deep weight files")
    if "G" in archs and "G_ema" in archs and archs["G"] != archs["G_ema"]:
        raise CheckpointError(f"G.pth and G_ema.pth in {str(path)!r} are different architectures")
    if dropped:
        notes.append(f"{dropped} extra singular-vector estimates (num_svs > 1: u1, sv1, ...) dropped: BigGAN-PyTorch "
                     "only logs them, sigma comes from u0")
    if no_sv:
        notes.append(f"{no_sv} SN layers without sv0 (BigGAN-PyTorch's TFHub/converter.py saves none): their logged "
                     "weight_sigma starts at 1")
        if not config and files.keys() == {"G"}:  # converter.py's get_config: BN_eps and SN_eps 1e-4
            config = {"BN_eps": 1e-4, "SN_eps": 1e-4}
            notes.append("BN_eps 1e-4 and SN_eps 1e-4 as TFHub/converter.py's get_config runs such a file")
    name, cfg, more_notes = model_config(kinds.pop() == "deep", archs, config)
    notes += more_notes
    not_found: list[str] = []
    weights = {"D": mapped["D"]} if "D" in mapped else {}
    ema = {}
    if "G" in mapped:
        weights["G"] = mapped["G"]
    if "G_ema" in mapped:
        ema["G"] = mapped["G_ema"]
        if "G" not in mapped:
            weights["G"] = {k: v.clone() for k, v in mapped["G_ema"].items()}
            not_found.append("G.pth: not given; G starts as a copy of G_ema (BigGAN-PyTorch samples with G_ema)")
    elif "G" in mapped:
        not_found.append("G_ema.pth: not given (or trained without --ema); the EMA copy is the trained G")
    if "D" not in mapped:
        not_found.append("D.pth: not given; D gets a fresh initialisation")
    info: dict[str, Any] = {k: state[k] for k in ("itr", "epoch", "best_IS", "best_FID") if k in state}
    if state.get("config"):
        info["config"] = config
        try:
            info["images_seen"] = int(state["itr"]) * int(config["batch_size"]) * \
                int(config.get("num_D_accumulations", 1)) * int(config.get("num_D_steps", 1))
        except (KeyError, TypeError, ValueError):
            pass
    return Converted(model=name, model_config=cfg, weights=weights, ema=ema, found=found, not_found=not_found,
                     notes=notes, source_info=info)
