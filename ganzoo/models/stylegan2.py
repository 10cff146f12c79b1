"""StyleGAN2 (Karras et al., CVPR 2020, "Analyzing and Improving the Image Quality of StyleGAN").

The architecture follows the official StyleGAN2-ADA PyTorch code (``training/networks.py``),
which reproduces the paper's config F:

- **Mapping and synthesis networks** (StyleGAN2 Sec. 2, Fig. 2d; skips Sec. 4.1, Fig. 7b): see
  :mod:`ganzoo.models.stylegan2_generator`.
- **Discriminator** (Sec. 4.1, Fig. 7c, residual): see :mod:`ganzoo.models.stylegan2_discriminator`.

Channels at resolution ``r`` are ``min(channel_base // r, channel_max)``; config F uses
``channel_base=32768, channel_max=512`` (StyleGAN2 Sec. 4.2: feature maps doubled at high
resolutions). At 1024x1024 the generator has 30,370,060 and the discriminator 29,012,513
parameters, the same counts as the official networks.

Training uses :class:`~ganzoo.losses.objectives.StyleObjective`: non-saturating logistic loss,
lazy R1 every 16 steps (Sec. 3.1), lazy path-length regularisation every 4 steps (Sec. 3.2),
style mixing with probability 0.9 (StyleGAN Sec. 3.1), Adam(0.002, betas (0, 0.99)) corrected
for the laziness (App. B), and a generator EMA.

Mixed precision as in StyleGAN2-ADA: ``num_fp16_res`` (shared by G and D, 4 in the ADA configs, with
``conv_clamp=256``) names how many of the highest resolutions may run in float16; they do only when
the trainer runs at ``trainer.precision=fp16`` and calls ``set_fp16(True)`` on G and D (the
generator and discriminator modules describe what changes). At fp32 and bf16 it changes nothing.
"""

from __future__ import annotations

from typing import Any

from ..bundle import Bundle, EMASpec, OptimizerSpec, gan_bundle
from ..errors import ConfigError
from ..losses.objectives import StyleObjective, optimizer_spec
from ..registry import construct, register_model
from .stylegan2_discriminator import Discriminator, DiscriminatorBlock, DiscriminatorConv, DiscriminatorEpilogue
from .stylegan2_generator import (
    FIR,
    SQRT_HALF,
    Generator,
    MappingNetwork,
    SynthesisBlock,
    SynthesisLayer,
    SynthesisNetwork,
    ToRGBLayer,
    channels_per_resolution,
    check_resolution,
    labels_to_onehot,
)

# The networks live in stylegan2_generator.py and stylegan2_discriminator.py; they are re-exported
# here so that ``from ganzoo.models.stylegan2 import Generator, Discriminator, ...`` keeps working.
__all__ = [
    "FIR",
    "LOSS_DEFAULTS",
    "PRESETS",
    "SQRT_HALF",
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorConv",
    "DiscriminatorEpilogue",
    "Generator",
    "MappingNetwork",
    "SynthesisBlock",
    "SynthesisLayer",
    "SynthesisNetwork",
    "ToRGBLayer",
    "channels_per_resolution",
    "check_resolution",
    "labels_to_onehot",
    "stylegan2",
]


# -- registry ----------------------------------------------------------------------------------
LOSS_DEFAULTS: dict[str, Any] = {
    "loss": "nonsat",
    "r1_gamma": 10.0,
    "r1_interval": 16,
    "pl_weight": 2.0,
    "pl_interval": 4,
    "pl_batch_shrink": 2,
    "pl_decay": 0.01,
    "style_mixing_prob": 0.9,
    # StyleGAN2-ADA corrects G's Adam for an interval of 4 even when pl_weight = 0 (cfg 'cifar').
    "g_reg_interval": 4,
}


