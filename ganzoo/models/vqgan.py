"""VQ-GAN (Esser, Rombach & Ommer, CVPR 2021, "Taming Transformers for High-Resolution Image
Synthesis"), stage 1: a convolutional vector-quantized autoencoder trained with a perceptual loss and a
PatchGAN discriminator (Sec. 3.1-3.2).

The encoder and decoder are taming-transformers' ``Encoder``/``Decoder`` (from the DDPM U-Net without
skips or time embedding):

- ``ResnetBlock``: GroupNorm(32, eps 1e-6) -> swish -> 3x3 conv -> GroupNorm -> swish -> dropout ->
  3x3 conv, plus the input (through a 1x1 conv when the width changes);
- ``AttnBlock``: single-head self-attention over all positions with 1x1-conv q, k, v and output
  projection, after a GroupNorm, added to the input;
- ``Downsample``: zero padding on the right and bottom only, then a 3x3 stride-2 conv;
  ``Upsample``: nearest-neighbour x2, then a 3x3 conv;
- encoder: conv_in, per level ``num_res_blocks`` blocks (each followed by attention when the level's
  resolution is in ``attn_resolutions``), a downsample between levels, a middle res-attn-res, GroupNorm,
  swish, conv_out to ``z_channels``; decoder: the mirror with ``num_res_blocks + 1`` blocks per level and
  no output activation.

``quant_conv``/``post_quant_conv`` (1x1) map between ``z_channels`` and the codebook's ``embed_dim``. The
quantizer is taming's ``VectorQuantizer2`` (beta 0.25, ``legacy=True`` loss form). Module names equal
taming's, so the state dict of a taming ``VQModel`` (minus ``loss.*``) has the same keys.

The objective is ``ganzoo.losses.autoencoder.AutoencoderObjective`` (taming's VQLPIPSWithDiscriminator),
the discriminator ``ganzoo.layers.patchgan``. The learning rate is scaled with the batch as taming's
``main.py``: ``lr = base_learning_rate * images per optimizer step`` with Adam betas (0.5, 0.9).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..bundle import Bundle, OptimizerSpec, autoencoder_bundle
from ..errors import ConfigError
from ..layers.patchgan import PatchGANDiscriminator
from ..layers.quantize import QuantizerOutput, VectorQuantizer
from ..losses.autoencoder import AutoencoderObjective
from ..losses.perceptual import LazyPerceptual
from ..registry import construct, register_model
from ..training import distributed as dist

__all__ = ["VQGANAutoencoder", "Encoder", "Decoder", "ResnetBlock", "AttnBlock"]


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0, groups: int = 32):
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        skip = self.nin_shortcut(x) if self.nin_shortcut is not None else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head attention over the ``h * w`` positions, scale ``1 / sqrt(C)``."""

    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = self.norm(x)
        # [N, 1, hw, C]: one head over all positions
        q, k, v = (t.reshape(n, 1, c, h * w).transpose(2, 3) for t in (self.q(y), self.k(y), self.v(y)))
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(C)) v, [N, 1, hw, C]
        out = out.transpose(2, 3).reshape(n, c, h, w)  # [N, C, h, w]
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # asymmetric padding as taming


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level(blocks: list[nn.Module], attns: list[nn.Module], resample: nn.Module | None) -> nn.Module:
    """A container with taming's attribute names (``block``, ``attn``, ``downsample``/``upsample``)."""
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    level.attn = nn.ModuleList(attns)
    if resample is not None:
        setattr(level, "downsample" if isinstance(resample, Downsample) else "upsample", resample)
    return level


def _middle(channels: int, dropout: float, groups: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, dropout, groups)
    mid.attn_1 = AttnBlock(channels, groups)
    mid.block_2 = ResnetBlock(channels, channels, dropout, groups)
    return mid


def _run_level(level: nn.Module, h: torch.Tensor) -> torch.Tensor:
    for i, block in enumerate(level.block):
        h = block(h)
        if len(level.attn) > 0:
            h = level.attn[i](h)
    return h


