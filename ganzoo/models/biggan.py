"""BigGAN (Brock, Donahue & Simonyan, ICLR 2019, "Large Scale GAN Training for High Fidelity
Natural Image Synthesis"), following the first author's BigGAN-PyTorch (``BigGAN.py``,
``layers.py``, ``train_fns.py``, ``utils.py``).

Generator (paper Sec. 3 and App. B, Fig. 15; ``BigGAN.Generator``):

* a **shared class embedding** ``shared(c)`` (a plain ``nn.Embedding``: the official code notes SN
  on it "randomly cripples G") feeds every conditional BatchNorm;
* a **hierarchical latent**: ``z`` is split into ``num_blocks + 1`` equal chunks, the first goes to
  the SN linear that makes the ``4x4`` input, chunk ``i + 1`` is concatenated with the shared
  embedding and conditions both BNs of block ``i`` (``ccbn``: ``gain = 1 + W_g y``,
  ``bias = W_b y``, bias-free SN linears);
* residual up-blocks (``GBlock``: BN-ReLU-up-conv3x3-BN-ReLU-conv3x3, 1x1 shortcut), self-attention
  after the block whose output has a listed resolution (64 at 128 px), then BN-ReLU-SNconv3x3-tanh.

Discriminator (``BigGAN.Discriminator``): residual down-blocks (``DBlock``, the first without
pre-activation), attention, ReLU, **sum** pooling, an SN linear plus the projection term
``sum(embed(c) * h)`` with an SN embedding (Miyato & Koyama 2018).

Every conv, linear and embedding weight is re-initialised orthogonally (``G_init/D_init ortho``;
``N02`` and ``xavier`` also exist), biases keep PyTorch's default as in the official code. SN uses
one power iteration per training-mode forward with the launch script's ``SN_eps``; BN has
``eps = 1e-5`` and momentum 0.1. The class-conditional BN of a generator *without* a shared
embedding (``shared: false``, the CIFAR script) is ``ccbn`` with two plain embedding tables; here
it is :class:`ConditionalBatchNorm2d` fed the one-hot label (a bias-free linear of a one-hot vector
is that table lookup, with the same parameters), which also lets ``c`` be soft class weights.

StudioGAN's ``big_resnet`` (imported by :mod:`ganzoo.pretrained.studiogan`) is this network with the
options whose defaults are the above, set as: ``bn_eps = out_bn_eps = 1e-4`` (its ``ops.batchnorm_2d``),
``channel_mults`` (its 64 px G widths differ from BigGAN-PyTorch's), ``sn_eval="stored"`` (torch
``spectral_norm``'s eval rule, :func:`ganzoo.layers.spectral.set_sn_eval`) and D ``activated_shortcut``
(its ``DiscBlock`` feeds ``relu(x)`` to the shortcut, :class:`~ganzoo.layers.resblocks.DBlock`).

Objective: hinge loss (Sec. 3), ``d_repeats`` D steps per G step, Adam betas (0, 0.999), and the
off-diagonal orthogonal regularisation of G (Sec. 3.1, eq. 3) with the shared embedding
blacklisted. BigGAN-PyTorch adds ``2 * beta * (W W^T * (1 - I)) W`` to each weight's gradient
(``utils.ortho``): the gradient of ``beta / 2 * ||W W^T * (1 - I)||_F^2``, half the gradient of
eq. 3 written as a loss, so :func:`ortho_loss` uses ``strength = beta / 2``. G's EMA uses a fixed
per-step decay from ``ema.start_kimg`` on (see :class:`ganzoo.bundle.EMASpec`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..bundle import Bundle, EMASpec, OptimizerSpec, StepContext, gan_bundle
from ..errors import ConfigError
from ..layers import ConditionalBatchNorm2d, SelfAttention2d, sn_conv2d, sn_linear
from ..layers.resblocks import BatchNorm2dIgnoringY, DBlock, GBlock, ProjectionHead, init_weights
from ..layers.spectral import set_sn_eval
from ..losses import functional as L
from ..losses.objectives import AdversarialObjective, optimizer_spec
from ..registry import construct, register_model

# Channel multipliers of ``G_arch``: block i maps ``ch * mults[i]`` to ``ch * mults[i + 1]`` channels
# and doubles the resolution, starting from 4x4.
G_CHANNELS: dict[int, tuple[int, ...]] = {
    32: (4, 4, 4, 4),
    64: (16, 16, 8, 4, 2),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
    512: (16, 16, 8, 8, 4, 2, 1, 1),
}
# ``D_arch``: output-channel multipliers per block and how many leading blocks halve the resolution.
D_CHANNELS: dict[int, tuple[tuple[int, ...], int]] = {
    32: ((4, 4, 4, 4), 2),
    64: ((1, 2, 4, 8, 16), 4),
    128: ((1, 2, 4, 8, 16, 16), 5),
    256: ((1, 2, 4, 8, 8, 16, 16), 6),
}
INITS = ("ortho", "N02", "xavier")


def _check(resolution: int, table: dict, who: str) -> None:
    if resolution not in table:
        raise ConfigError(
            f"BigGAN's {who} has an architecture for resolutions {sorted(table)} (BigGAN-PyTorch's "
            f"{who}_arch), not {resolution}; set model.resolution to one of them"
        )


def biggan_init(module: nn.Module, style: str) -> None:
    """BigGAN-PyTorch's ``init_weights``: every conv, linear and embedding weight (SN layers
    included) orthogonal, N(0, 0.02) or Xavier-uniform; biases keep PyTorch's default."""
    if style not in INITS:
        raise ConfigError(f"unknown BigGAN init {style!r}; use one of {list(INITS)}")
    init_weights(module, style, zero_bias=False)


