"""thuanz123/enhancing-transformers ViT-VQGAN Lightning checkpoints (``.ckpt``) -> ``vit_vqgan`` runs.

The file is a PyTorch Lightning checkpoint of ``enhancing.modules.stage1.vitvqgan.ViTVQ`` (or its bare
``state_dict``), read with :func:`ganzoo.pretrained.safe_pickle.load_torch` (Lightning / omegaconf objects become
inert records). How each part maps onto :class:`ganzoo.models.vit_vqgan.ViTVQAutoencoder` (G), see
docs/pretrained/enhancing.md for the whole table:

* ``encoder.to_patch_embedding.0`` -> ``encoder.patch_embed``; ``encoder.transformer.layers.N`` (``PreNorm``
  attention without qkv bias, ``PreNorm`` tanh ``FeedForward``; ``enhancing/modules/stage1/layers.py``) -> timm
  blocks ``encoder.blocks.N`` built with ``qkv_bias=False, mlp_act="tanh", norm_eps=1e-5``; the final
  ``transformer.norm`` -> ``encoder.norm``; the encoder has no output head (``head="none"``);
* ``pre_quant`` / ``post_quant`` (the factorisation, ``vitvqgan.py`` ``ViTVQ.encode`` / ``decode``) ->
  ``quantizer.proj_in`` / ``proj_out``; ``quantizer.embedding`` (l2-normalised lookup, ``quantizers.py``
  ``VectorQuantizer.quantize``) -> ``quantizer.embedding`` (``l2_normalize=True, legacy=False``);
* ``decoder.to_pixel.1`` (``ConvTranspose2d`` with kernel = stride = patch) -> ``decoder.head.0``, one linear map
  per token (``head="linear"``), rows ordered (patch row, patch column, channel);
* the sin-cos position embeddings (``en_pos_embedding`` / ``de_pos_embedding``, fixed) are compared with ganzoo's
  ``sincos_2d``: equal -> ``pos_embed="sincos"``, otherwise they are kept as ``learned`` embeddings;
* enhancing's images are in [0, 1] (``T.ToTensor()``), ganzoo's in [-1, 1]: the patch embedding takes ``x / 2 + 1/2``
  (weight halved, bias + half the weight sum) and the pixel head gives ``2 y - 1``; the discriminator's FromRGB
  likewise;
* ``loss.discriminator`` (rosinality's StyleGAN2 discriminator, ``enhancing/losses/layers.py``
  ``StyleDiscriminator``) -> ganzoo's StyleGAN2 ``D`` (same equalized convs, [1, 3, 3, 1] blur, residual blocks,
  minibatch stddev); ``loss.perceptual_loss`` (LPIPS) is dropped.

Attention heads are not stored in the file: they are ``inner_width / 64``, the official ``dim_head`` default that
every published config keeps.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.stylegan2_generator import channels_per_resolution
from ..models.vit_vqgan import sincos_2d
from .base import Converted, register_format
from .safe_pickle import load_torch, pickle_head

__all__ = ["convert", "sniff", "FORMAT"]

FORMAT = "enhancing"
RECORDS = ("pytorch_lightning.*", "lightning.*", "lightning_fabric.*", "omegaconf.*", "argparse.Namespace",
           "typing.*", "pathlib.*")
ALLOW = {("__builtin__", "long"): int}  # omegaconf pickles name int by its Python 2 name
DIM_HEAD = 64  # enhancing/modules/stage1/layers.py: ViTEncoder / ViTDecoder(dim_head=64)
NORM_EPS = 1e-5  # nn.LayerNorm's default, used by the official PreNorm
BLUR = torch.tensor([1.0, 3.0, 3.0, 1.0])
REQUIRED = ("encoder.to_patch_embedding.0.weight", "encoder.to_patch_embedding.0.bias", "encoder.en_pos_embedding",
            "decoder.de_pos_embedding", "decoder.to_pixel.1.weight", "decoder.to_pixel.1.bias",
            "quantizer.embedding.weight", "pre_quant.weight", "pre_quant.bias", "post_quant.weight", "post_quant.bias")
# Table 1 sizes as enhancing's configs/imagenet_vitvq_{small,base}.yaml give them (256x256, patch 8, 8192 x 32).
PRESETS = {"vit_vqgan_small": (512, 8, 8, 2048), "vit_vqgan_base": (768, 12, 12, 3072)}


# -- reading ---------------------------------------------------------------------------------------------------------
def sniff(path: Path) -> bool:
    """A torch file whose pickle names ViTVQ's encoder position embedding, pre-quant layer and pixel layer."""
    path = Path(path)
    if not path.is_file():
        return False
    head = pickle_head(path)
    return all(k in head for k in (b"encoder.en_pos_embedding", b"pre_quant.weight", b"decoder.to_pixel.1.weight"))


