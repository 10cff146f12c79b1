"""PyTorch-StudioGAN's StyleGAN2 checkpoints (``MODEL.backbone: stylegan2``) as ganzoo ``stylegan2`` runs.

StudioGAN saves them as its other networks (``model=G|D|G_ema-...-weights-step=N.pth``, a dict with
``state_dict``; see :mod:`.studiogan`), and :func:`ganzoo.pretrained.studiogan.convert` hands them here.
``src/models/stylegan2.py`` is stylegan2-ada-pytorch's ``training/networks.py`` with the same ``state_dict``
names, except in D: the epilogue's output layer ``b4.out`` is StudioGAN's ``linear1`` (``Discriminator.__init__``,
"linear layer for adversarial training"), and its projection conditioning ``d_cond_mtd: SPD`` is NVlabs' label
mapping (``mapping.*``, projection ``<linear1(h), mapping(c)> / sqrt(cmap_dim)``). So ``linear1`` is renamed to
``b4.out`` and the tensors go through :func:`.nvlabs_pytorch.map_stylegan2`.

A StudioGAN checkpoint holds state dicts only, so the numbers come from tensor shapes (resolution, widths, z/w
dims, mapping layers, classes, D architecture, mbstd channels) and, where shapes say nothing, from StudioGAN's
``models/model.py`` and configs (``configs/*/StyleGAN2*.yaml``), listed in the run's notes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .base import Converted
from .nvlabs_pytorch import D_MAPPING_LR_MUL, _channels, _resolutions, check_filter, map_stylegan2
from .studiogan import FILE_NAME, _read, _siblings

# models/model.py under -mpc (RUN.mixed_precision), the flag of every training command in StudioGAN's README.
MPC_FP16_RES, MPC_CONV_CLAMP = 4, 256.0
MAPPING_LR_MUL, W_AVG_BETA = 0.01, 0.998  # MappingNetwork defaults: model.py passes only num_layers
# D heads of the other d_cond_mtd / aux_cls_type / info_type (stylegan2.py Discriminator.__init__)
OTHER_HEADS = ("linear2.", "embedding.", "linear_mi.", "embedding_mi.", "info_")
# d_epilogue_mbstd_group_size of StudioGAN's StyleGAN2 configs, by the run name's dataset (and config)
MBSTD_BY_DATA = {"CIFAR10": 32, "CIFAR100": 32, "FFHQ": 4, "AFHQv2/StyleGAN2-paper": 4}


def is_stylegan2(sd: dict[str, Any]) -> bool:
    """StudioGAN's StyleGAN2/3 G (``synthesis.*`` / ``mapping.fc*``) or its StyleGAN2 D (``b4.fc``)."""
    return "b4.fc.weight" in sd or any(k.startswith(("synthesis.", "mapping.fc")) for k in sd)


def sniff_head(head: bytes) -> bool:
    """The pickle of a StudioGAN StyleGAN2 G or D file names these keys of its ``state_dict``."""
    return b"synthesis.b4.const" in head or (b"b4.fc.weight" in head and b"linear1.weight" in head)


def _shape(sd: dict[str, torch.Tensor], key: str, who: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"{who}: expected {key!r} in the state_dict of a StudioGAN StyleGAN2 network")
    return tuple(int(s) for s in sd[key].shape)


def _count(sd: dict[str, torch.Tensor], fmt: str) -> int:
    n = 0
    while fmt.format(n) in sd:
        n += 1
    return n


def _bases(chans: dict[int, int], res: int) -> tuple[int, int]:
    """``(channel_base, channel_max)`` giving ``chans``: StudioGAN's 32768 / 16384 (model.py) when they fit."""
    cmax = max(chans.values())
    for base in (32768, 16384, chans[res] * res):
        if _channels(res, base, cmax) == chans:
            return base, cmax
    raise CheckpointError(f"channels per resolution {chans} follow no min(channel_base // res, channel_max)")