def _style_objective(loss: dict[str, Any] | None, optim: dict[str, Any] | None) -> StyleObjective:
    loss_cfg = {**LOSS_DEFAULTS, **dict(loss or {})}
    unknown = sorted(set(loss_cfg) - set(LOSS_DEFAULTS))
    if unknown:
        raise ConfigError(f"model.loss (stylegan2) has no option(s) {unknown}. Allowed: {sorted(LOSS_DEFAULTS)}.")
    optim = dict(optim or {})
    unknown = sorted(set(optim) - {"G", "D"})
    if unknown:
        raise ConfigError(f"model.optim (stylegan2) has no module(s) {unknown}. Allowed: ['D', 'G'].")
    adam = OptimizerSpec(lr=0.002, betas=(0.0, 0.99), eps=1e-8)  # StyleGAN2 App. B (config F)
    # StyleObjective applies the lazy-regularisation correction (lr and betas ** (k / (k + 1))).
    return StyleObjective(
        optim_G=optimizer_spec(optim.get("G"), adam), optim_D=optimizer_spec(optim.get("D"), adam), **loss_cfg
    )


# Presets. The numbers of the paper configs come from StyleGAN2-ADA's train.py (cfg_specs) and
# StyleGAN2 App. B; per-run settings (batch size, kimg) live in conf/experiment/stylegan2_*.yaml.
PRESETS: dict[str, dict[str, Any]] = {
    # Default for this CPU: StyleGAN2-ADA's 32x32 'cifar' loss and D (no path-length regularisation, no
    # style mixing, orig D) with its 'auto' rules otherwise (map 2, mbstd 4, ema = 64 * 10 / 32 kimg with
    # ramp-up 0.05, lr 0.0025), fewer channels (channel_base 1024, channel_max 64 -> 64, 64, 64, 32) and
    # z = w = 128. R1 gamma 1 instead of auto's 0.0002 * 32^2 / 64 = 0.0032: without ADA that collapsed to
    # one mode within 50 kimg on CPU. Its yaml also trains at batch 32 (docs/models/stylegan2.md).
    "stylegan2": dict(
        resolution=32,
        channel_base=1024,
        channel_max=64,
        num_fp16_res=4,
        optim={"G": {"lr": 0.0025}, "D": {"lr": 0.0025}},
        G={"z_dim": 128, "w_dim": 128, "mapping_layers": 2},
        D={"mbstd_group_size": 4, "architecture": "orig"},
        loss={"r1_gamma": 1.0, "pl_weight": 0.0, "style_mixing_prob": 0.0},
        ema={"half_life_kimg": 20.0, "rampup": 0.05},
    ),
    # Config F (StyleGAN2 App. B; StyleGAN2-ADA cfg 'stylegan2'): FFHQ 1024, gamma 10, mbstd 4.
    "stylegan2_f": dict(
        resolution=1024,
        channel_base=32768,
        channel_max=512,
        conv_clamp=256,
        num_fp16_res=4,  # ADA's cfg 'stylegan2'; the TensorFlow config F had no float16
        optim={"G": {"lr": 0.002}, "D": {"lr": 0.002}},
        G={"z_dim": 512, "w_dim": 512, "mapping_layers": 8},
        D={"mbstd_group_size": 4},
        loss={"r1_gamma": 10.0},
        ema={"half_life_kimg": 10.0, "rampup": None},
    ),
    # StyleGAN2-ADA cfg 'paper256': fmaps 0.5, mbstd 8, lr 0.0025, gamma 1, ema 20 kimg.
    "stylegan2_paper256": dict(
        resolution=256,
        channel_base=16384,
        channel_max=512,
        conv_clamp=256,
        num_fp16_res=4,
        optim={"G": {"lr": 0.0025}, "D": {"lr": 0.0025}},
        G={"z_dim": 512, "w_dim": 512, "mapping_layers": 8},
        D={"mbstd_group_size": 8},
        loss={"r1_gamma": 1.0},
        ema={"half_life_kimg": 20.0, "rampup": None},
    ),
    # StyleGAN2-ADA cfg 'cifar': fmaps 1, map 2, mbstd 32, lr 0.0025, gamma 0.01, ema 500 kimg with
    # ramp-up 0.05; no path-length regularisation, no style mixing, 'orig' (non-residual) D.
    "stylegan2_cifar": dict(
        resolution=32,
        channel_base=32768,
        channel_max=512,
        conv_clamp=256,
        num_fp16_res=4,
        optim={"G": {"lr": 0.0025}, "D": {"lr": 0.0025}},
        G={"z_dim": 512, "w_dim": 512, "mapping_layers": 2},
        D={"mbstd_group_size": 32, "architecture": "orig"},
        loss={"r1_gamma": 0.01, "pl_weight": 0.0, "style_mixing_prob": 0.0},
        ema={"half_life_kimg": 500.0, "rampup": 0.05},
    ),
    # Tests and smoke runs: 16x16, 32 channels at most, z = w = 32.
    "stylegan2_tiny": dict(
        resolution=16,
        channel_base=256,
        channel_max=32,
        num_fp16_res=4,  # blocks 8 and 16 at trainer.precision=fp16
        optim={"G": {"lr": 0.0025}, "D": {"lr": 0.0025}},
        G={"z_dim": 32, "w_dim": 32, "mapping_layers": 2},
        D={"mbstd_group_size": 4},
        loss={"r1_gamma": 0.01},
        ema={"half_life_kimg": 1.0, "rampup": 0.05},
    ),
}


