"""PyTorch-StudioGAN checkpoints (POSTECH-CVLab/PyTorch-StudioGAN) as ganzoo ``sagan`` / ``biggan`` runs.

StudioGAN's trainer (``src/worker.py``, ``WORKER.save``) writes one ``torch.save`` file per network through
``utils/misc.py`` ``save_model``: ``model=G-{best|current}-weights-step=N.pth`` holds
``{"state_dict", "optimizer"}``, ``model=D-...`` adds the run's bookkeeping (``seed``, ``run_name``,
``step``, ``best_step``, ``best_fid``, ...) and ``model=G_ema-...`` holds ``{"state_dict"}``. Given one of
them, this converter also reads its siblings (same folder, same ``best``/``current`` and step) so that a
run imports as G, D and G's EMA copy. StyleGAN2 files are converted by :mod:`.studiogan_stylegan2`.

Networks (``src/models/resnet.py``: SAGAN and the other "resnet" configs with spectral norm in G;
``src/models/big_resnet.py``: BigGAN and its variants with a projection D):

* ``blocks`` is a list of one-element lists: residual blocks and ``ops.SelfAttention`` in order, so the
  attention's place is read from where ``conv1x1_theta`` appears. D's down-sampling pattern leaves no trace
  in the weights; it is StudioGAN's fixed table (``d_down`` in both files), chosen by the number of blocks.
* spectral norm is ``torch.nn.utils.spectral_norm`` (``utils/ops.py``, eps 1e-6): ``weight_orig``,
  ``weight_u``, ``weight_v`` become ganzoo's ``weight``, ``weight_u``, ``weight_v`` with
  ``sn_eval="stored"`` (torch's eval rule: ``sigma = u^T W v`` from the stored vectors); ``weight_sigma`` is
  that ``sigma``.
* BatchNorm eps is 1e-4 everywhere (``ops.batchnorm_2d``, ``ops.ConditionalBatchNorm2d``); the cBN gain is
  ``1 + SN-linear``, as ganzoo's ``cbn="onehot"`` (resnet) and ``ccbn`` (big_resnet) compute it.
* D's ``DiscBlock`` saves ``x0 = x`` and then applies an in-place ReLU, so its shortcut sees ``relu(x)``:
  ganzoo's D option ``activated_shortcut=True``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .base import Converted, register_format
from .safe_pickle import load_torch, pickle_head

FILE_NAME = re.compile(r"^model=(G|D|G_ema)-(best|current)-weights-step=(\d+)\.pth$")
# StudioGAN's D tables (models/resnet.py and big_resnet.py, ``d_out_dims_collection`` / ``d_down``), keyed by
# the number of D blocks: image size, output width of each block in units of d_conv_dim, which blocks pool.
D_TABLE: dict[int, tuple[int, tuple[int, ...], tuple[bool, ...]]] = {
    4: (32, (2, 2, 2, 2), (True, True, False, False)),
    5: (64, (1, 2, 4, 8, 16), (True, True, True, True, False)),
    6: (128, (1, 2, 4, 8, 16, 16), (True,) * 5 + (False,)),
    7: (256, (1, 2, 4, 8, 8, 16, 16), (True,) * 6 + (False,)),
    8: (512, (1, 1, 2, 4, 8, 8, 16, 16), (True,) * 7 + (False,)),
}
SN_EPS = 1e-6  # utils/ops.py snconv2d / snlinear / sn_embedding
BN_EPS = 1e-4  # utils/ops.py batchnorm_2d and ConditionalBatchNorm2d
ATTN = {"conv1x1_theta": "f", "conv1x1_phi": "g", "conv1x1_g": "h", "conv1x1_attn": "o"}


# -- reading ---------------------------------------------------------------------------------------
def sniff(path: Path) -> bool:
    """A StudioGAN file name, or a torch file whose pickle names a ``state_dict`` with StudioGAN's layer names."""
    path = Path(path)
    if FILE_NAME.match(path.name):
        return True
    if path.is_dir() or not path.exists():
        return False
    head = pickle_head(path)
    if b"state_dict" not in head or b"pytorch-lightning_version" in head:
        return False
    from .studiogan_stylegan2 import sniff_head  # StudioGAN's StyleGAN2 (its own module: it imports this one)

    if sniff_head(head):
        return True
    if b"conv2d1.weight" not in head:
        return False
    return b"conv2d5.weight" in head or b"linear1.weight" in head  # G's output conv, D's adversarial head


