"""CompVis/taming-transformers PyTorch Lightning checkpoints (``.ckpt``) -> ``vqgan`` / ``vqgan_prior`` runs.

Two kinds of file (see docs/pretrained/taming.md):

* a ``taming.models.vqgan.VQModel`` (stage 1): ``encoder.*``, ``decoder.*``, ``quant_conv``,
  ``post_quant_conv`` and ``quantize.embedding.weight`` keep their names in ganzoo's
  :class:`~ganzoo.models.vqgan.VQGANAutoencoder` (G); the PatchGAN under ``loss.discriminator.main.*``
  becomes D (``main.*``); the LPIPS copy under ``loss.perceptual_loss.*`` is listed and dropped, since ganzoo's
  bundle has no module for it (its LPIPS is loaded at training start, ``ganzoo.losses.perceptual``);
* a ``taming.models.cond_transformer.Net2NetTransformer`` (stage 2): ``transformer.*`` (minGPT) becomes the
  prior's GPT (``ganzoo.layers.gpt``, same names) without the constant causal masks ``blocks.N.attn.mask``;
  ``first_stage_model.*`` is converted as above and returned as :attr:`Converted.stage1`; the conditioning
  (``Labelator``: class ``c`` is token ``c``; ``SOSProvider``: start token 0) maps to ``cond_tokens=shared``; a
  ``VQModel`` cond stage (``cond_stage_model.*``, D-RIN's depth tokenizer) is converted like the first stage,
  returned as :attr:`Converted.cond_stage` and becomes ``model.cond_stage`` (its codes first, shared vocabulary);
  a ``VQSegmentationModel`` (S-FLCKR, ADE20K, COCO-Stuff) likewise, with ``model.cond_input=labels`` (one-hot label
  maps); a ``CoordStage`` (FacesHQ) becomes ``model.cond_stage={kind: coord, n_embed, down_factor}``.

The numbers come from the tensor shapes; what shapes do not hold (image size, attention heads, the kind of
conditioning) comes from the config taming writes beside its checkpoints (``configs/*-project.yaml`` or
``configs/model.yaml``, read with ``yaml.safe_load``) or from ``hyper_parameters`` in the file. The file is read
with :func:`ganzoo.pretrained.safe_pickle.load_torch`: Lightning, omegaconf and argparse objects become inert
records, nothing of theirs runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import CheckpointError
from .base import Converted, register_format
from .safe_pickle import Record, load_torch, pickle_head

__all__ = ["convert", "sniff", "find_config"]

RECORDS = ("pytorch_lightning.*", "lightning.*", "lightning_fabric.*", "omegaconf.*", "argparse.Namespace",
           "typing.*", "pathlib.*")
# omegaconf pickles name ``int`` by its Python 2 name (pickle protocol 2's compatibility mapping).
ALLOW = {("__builtin__", "long"): int}

VQ_TARGET = "taming.models.vqgan.VQModel"
SEG_TARGET = "taming.models.vqgan.VQSegmentationModel"  # a VQModel on one-hot label maps (+ a colorize buffer)
TRANSFORMER_TARGET = "taming.models.cond_transformer.Net2NetTransformer"
ASSUMED_RESOLUTION = 256  # every published taming VQModel is trained at 256x256


# -- reading ---------------------------------------------------------------------------------------------------------
def sniff(path: Path) -> bool:
    """A torch file whose pickle names taming's encoder and codebook (``encoder.conv_in``, ``quantize.embedding``)."""
    path = Path(path)
    if not path.is_file():
        return False
    head = pickle_head(path)
    return b"encoder.conv_in.weight" in head and b"quantize.embedding.weight" in head


def plain(obj: Any) -> Any:
    """Inert records of omegaconf / Lightning / argparse containers -> plain dicts, lists and values."""
    if isinstance(obj, Record):
        state = obj.state if isinstance(obj.state, dict) else {}
        if obj.qualname.startswith("omegaconf."):
            if "_val" in state:
                return plain(state["_val"])
            return plain(state.get("_content"))
        if obj.dict_items:
            return {k: plain(v) for k, v in obj.dict_items.items()}
        if obj.items:
            return [plain(v) for v in obj.items]
        return {k: plain(v) for k, v in state.items()} if state else obj.qualname
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def find_config(path: Path) -> Path | None:
    """taming's config beside a checkpoint: ``<file>.yaml``, ``<stem>.yaml``, or the newest ``configs/*.yaml``
    (holding a ``model:`` section) next to the file or one folder up (taming's ``logs/<run>/checkpoints`` +
    ``logs/<run>/configs`` layout; the published zips use ``ckpts/`` + ``configs/model.yaml``)."""
    for cand in (path.with_name(path.name + ".yaml"), path.with_suffix(".yaml")):
        if cand.is_file():
            return cand
    for folder in (path.parent / "configs", path.parent.parent / "configs"):
        if folder.is_dir():
            ymls = sorted(p for p in folder.glob("*.yaml") if "lightning" not in p.name)
            for cand in reversed(ymls):  # taming names them <time>-project.yaml: the newest sorts last
                if "model" in (_read_yaml(cand) or {}):
                    return cand
    return None