def _load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    obj = load_torch(path, allow=ALLOW, records=RECORDS)
    where = str(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        sd, info = obj["state_dict"], {k: obj[k] for k in ("epoch", "global_step", "pytorch-lightning_version")
                                       if isinstance(obj.get(k), (int, str))}
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd, info = obj, {}
    else:
        raise CheckpointError(f"{where}: expected an enhancing-transformers ViTVQ checkpoint (a Lightning .ckpt "
                              f"with a 'state_dict', or that state dict), found {type(obj).__name__}")
    sd = {str(k): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    missing = [k for k in REQUIRED if k not in sd]
    if missing:
        raise CheckpointError(f"{where}: not an enhancing-transformers ViTVQ (ViT-VQGAN) checkpoint: expected "
                              f"{', '.join(repr(k) for k in missing)}; found keys such as {sorted(sd)[:5]}")
    return sd, info


def _get(sd: dict[str, torch.Tensor], key: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    if key not in sd:
        raise CheckpointError(f"the ViTVQ checkpoint lacks {key!r}: expected it beside the other layers of its stack")
    t = sd[key].float()
    if shape is not None and tuple(t.shape) != shape:
        raise CheckpointError(f"{key!r} has shape {tuple(t.shape)}, expected {shape}")
    return t


# -- the ViT stacks --------------------------------------------------------------------------------------------------
def _stack(sd: dict[str, torch.Tensor], part: str, dim: int, notes: list[str]) -> tuple[dict[str, Any], dict]:
    """``{part}.transformer`` -> (ViT numbers, ganzoo ``blocks.*`` / ``norm.*`` tensors)."""
    pre = f"{part}.transformer.layers."
    depth = len({int(m.group(1)) for k in sd if (m := re.match(re.escape(pre) + r"(\d+)\.", k))})
    if depth == 0:
        raise CheckpointError(f"the ViTVQ checkpoint has no {pre}N blocks")
    inner = _get(sd, f"{pre}0.0.fn.to_qkv.weight").shape[0] // 3
    mlp = _get(sd, f"{pre}0.1.fn.net.0.weight").shape[0]
    if inner != dim or inner % DIM_HEAD:
        raise CheckpointError(f"{part}: attention width {inner} (heads x dim_head) differs from the model width {dim} "
                              f"or is not a multiple of dim_head={DIM_HEAD}; ganzoo's blocks need heads x dim_head = "
                              "width")
    out: dict[str, torch.Tensor] = {}
    for i in range(depth):
        src, dst = f"{pre}{i}.", f"blocks.{i}."
        out[dst + "norm1.weight"] = _get(sd, src + "0.norm.weight", (dim,))
        out[dst + "norm1.bias"] = _get(sd, src + "0.norm.bias", (dim,))
        out[dst + "attn.qkv.weight"] = _get(sd, src + "0.fn.to_qkv.weight", (3 * inner, dim))
        if src + "0.fn.to_out.weight" in sd:
            out[dst + "attn.proj.weight"] = _get(sd, src + "0.fn.to_out.weight", (dim, inner))
            out[dst + "attn.proj.bias"] = _get(sd, src + "0.fn.to_out.bias", (dim,))
        else:  # layers.py Attention: to_out is Identity when heads == 1 and dim_head == dim
            out[dst + "attn.proj.weight"], out[dst + "attn.proj.bias"] = torch.eye(dim), torch.zeros(dim)
            notes.append(f"{part} block {i}: no attention output layer (one head of the full width): identity proj")
        out[dst + "norm2.weight"] = _get(sd, src + "1.norm.weight", (dim,))
        out[dst + "norm2.bias"] = _get(sd, src + "1.norm.bias", (dim,))
        out[dst + "mlp.fc1.weight"] = _get(sd, src + "1.fn.net.0.weight", (mlp, dim))
        out[dst + "mlp.fc1.bias"] = _get(sd, src + "1.fn.net.0.bias", (mlp,))
        out[dst + "mlp.fc2.weight"] = _get(sd, src + "1.fn.net.2.weight", (dim, mlp))
        out[dst + "mlp.fc2.bias"] = _get(sd, src + "1.fn.net.2.bias", (dim,))
    out["norm.weight"] = _get(sd, f"{part}.transformer.norm.weight", (dim,))
    out["norm.bias"] = _get(sd, f"{part}.transformer.norm.bias", (dim,))
    vit = dict(dim=dim, depth=depth, heads=inner // DIM_HEAD, mlp_dim=mlp, mlp_act="tanh", qkv_bias=False,
               norm_eps=NORM_EPS)
    return vit, out


def _vit_text(vit: dict[str, Any]) -> str:
    return (f"{vit['depth']} block{'s' if vit['depth'] != 1 else ''}, width {vit['dim']}, {vit['heads']} "
            f"head{'s' if vit['heads'] != 1 else ''}")


def _generator(sd: dict[str, torch.Tensor], found: list[str], notes: list[str]) -> tuple[dict[str, Any], dict]:
    patch = _get(sd, "encoder.to_patch_embedding.0.weight")
    dim_e, channels, p, p2 = patch.shape
    pix = _get(sd, "decoder.to_pixel.1.weight")
    dim_d = pix.shape[0]
    if p != p2 or tuple(pix.shape[1:]) != (channels, p, p):
        raise CheckpointError(f"patch layers disagree: embedding {tuple(patch.shape)}, to_pixel {tuple(pix.shape)}")
    tokens = _get(sd, "encoder.en_pos_embedding").shape[1]
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise CheckpointError(f"encoder.en_pos_embedding has {tokens} positions, not a square grid")
    codes = _get(sd, "quantizer.embedding.weight")
    n_embed, lookup = codes.shape
    pos = {part: _get(sd, f"{part}.{key}", (1, tokens, dim))
           for part, key, dim in (("encoder", "en_pos_embedding", dim_e), ("decoder", "de_pos_embedding", dim_d))}
    fixed = all(dim % 4 == 0 and torch.allclose(pos[part][0], sincos_2d(dim, grid, grid), atol=1e-6)
                for part, dim in (("encoder", dim_e), ("decoder", dim_d)))
    enc_vit, enc = _stack(sd, "encoder", dim_e, notes)
    dec_vit, dec = _stack(sd, "decoder", dim_d, notes)
    if lookup >= dim_e:
        raise CheckpointError(f"codes of {lookup} dims are not smaller than the encoder width {dim_e}: ganzoo's "
                              "quantizer holds pre_quant / post_quant only as a factorised (lower-dim) lookup")

    # [0, 1] images (enhancing) -> [-1, 1] (ganzoo): x01 = x / 2 + 1 / 2 folded into the patch embedding.
    G: dict[str, torch.Tensor] = {"encoder.patch_embed.weight": patch / 2,
                                  "encoder.patch_embed.bias": _get(sd, "encoder.to_patch_embedding.0.bias", (dim_e,))
                                  + patch.sum(dim=(1, 2, 3)) / 2}
    G.update({f"encoder.{k}": v for k, v in enc.items()})
    G["quantizer.embedding.weight"] = codes
    G["quantizer.proj_in.weight"] = _get(sd, "pre_quant.weight", (lookup, dim_e))
    G["quantizer.proj_in.bias"] = _get(sd, "pre_quant.bias", (lookup,))
    post_w, post_b = _get(sd, "post_quant.weight", (dim_d, lookup)), _get(sd, "post_quant.bias", (dim_d,))
    if dim_d == dim_e:
        G["quantizer.proj_out.weight"], G["quantizer.proj_out.bias"] = post_w, post_b
    else:  # ganzoo: lookup -> encoder width -> decoder width; the first map copies, the second is post_quant
        G["quantizer.proj_out.weight"] = torch.eye(dim_e, lookup)
        G["quantizer.proj_out.bias"] = torch.zeros(dim_e)
        G["decoder.proj_in.weight"] = torch.cat([post_w, torch.zeros(dim_d, dim_e - lookup)], dim=1)
        G["decoder.proj_in.bias"] = post_b
        notes.append(f"decoder width {dim_d} != encoder width {dim_e}: post_quant became quantizer.proj_out (a copy "
                     "into the first dims) followed by decoder.proj_in (post_quant padded with zero columns)")
    G.update({f"decoder.{k}": v for k, v in dec.items()})
    # to_pixel: out[c, a, b] of a token = sum_d x[d] W[d, c, a, b] + bias[c]; ganzoo's rows are (a, b, c).
    lin_w = pix.permute(2, 3, 1, 0).reshape(p * p * channels, dim_d)
    lin_b = _get(sd, "decoder.to_pixel.1.bias", (channels,)).repeat(p * p)
    G["decoder.head.0.weight"], G["decoder.head.0.bias"] = 2 * lin_w, 2 * lin_b - 1  # [0, 1] -> [-1, 1]
    if not fixed:
        G["encoder.pos.weight"], G["decoder.pos.weight"] = pos["encoder"], pos["decoder"]
        notes.append("position embeddings differ from the 2-D sin-cos code: kept as learned embeddings")
    notes.append("images: enhancing works in [0, 1], ganzoo in [-1, 1]; the patch embedding and the pixel layer "
                 "(and D's FromRGB) absorb the change (weights halved / doubled, biases shifted)")
    notes.append(f"attention heads = width / {DIM_HEAD} (the official dim_head default; heads are not in the file)")
    found.append(f"G: ViT encoder ({_vit_text(enc_vit)}), decoder ({_vit_text(dec_vit)}), {p}x{p} patches, "
                 f"{n_embed} codes of {lookup} dims (l2-normalised)")
    cfg = dict(
        patch_size=int(p), pos_embed="sincos" if fixed else "learned",
        encoder=dict(enc_vit, head="none"), decoder=dict(dec_vit, head="linear"),
        n_embed=int(n_embed), embed_dim=int(dim_e), lookup_dim=int(lookup), l2_normalize=True, beta=0.25,
        quantizer={"legacy": False},
    )
    return dict(resolution=int(grid * p), img_channels=int(channels), G=cfg), G


# -- the discriminator -----------------------------------------------------------------------------------------------
def _discriminator(sd: dict[str, torch.Tensor], resolution: int) -> tuple[dict[str, Any], dict] | str:
    """``loss.discriminator.*`` (rosinality's StyleGAN2 D) -> (D config, ganzoo D tensors), or why not."""
    pre = "loss.discriminator."
    if pre + "blocks.0.0.weight" not in sd:
        return "no loss.discriminator (StyleDiscriminator) in the file"
    n_blocks = len({int(m.group(1)) for k in sd if (m := re.match(re.escape(pre) + r"blocks\.(\d+)\.conv1", k))})
    size = 4 * 2**n_blocks
    if size != resolution:
        return f"the file's StyleDiscriminator is for {size}x{size} images, the autoencoder's for {resolution}"
    blur = (BLUR[:, None] * BLUR[None, :]) / BLUR.sum() ** 2
    ch = {size: _get(sd, pre + "blocks.0.0.weight").shape[0]}
    D: dict[str, torch.Tensor] = {}
    rgb = _get(sd, pre + "blocks.0.0.weight")
    gain = 1 / math.sqrt(rgb[0].numel())  # EqualConv2d scale of the 1x1 FromRGB
    D[f"blocks.b{size}.fromrgb.conv.weight"] = rgb / 2  # [0, 1] -> [-1, 1] images, as the encoder
    D[f"blocks.b{size}.fromrgb.conv.bias"] = _get(sd, pre + "blocks.0.1.bias") + gain * rgb.sum(dim=(1, 2, 3)) / 2
    res = size
    for i in range(1, n_blocks + 1):
        src, dst = f"{pre}blocks.{i}.", f"blocks.b{res}."
        for k in ("conv2.0.kernel", "skip.0.kernel"):
            if src + k in sd and not torch.allclose(sd[src + k].float(), blur, atol=1e-6):
                return f"{src + k} is not the [1, 3, 3, 1] blur that ganzoo's D uses"
        D[dst + "conv0.conv.weight"] = _get(sd, src + "conv1.0.weight")
        D[dst + "conv0.conv.bias"] = _get(sd, src + "conv1.1.bias")
        D[dst + "conv1.conv.weight"] = _get(sd, src + "conv2.1.weight")
        D[dst + "conv1.conv.bias"] = _get(sd, src + "conv2.2.bias")
        D[dst + "skip.conv.weight"] = _get(sd, src + "skip.1.weight")
        res //= 2
        ch[res] = D[dst + "conv1.conv.weight"].shape[0]
    D["epilogue.conv.conv.weight"] = _get(sd, pre + "final_conv.0.weight")
    D["epilogue.conv.conv.bias"] = _get(sd, pre + "final_conv.1.bias")
    for src, dst in (("final_linear.0", "epilogue.fc"), ("final_linear.1", "epilogue.out")):
        D[dst + ".weight"], D[dst + ".bias"] = _get(sd, f"{pre}{src}.weight"), _get(sd, f"{pre}{src}.bias")
    cmax = max(ch.values())
    below = [r for r in sorted(ch, reverse=True) if ch[r] < cmax]
    base = ch[below[0]] * below[0] if below else cmax * size
    if {r: c for r, c in channels_per_resolution(size, base, cmax).items() if r in ch} != ch:
        return f"its channels per resolution {ch} do not follow min(channel_base / res, channel_max)"
    return dict(channel_base=int(base), channel_max=int(cmax), mbstd_group_size=4, mbstd_num_channels=1), D


# -- the format ------------------------------------------------------------------------------------------------------
def _preset(model_cfg: dict[str, Any]) -> str:
    G = model_cfg["G"]
    if (model_cfg["resolution"], model_cfg["img_channels"], G["patch_size"], G["n_embed"], G["lookup_dim"]) == (
            256, 3, 8, 8192, 32):
        for name, (dim, depth, heads, mlp) in PRESETS.items():
            want = dict(dim=dim, depth=depth, heads=heads, mlp_dim=mlp)
            if all({k: G[part][k] for k in want} == want for part in ("encoder", "decoder")):
                return name
    return "vit_vqgan"


@register_format(FORMAT, description="thuanz123/enhancing-transformers ViT-VQGAN Lightning .ckpt (ViTVQ)",
                 sniff=sniff)
def convert(path: Path) -> Converted:
    """Convert an enhancing-transformers ``ViTVQ`` checkpoint (see the module docstring)."""
    path = Path(path)
    sd, info = _load(path)
    found: list[str] = []
    not_found: list[str] = []
    notes: list[str] = []
    model_cfg, G = _generator(sd, found, notes)
    weights = {"G": G}
    disc = _discriminator(sd, model_cfg["resolution"])
    if isinstance(disc, str):
        not_found.append(f"D: {disc}; a freshly initialised StyleGAN2 D is built")
    else:
        model_cfg["D"], weights["D"] = disc
        found.append(f"D: StyleGAN2 discriminator (rosinality layout), channel_base {disc[0]['channel_base']}, "
                     f"channel_max {disc[0]['channel_max']}")
        notes.append("D: the official minibatch-stddev group is batch // (batch // min(batch, 4)); ganzoo's is "
                     "min(batch, 4): the same for batches below 4 or divisible by 4")
    lpips = sorted(k for k in sd if k.startswith("loss.perceptual_loss."))
    if lpips:
        found.append(f"loss.perceptual_loss: LPIPS ({len(lpips)} tensors), dropped: ganzoo loads its own LPIPS when "
                     "training starts")
    other = sorted(k for k in sd if k.startswith("loss.") and not k.startswith(("loss.perceptual_loss.",
                                                                                 "loss.discriminator.")))
    if other:
        found.append(f"other loss tensors dropped: {', '.join(other[:5])}{' ...' if len(other) > 5 else ''}")
    notes.append("the quantizer's straight-through gradient: the official passes it to the un-normalised projection, "
                 "ganzoo through the l2-normalisation (training only; outputs are the same)")
    model = _preset(model_cfg)
    if model == "vit_vqgan":  # enhancing's configs: L2 1.0, perceptual 0.1, adversarial 0.1, no logit-Laplace
        model_cfg["loss"] = {"logit_laplace_weight": 0.0, "disc_start": 0}
    else:
        model_cfg["loss"] = {"logit_laplace_weight": 0.0}
    return Converted(model=model, model_config=model_cfg, weights=weights, found=found, not_found=not_found,
                     notes=notes, source_info={"format": FORMAT, **info})
