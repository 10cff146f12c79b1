"""StyleGAN (NVlabs/stylegan) and ProGAN (tkarras/progressive_growing_of_gans) TF pickles -> ``stylegan`` / ``progan``.

The rules come from the official TensorFlow code: ``training/networks_stylegan.py`` (``G_style``, ``G_mapping``,
``G_synthesis``, ``D_basic``) and ProGAN's ``networks.py`` (``G_paper``, ``D_paper``):

* every weight is stored as drawn (``N(0, 1)``, or ``N(0, 1) / lrmul`` in the mapping network) and scaled at run
  time by ``gain * lrmul / sqrt(fan_in)`` (``get_weight`` with ``use_wscale=True``): ganzoo's equalized layers
  store the same numbers with the same gains (sqrt(2) for convs and dense layers, 1 for ToRGB, StyleMod and the
  output layer, sqrt(2)/4 for ProGAN's 4x4 dense), so values copy unchanged; biases too (ProGAN has no lrmul,
  StyleGAN's mapping multiplies its biases by lrmul at run time as ganzoo does);
* kernels are HWIO (``[k, k, in, out]``) -> OIHW; dense weights ``[in, out]`` are transposed. ProGAN's fused
  up-sampling conv stores ``[k, k, out, in]`` (``upscale2d_conv2d``), so it is transposed (2, 3, 0, 1) instead;
* a fused up-sampling conv (``upscale2d_conv2d`` with ``fused_scale``: always in ProGAN by default, from 128x128
  up in StyleGAN's ``'auto'``) is ``conv2d_transpose`` of the box-summed kernel *unflipped*, which is the
  separate "nearest up-sample + conv" with the kernel flipped in both spatial axes; ganzoo's ``UpConv2d``
  computes the separate form (its fused path is exactly equal to it), so those kernels are flipped. The fused
  down-sampling conv (``conv2d_downscale2d``) is a plain strided correlation: no flip;
* StyleGAN's ``StyleMod`` computes ``x * (style_s + 1) + style_b``; ganzoo's AdaIN stores the 1 in the scale
  half of the bias; ``Noise/weight`` (one strength per channel) and ``noise<i>`` (layer ``i``: 2 per
  resolution from 4x4) -> each StyleLayer's noise; ``dlatent_avg`` -> ``w_avg``; ``ToRGB_lod<l>`` and
  ``FromRGB_lod<l>`` -> the ``to_rgb`` / ``from_rgb`` of level ``log2(resolution) - 2 - l``;
* ``lod`` (the progressive-growing level, 0 = fully grown) is dropped: ganzoo picks the level per call.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .base import Converted, require
from .nvlabs_tf import TFNet, to_torch

__all__ = ["convert_stylegan", "convert_progan", "fused_up"]



def fused_up(fused_scale: Any, res: int) -> bool:
    """Whether the TF code ran the up-sampling conv to ``res`` fused (``'auto'``: from 128x128 up)."""
    return res >= 128 if fused_scale == "auto" else bool(fused_scale)


def _oihw(w: np.ndarray, flip: bool = False) -> torch.Tensor:
    w = w.transpose(3, 2, 0, 1)
    return to_torch(w[:, :, ::-1, ::-1] if flip else w)


def _check(kw: dict[str, Any], who: str, expect: dict[str, Any]) -> None:
    for key, want in expect.items():
        got = kw.get(key, want)
        require(got == want, f"{who}: {key}={got!r} is not supported by ganzoo's model (official default {want!r})")


def _levels(res: int) -> int:
    require(res >= 8 and 2 ** int(math.log2(res)) == res, f"resolution {res} is not a power of two >= 8")
    return int(math.log2(res)) - 1


def _d_weights(d: TFNet, res: int) -> dict[str, torch.Tensor]:
    """D_basic / D_paper -> ganzoo ProGANDiscriminator (StyleGAN's D is the same class with a blur)."""
    used: set[str] = set()
    take = lambda name: d.take(name, used)  # noqa: E731
    sd: dict[str, torch.Tensor] = {}
    top = int(math.log2(res))
    for r_log2 in range(2, top + 1):
        level, r = r_log2 - 2, 2**r_log2
        sd[f"from_rgb.{level}.conv.weight"] = _oihw(take(f"FromRGB_lod{top - r_log2}/weight"))
        sd[f"from_rgb.{level}.conv.bias"] = to_torch(take(f"FromRGB_lod{top - r_log2}/bias"))
        if r == 4:
            sd["blocks.0.conv.weight"] = _oihw(take("4x4/Conv/weight"))
            sd["blocks.0.conv.bias"] = to_torch(take("4x4/Conv/bias"))
            for i in (0, 1):
                sd[f"blocks.0.dense{i}.weight"] = to_torch(take(f"4x4/Dense{i}/weight").T)
                sd[f"blocks.0.dense{i}.bias"] = to_torch(take(f"4x4/Dense{i}/bias"))
            continue
        sd[f"blocks.{level}.conv0.weight"] = _oihw(take(f"{r}x{r}/Conv0/weight"))
        sd[f"blocks.{level}.conv0.bias"] = to_torch(take(f"{r}x{r}/Conv0/bias"))
        down = f"{r}x{r}/Conv1_down" if f"{r}x{r}/Conv1_down/weight" in d.params else f"{r}x{r}/Conv1"
        sd[f"blocks.{level}.conv1.weight"] = _oihw(take(f"{down}/weight"))
        sd[f"blocks.{level}.conv1.bias"] = to_torch(take(f"{down}/bias"))
    d.check_all_used(used, ignored=("lod",))
    return sd


def _stylegan_g(g: TFNet, res: int, fused_scale: Any) -> dict[str, torch.Tensor]:
    used: set[str] = set()
    take = lambda name: g.take(name, used)  # noqa: E731
    sd: dict[str, torch.Tensor] = {"w_avg": to_torch(take("dlatent_avg"))}
    if "mapping/LabelConcat/weight" in g.params:
        sd["mapping_network.embed.weight"] = to_torch(take("mapping/LabelConcat/weight"))  # one-hot @ W = lookup
    i = 0
    while f"mapping/Dense{i}/weight" in g.params:
        sd[f"mapping_network.layers.{i}.weight"] = to_torch(take(f"mapping/Dense{i}/weight").T)
        sd[f"mapping_network.layers.{i}.bias"] = to_torch(take(f"mapping/Dense{i}/bias"))
        i += 1

    def epilogue(dst: str, src: str, noise_idx: int) -> None:
        sd[f"{dst}.bias"] = to_torch(take(f"{src}/bias"))
        sd[f"{dst}.noise.strength"] = to_torch(take(f"{src}/Noise/weight"))
        sd[f"{dst}.noise.noise_const"] = to_torch(take(f"synthesis/noise{noise_idx}"))
        style_b = take(f"{src}/StyleMod/bias").copy()
        style_b[: style_b.shape[0] // 2] += 1.0  # x * (s + 1) + b: ganzoo keeps the 1 in the bias
        sd[f"{dst}.adain.affine.weight"] = to_torch(take(f"{src}/StyleMod/weight").T)
        sd[f"{dst}.adain.affine.bias"] = to_torch(style_b)

    top = int(math.log2(res))
    sd["synthesis.blocks.0.const"] = to_torch(take("synthesis/4x4/Const/const"))
    epilogue("synthesis.blocks.0.layer0", "synthesis/4x4/Const", 0)
    sd["synthesis.blocks.0.conv.weight"] = _oihw(take("synthesis/4x4/Conv/weight"))
    epilogue("synthesis.blocks.0.layer1", "synthesis/4x4/Conv", 1)
    for r_log2 in range(3, top + 1):
        level, r, s = r_log2 - 2, 2**r_log2, f"synthesis/{2**r_log2}x{2**r_log2}"
        flip = fused_up(fused_scale, r)
        sd[f"synthesis.blocks.{level}.conv0.weight"] = _oihw(take(f"{s}/Conv0_up/weight"), flip=flip)
        epilogue(f"synthesis.blocks.{level}.layer0", f"{s}/Conv0_up", 2 * r_log2 - 4)
        sd[f"synthesis.blocks.{level}.conv1.weight"] = _oihw(take(f"{s}/Conv1/weight"))
        epilogue(f"synthesis.blocks.{level}.layer1", f"{s}/Conv1", 2 * r_log2 - 3)
    for r_log2 in range(2, top + 1):
        sd[f"synthesis.to_rgb.{r_log2 - 2}.weight"] = _oihw(take(f"synthesis/ToRGB_lod{top - r_log2}/weight"))
        sd[f"synthesis.to_rgb.{r_log2 - 2}.bias"] = to_torch(take(f"synthesis/ToRGB_lod{top - r_log2}/bias"))
    g.check_all_used(used, ignored=("lod",))
    return sd


def _common_checks(kw: dict[str, Any], who: str) -> None:
    _check(kw, who, {"fmap_decay": 1.0, "use_wscale": True, "dtype": "float32"})


def convert_stylegan(g: TFNet, d: TFNet, gs: TFNet) -> Converted:
    """``(G, D, Gs)`` of NVlabs/stylegan (``G_style`` + ``D_basic``) -> ganzoo ``stylegan``."""
    kw, dkw = gs.merged_kwargs(), dict(d.kwargs)
    who = f"generator {gs.name!r}"
    _common_checks(kw, who)
    _check(kw, who, {"use_styles": True, "const_input_layer": True, "use_noise": True, "nonlinearity": "lrelu",
                     "use_pixel_norm": False, "use_instance_norm": True, "normalize_latents": True,
                     "mapping_nonlinearity": "lrelu"})
    require(d.func == "D_basic", f"discriminator {d.name!r} is built by {d.func!r}; expected D_basic")
    _common_checks(dkw, f"discriminator {d.name!r}")
    _check(dkw, f"discriminator {d.name!r}", {"nonlinearity": "lrelu"})
    res = int(kw.get("resolution", 1024))
    _levels(res)
    c_dim = int(kw.get("label_size", 0))
    require(int(dkw.get("label_size", 0)) == c_dim and int(dkw.get("resolution", 32)) == res,
             "G and D of the file disagree on resolution or label_size")
    fused_g, fused_d = kw.get("fused_scale", "auto"), dkw.get("fused_scale", "auto")
    blur_g, blur_d = kw.get("blur_filter", [1, 2, 1]), dkw.get("blur_filter", [1, 2, 1])
    gs_sd, g_sd = _stylegan_g(gs, res, fused_g), _stylegan_g(g, res, g.merged_kwargs().get("fused_scale", "auto"))
    d_sd = _d_weights(d, res)
    w_dim = int(gs.params["dlatent_avg"].shape[0])
    mapping_layers = sum(1 for k in gs.params if k.startswith("mapping/Dense") and k.endswith("/weight"))
    model_config: dict[str, Any] = dict(
        resolution=res, img_channels=int(kw.get("num_channels", 3)), c_dim=c_dim,
        G=dict(z_dim=int(kw.get("latent_size", 512)), w_dim=w_dim, mapping_layers=mapping_layers,
               mapping_fmaps=int(kw.get("mapping_fmaps", 512)), mapping_lr_mul=float(kw.get("mapping_lrmul", 0.01)),
               w_avg_beta=float(kw.get("dlatent_avg_beta", 0.995)), fmap_base=int(kw.get("fmap_base", 8192)),
               fmap_max=int(kw.get("fmap_max", 512)), fused_scale=fused_g, blur_filter=blur_g),
        D=dict(fmap_base=int(dkw.get("fmap_base", 8192)), fmap_max=int(dkw.get("fmap_max", 512)),
               mbstd_group_size=int(dkw.get("mbstd_group_size", 4)),
               mbstd_num_features=int(dkw.get("mbstd_num_features", 1)), fused_scale=fused_d, blur_filter=blur_d),
    )
    flipped = [2**r for r in range(3, int(math.log2(res)) + 1) if fused_up(fused_g, 2**r)]
    notes = ["kernels HWIO -> OIHW; StyleMod scale bias + 1 (TF adds it at run time); dlatent_avg -> w_avg",
             "fused up-sampling convs (TF conv2d_transpose, unflipped) flipped spatially at "
             f"{flipped or 'no'} resolution(s) so that ganzoo's UpConv2d computes the same function",
             "lod (progressive-growing level) dropped: the network is used fully grown (level = max)"]
    found = [f"G ({g.func}): {len(g.params)} variables -> G", f"Gs: {len(gs.params)} variables -> EMA copy of G",
             f"D ({d.func}): {len(d.params)} variables -> D"]
    return Converted(model="stylegan", model_config=model_config, weights={"G": g_sd, "D": d_sd}, ema={"G": gs_sd},
                     found=found, notes=notes, source_info=_info("StyleGAN (TensorFlow)", res, kw, dkw, gs))


def _progan_g(g: TFNet, res: int) -> dict[str, torch.Tensor]:
    used: set[str] = set()
    take = lambda name: g.take(name, used)  # noqa: E731
    top = int(math.log2(res))
    sd = {"blocks.0.dense.weight": to_torch(take("4x4/Dense/weight").T),
          "blocks.0.bias": to_torch(take("4x4/Dense/bias")),
          "blocks.0.conv.weight": _oihw(take("4x4/Conv/weight")), "blocks.0.conv.bias": to_torch(take("4x4/Conv/bias"))}
    for r_log2 in range(3, top + 1):
        level, s = r_log2 - 2, f"{2**r_log2}x{2**r_log2}"
        if f"{s}/Conv0_up/weight" in g.params:  # upscale2d_conv2d: [k, k, out, in], conv2d_transpose (unflipped)
            w = take(f"{s}/Conv0_up/weight").transpose(2, 3, 0, 1)[:, :, ::-1, ::-1]
            sd[f"blocks.{level}.conv0.weight"] = to_torch(w)
            sd[f"blocks.{level}.conv0.bias"] = to_torch(take(f"{s}/Conv0_up/bias"))
        else:  # fused_scale=False: upscale2d then conv2d
            sd[f"blocks.{level}.conv0.weight"] = _oihw(take(f"{s}/Conv0/weight"))
            sd[f"blocks.{level}.conv0.bias"] = to_torch(take(f"{s}/Conv0/bias"))
        sd[f"blocks.{level}.conv1.weight"] = _oihw(take(f"{s}/Conv1/weight"))
        sd[f"blocks.{level}.conv1.bias"] = to_torch(take(f"{s}/Conv1/bias"))
    for r_log2 in range(2, top + 1):
        sd[f"to_rgb.{r_log2 - 2}.weight"] = _oihw(take(f"ToRGB_lod{top - r_log2}/weight"))
        sd[f"to_rgb.{r_log2 - 2}.bias"] = to_torch(take(f"ToRGB_lod{top - r_log2}/bias"))
    g.check_all_used(used, ignored=("lod",))
    return sd


def convert_progan(g: TFNet, d: TFNet, gs: TFNet) -> Converted:
    """``(G, D, Gs)`` of tkarras/progressive_growing_of_gans (``G_paper`` + ``D_paper``) -> ganzoo ``progan``."""
    kw, dkw = dict(gs.kwargs), dict(d.kwargs)
    who = f"generator {gs.name!r}"
    _common_checks(kw, who)
    _check(kw, who, {"normalize_latents": True, "use_leakyrelu": True, "pixelnorm_epsilon": 1e-8})
    require(d.func == "D_paper", f"discriminator {d.name!r} is built by {d.func!r}; expected D_paper")
    _common_checks(dkw, f"discriminator {d.name!r}")
    res = int(kw.get("resolution", 32))
    _levels(res)
    c_dim = int(kw.get("label_size", 0))
    require(c_dim == 0, f"{who}: a class-conditional ProGAN (label_size={c_dim}; its D predicts labels, AC-GAN "
             "style) is not supported: ganzoo's conditional ProGAN D is a label switch")
    fmap_base, fmap_max = int(kw.get("fmap_base", 8192)), int(kw.get("fmap_max", 512))
    z_dim = kw.get("latent_size")
    fused_g, fused_d = bool(kw.get("fused_scale", True)), bool(dkw.get("fused_scale", True))
    g_sd, gs_sd = _progan_g(g, res), _progan_g(gs, res)
    d_sd = _d_weights(d, res)
    model_config: dict[str, Any] = dict(
        resolution=res, img_channels=int(kw.get("num_channels", 1)), c_dim=0,
        G=dict(z_dim=None if z_dim is None else int(z_dim), fmap_base=fmap_base, fmap_max=fmap_max,
               fused_scale=fused_g, pixelnorm=bool(kw.get("use_pixelnorm", True))),
        D=dict(fmap_base=int(dkw.get("fmap_base", 8192)), fmap_max=int(dkw.get("fmap_max", 512)),
               mbstd_group_size=int(dkw.get("mbstd_group_size", 4)), mbstd_num_features=1, fused_scale=fused_d,
               blur_filter=None),
    )
    if not fused_d:  # D_paper without fusing: Conv1, bias, leaky ReLU, then downscale2d
        model_config["D"]["act_before_downscale"] = True
    notes = ["kernels HWIO -> OIHW; the fused up-sampling convs ([k, k, out, in], TF conv2d_transpose) transposed "
             "(2, 3, 0, 1) and flipped spatially" if fused_g else "kernels HWIO -> OIHW",
             "lod (progressive-growing level) dropped: the network is used fully grown (level = max)",
             *(["D without fused down-sampling: leaky ReLU before the average pooling (D.act_before_downscale)"]
               if not fused_d else []),
             "D's label output (labels_out of D_paper) is empty for unconditional networks and not kept"]
    found = [f"G ({g.func}): {len(g.params)} variables -> G", f"Gs: {len(gs.params)} variables -> EMA copy of G",
             f"D ({d.func}): {len(d.params)} variables -> D"]
    return Converted(model="progan", model_config=model_config, weights={"G": g_sd, "D": d_sd}, ema={"G": gs_sd},
                     found=found, notes=notes, source_info=_info("ProGAN (TensorFlow)", res, kw, dkw, gs))


def _info(kind: str, res: int, kw: dict[str, Any], dkw: dict[str, Any], gs: TFNet) -> dict[str, Any]:
    plain = (bool, int, float, str, type(None), list)
    return {"family": kind, "resolution": res, "G_kwargs": {k: v for k, v in kw.items() if isinstance(v, plain)},
            "D_kwargs": {k: v for k, v in dkw.items() if isinstance(v, plain)}, "pickle_version": gs.version}