class Encoder(nn.Module):
    def __init__(self, *, in_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_resolutions: Sequence[int], resolution: int, z_channels: int, dropout: float = 0.0,
                 norm_groups: int = 32):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        res, widths = resolution, [ch] + [ch * m for m in ch_mult]
        self.down = nn.ModuleList()
        for i in range(len(ch_mult)):
            blocks, attns = [], []
            c_in, c_out = widths[i], widths[i + 1]
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(c_in, c_out, dropout, norm_groups))
                c_in = c_out
                if res in attn_resolutions:
                    attns.append(AttnBlock(c_out, norm_groups))
            last = i == len(ch_mult) - 1
            self.down.append(_level(blocks, attns, None if last else Downsample(c_out)))
            res = res if last else res // 2
        self.mid = _middle(widths[-1], dropout, norm_groups)
        self.norm_out = group_norm(widths[-1], norm_groups)
        self.conv_out = nn.Conv2d(widths[-1], z_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = _run_level(level, h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(swish(self.norm_out(h)))  # [N, z_channels, R/f, R/f]


class Decoder(nn.Module):
    def __init__(self, *, out_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_resolutions: Sequence[int], resolution: int, z_channels: int, dropout: float = 0.0,
                 norm_groups: int = 32):
        super().__init__()
        n = len(ch_mult)
        c_in, res = ch * ch_mult[-1], resolution // 2 ** (n - 1)
        self.conv_in = nn.Conv2d(z_channels, c_in, 3, 1, 1)
        self.mid = _middle(c_in, dropout, norm_groups)
        levels: list[nn.Module] = []
        for i in reversed(range(n)):
            blocks, attns = [], []
            c_out = ch * ch_mult[i]
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(c_in, c_out, dropout, norm_groups))
                c_in = c_out
                if res in attn_resolutions:
                    attns.append(AttnBlock(c_out, norm_groups))
            levels.insert(0, _level(blocks, attns, Upsample(c_out) if i != 0 else None))
            res = res * 2 if i != 0 else res
        self.up = nn.ModuleList(levels)  # index = level, as taming (run from the last one)
        self.norm_out = group_norm(c_in, norm_groups)
        self.conv_out = nn.Conv2d(c_in, out_channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for level in reversed(self.up):
            h = _run_level(level, h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))  # [N, C, R, R], no output activation (as taming)


class VQGANAutoencoder(nn.Module):
    """``G``: encoder -> quant_conv -> quantizer -> post_quant_conv -> decoder (taming's ``VQModel``).

    Follows the autoencoder convention of ``ganzoo.losses.autoencoder``: ``encode``, ``decode``,
    ``decode_indices``, ``forward(img) -> (img_rec, QuantizerOutput)`` and ``last_layer``.
    The decoder is convolutional, so it renders code grids of any size (sliding-window sampling).
    """

    decodes_any_size = True

    def __init__(
        self,
        *,
        resolution: int = 256,
        img_channels: int = 3,
        ch: int = 128,
        ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.0,
        norm_groups: int = 32,
        z_channels: int = 256,
        embed_dim: int = 256,
        n_embed: int = 1024,
        beta: float = 0.25,
        legacy: bool = True,
        quantizer: dict[str, Any] | None = None,
        c_dim: int = 0,
    ):
        super().__init__()
        ch_mult, attn_resolutions = [int(m) for m in ch_mult], [int(r) for r in attn_resolutions]
        _check_config(resolution, ch, ch_mult, num_res_blocks, norm_groups, c_dim)
        self.img_resolution, self.img_channels = int(resolution), int(img_channels)
        self.c_dim, self.z_dim = 0, 0
        self.n_embed, self.embed_dim = int(n_embed), int(embed_dim)
        f = 2 ** (len(ch_mult) - 1)
        self.code_shape = (resolution // f, resolution // f)
        arch = dict(ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks, attn_resolutions=attn_resolutions,
                    resolution=resolution, z_channels=z_channels, dropout=dropout, norm_groups=norm_groups)
        self.encoder = Encoder(in_channels=img_channels, **arch)
        self.decoder = Decoder(out_channels=img_channels, **arch)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        # taming's VectorQuantizer2 by default; ``quantizer`` adds options (ema, restart_dead, ...).
        self.quantize = construct(VectorQuantizer, quantizer, where="model.G.quantizer", n_embed=n_embed,
                                  embed_dim=embed_dim, beta=beta, legacy=legacy)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)

    @property
    def quantizer(self) -> VectorQuantizer:
        return self.quantize

    @property
    def last_layer(self) -> nn.Parameter:
        """The decoder's last weight, where the adaptive GAN weight is measured (VQ-GAN Eq. 7)."""
        return self.decoder.conv_out.weight

    def encode(self, img: torch.Tensor) -> QuantizerOutput:
        return self.quantize(self.quant_conv(self.encoder(img)))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z_q))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(self.quantize.lookup(indices))  # [N, h, w] -> [N, C, R, R]

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        q = self.encode(img)
        return self.decode(q.z_q), q