def _read_yaml(path: Path) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise CheckpointError(f"{str(path)!r}: cannot read taming's config ({err})") from err
    return data if isinstance(data, dict) else None


def _load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, str, dict[str, Any]]:
    """(state dict, the ``model:`` config or None, where the config came from, Lightning's bookkeeping)."""
    ckpt = load_torch(path, records=RECORDS, allow=ALLOW)
    if isinstance(ckpt, dict) and "state_dict" in ckpt:
        sd, extra = ckpt["state_dict"], {k: v for k, v in ckpt.items() if k != "state_dict"}
    elif isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd, extra = ckpt, {}
    else:
        keys = sorted(map(str, ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{str(path)!r} is not a taming-transformers checkpoint: expected a PyTorch Lightning "
                              f"checkpoint (a dict with 'state_dict'), found {keys}")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{str(path)!r}: 'state_dict' does not hold tensors")
    cfg_file = find_config(path)
    if cfg_file is not None:
        cfg, where = (_read_yaml(cfg_file) or {}).get("model"), str(cfg_file)
    else:
        hp = plain(extra.get("hyper_parameters") or extra.get("hparams"))
        cfg, where = ({"params": hp} if isinstance(hp, dict) and hp else None), "hyper_parameters"
    info = {"pytorch_lightning_version": extra.get("pytorch-lightning_version"), "epoch": extra.get("epoch"),
            "global_step": extra.get("global_step")}
    return dict(sd), cfg, where, info


# -- stage 1 ---------------------------------------------------------------------------------------------------------
def _count(sd: dict[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def _shape(sd: dict[str, torch.Tensor], key: str, what: str) -> torch.Size:
    if key not in sd:
        raise CheckpointError(f"taming VQModel: {key!r} ({what}) is missing; the file is not a complete VQModel")
    return sd[key].shape


def _check_cfg(dd: dict[str, Any], name: str, got: Any, where: str) -> None:
    if name in dd and dd[name] is not None and _norm(dd[name]) != _norm(got):
        raise CheckpointError(f"the config {where} says {name}={dd[name]}, but the weights have {name}={got}: the "
                              "config belongs to another model; keep the checkpoint's own config beside it")


def _norm(v: Any) -> Any:
    return [int(x) for x in v] if isinstance(v, list | tuple) else v


def _vq_numbers(sd: dict[str, torch.Tensor], params: dict[str, Any], where: str,
                notes: list[str]) -> dict[str, Any]:
    """``Encoder``/``Decoder`` hyper-parameters (taming/modules/diffusionmodules/model.py) from the shapes."""
    for key, kind in (("quantize.embed.weight", "GumbelQuantize (GumbelVQ)"), ("quantize.used", "a remapped codebook"),
                      ("quantize.embedding.cluster_size", "EMAVectorQuantizer (EMAVQ)")):
        if key in sd:
            raise CheckpointError(f"this taming model uses {kind} ({key!r}); ganzoo's VQ-GAN imports "
                                  "VQModel with VectorQuantizer2 only")
    n_embed, embed_dim = _shape(sd, "quantize.embedding.weight", "the codebook")
    ch, in_ch = _shape(sd, "encoder.conv_in.weight", "the encoder's first conv")[:2]
    levels = _count(sd, r"encoder\.down\.(\d+)\.")
    nrb = _count(sd, r"encoder\.down\.0\.block\.(\d+)\.conv1\.weight")
    ch_mult = [int(_shape(sd, f"encoder.down.{i}.block.0.conv1.weight", "a res block")[0]) // ch for i in range(levels)]
    z_channels = int(_shape(sd, "decoder.conv_in.weight", "the decoder's first conv")[1])
    enc_out = int(_shape(sd, "encoder.conv_out.weight", "the encoder's last conv")[0])
    if enc_out != z_channels:
        raise CheckpointError(f"the encoder emits {enc_out} channels for z_channels={z_channels} (double_z=True); "
                              "taming's VQ-GAN configs use double_z: false, which ganzoo's encoder implements")
    if levels > 1 and "encoder.down.0.downsample.conv.weight" not in sd:
        raise CheckpointError("the encoder downsamples without a conv (resamp_with_conv=False); ganzoo's VQ-GAN "
                              "implements taming's default strided-conv downsampling only")
    out_ch = int(_shape(sd, "decoder.conv_out.weight", "the decoder's last conv")[0])
    if _count(sd, r"decoder\.up\.(\d+)\.") != levels:
        raise CheckpointError("the decoder has a different number of levels than the encoder")
    dd = dict(params.get("ddconfig") or {})
    if dd:
        for name, got in (("ch", ch), ("ch_mult", ch_mult), ("num_res_blocks", nrb), ("z_channels", z_channels),
                          ("in_channels", in_ch), ("out_ch", out_ch)):
            _check_cfg(dd, name, got, where)
        _check_cfg(params, "n_embed", n_embed, where)
        _check_cfg(params, "embed_dim", embed_dim, where)
    if in_ch != out_ch:
        raise CheckpointError(f"the autoencoder reads {in_ch} channels and writes {out_ch}; ganzoo's VQ-GAN maps "
                              "images to images of the same channels")
    if dd.get("resolution"):
        resolution = int(dd["resolution"])
    else:
        resolution = ASSUMED_RESOLUTION
        notes.append(f"image size: not in the weights and no config found beside the file; assumed {resolution} "
                     "(taming's published models); put taming's configs/*.yaml beside the checkpoint to read it")
    attn_levels = [i for i in range(levels) if f"encoder.down.{i}.attn.0.q.weight" in sd]
    attn = [resolution // 2**i for i in attn_levels]
    if dd.get("attn_resolutions") is not None and sorted(int(r) for r in dd["attn_resolutions"]
                                                         if int(r) in [resolution // 2**i for i in range(levels)]) \
            != sorted(attn):
        raise CheckpointError(f"the config {where} puts attention at {dd['attn_resolutions']}, the weights at {attn}")
    return dict(resolution=resolution, img_channels=int(in_ch), ch=int(ch), ch_mult=ch_mult, num_res_blocks=nrb,
                attn_resolutions=attn, dropout=float(dd.get("dropout", 0.0)), z_channels=z_channels,
                embed_dim=int(embed_dim), n_embed=int(n_embed))


def _discriminator(sd: dict[str, torch.Tensor], img_channels: int,
                   found: list[str]) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """taming's ``NLayerDiscriminator`` (loss.discriminator.main.*) -> ganzoo's PatchGAN (``main.*``), same names."""
    prefix = "loss.discriminator."
    d_sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not d_sd:
        return None, {}
    if any(k.endswith((".loc", ".scale")) for k in d_sd):
        found.append(f"loss.discriminator: {len(d_sd)} tensors, an ActNorm PatchGAN (use_actnorm=True): dropped, "
                     "ganzoo's PatchGAN has BatchNorm only")
        return None, {}
    convs = sorted(int(k.split(".")[1]) for k, v in d_sd.items() if k.endswith(".weight") and v.dim() == 4)
    ndf, d_in = d_sd["main.0.weight"].shape[:2]
    if int(d_in) != img_channels:
        found.append(f"loss.discriminator: reads {d_in} channels, not the images' {img_channels} (a conditional "
                     "or segmentation discriminator): dropped")
        return None, {}
    found.append(f"loss.discriminator.main.*: {len(d_sd)} tensors -> D (PatchGAN, ndf {ndf}, {len(convs) - 2} "
                 "stride-2 layers, BatchNorm running statistics included)")
    return dict(ndf=int(ndf), n_layers=len(convs) - 2), d_sd


_LOSS_KEYS = {"disc_start": "disc_start", "disc_weight": "disc_weight", "codebook_weight": "codebook_weight",
              "perceptual_weight": "perceptual_weight", "pixelloss_weight": "rec_weight", "disc_factor": "disc_factor",
              "disc_loss": "d_loss"}


def convert_vq(sd: dict[str, torch.Tensor], params: dict[str, Any], *, where: str,
               base_lr: float | None = None, prefix_note: str = "") -> Converted:
    """A VQModel state dict (keys without any ``first_stage_model.`` prefix) -> a ``vqgan`` Converted."""
    from ..models.vqgan import IMAGENET_F16_1024

    found: list[str] = []
    notes: list[str] = []
    nums = _vq_numbers(sd, params, where, notes)
    g_keys = [k for k in sd if k.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv."))]
    g_sd = {k: sd[k] for k in g_keys}
    g_sd["quantize.embedding.weight"] = sd["quantize.embedding.weight"]
    found.append(f"{prefix_note}encoder/decoder/quant_conv/post_quant_conv/quantize.embedding: {len(g_sd)} tensors -> "
                 "G (same names)")
    d_cfg, d_sd = _discriminator(sd, nums["img_channels"], found)
    lpips = [k for k in sd if k.startswith("loss.perceptual_loss.")]
    if lpips:
        found.append(f"loss.perceptual_loss.*: {len(lpips)} tensors (taming's LPIPS: VGG-16 trunk and linear heads): "
                     "dropped; ganzoo loads the same LPIPS at training start (model.loss.lpips_weights or the hub "
                     "cache), it is not part of the run's weights")
    used = set(g_sd) | {f"loss.discriminator.{k}" for k in d_sd} | set(lpips)
    rest = sorted(k for k in sd if k not in used and not k.startswith("loss.discriminator."))
    if rest:
        found.append(f"dropped, not part of ganzoo's VQ-GAN: {', '.join(rest)}")
    loss_params = dict((params.get("lossconfig") or {}).get("params") or {})
    loss: dict[str, Any] = {"perceptual_weight": 1.0}  # VQLPIPSWithDiscriminator's default
    loss.update({_LOSS_KEYS[k]: v for k, v in loss_params.items() if k in _LOSS_KEYS})
    G = dict(ch=nums["ch"], ch_mult=nums["ch_mult"], num_res_blocks=nums["num_res_blocks"],
             attn_resolutions=nums["attn_resolutions"], dropout=nums["dropout"], norm_groups=32,
             z_channels=nums["z_channels"], embed_dim=nums["embed_dim"], n_embed=nums["n_embed"], beta=0.25,
             legacy=True, quantizer=dict(ema=False, restart_dead=False))
    ref = IMAGENET_F16_1024
    same = nums["resolution"] == ref["resolution"] and nums["img_channels"] == ref["img_channels"] and all(
        _norm(G[k]) == _norm(v) for k, v in ref["G"].items() if k != "n_embed")
    model = {1024: "vqgan_imagenet_f16_1024", 16384: "vqgan_imagenet_f16_16384"}.get(nums["n_embed"], "vqgan") \
        if same else "vqgan"
    cfg: dict[str, Any] = dict(resolution=nums["resolution"], img_channels=nums["img_channels"], c_dim=0, G=G,
                               loss=loss)
    if d_cfg is not None:
        cfg["D"] = d_cfg
    if base_lr is not None:
        cfg["optim"] = {"base_learning_rate": float(base_lr)}
    notes.append("quantizer: taming's VectorQuantizer2 (beta 0.25, legacy loss form); GroupNorm of 32 groups")
    weights = {"G": g_sd} if not d_sd else {"G": g_sd, "D": d_sd}
    return Converted(model=model, model_config=cfg, weights=weights, found=found, notes=notes,
                     source_info={"config": where, "resolution": nums["resolution"]})


# -- stage 2 ---------------------------------------------------------------------------------------------------------
def _target(cfg: Any) -> str:
    return cfg if isinstance(cfg, str) else str((cfg or {}).get("target", ""))


def _conditioning(params: dict[str, Any], where: str) -> int | None:
    """The number of classes (0: unconditional) of a Net2NetTransformer's cond stage (cond_transformer.py), or
    None for a learned cond stage: a ``VQModel`` (depth, segmentation maps) or the first stage itself."""
    cond = params.get("cond_stage_config")
    target = _target(cond)
    if target in (VQ_TARGET, SEG_TARGET) or cond == "__is_first_stage__":
        return None
    if cond == "__is_unconditional__" or params.get("unconditional"):
        sos = int(params.get("sos_token", 0))
        if sos != 0:
            raise CheckpointError(f"the unconditional transformer starts from sos_token={sos}; ganzoo's shared "
                                  "conditioning uses start token 0")
        return 0
    if target.endswith(".Labelator"):
        return int(((cond.get("params") or {})).get("n_classes", 1000))
    key = params.get("cond_stage_key", "?")
    raise CheckpointError(f"the transformer is conditioned on {key!r} through {target or cond!r} ({where}); "
                          "ganzoo imports a class label (Labelator), nothing (SOSProvider), a VQModel cond stage "
                          "(depth maps, D-RIN), a VQSegmentationModel (label maps, S-FLCKR) or coordinates "
                          "(CoordStage, FacesHQ): scene layouts are not supported")


def _cond_stage(sd: dict[str, torch.Tensor], params: dict[str, Any], where: str) -> Converted:
    """``cond_stage_model.*`` (a VQModel, e.g. D-RIN's depth tokenizer) -> a ``vqgan`` Converted of its own run.
    Its condition image is read like an image (a depth map in [-1, 1], as taming's RIN data normalises it)."""
    if int(params.get("downsample_cond_size", -1)) > -1:
        raise CheckpointError(f"the transformer resizes its condition to downsample_cond_size="
                              f"{params['downsample_cond_size']} before the cond stage ({where}); ganzoo feeds the "
                              "condition at the cond tokenizer's own size")
    c_sd = {k[len("cond_stage_model."):]: v for k, v in sd.items() if k.startswith("cond_stage_model.")}
    if not c_sd:
        raise CheckpointError(f"the config {where} names a VQModel cond stage, but the file holds no "
                              "cond_stage_model.* weights")
    cond = params.get("cond_stage_config")
    c_params = dict(cond.get("params") or {}) if isinstance(cond, dict) else dict(
        (params.get("first_stage_config") or {}).get("params") or {})  # __is_first_stage__: the same network
    conv = convert_vq(c_sd, c_params, where=where, prefix_note="cond_stage_model.")
    conv.weights = {"G": conv.weights["G"]}  # a cond stage carries no discriminator
    if _target(cond) == SEG_TARGET:
        n_labels, channels = int(c_params.get("n_labels", 0)), int(conv.model_config["img_channels"])
        if n_labels != channels:
            raise CheckpointError(f"the VQSegmentationModel of {where} has n_labels={n_labels} but reads {channels} "
                                  "channels (one per label)")
        conv.source_info["labels"] = n_labels
    return conv


def _coord_stage(params: dict[str, Any], where: str) -> dict[str, Any] | None:
    """taming's parameter-free ``CoordStage`` (FacesHQ: the crop's coordinate map) -> ganzoo's ``coord`` stage."""
    cond = params.get("cond_stage_config")
    if not _target(cond).endswith("misc.coord.CoordStage"):
        return None
    if int(params.get("downsample_cond_size", -1)) > -1:
        raise CheckpointError(f"the transformer resizes its coordinates to downsample_cond_size="
                              f"{params['downsample_cond_size']} before the CoordStage ({where}); not supported")
    p = dict(cond.get("params") or {}) if isinstance(cond, dict) else {}
    if "n_embed" not in p or "down_factor" not in p:
        raise CheckpointError(f"the CoordStage of {where} does not name n_embed and down_factor")
    return {"kind": "coord", "n_embed": int(p["n_embed"]), "down_factor": int(p["down_factor"])}


def _cond_stage_weights(conv: Converted) -> dict[str, torch.Tensor]:
    """The prior's ``cond_stage`` module (a TokenizerStage): the frozen tokenizer and empty grid conditions."""
    from ..models.vq_cond import LabelMapStage, TokenizerStage

    g = conv.model_config
    r, ch = int(g["resolution"]), int(g["img_channels"])
    slots = (LabelMapStage if conv.source_info.get("labels") else TokenizerStage).grid_slots
    return {**{f"tokenizer.ae.{k}": v for k, v in conv.weights["G"].items()},
            "grid_cond": torch.zeros(slots, ch, r, r), "grid_filled": torch.zeros((), dtype=torch.long)}


def convert_transformer(sd: dict[str, torch.Tensor], cfg: dict[str, Any] | None, where: str) -> Converted:
    if cfg is None:
        raise CheckpointError("a taming Net2NetTransformer checkpoint needs its config (attention heads and the "
                              "conditioning are not in the weights): keep taming's configs/<time>-project.yaml "
                              "beside it (next to the file, or in ../configs/), or name it <file>.yaml")
    params = dict(cfg.get("params") or {})
    if cfg.get("target") and _target(cfg) != TRANSFORMER_TARGET:
        raise CheckpointError(f"the config {where} describes {_target(cfg)}, not {TRANSFORMER_TARGET}")
    if _target(params.get("permuter_config")) not in ("", "taming.modules.transformer.permuter.Identity") or any(
            k.startswith("permuter.") for k in sd):
        raise CheckpointError("the transformer reads the codes in a permuted order (permuter_config); ganzoo's prior "
                              "reads them in raster order (taming's Identity permuter)")
    coord = _coord_stage(params, where)
    c_dim = 0 if coord else _conditioning(params, where)
    if c_dim is not None and any(k.startswith("cond_stage_model.") for k in sd):
        raise CheckpointError(f"the file holds cond_stage_model.* weights, but the config {where} names no VQModel "
                              "cond stage: keep the checkpoint's own config beside it")
    cond_conv = _cond_stage(sd, params, where) if c_dim is None else None
    tcfg = dict((params.get("transformer_config") or {}).get("params") or {})
    t_sd = {k[len("transformer."):]: v for k, v in sd.items() if k.startswith("transformer.")}
    vocab, n_embd = t_sd["tok_emb.weight"].shape
    block = t_sd["pos_emb"].shape[1]
    n_layer = _count(t_sd, r"blocks\.(\d+)\.")
    for name, got in (("vocab_size", vocab), ("block_size", block), ("n_layer", n_layer), ("n_embd", n_embd)):
        _check_cfg(tcfg, name, int(got), where)
    if "n_head" not in tcfg:
        raise CheckpointError(f"the config {where} does not name transformer_config.params.n_head")
    masks = [k for k in t_sd if k.endswith(".attn.mask")]
    causal = torch.tril(torch.ones(block, block)).view(1, 1, block, block)
    if any(not torch.equal(t_sd[k].float(), causal) for k in masks) or int(tcfg.get("n_unmasked", 0) or 0):
        raise CheckpointError("the transformer's attention masks are not plain causal (n_unmasked > 0); ganzoo's GPT "
                              "is strictly causal")
    prior_sd = {k: v for k, v in t_sd.items() if k not in masks}
    fs_prefix = "first_stage_model."
    fs_sd = {k[len(fs_prefix):]: v for k, v in sd.items() if k.startswith(fs_prefix)}
    if not fs_sd:
        raise CheckpointError("the transformer checkpoint holds no first_stage_model.* (its VQ-GAN tokenizer)")
    fs_cfg = params.get("first_stage_config") or {}
    if _target(fs_cfg) not in ("", VQ_TARGET):
        raise CheckpointError(f"the first stage is {_target(fs_cfg)}; ganzoo imports taming's VQModel tokenizers")
    stage1 = convert_vq(fs_sd, dict(fs_cfg.get("params") or {}), where=where, prefix_note="first_stage_model.")
    n_embed = int(stage1.model_config["G"]["n_embed"])
    cond_vocab = int(cond_conv.model_config["G"]["n_embed"]) if cond_conv is not None else \
        coord["n_embed"] if coord else (c_dim or 0)
    if cond_vocab > vocab or vocab < n_embed:
        raise CheckpointError(f"vocabulary {vocab} does not hold the tokenizer's {n_embed} codes and the "
                              f"{cond_vocab} condition tokens")
    c_dim = c_dim or 0
    prior = dict(vocab_size=int(vocab), block_size=int(block), n_layer=n_layer, n_head=int(tcfg["n_head"]),
                 n_embd=int(n_embd), embd_pdrop=float(tcfg.get("embd_pdrop", 0.0)),
                 resid_pdrop=float(tcfg.get("resid_pdrop", 0.0)), attn_pdrop=float(tcfg.get("attn_pdrop", 0.0)))
    is_cin = (c_dim, prior["vocab_size"], prior["block_size"], n_layer, prior["n_head"], prior["n_embd"]) == \
        (1000, 16384, 256, 48, 24, 1536)
    paper = (prior["vocab_size"], prior["block_size"], n_layer, prior["n_head"], prior["n_embd"]) == \
        (1024, 512, 24, 16, 1024)
    is_drin = paper and cond_conv is not None and not cond_conv.source_info.get("labels") and \
        int(cond_conv.model_config["img_channels"]) == 1  # a one-channel (depth) cond tokenizer
    is_faces = paper and coord == {"kind": "coord", "n_embed": 1024, "down_factor": 16}
    model_cfg: dict[str, Any] = dict(tokenizer=stage1.model, c_dim=c_dim, cond_tokens="shared", prior=prior,
                                     pkeep=float(params.get("pkeep", 1.0)))
    if coord:
        model_cfg["cond_stage"] = coord
    if cfg.get("base_learning_rate") is not None:
        model_cfg["optim"] = {"base_learning_rate": float(cfg["base_learning_rate"])}
    found = [f"transformer.*: {len(prior_sd)} tensors -> prior (minGPT, {n_layer} layers of width {n_embd} in "
             f"{prior['n_head']} heads, vocabulary {vocab}, {block} positions)",
             f"transformer.blocks.*.attn.mask: {len(masks)} constant causal masks, dropped (ganzoo's GPT is causal "
             "by construction)", *stage1.found]
    weights = {"prior": prior_sd, "tokenizer": {f"ae.{k}": v for k, v in stage1.weights["G"].items()}}
    if cond_conv is not None:
        g = cond_conv.model_config
        labels = cond_conv.source_info.get("labels")
        kind = f"a VQSegmentationModel cond stage on {labels} one-hot labels" if labels else "a VQModel cond stage"
        what = (f"{kind} ({params.get('cond_stage_key', '?')!r}; {g['img_channels']} channel(s), "
                f"{g['resolution']}x{g['resolution']}, {g['G']['n_embed']} codes)")
        cond = (f"{what}: its codes come first, token t is code t of the shared vocabulary; ganzoo generate --mode "
                "condition --image " + ("<label map PNG: pixel value = label>" if labels else "<condition map>"))
        found += cond_conv.found
        weights["cond_stage"] = _cond_stage_weights(cond_conv)
        if labels:
            model_cfg["cond_input"] = "labels"
    elif coord:
        cond = (f"CoordStage (n_embed {coord['n_embed']}, down_factor {coord['down_factor']}) on the crop's coordinate "
                "map, the whole frame by default -> model.cond_stage={kind: coord}; token t is token t of the "
                "shared vocabulary")
    elif c_dim == 0:
        cond = "unconditional (SOSProvider, start token 0)"
    else:
        cond = (f"class-conditional (Labelator, {c_dim} classes; class c is token c, cond_stage_key "
                f"{params.get('cond_stage_key', 'class_label')!r})")
    notes = [f"conditioning: {cond} -> cond_tokens=shared"]
    stage1.weights = {"G": stage1.weights["G"]}  # a transformer's first stage carries no discriminator
    model = "vqgan_prior_imagenet_cin" if is_cin else "vqgan_prior_drin" if is_drin else \
        "vqgan_prior_faceshq" if is_faces else "vqgan_prior"
    return Converted(model=model, model_config=model_cfg, weights=weights, found=found, not_found=[], notes=notes,
                     stage1=stage1, cond_stage=cond_conv, source_info={"config": where})


@register_format("taming", description="CompVis/taming-transformers Lightning .ckpt (VQModel, Net2NetTransformer)",
                 sniff=sniff)
def convert(path: Path) -> Converted:
    """Read a taming ``VQModel`` or ``Net2NetTransformer`` checkpoint (and its config, when beside it)."""
    path = Path(path)
    sd, cfg, where, info = _load(path)
    if any(k.startswith("transformer.tok_emb") for k in sd):
        conv = convert_transformer(sd, cfg, where)
    elif "encoder.conv_in.weight" in sd:
        if cfg is not None and cfg.get("target") and _target(cfg) != VQ_TARGET:
            raise CheckpointError(f"the config {where} describes {_target(cfg)}, but the weights are a VQModel's; "
                                  f"ganzoo imports {VQ_TARGET}")
        cfg = cfg or {}
        conv = convert_vq(sd, dict(cfg.get("params") or {}), where=where if cfg else "none",
                          base_lr=cfg.get("base_learning_rate"))
    else:
        raise CheckpointError(f"{str(path)!r} holds neither a taming VQModel (encoder.conv_in.weight, "
                              "quantize.embedding.weight) nor a Net2NetTransformer (transformer.tok_emb.weight, "
                              "first_stage_model.*)")
    conv.source_info.update({k: v for k, v in info.items() if v is not None})
    if cfg is None and where == "hyper_parameters":
        conv.source_info["config"] = "none"
    return conv
