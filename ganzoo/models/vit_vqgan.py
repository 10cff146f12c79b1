"""ViT-VQGAN (Yu et al., ICLR 2022, "Vector-quantized Image Modeling with Improved VQGAN"), stage 1.

What is built, and where the paper is read one way among several (see docs/models/vit_vqgan.md):

- **Encoder** (Sec. 3.1): non-overlapping ``p x p`` patches (p = 8 on 256x256 -> 32x32 tokens) are
  embedded by a ``p x p`` stride-``p`` convolution, position embeddings are added (2-D sin-cos as
  in MAE and the enhancing-transformers re-implementation, or learned: ``pos_embed``), then
  pre-norm transformer blocks (timm's ``Block``: multi-head attention and a GELU MLP, qkv with bias as
  the JAX ViT), a final LayerNorm, and "at the output of transformer blocks, a two-layer
  feed-forward network with a tanh activation layer in the middle"; no activation at the output.
  The paper does not give the hidden width of that head: we use the block's MLP width
  (``head_dim`` overrides it).
- **Factorized, l2-normalised codes** (Sec. 3.2): the encoder output (``embed_dim`` channels, the
  model width by default) is projected to a 32-d lookup space, l2-normalised, matched against
  l2-normalised codes (8192 of them), and projected back (``ganzoo.layers.quantize``:
  ``lookup_dim``, ``l2_normalize``). The codes are initialised from a normal distribution as the
  paper says; the codebook and commitment losses follow VQ-VAE Eq. 3 with beta = 0.25
  (``legacy=False``: ``||sg(z) - e||^2 + beta ||z - sg(e)||^2``).
- **Decoder**: the inverse, "mapping each image token back to 8x8 image patches and regrouping
  them": blocks on the token sequence, final LayerNorm, the same tanh feed-forward head whose
  second linear layer maps each token to ``p * p * C`` pixel values (linear output, no tanh), then
  the tokens are rearranged into the image. ``last_layer`` is that linear layer's weight.
- **Discriminator** (Sec. 3.3): the StyleGAN2 residual discriminator of ``ganzoo.models.stylegan2``
  (the re-implementation uses rosinality's StyleGAN2 D with channel multiplier 2, which is
  ``channel_base=32768, channel_max=512`` at 256x256).
- **Losses** (Sec. 3.3): ``L = L_VQ + 0.1 L_adv + 0.1 L_perceptual + 0.1 L_logit-Laplace + 1.0 L_2``
  with fixed weights (no adaptive weight), through ``ganzoo.losses.autoencoder.AutoencoderObjective``.
  The logit-Laplace term is optional (``loss.logit_laplace_weight``; 0 by default as in the
  re-implementation's configs; Parti later dropped it).
- **Imported checkpoints** (``ganzoo.pretrained.enhancing``): enhancing-transformers' ViTVQ
  (``enhancing/modules/stage1/layers.py``) differs from the paper's text; per encoder / decoder,
  ``mlp_act="tanh"`` (its blocks' MLP), ``qkv_bias=False``, ``norm_eps=1e-5`` (its ``nn.LayerNorm``),
  ``head="none"`` (its encoder ends at the final LayerNorm) and ``head="linear"`` (its decoder's
  ``to_pixel``, a ``ConvTranspose2d`` with kernel = stride = patch, is one linear map per token) build
  its function; the defaults are the paper's.
- **Sizes** (Table 1): Small = 8 blocks, 8 heads, width 512, MLP 2048; Base = 12 blocks, 12 heads,
  width 768, MLP 3072; the encoder and decoder have the same size (``vit_vqgan_small`` /
  ``vit_vqgan_base``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from timm.models.vision_transformer import Block
from torch import nn

from ..bundle import Bundle, EMASpec, OptimizerSpec
from ..errors import ConfigError
from ..layers.quantize import QuantizerOutput, VectorQuantizer
from ..losses.perceptual import LazyPerceptual
from ..registry import construct, register_model
from .stylegan2 import Discriminator

POS_EMBEDS = ("sincos", "learned")
MLP_ACTS = {"gelu": nn.GELU, "tanh": nn.Tanh}
HEADS = ("tanh_mlp", "linear", "none")


# -- positions ---------------------------------------------------------------------------------------
def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """Transformer sin-cos code of positions ``pos`` [M]: ``[sin(pos w_i), cos(pos w_i)]`` with
    ``w_i = 10000^(-i / (dim / 2))``, ``i < dim / 2`` (Vaswani et al. 2017, Sec. 3.5) -> [M, dim]."""
    if dim % 2:
        raise ConfigError(f"a sin-cos position code needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # [dim/2]
    angles = pos.double()[:, None] * omega[None, :]  # [M, dim/2]
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # [M, dim]


def sincos_2d(dim: int, height: int, width: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding [height * width, dim] in raster order (row-major).

    As MAE / enhancing-transformers: the first half of the channels codes the column (x) index,
    the second half the row (y) index, each with :func:`sincos_1d` of width ``dim / 2``.
    """
    if dim % 4:
        raise ConfigError(f"the 2-D sin-cos position code needs a width divisible by 4, got {dim}")
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")  # [h, w] each
    emb = torch.cat([sincos_1d(dim // 2, xs.flatten()), sincos_1d(dim // 2, ys.flatten())], dim=1)
    return emb.float()  # [h*w, dim]


class PositionEmbedding(nn.Module):
    """Adds a position embedding to a token sequence [N, L, dim]: fixed sin-cos (a non-persistent
    buffer, rebuilt from the shape) or learned (a parameter, N(0, 0.02) as ViT)."""

    def __init__(self, kind: str, dim: int, grid: int):
        super().__init__()
        if kind not in POS_EMBEDS:
            raise ConfigError(f"pos_embed must be one of {POS_EMBEDS}, got {kind!r}")
        self.kind = kind
        if kind == "learned":
            self.weight = nn.Parameter(torch.randn(1, grid * grid, dim) * 0.02)
        else:
            self.register_buffer("weight", sincos_2d(dim, grid, grid)[None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight.to(x.dtype)

    def extra_repr(self) -> str:
        return self.kind


# -- transformer stacks ------------------------------------------------------------------------------
def _check_vit(resolution: int, patch_size: int, dim: int, heads: int, mlp_dim: int, where: str) -> int:
    if patch_size < 1 or resolution % patch_size:
        raise ConfigError(
            f"{where}: the patch size {patch_size} must divide the resolution {resolution} "
            "(e.g. patch_size=8 at 256x256, 4 at 32x32)"
        )
    if heads < 1 or dim % heads:
        raise ConfigError(f"{where}: the width dim={dim} must be a multiple of heads={heads}")
    if mlp_dim < 1:
        raise ConfigError(f"{where}: mlp_dim must be >= 1, got {mlp_dim}")
    return resolution // patch_size


def _blocks(dim: int, depth: int, heads: int, mlp_dim: int, *, mlp_act: str = "gelu", qkv_bias: bool = True,
            norm_eps: float | None = None) -> nn.Sequential:
    """``depth`` pre-norm timm blocks. ``mlp_act``, ``qkv_bias`` and ``norm_eps`` (None: timm's 1e-6) exist
    for imported enhancing-transformers checkpoints (``enhancing/modules/stage1/layers.py``: ``FeedForward``
    uses Tanh, ``Attention.to_qkv`` has no bias, ``PreNorm`` is ``nn.LayerNorm`` with eps 1e-5)."""
    if depth < 1:
        raise ConfigError(f"a ViT needs depth >= 1, got {depth}")
    if mlp_act not in MLP_ACTS:
        raise ConfigError(f"mlp_act must be one of {sorted(MLP_ACTS)}, got {mlp_act!r}")
    extra: dict[str, Any] = {"act_layer": MLP_ACTS[mlp_act]}
    if norm_eps is not None:
        extra["norm_layer"] = partial(nn.LayerNorm, eps=float(norm_eps))
    blocks = nn.Sequential(
        *[Block(dim, heads, mlp_ratio=mlp_dim / dim, qkv_bias=bool(qkv_bias), **extra) for _ in range(depth)]
    )
    hidden = blocks[0].mlp.fc1.out_features
    if hidden != mlp_dim:  # timm computes int(dim * mlp_ratio)
        raise ConfigError(f"mlp_dim={mlp_dim} cannot be expressed with width {dim}; got {hidden}")
    return blocks


def _tanh_head(dim: int, hidden: int, out: int) -> nn.Sequential:
    """The two-layer feed-forward output with tanh in the middle (Sec. 3.1); linear output."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, out))


def _head(kind: str, dim: int, hidden: int, out: int, where: str) -> nn.Module:
    """The output head: ``tanh_mlp`` (the paper's, default), ``linear`` (one linear map per token: the
    enhancing-transformers decoder's ``to_pixel``, a ``ConvTranspose2d`` with kernel = stride = patch) or
    ``none`` (its encoder, whose output is the final LayerNorm's; needs ``out == dim``)."""
    if kind not in HEADS:
        raise ConfigError(f"{where}: head must be one of {HEADS}, got {kind!r}")
    if kind == "tanh_mlp":
        return _tanh_head(dim, hidden, out)
    if kind == "linear":
        return nn.Sequential(nn.Linear(dim, out))
    if out != dim:
        raise ConfigError(f"{where}: head='none' needs the output width {out} to equal the model width {dim}")
    return nn.Identity()


def vit_init(module: nn.Module) -> None:
    """JAX ViT initialisation (also enhancing-transformers'): xavier-uniform linear and patch weights
    (the conv weight seen as a [out, in * p * p] matrix), zero biases, unit LayerNorm."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ViTEncoder(nn.Module):
    """Image [N, C, R, R] -> latent map [N, out_dim, R/p, R/p] (Sec. 3.1)."""

    def __init__(
        self,
        *,
        resolution: int,
        img_channels: int,
        patch_size: int,
        out_dim: int,
        dim: int = 512,
        depth: int = 8,
        heads: int = 8,
        mlp_dim: int = 2048,
        head_dim: int | None = None,
        pos_embed: str = "sincos",
        head: str = "tanh_mlp",
        mlp_act: str = "gelu",
        qkv_bias: bool = True,
        norm_eps: float | None = None,
    ):
        super().__init__()
        self.grid = _check_vit(resolution, patch_size, dim, heads, mlp_dim, "model.G.encoder")
        self.patch_embed = nn.Conv2d(img_channels, dim, patch_size, stride=patch_size)
        self.pos = PositionEmbedding(pos_embed, dim, self.grid)
        self.blocks = _blocks(dim, depth, heads, mlp_dim, mlp_act=mlp_act, qkv_bias=qkv_bias, norm_eps=norm_eps)
        self.norm = nn.LayerNorm(dim)
        self.head = _head(head, dim, head_dim or mlp_dim, out_dim, "model.G.encoder")
        self.apply(vit_init)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(img)  # [N, dim, g, g]
        n, d, g, _ = x.shape
        x = self.pos(x.flatten(2).transpose(1, 2))  # [N, g*g, dim], raster order
        x = self.head(self.norm(self.blocks(x)))  # [N, g*g, out_dim]
        return x.transpose(1, 2).reshape(n, -1, g, g)  # [N, out_dim, g, g]


class ViTDecoder(nn.Module):
    """Latent map [N, in_dim, g, g] -> image [N, C, g*p, g*p] (Sec. 3.1, the encoder inverted)."""

    def __init__(
        self,
        *,
        resolution: int,
        img_channels: int,
        patch_size: int,
        in_dim: int,
        dim: int = 512,
        depth: int = 8,
        heads: int = 8,
        mlp_dim: int = 2048,
        head_dim: int | None = None,
        pos_embed: str = "sincos",
        head: str = "tanh_mlp",
        mlp_act: str = "gelu",
        qkv_bias: bool = True,
        norm_eps: float | None = None,
    ):
        super().__init__()
        self.grid = _check_vit(resolution, patch_size, dim, heads, mlp_dim, "model.G.decoder")
        if head == "none":
            raise ConfigError("model.G.decoder: head must be 'tanh_mlp' or 'linear' (it maps tokens to pixels)")
        self.patch_size, self.img_channels = patch_size, img_channels
        # Only when the code space and the decoder width differ (e.g. Small encoder, Large decoder).
        self.proj_in = nn.Linear(in_dim, dim) if in_dim != dim else nn.Identity()
        self.pos = PositionEmbedding(pos_embed, dim, self.grid)
        self.blocks = _blocks(dim, depth, heads, mlp_dim, mlp_act=mlp_act, qkv_bias=qkv_bias, norm_eps=norm_eps)
        self.norm = nn.LayerNorm(dim)
        self.head = _head(head, dim, head_dim or mlp_dim, patch_size * patch_size * img_channels, "model.G.decoder")
        self.apply(vit_init)

    @property
    def last_layer(self) -> nn.Parameter:
        return self.head[-1].weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, _, g, _ = z.shape
        p, c = self.patch_size, self.img_channels
        x = self.proj_in(z.flatten(2).transpose(1, 2))  # [N, g*g, dim]
        x = self.head(self.norm(self.blocks(self.pos(x))))  # [N, g*g, p*p*C]
        x = x.reshape(n, g, g, p, p, c)  # token (row, col), pixel (row, col, channel) in the patch
        return x.permute(0, 5, 1, 3, 2, 4).reshape(n, c, g * p, g * p)  # [N, C, R, R]


# -- the autoencoder ("G") ---------------------------------------------------------------------------
class ViTVQAutoencoder(nn.Module):
    """ViT encoder -> factorized l2-normalised vector quantizer -> ViT decoder.

    The autoencoder convention of ganzoo's VQ family: ``encode(img) -> QuantizerOutput``,
    ``decode(z_q) -> img``, ``decode_indices(indices) -> img``, ``forward(img) -> (img_rec, q)``,
    ``last_layer``, and ``img_resolution, img_channels, c_dim = 0, z_dim = 0, n_embed, embed_dim,
    code_shape, quantizer``.
    """

    def __init__(
        self,
        *,
        resolution: int = 256,
        img_channels: int = 3,
        patch_size: int = 8,
        pos_embed: str = "sincos",
        encoder: dict[str, Any] | None = None,
        decoder: dict[str, Any] | None = None,
        n_embed: int = 8192,
        embed_dim: int | None = None,
        lookup_dim: int | None = 32,
        l2_normalize: bool = True,
        beta: float = 0.25,
        quantizer: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.img_resolution, self.img_channels = int(resolution), int(img_channels)
        self.c_dim = self.z_dim = 0
        enc_cfg, dec_cfg = dict(encoder or {}), dict(decoder or {})
        width = int(enc_cfg.get("dim", 512))
        self.embed_dim = int(embed_dim or width)  # the high-dimensional code space (Sec. 3.2)
        self.n_embed = int(n_embed)
        shape = dict(resolution=resolution, img_channels=img_channels, patch_size=patch_size, pos_embed=pos_embed)
        self.encoder = construct(ViTEncoder, enc_cfg, where="model.G.encoder", out_dim=self.embed_dim, **shape)
        self.decoder = construct(ViTDecoder, dec_cfg, where="model.G.decoder", in_dim=self.embed_dim, **shape)
        self.quantizer = construct(
            VectorQuantizer,
            {"legacy": False, **dict(quantizer or {})},
            where="model.G.quantizer",
            n_embed=self.n_embed,
            embed_dim=self.embed_dim,
            beta=beta,
            l2_normalize=l2_normalize,
            lookup_dim=lookup_dim,
        )
        if self.quantizer.embedding is not None:
            nn.init.normal_(self.quantizer.embedding.weight)  # "initialized from a normal distribution"
        self.code_shape = (self.encoder.grid, self.encoder.grid)

    @property
    def last_layer(self) -> nn.Parameter:
        return self.decoder.last_layer

    def encode(self, img: torch.Tensor) -> QuantizerOutput:
        return self.quantizer(self.encoder(img))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(z_q)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(self.quantizer.lookup(indices))

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        q = self.encode(img)
        return self.decode(q.z_q), q


# -- registry ----------------------------------------------------------------------------------------
# Loss defaults of Sec. 3.3: L2 (1.0) + perceptual (0.1) + adversarial (0.1, fixed) + logit-Laplace (0.1)
# + VQ (1.0). The CPU and tiny presets turn the perceptual and logit-Laplace terms off.
LOSS_DEFAULTS: dict[str, Any] = {
    "rec_loss": "l2",
    "rec_weight": 1.0,
    "perceptual_weight": 0.1,
    "codebook_weight": 1.0,
    "disc_weight": 0.1,
    "adaptive_weight": False,
    "logit_laplace_weight": 0.1,
    "d_loss": "vanilla",
    "disc_start": 0,
    "lpips_weights": None,
    "lpips_download": True,
    "lpips_random_backbone": False,  # tests only: an explicit choice, never a fallback
}
PERCEPTUAL_KEYS = ("lpips_weights", "lpips_download", "lpips_random_backbone")


def vit_vqgan(
    *,
    resolution: int = 32,
    img_channels: int = 1,
    G: dict[str, Any] | None = None,
    D: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
    ema: dict[str, Any] | None = None,
) -> Bundle:
    """ViT-VQGAN (Yu et al. 2022): ViT autoencoder, factorized l2 codes, StyleGAN2 discriminator.

    ``G`` holds the autoencoder's options (``patch_size``, ``pos_embed``, ``encoder`` / ``decoder``
    widths, ``n_embed``, ``lookup_dim``...), ``D`` the StyleGAN2 discriminator's, ``loss`` the
    objective's. Optimizers: Adam(1e-4, betas (0.9, 0.99)) for both modules (Sec. 4.1; the
    re-implementation adds weight decay 1e-4 with AdamW). ``ema`` (None: no EMA copy) keeps an
    average of the autoencoder.
    """
    from ..bundle import autoencoder_bundle
    from ..losses.autoencoder import AutoencoderObjective
    from ..losses.objectives import optimizer_spec

    gen = construct(ViTVQAutoencoder, G, where="model.G (vit_vqgan)", resolution=resolution, img_channels=img_channels)
    d_cfg = {"channel_base": 32768, "channel_max": 512, "mbstd_group_size": 4, **dict(D or {})}
    disc = construct(Discriminator, d_cfg, where="model.D (vit_vqgan)", img_resolution=resolution,
                     img_channels=img_channels, c_dim=0)
    optim = dict(optim or {})
    unknown = sorted(set(optim) - {"G", "D"})
    if unknown:
        raise ConfigError(f"model.optim (vit_vqgan) has no module(s) {unknown}. Allowed: ['D', 'G'].")
    adam = OptimizerSpec(lr=1e-4, betas=(0.9, 0.99), eps=1e-8)
    loss_cfg = {**LOSS_DEFAULTS, **dict(loss or {})}
    # How the LPIPS-VGG trunk of the perceptual term is found (ganzoo.losses.perceptual).
    lpips_opts = {k: loss_cfg.pop(k) for k in PERCEPTUAL_KEYS}
    perceptual = None
    if float(loss_cfg.get("perceptual_weight", 0.0)) > 0:
        perceptual = LazyPerceptual(  # loaded when training starts, so building works offline
            "vgg", lpips_opts["lpips_weights"], allow_download=bool(lpips_opts["lpips_download"]),
            random_backbone=bool(lpips_opts["lpips_random_backbone"]),
        )
    objective = construct(
        AutoencoderObjective,
        loss_cfg,
        where="model.loss (vit_vqgan)",
        perceptual=perceptual,
        optim_G=optimizer_spec(optim.get("G"), adam),
        optim_D=optimizer_spec(optim.get("D"), adam),
    )
    ema_spec = construct(EMASpec, ema, where="model.ema") if ema else None
    return autoencoder_bundle(gen, disc, objective, ema=ema_spec)


_TABLE1 = {  # Table 1 of the paper: blocks, heads, model dim, hidden (MLP) dim
    "small": {"depth": 8, "heads": 8, "dim": 512, "mlp_dim": 2048},
    "base": {"depth": 12, "heads": 12, "dim": 768, "mlp_dim": 3072},
}
_CPU_VIT = {"depth": 2, "heads": 4, "dim": 64, "mlp_dim": 256}
_TINY_VIT = {"depth": 1, "heads": 2, "dim": 32, "mlp_dim": 64}

PRESETS: dict[str, dict[str, Any]] = {
    # CPU default: 32x32 grey Fashion-MNIST, 4x4 patches (8x8 tokens), two blocks of width 64, 512
    # codes in an 8-d lookup space (the paper's other example size: in a 4-minute CPU run, 8-d used
    # about three times as many codes as 32-d, perplexity 32 vs 10). Perceptual loss off (no VGG
    # weights offline); the discriminator (channels 16 at 32x32, 32 below) joins at step 500.
    "vit_vqgan": dict(
        resolution=32,
        img_channels=1,
        G={"patch_size": 4, "encoder": _CPU_VIT, "decoder": _CPU_VIT, "n_embed": 512, "lookup_dim": 8},
        D={"channel_base": 512, "channel_max": 32, "mbstd_group_size": 4},
        loss={"perceptual_weight": 0.0, "logit_laplace_weight": 0.0, "disc_start": 500},
        optim={"G": {"lr": 5e-4}, "D": {"lr": 5e-4}},
    ),
    "vit_vqgan_tiny": dict(
        resolution=16,
        img_channels=1,
        G={"patch_size": 4, "encoder": _TINY_VIT, "decoder": _TINY_VIT, "n_embed": 64, "lookup_dim": 8},
        D={"channel_base": 128, "channel_max": 16, "mbstd_group_size": 4},
        loss={"perceptual_weight": 0.0, "logit_laplace_weight": 0.0, "disc_start": 0},
        optim={"G": {"lr": 1e-3}, "D": {"lr": 1e-3}},
    ),
    # The paper's Small and Base (Table 1) at 256x256 with 8x8 patches and 8192 codes of 32 dims.
    "vit_vqgan_small": dict(
        resolution=256,
        img_channels=3,
        G={"patch_size": 8, "encoder": _TABLE1["small"], "decoder": _TABLE1["small"], "n_embed": 8192,
           "lookup_dim": 32},
        D={"channel_base": 32768, "channel_max": 512, "mbstd_group_size": 4},
    ),
    "vit_vqgan_base": dict(
        resolution=256,
        img_channels=3,
        G={"patch_size": 8, "encoder": _TABLE1["base"], "decoder": _TABLE1["base"], "n_embed": 8192, "lookup_dim": 32},
        D={"channel_base": 32768, "channel_max": 512, "mbstd_group_size": 4},
    ),
}

_DESCRIPTIONS = {
    "vit_vqgan": "ViT-VQGAN at 32x32 grey, 4x4 patches, width 64 (CPU default)",
    "vit_vqgan_tiny": "ViT-VQGAN at 16x16, one block of width 32 (tests and smoke runs)",
    "vit_vqgan_small": "ViT-VQGAN Small-Small (Table 1) at 256x256, 8x8 patches, 8192 codes",
    "vit_vqgan_base": "ViT-VQGAN Base-Base (Table 1) at 256x256, 8x8 patches, 8192 codes",
}

for _name, _presets in PRESETS.items():
    register_model(_name, family="vector-quantized", builder=vit_vqgan, description=_DESCRIPTIONS[_name], **_presets)