def _check_config(resolution: int, ch: int, ch_mult: list[int], num_res_blocks: int, groups: int, c_dim: int) -> None:
    if c_dim:
        raise ConfigError("VQ-GAN (stage 1) is an unconditional autoencoder: set model.c_dim=0")
    if not ch_mult or num_res_blocks < 1:
        raise ConfigError("model.G.ch_mult needs at least one level and model.G.num_res_blocks >= 1")
    f = 2 ** (len(ch_mult) - 1)
    if resolution % f:
        raise ConfigError(f"resolution {resolution} is not divisible by the downsampling factor f={f} "
                          f"(len(model.G.ch_mult)-1 = {len(ch_mult) - 1} halvings)")
    bad = [ch * m for m in [1, *ch_mult] if (ch * m) % groups]
    if bad:
        raise ConfigError(f"every width ch * ch_mult must be a multiple of model.G.norm_groups={groups} for "
                          f"GroupNorm (got {bad}); set model.G.ch to a multiple of {groups}")


def _optimizers(optim: dict[str, Any]) -> tuple[OptimizerSpec, OptimizerSpec]:
    """Adam (0.5, 0.9) with taming's batch-scaled lr; ``optim.G`` / ``optim.D`` override fields."""
    optim = dict(optim)
    allowed = {"base_learning_rate", "batch_size", "betas", "G", "D"}
    unknown = set(optim) - allowed
    if unknown:
        raise ConfigError(f"model.optim has no option(s) {sorted(unknown)}. Allowed: {sorted(allowed)}.")
    # taming main.py: lr = accumulate_grad_batches * ngpu * batch_size * base_lr, i.e. base_lr times the
    # images per optimizer step. ganzoo's trainer.batch_size is per rank and already holds every
    # micro-batch of an accumulated step, so images per step = batch_size * world size.
    lr = float(optim.get("base_learning_rate", 4.5e-6)) * int(optim.get("batch_size", 12)) * dist.world_size()
    base = OptimizerSpec(lr=lr, betas=tuple(float(b) for b in optim.get("betas", (0.5, 0.9))))
    from ..losses.objectives import optimizer_spec

    return optimizer_spec(optim.get("G"), base), optimizer_spec(optim.get("D"), base)


def vqgan(
    *,
    resolution: int = 32,
    img_channels: int = 1,
    c_dim: int = 0,
    G: dict[str, Any] | None = None,
    D: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
) -> Bundle:
    """Build a VQ-GAN bundle (Esser et al. 2021): taming's conv autoencoder + codebook, PatchGAN D, LPIPS and
    the adaptive GAN weight. ``loss`` also takes ``lpips_net``, ``lpips_weights`` and ``lpips_download`` (where
    the perceptual network's weights come from); ``optim`` takes ``base_learning_rate``, ``batch_size``
    (images per step, normally ``${trainer.batch_size}``), ``betas`` and per-module overrides ``G``/``D``."""
    shape = dict(resolution=resolution, img_channels=img_channels)
    gen = construct(VQGANAutoencoder, G, where="model.G (vqgan)", c_dim=c_dim, **shape)
    disc = construct(PatchGANDiscriminator, D, where="model.D (vqgan)", **shape)
    loss = dict(loss or {})
    lpips_opts = {k: loss.pop(k) for k in ("lpips_net", "lpips_weights", "lpips_download") if k in loss}
    perceptual = None
    if float(loss.get("perceptual_weight", 1.0)) > 0:
        # Loaded at training start (objective.to), so the bundle builds offline for counts and tools.
        perceptual = LazyPerceptual(lpips_opts.get("lpips_net", "vgg"), lpips_opts.get("lpips_weights"),
                                    allow_download=bool(lpips_opts.get("lpips_download", True)))
    optim_G, optim_D = _optimizers(optim or {})
    objective = construct(AutoencoderObjective, loss, where="model.loss (vqgan)", optim_G=optim_G,
                          optim_D=optim_D, perceptual=perceptual)
    return autoencoder_bundle(gen, disc, objective)