def parse_g(sd: dict[str, torch.Tensor], who: str) -> dict[str, Any]:
    """The numbers of :func:`.nvlabs_pytorch._g_config`, read from a StudioGAN StyleGAN2 G's shapes."""
    if "synthesis.b4.const" not in sd:
        kind = "StyleGAN3 (alias-free)" if any(k.startswith("synthesis.input.") for k in sd) else "unknown"
        raise CheckpointError(f"{who}: a StudioGAN {kind} generator (no synthesis.b4.const); ganzoo reads StudioGAN's "
                              "StyleGAN2 generator only")
    res = 4
    while f"synthesis.b{res * 2}.conv1.weight" in sd:
        res *= 2
    chans = {r: _shape(sd, f"synthesis.b{r}.conv1.weight", who)[0] for r in _resolutions(res)}
    for r in _resolutions(res):
        _shape(sd, f"synthesis.b{r}.torgb.weight", f"{who} (ganzoo's G is the 'skip' architecture)")
        if f"synthesis.b{r}.skip.weight" in sd:
            raise CheckpointError(f"{who}: a 'resnet' synthesis network; ganzoo's StyleGAN2 generator is 'skip'")
    w_dim = _shape(sd, "synthesis.b4.conv1.affine.weight", who)[1]
    layers = _count(sd, "mapping.fc{}.weight")
    widths = [_shape(sd, f"mapping.fc{i}.weight", who)[0] for i in range(layers)]
    c_dim = _shape(sd, "mapping.embed.weight", who)[1] if "mapping.embed.weight" in sd else 0
    if not layers or set(widths) != {w_dim} or (c_dim and _shape(sd, "mapping.embed.weight", who)[0] != w_dim):
        raise CheckpointError(f"{who}: mapping widths {widths} (embed included) are not all w_dim={w_dim}")
    base, cmax = _bases(chans, res)
    return dict(res=res, img_channels=_shape(sd, f"synthesis.b{res}.torgb.weight", who)[0], c_dim=c_dim,
                z_dim=_shape(sd, "mapping.fc0.weight", who)[1] - (w_dim if c_dim else 0), w_dim=w_dim,
                channel_base=base, channel_max=cmax, conv_clamp=MPC_CONV_CLAMP,
                use_noise="synthesis.b4.conv1.noise_strength" in sd, num_fp16_res=MPC_FP16_RES,
                mapping_layers=layers, mapping_lr_mul=MAPPING_LR_MUL,
                w_avg_beta=W_AVG_BETA if "mapping.w_avg" in sd else None)


def _mbstd_group(res: int, conditional: bool, run_name: str) -> tuple[int, str]:
    """``d_epilogue_mbstd_group_size`` of the StudioGAN config the run used (not stored in the weights)."""
    data, _, rest = run_name.partition("-")
    cfg = rest.split("-train-")[0]
    for key in (f"{data}/{cfg}", data):
        if key in MBSTD_BY_DATA:
            return MBSTD_BY_DATA[key], f"from run_name {run_name!r} ({key} configs)"
    group = 32 if res == 32 else 4 if res >= 512 and not conditional else 8
    return group, f"StudioGAN's configs at {res} px ({'conditional' if conditional else 'unconditional'})"