def attention_block(channels: int, sn_eps: float) -> SelfAttention2d:
    # BigGAN-PyTorch's Attention: theta/phi C/8, g C/2, 2x2 max-pooled phi and g, no biases, SN.
    return SelfAttention2d(channels, qk_reduction=8, v_reduction=2, pool=True, spectral_norm=True, sn_eps=sn_eps)


def class_vector(
    shared: nn.Embedding | None, c_dim: int, c: torch.Tensor | None, n: int, dtype: torch.dtype | None = None
) -> torch.Tensor | None:
    """``shared(c)`` ``[N, shared_dim]``, or the one-hot label ``[N, c_dim]`` without a shared embedding.

    ``c`` is class indices ``[N]`` or class weights ``[N, c_dim]`` (soft labels: the embedding is
    linear in them, so mixing two one-hot rows interpolates the class embeddings). One-hot rows and
    soft labels are made in ``dtype`` (the generator's, e.g. float64), float32 when it is not given.
    """
    if c_dim <= 0:
        return None
    if c is None:
        raise ValueError("this BigGAN generator is class-conditional: pass labels c")
    dtype = dtype if dtype is not None else (shared.weight.dtype if shared is not None else torch.float32)
    if c.is_floating_point():
        if c.shape != (n, c_dim):
            raise ValueError(f"soft labels must be [N, c_dim] = [{n}, {c_dim}], got {tuple(c.shape)}")
        c = c.to(dtype)
        return c @ shared.weight.to(dtype) if shared is not None else c  # [N, shared_dim | c_dim]
    if shared is not None:
        return shared(c)  # [N, shared_dim]
    return F.one_hot(c.long(), c_dim).to(dtype)  # [N, c_dim]


EVAL_BN = ("running", "batch")


@contextlib.contextmanager
def batch_statistics(module: nn.Module):
    """Inside the block, every BatchNorm of ``module`` that is in eval mode normalises with the statistics of
    the batch it sees and leaves its running statistics alone (BigGAN-PyTorch sampling a G in training mode,
    StudioGAN's ``batch_statistics``); BatchNorms already in training mode (standing statistics) are untouched."""
    flipped = [m for m in module.modules() if isinstance(m, _BatchNorm) and not m.training and m.track_running_stats]
    for m in flipped:
        m.training, m.track_running_stats = True, False
    try:
        yield
    finally:
        for m in flipped:
            m.training, m.track_running_stats = False, True