# The published ImageNet model (taming configs/imagenet_vqgan.yaml): f16, 1024 codes of 256 dims.
IMAGENET_F16_1024: dict[str, Any] = dict(
    resolution=256,
    img_channels=3,
    G=dict(ch=128, ch_mult=[1, 1, 2, 2, 4], num_res_blocks=2, attn_resolutions=[16], dropout=0.0,
           z_channels=256, embed_dim=256, n_embed=1024),
    D=dict(ndf=64, n_layers=3),
    loss=dict(disc_start=250001, disc_weight=0.8, codebook_weight=1.0, perceptual_weight=1.0),
    optim=dict(base_learning_rate=4.5e-6, batch_size=12),
)
register_model("vqgan_imagenet_f16_1024", family="vector-quantized", builder=vqgan,
               description="VQ-GAN, taming's ImageNet f16 / 1024-code configuration (256x256)", **IMAGENET_F16_1024)

# The f16 model with 16384 codes (README model zoo, vqgan_imagenet_f16_16384): the same autoencoder with a larger
# codebook; the tokenizer of taming's class-conditional ImageNet transformer (vqgan_prior_imagenet_cin).
register_model("vqgan_imagenet_f16_16384", family="vector-quantized", builder=vqgan,
               description="VQ-GAN, taming's ImageNet f16 / 16384-code configuration (256x256)",
               **{**IMAGENET_F16_1024, "G": {**IMAGENET_F16_1024["G"], "n_embed": 16384}})

# CPU default: embedded Fashion-MNIST at 32x32, f = 4 (8x8 codes). No LPIPS (its VGG trunk is not
# available offline), dead-code restarts on (a 20-minute run collapses to ~10 codes without them), and
# the discriminator starts at step 120 so it trains within that run; see docs/models/vqgan.md.
CPU_DEFAULT: dict[str, Any] = dict(
    resolution=32,
    img_channels=1,
    G=dict(ch=16, ch_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[8], dropout=0.0, norm_groups=16,
           z_channels=32, embed_dim=32, n_embed=256, quantizer=dict(restart_dead=True)),
    D=dict(ndf=32, n_layers=2),
    loss=dict(disc_start=120, disc_weight=0.8, codebook_weight=1.0, perceptual_weight=0.0),
    optim=dict(base_learning_rate=4.5e-6, batch_size=64),
)
register_model("vqgan", family="vector-quantized", builder=vqgan,
               description="VQ-GAN (Esser et al. 2021), small f4 model for 32x32 grey images on a CPU", **CPU_DEFAULT)

register_model(
    "vqgan_tiny",
    family="vector-quantized",
    builder=vqgan,
    description="VQ-GAN with 8 channels, one block per level, 16x16 images (tests)",
    resolution=16,
    img_channels=1,
    G=dict(ch=8, ch_mult=[1, 1, 2], num_res_blocks=1, attn_resolutions=[4], dropout=0.0, norm_groups=4,
           z_channels=16, embed_dim=8, n_embed=32),
    D=dict(ndf=8, n_layers=2),
    loss=dict(disc_start=4, disc_weight=0.8, codebook_weight=1.0, perceptual_weight=0.0),
    optim=dict(base_learning_rate=4.5e-6, batch_size=16),
)