def stylegan2(
    *,
    resolution: int = 32,
    img_channels: int = 3,
    c_dim: int = 0,
    channel_base: int = 1024,
    channel_max: int = 64,
    conv_clamp: float | None = None,
    num_fp16_res: int = 0,
    G: dict[str, Any] | None = None,
    D: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
    ema: dict[str, Any] | None = None,
) -> Bundle:
    """StyleGAN2 (Karras et al. 2020): skip G, residual D, lazy R1 + path length, style mixing.

    ``channel_base``, ``channel_max``, ``conv_clamp`` and ``num_fp16_res`` are shared by G and D (as in
    the official train.py); ``num_fp16_res`` matters only at ``trainer.precision=fp16``.
    ``optim.G`` / ``optim.D`` override fields of Adam(0.002, betas (0, 0.99), eps 1e-8).
    """
    check_resolution(resolution)
    if not isinstance(c_dim, int) or c_dim < 0:
        raise ConfigError(f"model.c_dim must be an integer >= 0 (or 'auto'), got {c_dim!r}")
    shared = dict(
        img_resolution=resolution,
        img_channels=img_channels,
        c_dim=c_dim,
        channel_base=channel_base,
        channel_max=channel_max,
        conv_clamp=conv_clamp,
        num_fp16_res=num_fp16_res,
    )
    gen = construct(Generator, G, where="model.G (stylegan2)", **shared)
    disc = construct(Discriminator, D, where="model.D (stylegan2)", **shared)
    objective = _style_objective(loss, optim)
    ema_spec = construct(EMASpec, {"half_life_kimg": 10.0, "rampup": None, **(ema or {})}, where="model.ema")
    return gan_bundle(
        gen,
        disc,
        objective,
        ema=ema_spec,
    )


_DESCRIPTIONS = {
    "stylegan2": "StyleGAN2 at 32x32 sized for a CPU (StyleGAN2-ADA 'cifar' loss and D, fewer channels)",
    "stylegan2_f": "StyleGAN2 config F at 1024x1024 (FFHQ; StyleGAN2-ADA cfg 'stylegan2')",
    "stylegan2_paper256": "StyleGAN2 at 256x256, StyleGAN2-ADA cfg 'paper256' (half the channels)",
    "stylegan2_cifar": "StyleGAN2 at 32x32, StyleGAN2-ADA cfg 'cifar' (no pl reg, no mixing, orig D)",
    "stylegan2_tiny": "StyleGAN2 at 16x16 with at most 32 channels (tests and smoke runs)",
}

for _name, _presets in PRESETS.items():
    register_model(_name, family="style", builder=stylegan2, description=_DESCRIPTIONS[_name], **_presets)