class Generator(nn.Module):
    """BigGAN generator, ``G(z, c) -> img [N, C, R, R]`` in ``[-1, 1]`` (see the module docstring).

    Args:
        z_dim: latent size; with ``hier`` a multiple of ``num_blocks + 1`` (120 = 6 x 20 at 128 px).
        ch: channel width multiplier (``G_ch``).
        c_dim: classes; 0 = unconditional (then BN is conditioned on the z chunks only, or plain).
        shared: one shared class embedding of ``shared_dim`` for all blocks (``G_shared``); False =
            per-BN class tables (``ccbn`` with embeddings, the CIFAR script).
        hier: hierarchical latent (Sec. 3, "skip-z"); needs ``shared`` when conditional.
        attn_res: output resolutions of the blocks followed by self-attention (``G_attn``).
        sn_eps, bn_eps: epsilons of the power iteration and of BatchNorm.
        init: ``ortho`` | ``N02`` | ``xavier``.
        out_bn_eps: epsilon of the output BatchNorm; channel_mults: replaces ``G_CHANNELS[resolution]``;
            sn_eval: ``power_step`` | ``stored`` (see the module docstring).
        eval_bn: what BatchNorm uses in eval mode (sampling): ``running`` statistics (BigGAN-PyTorch's
            ``--G_eval_mode``, the ImageNet scripts) or the ``batch``'s own, as BigGAN-PyTorch samples a G left
            in training mode (``launch_cifar_ema.sh``); then every image depends on the others of its batch.
    """

    def __init__(
        self,
        *,
        z_dim: int = 120,
        ch: int = 96,
        resolution: int = 128,
        img_channels: int = 3,
        c_dim: int = 0,
        shared: bool = True,
        shared_dim: int = 128,
        hier: bool = True,
        attn_res: Sequence[int] = (64,),
        sn_eps: float = 1e-6,
        bn_eps: float = 1e-5,
        init: str = "ortho",
        out_bn_eps: float = 1e-5,
        channel_mults: Sequence[int] | None = None,
        sn_eval: str = "power_step",
        eval_bn: str = "running",
    ):
        super().__init__()
        _check(resolution, G_CHANNELS, "G")
        if eval_bn not in EVAL_BN:
            raise ConfigError(f"model.G.eval_bn={eval_bn!r}; choose one of {list(EVAL_BN)}")
        self.eval_bn = eval_bn
        mults = tuple(channel_mults) if channel_mults is not None else G_CHANNELS[resolution]
        if len(mults) != len(G_CHANNELS[resolution]):
            raise ConfigError(
                f"model.G.channel_mults needs {len(G_CHANNELS[resolution])} entries at {resolution} px (the 4x4 "
                f"input and one per up block), got {list(mults)}"
            )
        self.num_blocks = len(mults) - 1
        self.z_dim, self.c_dim = int(z_dim), int(c_dim)
        self.img_resolution, self.img_channels = resolution, img_channels
        self.hier = bool(hier)
        if self.hier:
            slots = self.num_blocks + 1
            if z_dim % slots != 0:
                raise ConfigError(
                    f"BigGAN's hierarchical z is split into {slots} equal chunks at {resolution} px; "
                    f"model.G.z_dim={z_dim} is not a multiple of {slots} (use e.g. {slots * max(z_dim // slots, 1)})"
                )
            self.z_chunk = z_dim // slots
        else:
            self.z_chunk = 0
        if c_dim > 0 and not shared and hier:
            raise ConfigError(
                "model.G.hier=true needs the shared class embedding (model.G.shared=true), as in BigGAN-PyTorch"
            )
        self.shared = nn.Embedding(c_dim, shared_dim) if (c_dim > 0 and shared) else None
        class_dim = shared_dim if self.shared is not None else c_dim
        self.cond_dim = class_dim + self.z_chunk
        # SN on the BN linears as official (which_linear); the per-class tables of ccbn are plain.
        cbn_sn = not (c_dim > 0 and not shared)

        def norm(channels: int) -> nn.Module:
            if self.cond_dim == 0:
                return BatchNorm2dIgnoringY(channels, eps=bn_eps)  # unconditional, non-hierarchical
            return ConditionalBatchNorm2d(
                channels, cond_dim=self.cond_dim, eps=bn_eps, spectral_norm=cbn_sn, sn_eps=sn_eps
            )

        chans = [ch * m for m in mults]
        self.bottom_channels = chans[0]
        self.linear = sn_linear(self.z_chunk or z_dim, chans[0] * 4 * 4, sn_eps=sn_eps)
        self.blocks = nn.ModuleList(
            GBlock(cin, cout, norm=norm, upsample=True, sn=True, sn_eps=sn_eps)
            for cin, cout in zip(chans[:-1], chans[1:])
        )
        self.block_resolutions = [8 * 2**i for i in range(self.num_blocks)]
        self.attention = nn.ModuleDict(
            {str(i): attention_block(chans[i + 1], sn_eps)
             for i, r in enumerate(self.block_resolutions) if r in attn_res}
        )
        # BigGAN-PyTorch's output ``bn`` has gain/bias parameters and the default eps 1e-5.
        self.out_bn = nn.BatchNorm2d(chans[-1], eps=out_bn_eps)
        self.out_conv = sn_conv2d(chans[-1], img_channels, 3, padding=1, sn_eps=sn_eps)
        biggan_init(self, init)
        set_sn_eval(self, sn_eval)

    def class_vector(self, c: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """What the BNs see of the class, see :func:`class_vector` (in the dtype of G's weights)."""
        return class_vector(self.shared, self.c_dim, c, n, dtype=self.linear.weight.dtype)

    def block_inputs(self, z: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """The linear layer's input and each block's BN conditioning vector (App. B, Fig. 15)."""
        cls = self.class_vector(c, z.shape[0])
        if not self.hier:
            return z, [cls] * self.num_blocks
        zs = z.split(self.z_chunk, dim=1)  # num_blocks + 1 chunks of [N, z_chunk]
        conds = [zi if cls is None else torch.cat([cls, zi], dim=1) for zi in zs[1:]]  # [N, cond_dim]
        return zs[0], conds

    def class_embedding(self, c: torch.Tensor) -> torch.Tensor:
        """Class weights ``[N, c_dim]`` (one-hot) for ``forward(z, embedding=...)``: the shared
        embedding is linear in them, so mixing two rows interpolates the class embeddings."""
        return F.one_hot(c.long(), self.c_dim).float()

    def forward(
        self, z: torch.Tensor, c: torch.Tensor | None = None, *, embedding: torch.Tensor | None = None
    ) -> torch.Tensor:
        if not self.training and self.eval_bn == "batch":
            with batch_statistics(self):
                return self._forward(z, c, embedding)
        return self._forward(z, c, embedding)

    def _forward(self, z: torch.Tensor, c: torch.Tensor | None, embedding: torch.Tensor | None) -> torch.Tensor:
        z_in, conds = self.block_inputs(z, embedding.to(z.dtype) if embedding is not None else c)
        h = self.linear(z_in).view(z.shape[0], self.bottom_channels, 4, 4)  # [N, C0, 4, 4]
        for i, block in enumerate(self.blocks):
            h = block(h, conds[i])
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        h = self.out_conv(F.relu(self.out_bn(h)))  # [N, img_channels, R, R]
        return torch.tanh(h)

    def ortho_weights(self) -> list[torch.Tensor]:
        """The weights BigGAN-PyTorch's ``utils.ortho`` regularises: every parameter with >= 2 dims
        except the shared embedding. The per-class BN tables (``shared: false``) are stored here as
        ``[C, c_dim]`` linears; they are returned transposed, as the official ``[c_dim, C]`` tables."""
        out = []
        for name, p in self.named_parameters():
            if p.ndim < 2 or name.startswith("shared."):
                continue
            table = self.c_dim > 0 and self.shared is None and (".gain." in name or ".bias." in name)
            out.append(p.t() if table else p)
        return out


class Discriminator(nn.Module):
    """BigGAN discriminator, ``D(img, c) -> logits [N]`` (see the module docstring).

    Args:
        ch: channel width multiplier (``D_ch``); ``wide``: hidden width = output width (SAGAN/BigGAN).
        attn_res: output resolutions of the blocks followed by self-attention (``D_attn``).
        c_dim: classes for the projection; 0 = unconditional (no embedding).
    """

    def __init__(
        self,
        *,
        ch: int = 96,
        resolution: int = 128,
        img_channels: int = 3,
        c_dim: int = 0,
        attn_res: Sequence[int] = (64,),
        wide: bool = True,
        sn_eps: float = 1e-6,
        init: str = "ortho",
        sn_eval: str = "power_step",
        activated_shortcut: bool = False,
    ):
        super().__init__()
        _check(resolution, D_CHANNELS, "D")
        mults, n_down = D_CHANNELS[resolution]
        self.img_resolution, self.img_channels, self.c_dim = resolution, img_channels, int(c_dim)
        chans = [img_channels] + [ch * m for m in mults]
        blocks, attention, res = [], {}, resolution
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            down = i < n_down
            blocks.append(DBlock(cin, cout, downsample=down, preactivation=i > 0, sn=True, sn_eps=sn_eps, wide=wide,
                                 activated_shortcut=activated_shortcut))
            res = res // 2 if down else res
            if res in attn_res:
                attention[str(i)] = attention_block(cout, sn_eps)
        self.blocks = nn.ModuleList(blocks)
        self.attention = nn.ModuleDict(attention)
        # SN linear + SN embedding projection (Miyato & Koyama 2018, eq. 3).
        self.head = ProjectionHead(chans[-1], c_dim, sn=True, sn_eps=sn_eps)
        biggan_init(self, init)
        set_sn_eval(self, sn_eval)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = img
        for i, block in enumerate(self.blocks):
            h = block(h)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        if self.c_dim > 0 and c is None:
            raise ValueError("this BigGAN discriminator is class-conditional: pass labels c")
        h = F.relu(h).sum(dim=(2, 3))  # global sum pooling (SN-GAN), [N, C]
        return self.head(h, c if self.c_dim > 0 else None)  # [N]


class OrthoReg:
    """``g_penalty`` hook: BigGAN's orthogonal regularisation of G's weights (Sec. 3.1) with the
    official gradient scale (``strength = beta / 2``, see the module docstring)."""

    def __init__(self, beta: float):
        self.beta = float(beta)

    def __call__(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        reg = ortho_loss(ctx.modules["G"], self.beta)
        return reg, {"loss/ortho": reg.detach()}


def ortho_loss(G: Generator, beta: float) -> torch.Tensor:
    """``beta / 2 * sum_W ||W W^T * (1 - I)||_F^2`` over :meth:`Generator.ortho_weights`."""
    return L.orthogonal_regularization(G.ortho_weights(), strength=0.5 * beta)


# -- registry ----------------------------------------------------------------------------------
LOSS_DEFAULTS: dict[str, Any] = {"loss": "hinge", "d_repeats": 2, "ortho": 1e-4}


def _objective(loss: dict[str, Any] | None, optim: dict[str, Any] | None) -> AdversarialObjective:
    cfg = {**LOSS_DEFAULTS, **dict(loss or {})}
    unknown = sorted(set(cfg) - set(LOSS_DEFAULTS))
    if unknown:
        raise ConfigError(f"model.loss (biggan) has no option(s) {unknown}. Allowed: {sorted(LOSS_DEFAULTS)}.")
    if int(cfg["d_repeats"]) < 1 or float(cfg["ortho"]) < 0:
        raise ConfigError("model.loss.d_repeats must be >= 1 and model.loss.ortho >= 0 (0 turns it off)")
    optim = dict(optim or {})
    unknown = sorted(set(optim) - {"G", "D"})
    if unknown:
        raise ConfigError(f"model.optim (biggan) has no module(s) {unknown}. Allowed: ['D', 'G'].")
    # BigGAN-PyTorch launch_BigGAN_bs256x8.sh: G 1e-4, D 4e-4, betas (0, 0.999), adam_eps 1e-6.
    adam_g = OptimizerSpec(lr=1e-4, betas=(0.0, 0.999), eps=1e-6)
    adam_d = OptimizerSpec(lr=4e-4, betas=(0.0, 0.999), eps=1e-6)
    beta = float(cfg["ortho"])
    return AdversarialObjective(
        loss=str(cfg["loss"]),
        d_repeats=int(cfg["d_repeats"]),
        optim_G=optimizer_spec(optim.get("G"), adam_g),
        optim_D=optimizer_spec(optim.get("D"), adam_d),
        g_penalty=OrthoReg(beta) if beta > 0 else None,
    )


def biggan(
    *,
    resolution: int = 128,
    img_channels: int = 3,
    c_dim: int = 0,
    G: dict[str, Any] | None = None,
    D: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
    ema: dict[str, Any] | None = None,
) -> Bundle:
    """BigGAN (Brock et al. 2019): shared embedding, hierarchical z, SN, attention, ortho reg."""
    return build_biggan_bundle(Generator, Discriminator, resolution=resolution, img_channels=img_channels,
                               c_dim=c_dim, G=G, D=D, loss=loss, optim=optim, ema=ema)


def build_biggan_bundle(
    gen_cls: type[nn.Module], disc_cls: type[nn.Module], *, resolution: int, img_channels: int, c_dim: int,
    G: dict[str, Any] | None, D: dict[str, Any] | None, loss: dict[str, Any] | None,
    optim: dict[str, Any] | None, ema: dict[str, Any] | None,
) -> Bundle:
    """The bundle of a BigGAN-family G/D pair (BigGAN, BigGAN-deep): one objective and EMA for both."""
    if not isinstance(c_dim, int) or c_dim < 0:
        raise ConfigError(f"model.c_dim must be an integer >= 0 (or 'auto'), got {c_dim!r}")
    shape = dict(resolution=resolution, img_channels=img_channels, c_dim=c_dim)
    gen = construct(gen_cls, G, where="model.G (biggan)", **shape)
    disc = construct(disc_cls, D, where="model.D (biggan)", **shape)
    ema_cfg = {"decay": 0.9999, "start_kimg": 0.0, "rampup": None, **(ema or {})}
    ema_spec = construct(EMASpec, ema_cfg, where="model.ema (biggan)")
    return gan_bundle(gen, disc, _objective(loss, optim), ema=ema_spec)


# Presets. Paper presets follow BigGAN-PyTorch's launch scripts flag by flag (parser defaults where a
# script sets nothing); run settings (batch, accumulation, EMA start) are in conf/experiment/biggan_*.yaml.
# Both scripts use num_D_steps and G_ortho different from the paper: the README's "Key Differences"
# (SA-GAN optimiser settings, no ortho reg in the released models). The builder defaults are the paper's.
PRESETS: dict[str, dict[str, Any]] = {
    # launch_BigGAN_bs256x8.sh: ch 96, dim_z 120, shared_dim 128, hier, attn 64, SN_eps 1e-6,
    # adam_eps 1e-6, G_lr 1e-4, D_lr 4e-4, num_D_steps 1, G_ortho 0, ema_start 20000 iterations.
    "biggan_imagenet128": dict(
        resolution=128,
        img_channels=3,
        c_dim=1000,
        G=dict(z_dim=120, ch=96, shared=True, shared_dim=128, hier=True, attn_res=[64], sn_eps=1e-6, init="ortho"),
        D=dict(ch=96, attn_res=[64], sn_eps=1e-6, init="ortho"),
        loss=dict(loss="hinge", d_repeats=1, ortho=0.0),
        optim=dict(G=dict(lr=1e-4, betas=[0.0, 0.999], eps=1e-6), D=dict(lr=4e-4, betas=[0.0, 0.999], eps=1e-6)),
        # 20000 iterations x (256 x 8 accumulations x 1 D step) images = 40,960 kimg.
        ema=dict(decay=0.9999, start_kimg=40960.0),
    ),
    # launch_cifar_ema.sh: parser defaults (ch 64, dim_z 128, no shared embedding, no hier, SN_eps
    # 1e-8, adam_eps 1e-8) + G_attn/D_attn 0, N02 init, lr 2e-4 / 2e-4, num_D_steps 4, G_ortho 0.
    "biggan_cifar": dict(
        resolution=32,
        img_channels=3,
        c_dim=10,
        G=dict(z_dim=128, ch=64, shared=False, hier=False, attn_res=[], sn_eps=1e-8, init="N02"),
        D=dict(ch=64, attn_res=[], sn_eps=1e-8, init="N02"),
        loss=dict(loss="hinge", d_repeats=4, ortho=0.0),
        optim=dict(G=dict(lr=2e-4, betas=[0.0, 0.999], eps=1e-8), D=dict(lr=2e-4, betas=[0.0, 0.999], eps=1e-8)),
        # ema_start 1000 iterations x (50 x 4 D steps) images = 200 kimg.
        ema=dict(decay=0.9999, start_kimg=200.0),
    ),
    # CPU default on the embedded Fashion-MNIST (32x32 grey, c_dim auto): the paper's objective
    # (2 D steps, ortho 1e-4, shared embedding, hier z, attention at 16) at a CPU width. D's attention
    # follows BigGAN-PyTorch's D_attn '16' at 32 px: D_arch[32] labels all four blocks 16, so attention
    # follows each of them (actual resolutions 16, 8, 8, 8: ganzoo's attn_res [16, 8]).
    "biggan": dict(
        resolution=32,
        img_channels=1,
        c_dim=10,
        G=dict(z_dim=64, ch=8, shared=True, shared_dim=64, hier=True, attn_res=[16], sn_eps=1e-6, init="ortho"),
        D=dict(ch=8, attn_res=[16, 8], sn_eps=1e-6, init="ortho"),
        loss=dict(loss="hinge", d_repeats=2, ortho=1e-4),
        optim=dict(G=dict(lr=2e-4, betas=[0.0, 0.999], eps=1e-6), D=dict(lr=2e-4, betas=[0.0, 0.999], eps=1e-6)),
        ema=dict(decay=0.99, start_kimg=10.0),
    ),
    # Tests and smoke runs: 16 channels, z 32 (4 chunks of 8), attention as the CPU default (D_attn '16').
    "biggan_tiny": dict(
        resolution=32,
        img_channels=3,
        c_dim=10,
        G=dict(z_dim=32, ch=4, shared=True, shared_dim=16, hier=True, attn_res=[16]),
        D=dict(ch=4, attn_res=[16, 8]),
        loss=dict(loss="hinge", d_repeats=2, ortho=1e-4),
        ema=dict(decay=0.999, start_kimg=0.5),
    ),
}
DESCRIPTIONS = {
    "biggan_imagenet128": "BigGAN at 128x128, BigGAN-PyTorch launch_BigGAN_bs256x8.sh (ImageNet, ch 96)",
    "biggan_cifar": "BigGAN at 32x32, BigGAN-PyTorch launch_cifar_ema.sh (CIFAR-10, ch 64)",
    "biggan": "BigGAN at 32x32 grey sized for a CPU (class-conditional, hier z, ortho reg, 2 D steps)",
    "biggan_tiny": "BigGAN at 32x32 with 16 channels (tests and smoke runs)",
}

for _name, _presets in PRESETS.items():
    register_model(_name, family="attention", builder=biggan, description=DESCRIPTIONS[_name], **_presets)