def _read(path: Path) -> dict[str, Any]:
    obj = load_torch(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        found = sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path.name}: expected a PyTorch-StudioGAN checkpoint (a dict with 'state_dict', written by "
            f"utils/misc.py save_model), found {found}"
        )
    return obj


def _role(sd: dict[str, torch.Tensor], where: str) -> str:
    if "conv2d5.weight_orig" in sd or "conv2d5.weight" in sd:
        return "G"
    if "linear1.weight_orig" in sd or "linear1.weight" in sd:
        return "D"
    if any(k.startswith(("mapping.", "synthesis.")) for k in sd) or any(k.startswith("b4.") for k in sd):
        raise CheckpointError(f"{where}: a StudioGAN StyleGAN2/3 network (stylegan2-ada-pytorch's names; D's b4.out "
                              "is called linear1); this converter reads the resnet and big_resnet backbones (SAGAN, "
                              "SNGAN, BigGAN) only")
    raise CheckpointError(f"{where}: not a StudioGAN resnet/big_resnet G or D (no conv2d5 or linear1 weights; "
                          "StudioGAN's DCGAN 'deep_conv' backbone and other backbones are not supported); "
                          f"keys start {sorted(sd)[:6]}")


def _siblings(path: Path) -> dict[str, Path]:
    """``{"G": ..., "D": ..., "G_ema": ...}`` of the files StudioGAN saved together with ``path``."""
    m = FILE_NAME.match(path.name)
    if not m:
        return {}
    _, when, step = m.groups()
    out = {}
    for role in ("G", "D", "G_ema"):
        exact = path.with_name(f"model={role}-{when}-weights-step={step}.pth")
        if exact.exists():
            out[role] = exact
    return out


