"""StyleGAN2 (NVlabs/stylegan2, configs E-F) and StyleGAN2-ADA TF pickles -> ganzoo ``stylegan2`` presets.

The rules are those of the official PyTorch port, NVlabs/stylegan2-ada-pytorch ``legacy.py``
(``convert_tf_generator``, ``convert_tf_discriminator``), written here for ganzoo's parameter names:

* convolution kernels are stored HWIO in TF (``[k, k, in, out]``) and OIHW in PyTorch: transpose (3, 2, 0, 1);
  dense weights ``[in, out]`` are transposed;
* the up-sampling convolutions (``Conv0_up``) are flipped in both spatial axes first: TF computes them with
  ``conv2d_transpose`` (``upsample_conv_2d`` of ``dnnlib/tflib/ops/upfirdn_2d.py``), the PyTorch code with a
  transposed convolution whose kernel is the correlation kernel;
* the style affine's bias gets +1 (TF adds the 1 at run time: ``apply_bias_act(...) + 1`` in
  ``modulated_conv2d_layer``; PyTorch initialises the bias to 1 instead);
* ``dlatent_avg`` -> ``w_avg``; ``noise<i>`` (layer ``i`` counted from the 4x4 conv) -> each layer's
  ``noise_const``; ``noise_strength`` as is; the 4x4 ``const`` loses its batch axis;
* equalized-learning-rate weights are stored the same way in both (``N(0, 1) / lrmul`` times
  ``gain * lrmul / sqrt(fan_in)`` at run time), so G's mapping (``mapping_lrmul`` 0.01) copies as is; D's label
  mapping of StyleGAN2-ADA uses ``mapping_lrmul`` 0.1 where ganzoo uses 0.01: weights and biases are scaled by
  ``0.1 / 0.01`` so that the products are unchanged;
* the discriminator's ``4x4/Conv``, ``4x4/Dense0`` and ``Output`` are ganzoo's epilogue conv, fc and out;
  ``Skip`` (no bias) and ``Conv1_down`` are not flipped (TF filters before a strided convolution there).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .base import Converted, require
from .nvlabs_tf import TFNet, to_torch

__all__ = ["convert_networks", "generator_weights", "discriminator_weights"]

FIR = [1, 3, 3, 1]
D_MAPPING_LR_MUL = 0.01  # ganzoo's Discriminator builds its label mapping with MappingNetwork's default lr_mul



def _channels(resolution: int, fmap_base: int, fmap_max: int) -> dict[int, int]:
    """``nf(log2(r) - 1)`` of the TF code = ``min(2 * fmap_base // r, fmap_max)`` for r = 4 ... resolution."""
    return {2**i: min(2 * fmap_base // 2**i, fmap_max) for i in range(2, int(math.log2(resolution)) + 1)}


def _check_common(kw: dict[str, Any], who: str) -> None:
    require(float(kw.get("fmap_decay", 1.0)) == 1.0 and int(kw.get("fmap_min", 1)) == 1,
             f"{who}: fmap_decay={kw.get('fmap_decay')} / fmap_min={kw.get('fmap_min')} give a channel schedule "
             "ganzoo's StyleGAN2 (min(channel_base // res, channel_max)) cannot express")
    require(list(kw.get("resample_kernel") or FIR) == FIR,
             f"{who}: resample_kernel={kw.get('resample_kernel')} is not supported (ganzoo uses [1, 3, 3, 1])")
    for key in ("nonlinearity", "mapping_nonlinearity"):
        require(kw.get(key, "lrelu") == "lrelu", f"{who}: {key}={kw.get(key)!r} is not supported (only lrelu)")


def _conv(w: np.ndarray, flip: bool = False) -> torch.Tensor:
    """TF HWIO kernel -> OIHW (flipped in both spatial axes for the transposed up-sampling conv)."""
    if flip:
        w = w[::-1, ::-1]
    return to_torch(w.transpose(3, 2, 0, 1))


def generator_weights(net: TFNet, res: int, c_dim: int, use_noise: bool) -> dict[str, torch.Tensor]:
    """ganzoo ``Generator`` state dict from a TF ``G_main`` network (and its mapping/synthesis components)."""
    used: set[str] = set()
    take = lambda name: net.take(name, used)  # noqa: E731
    sd: dict[str, torch.Tensor] = {"mapping.w_avg": to_torch(take("dlatent_avg"))}
    if c_dim:
        sd["mapping.embed.weight"] = to_torch(take("mapping/LabelEmbed/weight").T)
        sd["mapping.embed.bias"] = to_torch(take("mapping/LabelEmbed/bias"))
    i = 0
    while f"mapping/Dense{i}/weight" in net.params:
        sd[f"mapping.layers.{i}.weight"] = to_torch(take(f"mapping/Dense{i}/weight").T)
        sd[f"mapping.layers.{i}.bias"] = to_torch(take(f"mapping/Dense{i}/bias"))
        i += 1
    sd["synthesis.blocks.b4.const"] = to_torch(take("synthesis/4x4/Const/const")[0])

    def layer(dst: str, src: str, noise_idx: int | None, flip: bool = False) -> None:
        sd[f"{dst}.conv.weight"] = _conv(take(f"{src}/weight"), flip)
        sd[f"{dst}.conv.affine.weight"] = to_torch(take(f"{src}/mod_weight").T)
        sd[f"{dst}.conv.affine.bias"] = to_torch(take(f"{src}/mod_bias") + 1)  # TF adds the 1 at run time
        sd[f"{dst}.bias"] = to_torch(take(f"{src}/bias"))
        if noise_idx is not None and use_noise:
            sd[f"{dst}.noise.strength"] = to_torch(take(f"{src}/noise_strength"))
            sd[f"{dst}.noise.noise_const"] = to_torch(take(f"synthesis/noise{noise_idx}"))  # [1, 1, R, R]

    for r_log2 in range(2, int(math.log2(res)) + 1):
        r = 2**r_log2
        blk, scope = f"synthesis.blocks.b{r}", f"synthesis/{r}x{r}"
        if r == 4:
            layer(f"{blk}.conv1", f"{scope}/Conv", 0)
        else:
            layer(f"{blk}.conv0", f"{scope}/Conv0_up", 2 * r_log2 - 5, flip=True)
            layer(f"{blk}.conv1", f"{scope}/Conv1", 2 * r_log2 - 4)
        layer(f"{blk}.torgb", f"{scope}/ToRGB", None)
    net.check_all_used(used, ignored=("lod",))  # lod: progressive-growing level, 0 in a finished network
    return sd


def discriminator_weights(net: TFNet, res: int, c_dim: int, map_layers: int,
                          lr_scale: float) -> dict[str, torch.Tensor]:
    """ganzoo ``Discriminator`` state dict from a TF ``D_stylegan2`` / ``D_main`` network."""
    used: set[str] = set()
    take = lambda name: net.take(name, used)  # noqa: E731
    sd: dict[str, torch.Tensor] = {}
    arch = net.kwargs.get("architecture", "resnet")
    for r in [2**i for i in range(int(math.log2(res)), 2, -1)]:
        blk, scope = f"blocks.b{r}", f"{r}x{r}"
        if r == res:
            sd[f"{blk}.fromrgb.conv.weight"] = _conv(take(f"{scope}/FromRGB/weight"))
            sd[f"{blk}.fromrgb.conv.bias"] = to_torch(take(f"{scope}/FromRGB/bias"))
        for i, name in enumerate(("Conv0", "Conv1_down")):
            sd[f"{blk}.conv{i}.conv.weight"] = _conv(take(f"{scope}/{name}/weight"))
            sd[f"{blk}.conv{i}.conv.bias"] = to_torch(take(f"{scope}/{name}/bias"))
        if arch == "resnet":
            sd[f"{blk}.skip.conv.weight"] = _conv(take(f"{scope}/Skip/weight"))
    sd["epilogue.conv.conv.weight"] = _conv(take("4x4/Conv/weight"))
    sd["epilogue.conv.conv.bias"] = to_torch(take("4x4/Conv/bias"))
    sd["epilogue.fc.weight"] = to_torch(take("4x4/Dense0/weight").T)
    sd["epilogue.fc.bias"] = to_torch(take("4x4/Dense0/bias"))
    sd["epilogue.out.weight"] = to_torch(take("Output/weight").T)
    sd["epilogue.out.bias"] = to_torch(take("Output/bias"))
    if c_dim:
        sd["mapping.embed.weight"] = to_torch(take("LabelEmbed/weight").T)
        sd["mapping.embed.bias"] = to_torch(take("LabelEmbed/bias"))
        for i in range(map_layers):
            sd[f"mapping.layers.{i}.weight"] = to_torch(take(f"Mapping{i}/weight").T * lr_scale)
            sd[f"mapping.layers.{i}.bias"] = to_torch(take(f"Mapping{i}/bias") * lr_scale)
    net.check_all_used(used, ignored=("lod",))
    return sd


def _g_config(net: TFNet, ada: bool) -> dict[str, Any]:
    """Architecture numbers of a TF generator, checked against its variables' shapes."""
    kw = net.merged_kwargs()
    who = f"generator {net.name!r}"
    _check_common(kw, who)
    require(kw.get("architecture", "skip") == "skip", f"{who}: architecture={kw.get('architecture')!r}; ganzoo's "
             "StyleGAN2 generator is the 'skip' one (config F and every published StyleGAN2 / ADA network)")
    require(kw.get("fmap_const") is None, f"{who}: fmap_const={kw.get('fmap_const')} is not supported")
    res = int(kw.get("resolution", 1024))
    require(f"synthesis/{res}x{res}/Conv1/weight" in net.params,
             f"{who}: resolution {res} but no synthesis/{res}x{res}/Conv1 variables: the file is damaged")
    fmap_base, fmap_max = int(kw.get("fmap_base", 16384)), int(kw.get("fmap_max", 512))
    chans = _channels(res, fmap_base, fmap_max)
    for r, c in chans.items():
        name = "synthesis/4x4/Conv/weight" if r == 4 else f"synthesis/{r}x{r}/Conv1/weight"
        shape = net.params[name].shape if name in net.params else None
        require(shape is not None and shape[-1] == c, f"{who}: {name} has shape {shape}, but fmap_base={fmap_base} "
                 f"and fmap_max={fmap_max} give {c} channels: the file and its kwargs disagree")
    mapping_layers = sum(1 for k in net.params if k.startswith("mapping/Dense") and k.endswith("/weight"))
    w_dim = int(net.params["dlatent_avg"].shape[0]) if "dlatent_avg" in net.params else int(kw.get("dlatent_size", 512))
    z_dim = int(kw.get("latent_size", 512))
    c_dim = int(kw.get("label_size", 0))
    if c_dim:
        require(ada and "mapping/LabelEmbed/weight" in net.params, f"{who}: a class-conditional network of the "
                 "original StyleGAN2 code (LabelConcat) is not supported; StyleGAN2-ADA's LabelEmbed is")
        require(kw.get("label_fmaps") in (None, w_dim) and z_dim == w_dim, f"{who}: the label embedding has "
                 f"{kw.get('label_fmaps') or z_dim} features; ganzoo's mapping embeds labels to w_dim={w_dim}")
    fmaps = kw.get("mapping_fmaps", None if ada else 512)
    require(mapping_layers < 2 or net.params["mapping/Dense0/weight"].shape[1] == w_dim,
             f"{who}: mapping_fmaps={fmaps} differs from dlatent_size={w_dim}; ganzoo's mapping layers are w_dim wide")
    return dict(res=res, img_channels=int(kw.get("num_channels", 3)), c_dim=c_dim, channel_base=2 * fmap_base,
                channel_max=fmap_max, z_dim=z_dim, w_dim=w_dim, mapping_layers=mapping_layers,
                mapping_lr_mul=float(kw.get("mapping_lrmul", 0.01)), use_noise=bool(kw.get("use_noise", True)),
                conv_clamp=kw.get("conv_clamp"), num_fp16_res=int(kw.get("num_fp16_res", 0)),
                w_avg_beta=kw.get("dlatent_avg_beta", kw.get("w_avg_beta", 0.995)))


def _preset(cfg: dict[str, Any]) -> str:
    key = (cfg["res"], cfg["channel_base"], cfg["channel_max"], cfg["mapping_layers"])
    return {(1024, 32768, 512, 8): "stylegan2_f", (256, 16384, 512, 8): "stylegan2_paper256",
            (32, 32768, 512, 2): "stylegan2_cifar"}.get(key, "stylegan2")


def convert_networks(g: TFNet, d: TFNet, gs: TFNet) -> Converted:
    """``(G, D, Gs)`` of a StyleGAN2 (``D_stylegan2``) or StyleGAN2-ADA (``D_main``) pickle -> ganzoo stylegan2."""
    ada = gs.component_funcs.get("synthesis") == "G_synthesis"
    cfg = _g_config(gs, ada)
    cfg_g = _g_config(g, ada)
    require(cfg_g == cfg, "G and Gs of the file have different architectures: the file is damaged")
    res, c_dim = cfg["res"], cfg["c_dim"]
    notes = [
        "convolution kernels transposed from TF's HWIO to OIHW; the up-sampling convs (Conv0_up) also flipped "
        "spatially (TF computes them as conv2d_transpose)",
        "style affine bias + 1 (TF adds the 1 at run time); dlatent_avg -> mapping.w_avg; noise<i> -> noise_const",
    ]
    # -- discriminator ----------------------------------------------------------------------------------------
    dkw, who = dict(d.kwargs), f"discriminator {d.name!r}"
    require(d.func in ("D_stylegan2", "D_main"), f"{who} is built by {d.func!r}; expected D_stylegan2 or D_main")
    _check_common(dkw, who)
    arch = dkw.get("architecture", "resnet")
    require(arch in ("resnet", "orig"), f"{who}: architecture={arch!r}; ganzoo's D is 'resnet' or 'orig'")
    for key in ("use_pagan", "use_spectral_norm", "adaptive_dropout"):
        require(not dkw.get(key), f"{who}: {key}={dkw.get(key)} is a StyleGAN2-ADA comparison method ganzoo lacks")
    require(int(dkw.get("score_max", 1)) == 1, f"{who}: score_max={dkw.get('score_max')} (auxrot) is not supported")
    require(int(dkw.get("resolution", 1024)) == res and int(dkw.get("label_size", 0)) == c_dim,
             f"{who}: resolution / label_size differ from the generator's")
    d_fmap_base, d_fmap_max = int(dkw.get("fmap_base", 16384)), int(dkw.get("fmap_max", 512))
    require((2 * d_fmap_base, d_fmap_max) == (cfg["channel_base"], cfg["channel_max"]) or
             _channels(res, d_fmap_base, d_fmap_max) == _channels(res, cfg["channel_base"] // 2, cfg["channel_max"]),
             f"{who}: its channels (fmap_base={d_fmap_base}, fmap_max={d_fmap_max}) differ from G's; ganzoo shares "
             "channel_base/channel_max between G and D")
    nf0 = min(d_fmap_base, d_fmap_max)
    require(nf0 == min(d_fmap_base // 2, d_fmap_max), f"{who}: its Dense0 layer has {nf0} features, not the 4x4 "
             "channel count, which ganzoo's epilogue cannot express")
    require(dkw.get("conv_clamp") == cfg["conv_clamp"], f"{who}: conv_clamp={dkw.get('conv_clamp')} differs "
             f"from G's {cfg['conv_clamp']}; ganzoo shares it")
    mbstd_default = 4 if d.func == "D_stylegan2" else None  # the build functions' defaults
    mbstd = dkw.get("mbstd_group_size", mbstd_default)
    mbstd_num = int(dkw.get("mbstd_num_features", 1))
    map_layers = int(dkw.get("mapping_layers", 0)) if c_dim else 0
    lr_scale = float(dkw.get("mapping_lrmul", 0.1)) / D_MAPPING_LR_MUL
    if c_dim:
        cmap = int(dkw.get("mapping_fmaps") or nf0)
        require(cmap == min(d_fmap_base // 2, d_fmap_max), f"{who}: mapping_fmaps={cmap} differs from the 4x4 "
                 "channel count ganzoo's D uses for its label projection")
        if map_layers:
            notes.append(f"D label mapping: weights and biases x {lr_scale:g} (TF mapping_lrmul "
                         f"{dkw.get('mapping_lrmul', 0.1)} -> ganzoo 0.01, same products)")
    if mbstd is None:
        mbstd = 1 << 16  # None = the whole minibatch; min(group, N) with a huge group is the same
        notes.append("D minibatch stddev over the whole batch (mbstd_group_size=None) -> group size 65536")
    if int(dkw.get("freeze_layers", 0)):
        notes.append(f"D was trained with freeze_layers={dkw['freeze_layers']} (Freeze-D); ganzoo does not freeze")

    g_sd = generator_weights(g, res, c_dim, cfg["use_noise"])
    gs_sd = generator_weights(gs, res, c_dim, cfg["use_noise"])
    d_sd = discriminator_weights(d, res, c_dim, map_layers, lr_scale)
    model_config: dict[str, Any] = dict(
        resolution=res, img_channels=cfg["img_channels"], c_dim=c_dim, channel_base=cfg["channel_base"],
        channel_max=cfg["channel_max"], conv_clamp=cfg["conv_clamp"], num_fp16_res=cfg["num_fp16_res"],
        G=dict(z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], mapping_layers=cfg["mapping_layers"],
               mapping_lr_mul=cfg["mapping_lr_mul"], use_noise=cfg["use_noise"]),
        D=dict(architecture=arch, mbstd_group_size=int(mbstd), mbstd_num_channels=mbstd_num,
               **({"mapping_layers": map_layers} if c_dim else {})),
    )
    if cfg["w_avg_beta"] is not None:
        model_config["G"]["w_avg_beta"] = float(cfg["w_avg_beta"])
    kind = "StyleGAN2-ADA (TensorFlow)" if ada else "StyleGAN2 (TensorFlow)"
    found = [
        f"G ({g.func} + {g.component_funcs.get('mapping')} / {g.component_funcs.get('synthesis')}): "
        f"{len(g.params)} variables -> G",
        f"Gs (the moving average of G): {len(gs.params)} variables -> EMA copy of G",
        f"D ({d.func}, {arch}): {len(d.params)} variables -> D",
    ]
    plain = (bool, int, float, str, type(None))
    info = {"family": kind, "resolution": res, "G_kwargs": {k: v for k, v in gs.merged_kwargs().items() if
                                                              isinstance(v, plain) or isinstance(v, list)},
            "D_kwargs": {k: v for k, v in dkw.items() if isinstance(v, plain) or isinstance(v, list)},
            "pickle_version": gs.version}
    return Converted(model=_preset(cfg), model_config=model_config, weights={"G": g_sd, "D": d_sd},
                     ema={"G": gs_sd}, found=found, notes=notes, source_info=info)