def parse_d(sd: dict[str, torch.Tensor], g: dict[str, Any], run_name: str, who: str) -> dict[str, Any]:
    """D's numbers (as :func:`.nvlabs_pytorch._d_config` gives them) and ``problem``: why ganzoo's D cannot take
    its weights (another conditioning), or None."""
    res = g["res"]
    blocks = [r for r in reversed(_resolutions(res)) if r > 4]
    if f"b{res * 2}.conv0.weight" in sd or (blocks and f"b{res}.conv0.weight" not in sd):
        raise CheckpointError(f"{who}: D does not take {res}x{res} images like the generator")
    chans = {r: _shape(sd, f"b{r}.conv0.weight", who)[0] for r in blocks}
    c4, conv_in = _shape(sd, "b4.conv.weight", who)[:2]
    chans[4] = c4
    if chans != _channels(res, g["channel_base"], g["channel_max"]):
        raise CheckpointError(f"{who}: D's channels {chans} differ from G's (min({g['channel_base']} // res, "
                              f"{g['channel_max']})); ganzoo shares channel_base / channel_max")
    if any(f"b{r}.fromrgb.weight" in sd for r in blocks[1:]) or "b4.fromrgb.weight" in sd:
        raise CheckpointError(f"{who}: a 'skip' D; ganzoo's D is 'resnet' or 'orig'")
    arch = "resnet" if any(f"b{r}.skip.weight" in sd for r in blocks) else "orig"
    layers = _count(sd, "mapping.fc{}.weight")
    out = _shape(sd, "linear1.weight", who)[0]
    c_dim = _shape(sd, "mapping.embed.weight", who)[1] if "mapping.embed.weight" in sd else 0
    widths = {_shape(sd, f"mapping.fc{i}.weight", who)[0] for i in range(layers)} | ({out} if c_dim else set())
    problem = None
    if any(k.startswith(OTHER_HEADS) for k in sd):
        heads = sorted({k.split(".")[0] for k in sd if k.startswith(OTHER_HEADS)})
        problem = f"another conditioning head ({', '.join(heads)}: d_cond_mtd AC, PD, 2C, D2DCE, TAC/ADC or InfoGAN)"
    elif not c_dim and out != 1:
        problem = f"linear1 with {out} outputs (d_cond_mtd MH or MD)"
    elif c_dim != g["c_dim"]:
        problem = f"{c_dim} classes where G has {g['c_dim']} (ganzoo's G and D share c_dim)"
    elif c_dim and widths != {c4}:
        problem = f"a label mapping of widths {sorted(widths)}, not the 4x4 channel count {c4} (cmap_dim)"
    group, why = _mbstd_group(res, bool(g["c_dim"]), run_name)
    cfg: dict[str, Any] = dict(architecture=arch, mbstd_group_size=group, mbstd_num_channels=conv_in - c4)
    if c_dim:
        cfg["mapping_layers"] = layers
    mapping = dict(num_layers=layers, lr_mul=D_MAPPING_LR_MUL) if c_dim else None
    return dict(cfg=cfg, arch=arch, mapping=mapping, problem=problem, mbstd_why=why)


def _default_g(d_sd: dict[str, torch.Tensor], who: str) -> dict[str, Any]:
    """A G to go with a lone D: widths from D, the rest StudioGAN's configs (z = w = 512, mapping 8 from 256 px)."""
    res = 2 ** (2 + sum(1 for k in d_sd if k.endswith(".conv0.weight") and k.startswith("b")))
    chans = {r: _shape(d_sd, f"b{r}.conv0.weight", who)[0] for r in _resolutions(res) if r > 4}
    chans[4] = _shape(d_sd, "b4.conv.weight", who)[0]
    base, cmax = _bases(chans, res)
    c_dim = _shape(d_sd, "mapping.embed.weight", who)[1] if "mapping.embed.weight" in d_sd else 0
    return dict(res=res, img_channels=_shape(d_sd, f"b{res}.fromrgb.weight", who)[1], c_dim=c_dim, z_dim=512,
                w_dim=512, channel_base=base, channel_max=cmax, conv_clamp=MPC_CONV_CLAMP, use_noise=True,
                num_fp16_res=MPC_FP16_RES, mapping_layers=8 if res >= 256 else 2, mapping_lr_mul=MAPPING_LR_MUL,
                w_avg_beta=W_AVG_BETA)