# -- mapping ---------------------------------------------------------------------------------------
class _Mapper:
    """Copies StudioGAN tensors to ganzoo names and remembers which source keys were used."""

    def __init__(self, sd: dict[str, torch.Tensor], where: str, plain_ok: bool = False):
        self.sd, self.where, self.used, self.out = sd, where, set(), {}
        self.plain_ok = plain_ok  # a G without spectral norm (StudioGAN's SNGAN configs), for ganzoo's G.sn=false

    def take(self, key: str) -> torch.Tensor:
        if key not in self.sd:
            raise CheckpointError(f"{self.where}: expected {key!r} in the state_dict (truncated or another model?)")
        self.used.add(key)
        return self.sd[key].detach().clone()

    def plain(self, src: str, dst: str, names: tuple[str, ...]) -> None:
        for n in names:
            if f"{src}.{n}" in self.sd:
                self.out[f"{dst}.{n}"] = self.take(f"{src}.{n}")

    def sn(self, src: str, dst: str) -> None:
        """A torch ``spectral_norm`` layer: ``weight_orig``/``u``/``v`` (+ bias) -> ganzoo SN buffers."""
        if self.plain_ok and f"{src}.weight" in self.sd:
            self.plain(src, dst, ("weight", "bias"))
            return
        if f"{src}.weight_orig" not in self.sd:
            raise CheckpointError(f"{self.where}: {src} has no spectral norm (weight_orig); ganzoo's sagan/biggan "
                                  "use spectral norm in every G and D layer (StudioGAN configs without apply_g_sn / "
                                  "apply_d_sn are not supported)")
        w, u, v = self.take(f"{src}.weight_orig"), self.take(f"{src}.weight_u"), self.take(f"{src}.weight_v")
        sigma = torch.dot(u, w.reshape(w.shape[0], -1) @ v)  # torch's SpectralNorm.compute_weight
        self.out.update({f"{dst}.weight": w, f"{dst}.weight_u": u, f"{dst}.weight_v": v,
                         f"{dst}.weight_sigma": sigma.reshape([])})
        self.plain(src, dst, ("bias",))

    def bn(self, src: str, dst: str) -> None:
        self.plain(src, dst, ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"))

    def attention(self, src: str, dst: str) -> None:
        for theirs, ours in ATTN.items():
            self.sn(f"{src}.{theirs}", f"{dst}.{ours}")
        self.out[f"{dst}.gamma"] = self.take(f"{src}.sigma").reshape([])  # [1] -> []

    def finish(self) -> dict[str, torch.Tensor]:
        left = sorted(set(self.sd) - self.used)
        if left:
            raise CheckpointError(
                f"{self.where}: {len(left)} tensors have no place in ganzoo's network (another StudioGAN "
                f"conditioning or backbone?): {left[:8]}"
            )
        return self.out


def _entries(sd: dict[str, torch.Tensor]) -> list[tuple[int, str]]:
    """``[(k, "block" | "attn"), ...]`` for ``blocks.k.0`` in order."""
    out, k = [], 0
    while any(key.startswith(f"blocks.{k}.0.") for key in sd):
        out.append((k, "attn" if f"blocks.{k}.0.sigma" in sd else "block"))
        k += 1
    return out


def _base(chans: list[int], resolution: int, unit32: int) -> int:
    """StudioGAN's ``g/d_conv_dim`` as ganzoo's base width when every width is a multiple of it (at 32 px its
    widths are ``unit32`` x conv_dim: 4 in G, 2 in D)."""
    guess = chans[-1] // unit32 if resolution == 32 else chans[-1]
    return guess if guess > 0 and all(c % guess == 0 for c in chans) else math.gcd(*chans)


def _parse_g(sd: dict[str, torch.Tensor], where: str) -> dict[str, Any]:
    entries = _entries(sd)
    blocks = [k for k, kind in entries if kind == "block"]
    if not blocks:
        raise CheckpointError(f"{where}: no generator blocks (blocks.0.0.conv2d1) in the state_dict")
    w = "weight_orig" if f"blocks.{blocks[0]}.0.conv2d1.weight_orig" in sd else "weight"
    chans = [int(sd[f"blocks.{blocks[0]}.0.conv2d1.{w}"].shape[1])]
    chans += [int(sd[f"blocks.{k}.0.conv2d1.{w}"].shape[0]) for k in blocks]
    attn_after, n = [], -1
    for _, kind in entries:
        n += kind == "block"
        if kind == "attn":
            attn_after.append(n)
    sn = "linear0.weight_orig" in sd
    if not sn and "linear0.weight" not in sd:
        raise CheckpointError(f"{where}: expected 'linear0.weight_orig' (or linear0.weight) in the state_dict")
    lin_out, lin_in = (int(s) for s in sd["linear0.weight_orig" if sn else "linear0.weight"].shape)
    if lin_out != chans[0] * 16:
        raise CheckpointError(f"{where}: linear0 gives {lin_out} features, expected {chans[0]} x 4 x 4")
    resolution = 4 * 2 ** len(blocks)
    gain = sd.get(f"blocks.{blocks[0]}.0.bn1.gain.{'weight_orig' if sn else 'weight'}")
    big = "shared.weight" in sd or (gain is not None and int(gain.shape[1]) == lin_in)
    if big and not sn:
        raise CheckpointError(f"{where}: a big_resnet generator without spectral norm (apply_g_sn: False); "
                              "ganzoo's biggan G always has it")
    info: dict[str, Any] = dict(resolution=resolution, chans=chans, attn_after=attn_after, big=big, sn=sn)
    if big:
        shared = sd.get("shared.weight")
        info.update(c_dim=int(shared.shape[0]) if shared is not None else 0,
                    shared_dim=int(shared.shape[1]) if shared is not None else 0,
                    z_dim=lin_in * (len(blocks) + 1))
        if gain is not None and int(gain.shape[1]) != info["shared_dim"] + lin_in:
            raise CheckpointError(f"{where}: cBN input {int(gain.shape[1])} is not the shared embedding "
                                  f"({info['shared_dim']}) + a z chunk ({lin_in})")
    else:
        info.update(c_dim=int(gain.shape[1]) if gain is not None else 0, z_dim=lin_in)
    info["block_keys"], info["attn_keys"] = blocks, [k for k, kind in entries if kind == "attn"]
    return info


def _parse_d(sd: dict[str, torch.Tensor], where: str) -> dict[str, Any]:
    entries = _entries(sd)
    blocks = [k for k, kind in entries if kind == "block"]
    if len(blocks) not in D_TABLE:
        raise CheckpointError(f"{where}: {len(blocks)} D blocks; StudioGAN's D has 4, 5, 6, 7 or 8 (32-512 px)")
    resolution, _, downs = D_TABLE[len(blocks)]
    sn = f"blocks.{blocks[0]}.0.conv2d1.weight_orig" in sd
    chans = [int(sd[f"blocks.{k}.0.conv2d1.{'weight_orig' if sn else 'weight'}"].shape[0]) for k in blocks]
    res_after, r = [], resolution
    for d in downs:
        r = r // 2 if d else r
        res_after.append(r)
    attn_res, n = [], -1
    for _, kind in entries:
        n += kind == "block"
        if kind == "attn":
            attn_res.append(res_after[n])
    head, emb = sd.get("linear1.weight_orig"), sd.get("embedding.weight_orig")
    problem = None  # StudioGAN's other D conditionings (utils: d_cond_mtd), which ganzoo's projection D lacks
    if not sn:
        problem = "no spectral norm (apply_d_sn: False: BatchNorm in its blocks, the WGAN / ProjGAN / ACGAN configs)"
    elif head is not None and int(head.shape[0]) != 1:
        problem = f"linear1 has {int(head.shape[0])} outputs (d_cond_mtd MH or MD)"
    elif any(k.startswith(("linear2.", "linear_mi.", "embedding_mi.", "info_")) for k in sd):
        problem = "an auxiliary classifier / metric-learning head (d_cond_mtd AC, 2C or D2DCE, TAC/ADC, InfoGAN)"
    elif emb is not None and int(emb.shape[1]) != chans[-1]:
        problem = f"an embedding of width {int(emb.shape[1])}, not the features' {chans[-1]}"
    return dict(resolution=resolution, chans=chans, downs=list(downs), attn_res=attn_res,
                c_dim=int(emb.shape[0]) if emb is not None else 0, block_keys=blocks,
                attn_keys=[k for k, kind in entries if kind == "attn"], problem=problem)


# G widths in units of g_conv_dim (``g_in_dims_collection`` + the last ``g_out_dims``), the same in both files;
# used only to describe a G that is not in the files (a D imported alone).
G_TABLE: dict[int, tuple[int, ...]] = {
    32: (4, 4, 4, 4), 64: (16, 8, 4, 2, 1), 128: (16, 16, 8, 4, 2, 1), 256: (16, 16, 8, 8, 4, 2, 1),
    512: (16, 16, 8, 8, 4, 2, 1, 1),
}


def _map_g(sd: dict[str, torch.Tensor], g: dict[str, Any], where: str) -> dict[str, torch.Tensor]:
    m = _Mapper(sd, where, plain_ok=not g["sn"])
    m.sn("linear0", "linear")
    if g["big"] and "shared.weight" in sd:
        m.out["shared.weight"] = m.take("shared.weight")
    for i, k in enumerate(g["block_keys"]):
        src, dst = f"blocks.{k}.0", f"blocks.{i}"
        for theirs, ours in (("bn1", "norm1"), ("bn2", "norm2")):
            if f"{src}.{theirs}.gain.weight_orig" in sd or f"{src}.{theirs}.gain.weight" in sd:
                # cBN: BN without affine, gain 1 + (SN-)linear(y), bias (SN-)linear(y)
                m.sn(f"{src}.{theirs}.gain", f"{dst}.{ours}.gain")
                m.sn(f"{src}.{theirs}.bias", f"{dst}.{ours}.bias")
                m.bn(f"{src}.{theirs}.bn", f"{dst}.{ours}.bn")
            else:
                m.bn(f"{src}.{theirs}", f"{dst}.{ours}")
        m.sn(f"{src}.conv2d1", f"{dst}.conv1")
        m.sn(f"{src}.conv2d2", f"{dst}.conv2")
        m.sn(f"{src}.conv2d0", f"{dst}.conv_sc")
    for k, after in zip(g["attn_keys"], g["attn_after"]):
        m.attention(f"blocks.{k}.0", f"attention.{after}" if g["big"] else "attn")
    m.bn("bn4", "out_bn")
    m.sn("conv2d5", "out_conv")
    return m.finish()


def _map_d(sd: dict[str, torch.Tensor], d: dict[str, Any], big: bool, where: str) -> dict[str, torch.Tensor]:
    m = _Mapper(sd, where)
    block_of = {}
    for i, k in enumerate(d["block_keys"]):
        src, dst = f"blocks.{k}.0", f"blocks.{i}"
        m.sn(f"{src}.conv2d1", f"{dst}.conv1")
        m.sn(f"{src}.conv2d2", f"{dst}.conv2")
        if f"{src}.conv2d0.weight_orig" in sd:
            m.sn(f"{src}.conv2d0", f"{dst}.conv_sc")
        block_of[k] = i
    for k in d["attn_keys"]:
        after = max(i for kk, i in block_of.items() if kk < k)
        m.attention(f"blocks.{k}.0", f"attention.{after}" if big else "attn")
    m.sn("linear1", "head.linear")
    if "embedding.weight_orig" in sd:
        m.sn("embedding", "head.embed")
    return m.finish()


def _g_config(g: dict[str, Any], big: bool) -> dict[str, Any]:
    res, chans = g["resolution"], g["chans"]
    base = _base(chans, res, 4)
    attn_res = [8 * 2**i for i in g["attn_after"]]
    common = dict(sn_eps=SN_EPS, bn_eps=BN_EPS, init="ortho", sn_eval="stored")
    if big:
        from ..models.biggan import G_CHANNELS

        cfg = dict(z_dim=g["z_dim"], ch=base, shared=g["c_dim"] > 0, shared_dim=g.get("shared_dim") or 128, hier=True,
                   attn_res=attn_res, out_bn_eps=BN_EPS, **common)
        mults = [c // base for c in chans]
        if tuple(mults) != G_CHANNELS.get(res):
            cfg["channel_mults"] = mults
        return cfg
    if len(attn_res) > 1:
        raise CheckpointError(f"StudioGAN G has self-attention after {len(attn_res)} blocks; ganzoo's sagan has one")
    return dict(z_dim=g["z_dim"], base_channels=base, channel_mults=[c // base for c in chans],
                attn_resolution=attn_res[0] if attn_res else 0, bottom=4, cbn="onehot", bn_momentum=0.1,
                out_bn_momentum=0.1, sn=g.get("sn", True), **common)


def _d_config(d: dict[str, Any], big: bool) -> dict[str, Any]:
    res, chans = d["resolution"], d["chans"]
    common = dict(sn_eps=SN_EPS, init="ortho", sn_eval="stored", activated_shortcut=True)
    if big:
        from ..models.biggan import D_CHANNELS

        if res not in D_CHANNELS:
            raise CheckpointError(f"StudioGAN's BigGAN D at {res} px: ganzoo's biggan D has {sorted(D_CHANNELS)} px")
        mults = D_CHANNELS[res][0]
        ch = chans[0] // mults[0]
        if [ch * x for x in mults] != chans or D_CHANNELS[res][1] != sum(d["downs"]):
            raise CheckpointError(f"StudioGAN's BigGAN D widths {chans} are not ganzoo's biggan D at {res} px "
                                  f"(ch x {list(mults)})")
        return dict(ch=ch, attn_res=d["attn_res"], wide=True, **common)
    base = _base(chans, res, 2)
    return dict(base_channels=base, channel_mults=[c // base for c in chans], downsample=d["downs"],
                attn_resolution=d["attn_res"][0] if d["attn_res"] else 0, **common)


def _default_d(res: int, conv_dim: int) -> dict[str, Any]:
    """StudioGAN's D at ``res`` with ``d_conv_dim = conv_dim`` and attention after the first block (its configs)."""
    n = {v[0]: k for k, v in D_TABLE.items()}[res]
    _, units, downs = D_TABLE[n]
    return dict(resolution=res, chans=[conv_dim * u for u in units], downs=list(downs), attn_res=[res // 2])


def _default_g(res: int, conv_dim: int, attn_res: list[int], big: bool) -> dict[str, Any]:
    """StudioGAN's G at ``res`` with ``g_conv_dim = conv_dim``: z 128 (resnet) or 20 per chunk (its BigGAN configs:
    80 at 32 px, 120 at 128 px), shared embedding 128, attention where D has it."""
    n = len(G_TABLE[res]) - 1
    return dict(resolution=res, chans=[conv_dim * u for u in G_TABLE[res]], z_dim=20 * (n + 1) if big else 128,
                shared_dim=128, attn_after=[i for i in range(n) if 8 * 2**i in attn_res][:1], big=big)


def _preset(big: bool, res: int, c_dim: int) -> str:
    if big:
        return {32: "biggan_cifar", 128: "biggan_imagenet128"}.get(res, "biggan")
    return {(32, 10): "sagan_cifar", (128, 1000): "sagan_imagenet128"}.get((res, c_dim), "sagan")


# -- the format ------------------------------------------------------------------------------------
@register_format(
    "studiogan",
    description="PyTorch-StudioGAN model=G/D/G_ema-*-weights-step=N.pth (SAGAN, BigGAN, StyleGAN2)",
    sniff=sniff,
)
def convert(path: Path) -> Converted:
    """Read a StudioGAN checkpoint (and the G / D / G_ema files saved with it) as a sagan or biggan run."""
    path = Path(path)
    files = _siblings(path)
    first = _read(path)
    from .studiogan_stylegan2 import convert_stylegan2, is_stylegan2

    if is_stylegan2(first["state_dict"]):
        return convert_stylegan2(path, first)
    role = _role(first["state_dict"], path.name)
    m = FILE_NAME.match(path.name)
    if m and m.group(1) != role and not (m.group(1) == "G_ema" and role == "G"):
        raise CheckpointError(f"{path.name}: the name says {m.group(1)} but the weights are a {role}")
    if not files:
        files = {"G" if role == "G" else "D": path}
    loaded = {name: (first if p == path else _read(p)) for name, p in files.items()}
    conv = Converted(model="", model_config={}, weights={})
    for n, obj in loaded.items():  # every file's role first: a file of another backbone is refused by name
        if _role(obj["state_dict"], files[n].name) != ("D" if n == "D" else "G"):
            raise CheckpointError(f"{files[n].name}: expected a {'D' if n == 'D' else 'G'} network")
    parsed_g = {n: _parse_g(obj["state_dict"], files[n].name) for n, obj in loaded.items() if n in ("G", "G_ema")}
    d = _parse_d(loaded["D"]["state_dict"], files["D"].name) if "D" in loaded else None
    g = parsed_g.get("G") or parsed_g.get("G_ema")
    meta = loaded["D"] if "D" in loaded else first
    skip_d = None
    if d is not None and d["problem"]:
        skip_d = f"D ({files['D'].name}) has {d['problem']}"
        if g is None:
            raise CheckpointError(f"{skip_d}; ganzoo's D is a projection discriminator (d_cond_mtd PD) or "
                                  "unconditional, and there is no G to import instead")
        d["c_dim"] = g["c_dim"]
        conv.not_found.append(f"D: not imported: {skip_d}, which ganzoo's projection D does not have; "
                              "its architecture is kept, its weights are freshly initialised")
    if g is not None:
        big = g["big"]
    else:
        big = "biggan" in str(meta.get("run_name", "")).lower()
        conv.notes.append(f"only D was found: its backbone ({'big_resnet' if big else 'resnet'}) is read from "
                          f"run_name {meta.get('run_name')!r}")
    for name, other in parsed_g.items():
        if g is not None and {k: other[k] for k in ("chans", "attn_after", "z_dim", "c_dim")} != {
                k: g[k] for k in ("chans", "attn_after", "z_dim", "c_dim")}:
            raise CheckpointError(f"{files[name].name} and the G file describe different generators")
    if g is not None and d is not None:
        if g["resolution"] != d["resolution"] or g["c_dim"] != d["c_dim"]:
            raise CheckpointError(
                f"G ({g['resolution']} px, {g['c_dim']} classes) and D ({d['resolution']} px, {d['c_dim']} classes) "
                "do not belong to one StudioGAN run"
            )
    if d is None:
        assert g is not None
        d = _default_d(g["resolution"], _base(g["chans"], g["resolution"], 4))
        conv.notes.append("D's architecture (not in the files) is StudioGAN's at this size with d_conv_dim = "
                          "g_conv_dim and attention after the first block")
    if g is None:
        g = _default_g(d["resolution"], _base(d["chans"], d["resolution"], 2), d["attn_res"], big)
        g["c_dim"] = d["c_dim"]
        conv.notes.append("G's architecture (not in the files) is StudioGAN's default at this size (see "
                          "_default_g: g_conv_dim = d_conv_dim, attention as in D)")
    res, c_dim = g["resolution"], g["c_dim"]
    conv.model = _preset(big, res, c_dim)
    conv.model_config = dict(resolution=res, img_channels=3, c_dim=c_dim, G=_g_config(g, big), D=_d_config(d, big))

    if "G" in loaded:
        conv.weights["G"] = _map_g(loaded["G"]["state_dict"], parsed_g["G"], files["G"].name)
    if "G_ema" in loaded:
        conv.ema["G"] = _map_g(loaded["G_ema"]["state_dict"], parsed_g["G_ema"], files["G_ema"].name)
    if "D" in loaded and skip_d is None:
        conv.weights["D"] = _map_d(loaded["D"]["state_dict"], d, big, files["D"].name)
    _describe(conv, files, loaded, big)
    return conv


def _describe(conv: Converted, files: dict[str, Path], loaded: dict[str, dict[str, Any]], big: bool) -> None:
    backbone = "big_resnet (BigGAN)" if big else "resnet (SAGAN)"
    for name, p in files.items():
        extra = sorted(k for k in loaded[name] if k != "state_dict")
        dst = {"G_ema": "EMA copy of G"}.get(name, name) if name in conv.weights or name == "G_ema" else "not imported"
        conv.found.append(f"{name}: {p.name}, {len(loaded[name]['state_dict'])} tensors of StudioGAN's {backbone} "
                          f"-> {dst}; also {extra} (not imported)")
    for name in ("G", "D", "G_ema"):
        if name not in files:
            conv.not_found.append(f"{name}: no model={name}-...-weights-step=N.pth next to the given file")
    conv.notes += [
        "spectral norm: weight_orig -> weight, weight_u / weight_v kept, weight_sigma = u^T W v; sn_eval=stored "
        "computes torch spectral_norm's eval-mode weight (no extra power step)",
        "D: activated_shortcut=true (StudioGAN's DiscBlock shortcut sees relu(x) through its in-place ReLU)",
        f"BatchNorm eps {BN_EPS} (StudioGAN's ops.batchnorm_2d); attention sigma [1] -> gamma []",
        "optimizer states, LeCam EMAs and the top-k / augmentation state are not imported: fine-tuning starts "
        "ganzoo's optimizers afresh",
    ]
    meta = loaded.get("D", {})
    conv.source_info = {k: meta[k] for k in ("run_name", "step", "best_step", "best_fid", "seed", "epoch")
                        if k in meta and isinstance(meta[k], (int, float, str))}
    conv.source_info["files"] = {n: p.name for n, p in files.items()}
