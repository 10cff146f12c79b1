"""NVlabs StyleGAN2-ADA PyTorch network pickles (and stylegan3's StyleGAN2 networks) -> ganzoo ``stylegan2``.

A network pickle of NVlabs/stylegan2-ada-pytorch (``training/training_loop.py``, "Save network snapshot") or
NVlabs/stylegan3 (``--cfg=stylegan2``, ``training/networks_stylegan2.py``) is ``pickle.dump`` of a dict
``{G, D, G_ema, augment_pipe, training_set_kwargs}``. Each network is a ``torch_utils.persistence`` object: the
pickle calls ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta = {type, version,
module_src, class_name, state}``, and the official loader EXECUTES ``module_src`` (the Python source of the
networks file) to rebuild the class (``_src_to_module``). Here that global is answered by
:func:`_persistent_record`, which keeps ``class_name`` and ``state`` as inert data (:class:`PersistentModule`)
and never looks at ``module_src``; tensors come from :mod:`.safe_pickle`. The numbers of the network are read
from the modules' ``_init_kwargs`` and attributes and checked against the tensors' shapes.

Name mapping (official ``training/networks.py`` -> ganzoo :mod:`ganzoo.models.stylegan2`):

* G: ``mapping.fc<i>`` -> ``mapping.layers.<i>``; ``synthesis.b<R>`` -> ``synthesis.blocks.b<R>``;
  ``conv0/conv1/torgb.weight`` and ``.affine`` -> ``.conv.weight`` / ``.conv.affine``; ``noise_strength`` ->
  ``noise.strength``; ``noise_const`` ``[R, R]`` -> ``noise.noise_const`` ``[1, 1, R, R]``. Values are copied as
  they are: both keep the equalized-lr raw weights, the style bias initialised to 1 and ToRGB's
  ``1/sqrt(fan_in)`` as a run-time factor.
* D: ``b<R>.{fromrgb,conv0,conv1,skip}`` -> ``blocks.b<R>.<name>.conv``; ``b4.{conv,fc,out}`` ->
  ``epilogue.{conv.conv,fc,out}``; ``mapping.fc<i>`` -> ``mapping.layers.<i>``.
* ``resample_filter`` buffers are dropped after checking they are the [1, 3, 3, 1] filter ganzoo hard-codes.

The mapping works on ``state_dict`` names (:func:`map_stylegan2`), so that PyTorch-StudioGAN's copy of these
networks (:mod:`.studiogan_stylegan2`) converts through it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .base import Converted, register_format
from .safe_pickle import UnsafeFileError, load_pickle

__all__ = ["PersistentModule", "read_snapshot", "convert", "sniff", "flatten", "map_stylegan2"]

# Classes of training/networks.py (stylegan2-ada-pytorch) and training/networks_stylegan2.py (stylegan3).
STYLEGAN2_CLASSES = frozenset({
    "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer", "ToRGBLayer",
    "FullyConnectedLayer", "Conv2dLayer", "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue",
    "MinibatchStdLayer",
})
AUGMENT_CLASSES = frozenset({"AugmentPipe"})  # training/augment.py: not converted, only reported
# training/networks_stylegan3.py: known, so that such a file gets a clear "not supported" rather than "unknown".
STYLEGAN3_CLASSES = frozenset({"SynthesisInput"})
KNOWN_CLASSES = STYLEGAN2_CLASSES | AUGMENT_CLASSES | STYLEGAN3_CLASSES
PERSISTENCE_VERSION = 6  # torch_utils/persistence.py _version, the same in both repositories
FIR_1331 = torch.tensor([1.0, 3.0, 3.0, 1.0])
D_MAPPING_LR_MUL = 0.01  # ganzoo's Discriminator label mapping: MappingNetwork's default lr_mul
_SNIFF_BYTES = 1 << 16


class PersistentModule:
    """An inert stand-in for one ``torch_utils.persistence`` network object (nothing of it is ever run).

    ``params``/``buffers``/``modules`` are the module's ``_parameters``/``_buffers``/``_modules``; ``attrs`` the
    rest of its ``__dict__`` (``_init_kwargs`` among them); ``init_kwargs`` the constructor's keyword arguments.
    """

    def __init__(self, class_name: str, state: dict[str, Any]) -> None:
        self.class_name = class_name
        self.params: dict[str, torch.Tensor] = {k: v for k, v in dict(state.get("_parameters") or {}).items()
                                                if v is not None}
        self.buffers: dict[str, torch.Tensor] = {k: v for k, v in dict(state.get("_buffers") or {}).items()
                                                 if v is not None}
        self.modules: dict[str, PersistentModule] = {}
        for name, sub in dict(state.get("_modules") or {}).items():
            if sub is None:
                continue
            if not isinstance(sub, PersistentModule):
                raise CheckpointError(f"{class_name}.{name} is a {type(sub).__name__}, not a persistent network "
                                      "module: the file is not a StyleGAN2-ADA network pickle")
            self.modules[name] = sub
        self.init_kwargs: dict[str, Any] = dict(state.get("_init_kwargs") or {})
        self.attrs: dict[str, Any] = {k: v for k, v in state.items()
                                      if k not in ("_parameters", "_buffers", "_modules")}

    def tensor(self, name: str, where: str) -> torch.Tensor:
        """A parameter, or a buffer (Freeze-D's ``trainable=False`` layers keep their weights as buffers)."""
        t = self.params.get(name, self.buffers.get(name))
        if t is None:
            raise CheckpointError(f"{where}.{name} is missing from the file: it is damaged or not a StyleGAN2 network")
        return t.detach().clone().float().contiguous()

    def sub(self, name: str, where: str) -> PersistentModule:
        if name not in self.modules:
            raise CheckpointError(f"{where}.{name} is missing from the file: it is damaged or not a StyleGAN2 network")
        return self.modules[name]

    def walk(self) -> list[PersistentModule]:
        return [self] + [m for sub in self.modules.values() for m in sub.walk()]

    def __repr__(self) -> str:
        return f"PersistentModule({self.class_name}, modules={list(self.modules)})"


def _persistent_record(meta: Any) -> PersistentModule:
    """Stands in for ``torch_utils.persistence._reconstruct_persistent_obj``: keeps the class name and the state as
    data. ``meta['module_src']`` (the source the official loader would execute) is never read."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise CheckpointError("the file holds a torch_utils.persistence record of an unknown layout")
    name = meta["class_name"]
    if name not in KNOWN_CLASSES:
        raise CheckpointError(f"the file holds a persistent network class {name!r}, which is not one of NVlabs' "
                              f"StyleGAN2 classes ({', '.join(sorted(STYLEGAN2_CLASSES))}); ganzoo cannot convert it")
    if meta.get("version") != PERSISTENCE_VERSION:
        raise CheckpointError(f"torch_utils.persistence version {meta.get('version')!r}; version "
                              f"{PERSISTENCE_VERSION} (stylegan2-ada-pytorch, stylegan3) was expected")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise CheckpointError(f"the persistent {name} record holds no module state")
    return PersistentModule(name, state)


ALLOW = {("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record}


def read_snapshot(path: Path | str | bytes) -> dict[str, Any]:
    """The snapshot dict of a network pickle with networks as :class:`PersistentModule` (nothing executed)."""
    obj = load_pickle(path, allow=ALLOW)
    if isinstance(obj, PersistentModule) and obj.class_name == "Generator":
        obj = {"G_ema": obj}  # a generator pickled on its own (e.g. pickle.dump(G_ema)): the network to sample from
    if not isinstance(obj, dict) or not any(isinstance(obj.get(k), PersistentModule) for k in ("G", "G_ema")):
        found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{str(path)[:200]!r} is a pickle but not a StyleGAN2-ADA / stylegan3 network pickle: "
                              f"a dict with networks G, D, G_ema was expected, found {found}")
    return obj


def sniff(path: Path) -> bool:
    """A pickle that names ``torch_utils.persistence`` near its start (the first network's record)."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    return head[:1] == b"\x80" and b"torch_utils.persistence" in head and b"_reconstruct_persistent_obj" in head


# -- reading the architecture ----------------------------------------------------------------------------
def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckpointError(msg)


def _check_filter(m: PersistentModule, where: str) -> None:
    check_filter(m.buffers.get("resample_filter"), where)


def check_filter(f: torch.Tensor | None, where: str) -> None:
    """A ``resample_filter`` buffer (if any) must be the one ganzoo hard-codes."""
    if f is not None:
        ref = torch.outer(FIR_1331, FIR_1331) / FIR_1331.sum() ** 2  # upfirdn2d.setup_filter([1, 3, 3, 1])
        _need(tuple(f.shape) == (4, 4) and torch.allclose(f.float(), ref, atol=1e-6),
              f"{where}: resample_filter {f.tolist()} is not the [1, 3, 3, 1] filter ganzoo's StyleGAN2 uses")


def _same(values: list[Any], what: str, who: str) -> Any:
    _need(len(set(map(repr, values))) <= 1, f"{who}: {what} differs between layers ({values}); ganzoo uses one value")
    return values[0] if values else None


def _resolutions(res: int) -> list[int]:
    return [2**i for i in range(2, int(math.log2(res)) + 1)]


def _channels(res: int, base: int, cmax: int) -> dict[int, int]:
    """``min(channel_base // r, channel_max)`` per resolution (official ``channels_dict``)."""
    return {r: min(base // r, cmax) for r in _resolutions(res)}


def _fp16_flags(resolutions: list[int], res: int, n: int) -> dict[int, bool]:
    """Which blocks run in float16 at ``num_fp16_res=n`` (official ``fp16_resolution``)."""
    lo = max(2 ** (int(math.log2(res)) + 1 - n), 8)
    return {r: r >= lo for r in resolutions}


def _fp16_res(flags: dict[int, bool], res: int, declared: Any) -> int:
    """``num_fp16_res`` consistent with the blocks' ``use_fp16`` flags (official ``fp16_resolution`` rule)."""
    if isinstance(declared, int) and declared >= 0 and _fp16_flags(list(flags), res, declared) == flags:
        return declared
    for n in range(0, int(math.log2(res)) + 1):
        if _fp16_flags(list(flags), res, n) == flags:
            return n
    raise CheckpointError(f"the float16 blocks {flags} follow no num_fp16_res; ganzoo cannot express them")


def _mapping_config(m: PersistentModule, who: str) -> dict[str, Any]:
    layers = int(m.attrs.get("num_layers", 0))
    fcs = [m.sub(f"fc{i}", who) for i in range(layers)]
    for fc in fcs:
        _need(fc.attrs.get("activation", "lrelu") == "lrelu", f"{who}: mapping activation "
              f"{fc.attrs.get('activation')!r} is not supported (only lrelu)")
    lr_mul = float(_same([fc.attrs.get("bias_gain", 0.01) for fc in fcs], "lr_multiplier", who) or 0.01)
    return dict(num_layers=layers, lr_mul=lr_mul, w_avg_beta=m.attrs.get("w_avg_beta"),
                z_dim=int(m.attrs.get("z_dim", 0)), c_dim=int(m.attrs.get("c_dim", 0)),
                w_dim=int(m.attrs.get("w_dim", 0)))


def _g_config(G: PersistentModule, who: str) -> dict[str, Any]:
    _need(G.class_name == "Generator", f"{who} is a {G.class_name}, not a StyleGAN2 Generator")
    names = {m.class_name for m in G.walk()}
    _need(not names & STYLEGAN3_CLASSES, f"{who} is a StyleGAN3 (alias-free, stylegan3-t/-r) generator; ganzoo has "
          "StyleGAN2 only. The stylegan3 repository's stylegan2-*.pkl files do convert.")
    syn, mapping = G.sub("synthesis", who), G.sub("mapping", who)
    res, img_ch = int(G.attrs["img_resolution"]), int(G.attrs["img_channels"])
    z_dim, c_dim, w_dim = int(G.attrs["z_dim"]), int(G.attrs["c_dim"]), int(G.attrs["w_dim"])
    mp = _mapping_config(mapping, f"{who}.mapping")
    _need((mp["z_dim"], mp["c_dim"], mp["w_dim"]) == (z_dim, c_dim, w_dim), f"{who}: the mapping's dims differ")
    for i in range(mp["num_layers"]):
        out_f, in_f = mapping.sub(f"fc{i}", who).params["weight"].shape
        _need(out_f == w_dim, f"{who}: mapping layer {i} has {out_f} features, not w_dim={w_dim} (layer_features); "
              "ganzoo's mapping layers are w_dim wide")
    if c_dim:
        _need(mapping.sub("embed", who).params["weight"].shape[0] == w_dim,
              f"{who}: the label embedding is not w_dim={w_dim} wide (embed_features); ganzoo's is")
    blocks = {r: syn.sub(f"b{r}", f"{who}.synthesis") for r in _resolutions(res)}
    chans = {r: int(b.sub("conv1", who).params["weight"].shape[0]) for r, b in blocks.items()}
    skw = syn.init_kwargs
    base, cmax = int(skw.get("channel_base", 32768)), int(skw.get("channel_max", 512))
    _need(_channels(res, base, cmax) == chans, f"{who}: channels per resolution {chans} differ from "
          f"min({base} // res, {cmax}) (channel_base, channel_max of its kwargs): the file is inconsistent")
    layers, flags = [], {}
    for r, b in blocks.items():
        _need(b.attrs.get("architecture", "skip") == "skip", f"{who}: synthesis architecture "
              f"{b.attrs.get('architecture')!r}; ganzoo's StyleGAN2 generator is the 'skip' one")
        _check_filter(b, f"{who}.b{r}")
        flags[r] = bool(b.attrs.get("use_fp16", False))
        layers += [b.sub(n, who) for n in ("conv0", "conv1") if n in b.modules] + [b.sub("torgb", who)]
    for lay in layers:
        _check_filter(lay, who)
        _need(lay.attrs.get("activation", "lrelu") == "lrelu", f"{who}: activation {lay.attrs.get('activation')!r} "
              "is not supported (only lrelu)")
    convs = [lay for lay in layers if lay.class_name == "SynthesisLayer"]
    _need(all(tuple(lay.params["weight"].shape[2:]) == (3, 3) for lay in convs), f"{who}: kernels are not 3x3")
    clamp = _same([lay.attrs.get("conv_clamp") for lay in layers], "conv_clamp", who)
    use_noise = bool(_same([lay.attrs.get("use_noise", True) for lay in convs], "use_noise", who))
    return dict(res=res, img_channels=img_ch, c_dim=c_dim, z_dim=z_dim, w_dim=w_dim, channel_base=base,
                channel_max=cmax, conv_clamp=None if clamp is None else float(clamp), use_noise=use_noise,
                num_fp16_res=_fp16_res(flags, res, skw.get("num_fp16_res")), mapping_layers=mp["num_layers"],
                mapping_lr_mul=mp["lr_mul"], w_avg_beta=mp["w_avg_beta"])


def _d_config(D: PersistentModule, g: dict[str, Any]) -> dict[str, Any]:
    who = "D"
    _need(D.class_name == "Discriminator", f"D is a {D.class_name}, not a StyleGAN2 Discriminator")
    res, c_dim = int(D.attrs["img_resolution"]), int(D.attrs["c_dim"])
    _need((res, c_dim, int(D.attrs["img_channels"])) == (g["res"], g["c_dim"], g["img_channels"]),
          "D's resolution, labels or image channels differ from G's: the file is inconsistent")
    blocks = {r: D.sub(f"b{r}", who) for r in reversed(_resolutions(res)) if r > 4}
    epi = D.sub("b4", who)
    chans = {r: int(b.sub("conv0", who).tensor("weight", who).shape[0]) for r, b in blocks.items()}
    chans[4] = int(epi.sub("conv", who).tensor("weight", who).shape[0])
    _need(chans == _channels(res, g["channel_base"], g["channel_max"]),
          f"D's channels {chans} differ from G's (channel_base={g['channel_base']}, channel_max={g['channel_max']}); "
          "ganzoo shares channel_base / channel_max between G and D")
    archs = [b.attrs.get("architecture", "resnet") for b in blocks.values()] + [epi.attrs.get("architecture")]
    arch = _same([a for a in archs if a is not None], "architecture", who)
    _need(arch in ("resnet", "orig"), f"D architecture {arch!r}; ganzoo's D is 'resnet' or 'orig'")
    convs = []
    for r, b in blocks.items():
        _check_filter(b, f"D.b{r}")
        convs += [b.sub(n, who) for n in ("fromrgb", "conv0", "conv1") if n in b.modules]
    convs.append(epi.sub("conv", who))
    for c in convs:
        _check_filter(c, who)
        _need(c.attrs.get("activation", "lrelu") == "lrelu", f"D activation {c.attrs.get('activation')!r} is "
              "not supported (only lrelu)")
    clamp = _same([c.attrs.get("conv_clamp") for c in convs], "conv_clamp", who)
    _need((None if clamp is None else float(clamp)) == g["conv_clamp"],
          f"D's conv_clamp {clamp} differs from G's {g['conv_clamp']}; ganzoo shares it")
    flags = {r: bool(b.attrs.get("use_fp16", False)) for r, b in blocks.items()}
    _need(_fp16_flags(list(flags), res, g["num_fp16_res"]) == flags,
          f"D's float16 blocks {flags} differ from G's num_fp16_res={g['num_fp16_res']}; ganzoo shares it")
    mbstd = epi.modules.get("mbstd")
    group = mbstd.attrs.get("group_size") if mbstd is not None else 4
    num = int(mbstd.attrs.get("num_channels", 1)) if mbstd is not None else 0
    cfg: dict[str, Any] = dict(architecture=arch, mbstd_group_size=1 << 16 if group is None else int(group),
                               mbstd_num_channels=num)
    mp = None
    if c_dim:
        mp = _mapping_config(D.sub("mapping", who), "D.mapping")
        _need(epi.sub("out", who).params["weight"].shape[0] == chans[4], "D's label projection (cmap_dim) is not "
              "the 4x4 channel count; ganzoo's D uses that")
        dmap = D.sub("mapping", who)
        widths = [dmap.sub("embed", who).tensor("weight", who).shape[0]]
        widths += [dmap.sub(f"fc{i}", who).tensor("weight", who).shape[0] for i in range(mp["num_layers"])]
        _need(set(widths) == {chans[4]}, f"D's label mapping widths {widths} are not all the 4x4 channel count "
              f"{chans[4]} (embed_features / layer_features); ganzoo's D label mapping uses that")
        cfg["mapping_layers"] = mp["num_layers"]
    return dict(cfg=cfg, arch=arch, mapping=mp, group_none=group is None)


# -- tensors ------------------------------------------------------------------------------------------------
def flatten(m: PersistentModule, prefix: str = "") -> dict[str, torch.Tensor]:
    """A record's parameters and buffers under their ``state_dict`` names (what ``module.state_dict()`` gives)."""
    out = {f"{prefix}{k}": v for k, v in {**m.buffers, **m.params}.items()}
    for name, sub in m.modules.items():
        out.update(flatten(sub, f"{prefix}{name}."))
    return out


class _Tensors:
    """NVlabs-named tensors of one network; remembers which were taken (``strict`` callers check the rest)."""

    def __init__(self, sd: Mapping[str, torch.Tensor], who: str) -> None:
        self.sd, self.who, self.used = sd, who, set()

    def has(self, key: str) -> bool:
        return key in self.sd

    def get(self, key: str) -> torch.Tensor:
        if key not in self.sd:
            raise CheckpointError(f"{self.who}.{key} is missing from the file: it is damaged or not a StyleGAN2 "
                                  "network")
        self.used.add(key)
        return self.sd[key].detach().clone().float().contiguous()

    def fc(self, out: dict[str, torch.Tensor], dst: str, src: str, scale: float = 1.0) -> None:
        out[f"{dst}.weight"] = self.get(f"{src}.weight") * scale
        if self.has(f"{src}.bias"):
            out[f"{dst}.bias"] = self.get(f"{src}.bias") * scale

    def mapping(self, out: dict[str, torch.Tensor], layers: int, scale: float = 1.0) -> None:
        if self.has("mapping.embed.weight"):
            self.fc(out, "mapping.embed", "mapping.embed")
        for i in range(layers):
            self.fc(out, f"mapping.layers.{i}", f"mapping.fc{i}", scale)
        if self.has("mapping.w_avg"):
            out["mapping.w_avg"] = self.get("mapping.w_avg")

    def finish(self, out: dict[str, torch.Tensor], strict: bool) -> dict[str, torch.Tensor]:
        left = sorted(k for k in set(self.sd) - self.used if not k.endswith("resample_filter"))
        if strict and left:
            raise CheckpointError(f"{self.who}: {len(left)} tensors have no place in ganzoo's StyleGAN2: {left[:8]}")
        return out


def generator_weights(sd: Mapping[str, torch.Tensor], cfg: dict[str, Any], who: str = "G",
                      strict: bool = False) -> dict[str, torch.Tensor]:
    """ganzoo ``Generator`` state dict from an official ``Generator``'s ``state_dict`` names."""
    src, out = _Tensors(sd, who), {}
    src.mapping(out, cfg["mapping_layers"])
    for r in _resolutions(cfg["res"]):
        blk, dst = f"synthesis.b{r}", f"synthesis.blocks.b{r}"
        if r == 4:
            out[f"{dst}.const"] = src.get(f"{blk}.const")
        for name in ("conv0", "conv1", "torgb"):
            if not src.has(f"{blk}.{name}.weight"):
                continue
            lay, d = f"{blk}.{name}", f"{dst}.{name}"
            out[f"{d}.conv.weight"] = src.get(f"{lay}.weight")
            src.fc(out, f"{d}.conv.affine", f"{lay}.affine")
            out[f"{d}.bias"] = src.get(f"{lay}.bias")
            if name != "torgb" and cfg["use_noise"]:
                out[f"{d}.noise.strength"] = src.get(f"{lay}.noise_strength")
                out[f"{d}.noise.noise_const"] = src.get(f"{lay}.noise_const")[None, None]  # [R, R] -> [1, 1, R, R]
    return src.finish(out, strict)


def discriminator_weights(sd: Mapping[str, torch.Tensor], d: dict[str, Any], res: int, who: str = "D",
                          strict: bool = False) -> dict[str, torch.Tensor]:
    """ganzoo ``Discriminator`` state dict from an official ``Discriminator``'s ``state_dict`` names."""
    src, out = _Tensors(sd, who), {}
    for r in [2**i for i in range(int(math.log2(res)), 2, -1)]:
        for name in ("fromrgb", "conv0", "conv1", "skip"):
            if src.has(f"b{r}.{name}.weight"):
                src.fc(out, f"blocks.b{r}.{name}.conv", f"b{r}.{name}")
    src.fc(out, "epilogue.conv.conv", "b4.conv")
    src.fc(out, "epilogue.fc", "b4.fc")
    src.fc(out, "epilogue.out", "b4.out")
    if d["mapping"] is not None:
        src.mapping(out, d["mapping"]["num_layers"], d["mapping"]["lr_mul"] / D_MAPPING_LR_MUL)
    return src.finish(out, strict)


def _preset(g: dict[str, Any]) -> str:
    key = (g["res"], g["channel_base"], g["channel_max"], g["mapping_layers"])
    return {(1024, 32768, 512, 8): "stylegan2_f", (256, 16384, 512, 8): "stylegan2_paper256",
            (32, 32768, 512, 2): "stylegan2_cifar"}.get(key, "stylegan2")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj if isinstance(obj, bool | int | float | str | type(None)) else repr(obj)[:200]


Tensors = Mapping[str, torch.Tensor]


def map_stylegan2(G: Tensors | None, D: Tensors | None, G_ema: Tensors | None, cfg: dict[str, Any],
                  d: dict[str, Any] | None, *, strict: bool = False) -> Converted:
    """NVlabs-named state dicts (``training/networks.py``) + the numbers -> ganzoo ``stylegan2``.

    ``cfg`` has the keys :func:`_g_config` returns; ``d`` (``{cfg, arch, mapping}``, as :func:`_d_config`) describes
    D and goes to ``model_config`` even without D's tensors. ``strict``: a tensor without a place is an error.
    """
    found, not_found, notes = [], [], []
    model_config: dict[str, Any] = dict(
        resolution=cfg["res"], img_channels=cfg["img_channels"], c_dim=cfg["c_dim"],
        channel_base=cfg["channel_base"], channel_max=cfg["channel_max"], conv_clamp=cfg["conv_clamp"],
        num_fp16_res=cfg["num_fp16_res"],
        G=dict(z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], mapping_layers=cfg["mapping_layers"],
               mapping_lr_mul=cfg["mapping_lr_mul"], use_noise=cfg["use_noise"]),
    )
    if cfg["w_avg_beta"] is not None:
        model_config["G"]["w_avg_beta"] = float(cfg["w_avg_beta"])
    weights: dict[str, dict[str, torch.Tensor]] = {}
    ema: dict[str, dict[str, torch.Tensor]] = {}
    if G is not None:
        weights["G"] = generator_weights(G, cfg, "G", strict)
        found.append(f"G (Generator, {cfg['res']}x{cfg['res']}, c_dim {cfg['c_dim']}) -> G")
    if G_ema is not None:
        ema["G"] = generator_weights(G_ema, cfg, "G_ema", strict)
        found.append("G_ema (the moving average of G) -> EMA copy of G")
        if "G" not in weights:
            weights["G"] = {k: v.clone() for k, v in ema["G"].items()}
            notes.append("the file has no G: G starts as a copy of G_ema")
    else:
        not_found.append("G_ema: not in the file (the EMA copy starts from G)")
    if d is not None:
        model_config["D"] = d["cfg"]
    if D is not None and d is not None:
        weights["D"] = discriminator_weights(D, d, cfg["res"], "D", strict)
        found.append(f"D (Discriminator, {d['arch']}) -> D")
        if d["mapping"] is not None and d["mapping"]["lr_mul"] != D_MAPPING_LR_MUL:
            notes.append(f"D label mapping: weights and biases x {d['mapping']['lr_mul'] / D_MAPPING_LR_MUL:g} "
                         f"(lr_multiplier {d['mapping']['lr_mul']} -> ganzoo's {D_MAPPING_LR_MUL}, same products)")
    else:
        not_found.append("D: not in the file")
    notes.append("names mapped as in training/networks.py (fc<i> -> layers.<i>, b<R> -> blocks.b<R>, noise_const "
                 "[R, R] -> [1, 1, R, R]); values copied unchanged; resample_filter buffers dropped ([1, 3, 3, 1] "
                 "checked)")
    return Converted(model=_preset(cfg), model_config=model_config, weights=weights, ema=ema, found=found,
                     not_found=not_found, notes=notes)


def convert_snapshot(snap: dict[str, Any]) -> Converted:
    """A snapshot dict (networks as :class:`PersistentModule`) -> ganzoo ``stylegan2``."""
    G, G_ema, D = (m if isinstance(m, PersistentModule) else None for m in (snap.get("G"), snap.get("G_ema"),
                                                                            snap.get("D")))
    gen = G_ema if G_ema is not None else G
    cfg = _g_config(gen, "G_ema" if gen is G_ema else "G")
    if G is not None and gen is not G:
        _need(_g_config(G, "G") == cfg, "G and G_ema of the file have different architectures: the file is damaged")
    d = _d_config(D, cfg) if D is not None else None
    conv = map_stylegan2(*(None if m is None else flatten(m) for m in (G, D, G_ema)), cfg, d)
    if D is not None and d is not None:
        if d["group_none"]:
            conv.notes.append("D minibatch stddev over the whole batch (group_size=None) -> group size 65536")
        freeze = (D.init_kwargs.get("block_kwargs") or {}).get("freeze_layers", 0)
        if freeze:
            conv.notes.append(f"D was trained with freeze_layers={freeze} (Freeze-D); ganzoo does not freeze layers")
    pipe = snap.get("augment_pipe")
    if isinstance(pipe, PersistentModule):
        p = pipe.buffers.get("p")
        conv.found.append(f"augment_pipe (ADA, p={float(p) if p is not None and p.numel() == 1 else '?'}): not "
                          "converted (ganzoo's ADA starts again from p=0)")
    conv.notes.append("the network's Python source stored in the pickle (torch_utils.persistence module_src) was not "
                      "run")
    info = {"family": "StyleGAN2 (NVlabs PyTorch)", "resolution": cfg["res"]}
    for key, net in (("G_kwargs", gen), ("D_kwargs", D)):
        if isinstance(net, PersistentModule):
            info[key] = _plain(net.init_kwargs)
    if isinstance(snap.get("training_set_kwargs"), dict):
        info["training_set_kwargs"] = _plain(snap["training_set_kwargs"])
    for key in ("progress", "kimg"):  # not in the snapshots; kept if a tool added them
        if key in snap:
            info[key] = _plain(snap[key])
    conv.source_info = info
    return conv


@register_format("nvlabs_pytorch", sniff=sniff,
                 description="NVlabs StyleGAN2-ADA PyTorch / stylegan3 (stylegan2 config) network pickle (.pkl)")
def convert(path: Path) -> Converted:
    """An official network pickle -> ganzoo ``stylegan2`` (see the module docstring)."""
    try:
        return convert_snapshot(read_snapshot(path))
    except UnsafeFileError:
        raise
    except (KeyError, AttributeError, TypeError, ValueError, IndexError) as err:
        raise CheckpointError(f"{str(path)!r} is not a StyleGAN2 network pickle ganzoo can read ({type(err).__name__}: "
                              f"{err})") from err