def convert_stylegan2(path: Path, first: dict[str, Any]) -> Converted:
    """A StudioGAN StyleGAN2 checkpoint (``first``: the file at ``path``, already read) and its siblings."""
    role = "D" if "b4.fc.weight" in first["state_dict"] else "G"
    m = FILE_NAME.match(path.name)
    if m and (m.group(1) == "D") != (role == "D"):
        raise CheckpointError(f"{path.name}: the name says {m.group(1)} but the weights are a StyleGAN2 {role}")
    files = _siblings(path) or {role: path}
    loaded = {n: first if p == path else _read(p) for n, p in files.items()}
    sds, meta = {n: obj["state_dict"] for n, obj in loaded.items()}, loaded.get("D", {})
    for name, sd in sds.items():
        for key in (k for k in sd if k.endswith("resample_filter")):
            check_filter(sd[key], f"{files[name].name}: {key}")
    gens = {n: parse_g(sds[n], files[n].name) for n in ("G", "G_ema") if n in sds}
    notes: list[str] = []
    if gens:
        g = gens.get("G_ema") or gens["G"]
        if any(other != g for other in gens.values()):
            raise CheckpointError(f"{', '.join(files[n].name for n in gens)} describe different generators")
    else:
        g = _default_g(sds["D"], files["D"].name)
        notes.append("only D was found: G's widths follow D's; z_dim = w_dim = 512 and the mapping layers (8 from "
                     "256 px, else 2) are StudioGAN's config values")
    d = parse_d(sds["D"], g, str(meta.get("run_name", "")), files["D"].name) if "D" in sds else None
    d_sd = None
    if d is not None and d["problem"] is not None and not gens:
        raise CheckpointError(f"{files['D'].name} has {d['problem']}; ganzoo's StyleGAN2 D projects through a label "
                              "mapping (StudioGAN's SPD) or is unconditional, and there is no G to import instead")
    if d is not None and d["problem"] is None:
        d_sd = {("b4.out." + k[len("linear1."):] if k.startswith("linear1.") else k): v for k, v in sds["D"].items()}
    if d is None:  # StudioGAN's D for this G: the config's conditioning, architecture and mbstd group
        conditional = bool(g["c_dim"])
        arch = "orig" if g["res"] == 32 else "resnet"
        d_cfg = dict(architecture=arch, mbstd_group_size=_mbstd_group(g["res"], conditional, "")[0],
                     mbstd_num_channels=1, **({"mapping_layers": 8} if conditional else {}))
        d = dict(cfg=d_cfg, arch=arch, mapping=None, problem=None, mbstd_why="StudioGAN's configs")
    conv = map_stylegan2(sds.get("G"), d_sd, sds.get("G_ema"), g, d, strict=True)
    conv.not_found = [line for line in conv.not_found if not line.startswith("D:")]
    if "D" not in sds:
        conv.not_found.append("D: no model=D-...-weights-step=N.pth next to the given file (architecture: "
                              "StudioGAN's config at this size)")
    elif d_sd is None:
        conv.not_found.append(f"D: not imported: {files['D'].name} has {d['problem']}, which ganzoo's StyleGAN2 D "
                              "(projection through a label mapping, SPD) does not have; freshly initialised")
    for name, p in files.items():
        extra = sorted(k for k in loaded[name] if k != "state_dict")
        conv.found.append(f"{name}: {p.name} ({len(sds[name])} tensors of StudioGAN's stylegan2 backbone)"
                          + (f"; also {extra} (not imported)" if extra else ""))
    conv.notes += notes + [
        "StudioGAN's D linear1 -> NVlabs' b4.out (ganzoo epilogue.out); its SPD label mapping mapping.* as NVlabs' D",
        f"conv_clamp {MPC_CONV_CLAMP:g} and num_fp16_res {MPC_FP16_RES}: what models/model.py sets under -mpc (every "
        "training command of StudioGAN's README); without -mpc StudioGAN trains without clamping, in float32",
        f"mapping lr_multiplier {MAPPING_LR_MUL} (G and D) and w_avg_beta {W_AVG_BETA}: StudioGAN's MappingNetwork "
        "defaults, not stored in the weights",
        f"D mbstd group size {d['cfg']['mbstd_group_size']}: {d['mbstd_why']}",
        "optimizer states, LeCam EMAs, top-k and the ADA/APA probability are not imported",
    ]
    conv.source_info = {k: meta[k] for k in ("run_name", "step", "best_step", "best_fid", "seed", "epoch")
                        if isinstance(meta.get(k), (int, float, str))}
    conv.source_info.update(family="StyleGAN2 (PyTorch-StudioGAN)", resolution=g["res"],
                            files={n: p.name for n, p in files.items()})
    return conv
