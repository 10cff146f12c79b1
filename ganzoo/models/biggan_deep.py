"""BigGAN-deep (Brock et al. 2019, App. B, Fig. 16 and Table 5), following BigGAN-PyTorch's
``BigGANdeep.py`` and ``scripts/launch_BigGAN_deep.sh``.

Differences from BigGAN (``ganzoo.models.biggan``), as in the paper and the official code:

* bottleneck residual blocks, ``depth`` (2) of them per resolution: 1x1 conv to ``C / 4``
  channels, two 3x3 convs, 1x1 conv back (G: BN-ReLU before every conv; D: ReLU before every conv);
* no learnable shortcut in G: the skip keeps the first ``out`` channels of ``x`` ("drop channels")
  and the last block of a stage upsamples; in D the skip is ``concat(x, conv1x1(x))`` when the
  width grows, and the first block of a stage downsamples; D starts with a 3x3 conv on the image;
* the latent is not split: every BatchNorm and the first linear see ``concat(shared(c), z)``.

Everything else (SN, attention, conditional BN, init, objective, EMA) is shared with BigGAN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..bundle import Bundle
from ..errors import ConfigError
from ..layers import ConditionalBatchNorm2d, sn_conv2d, sn_linear
from ..layers.resblocks import ProjectionHead
from ..registry import register_model
from .biggan import G_CHANNELS, attention_block, biggan_init, build_biggan_bundle, class_vector

# ``BigGANdeep.D_arch``: (input, output) channel multipliers per stage; every stage halves the
# resolution except at 32 px, where the last stage keeps 8x8.
D_DEEP: dict[int, tuple[tuple[int, ...], tuple[int, ...], int]] = {
    32: ((4, 4, 4), (4, 4, 4), 2),
    64: ((1, 2, 4, 8), (2, 4, 8, 16), 4),
    128: ((1, 2, 4, 8, 16), (2, 4, 8, 16, 16), 5),
    256: ((1, 2, 4, 8, 8, 16), (2, 4, 8, 8, 16, 16), 6),
}
G_DEEP_RES = (32, 64, 128, 256)


def _check(resolution: int, allowed: Sequence[int], who: str, depth: int) -> None:
    if resolution not in allowed:
        raise ConfigError(f"BigGAN-deep's {who} has architectures for {sorted(allowed)}, not {resolution}")
    if depth < 2:
        raise ConfigError(f"BigGAN-deep needs model.{who}.depth >= 2 blocks per resolution, got {depth}")


class DeepGBlock(nn.Module):
    """BigGAN-deep generator block (Fig. 16, left; ``BigGANdeep.GBlock``), bottleneck ``C_in / 4``."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: Callable[[int], nn.Module],
                 upsample: bool, sn_eps: float = 1e-6, channel_ratio: int = 4):
        super().__init__()
        if out_channels > in_channels:
            raise ValueError("DeepGBlock drops channels on the skip path: out_channels must be <= in_channels")
        hidden = in_channels // channel_ratio
        self.in_channels, self.out_channels, self.upsample = in_channels, out_channels, upsample
        self.norm1, self.conv1 = norm(in_channels), sn_conv2d(in_channels, hidden, 1, sn_eps=sn_eps)
        self.norm2, self.conv2 = norm(hidden), sn_conv2d(hidden, hidden, 3, padding=1, sn_eps=sn_eps)
        self.norm3, self.conv3 = norm(hidden), sn_conv2d(hidden, hidden, 3, padding=1, sn_eps=sn_eps)
        self.norm4, self.conv4 = norm(hidden), sn_conv2d(hidden, out_channels, 1, sn_eps=sn_eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(F.relu(self.norm1(x, y)))
        h = F.relu(self.norm2(h, y))
        x = x[:, : self.out_channels]  # drop channels on the skip path
        if self.upsample:
            h, x = F.interpolate(h, scale_factor=2, mode="nearest"), F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv2(h)
        h = self.conv3(F.relu(self.norm3(h, y)))
        h = self.conv4(F.relu(self.norm4(h, y)))
        return h + x


class DeepDBlock(nn.Module):
    """BigGAN-deep discriminator block (Fig. 16, right; ``BigGANdeep.DBlock``), bottleneck ``C_out / 4``."""

    def __init__(self, in_channels: int, out_channels: int, *, downsample: bool, sn_eps: float = 1e-6,
                 channel_ratio: int = 4):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("DeepDBlock concatenates channels on the skip path: out_channels must be >= in_channels")
        hidden = out_channels // channel_ratio
        self.downsample = downsample
        self.conv1 = sn_conv2d(in_channels, hidden, 1, sn_eps=sn_eps)
        self.conv2 = sn_conv2d(hidden, hidden, 3, padding=1, sn_eps=sn_eps)
        self.conv3 = sn_conv2d(hidden, hidden, 3, padding=1, sn_eps=sn_eps)
        self.conv4 = sn_conv2d(hidden, out_channels, 1, sn_eps=sn_eps)
        grow = out_channels - in_channels
        self.conv_sc = sn_conv2d(in_channels, grow, 1, sn_eps=sn_eps) if grow > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(x))
        h = self.conv3(F.relu(self.conv2(F.relu(h))))
        h = F.relu(h)
        if self.downsample:
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        h = self.conv4(h)
        if self.conv_sc is not None:
            x = torch.cat([x, self.conv_sc(x)], dim=1)  # [N, C_out, H, W]
        return h + x


class DeepGenerator(nn.Module):
    """BigGAN-deep generator, ``G(z, c) -> img``; ``depth`` blocks per resolution (``G_depth``)."""

    def __init__(
        self,
        *,
        z_dim: int = 128,
        ch: int = 128,
        depth: int = 2,
        resolution: int = 128,
        img_channels: int = 3,
        c_dim: int = 0,
        shared_dim: int = 128,
        attn_res: Sequence[int] = (64,),
        sn_eps: float = 1e-6,
        bn_eps: float = 1e-5,
        init: str = "ortho",
    ):
        super().__init__()
        _check(resolution, G_DEEP_RES, "G", depth)
        mults = G_CHANNELS[resolution]
        self.z_dim, self.c_dim = int(z_dim), int(c_dim)
        self.img_resolution, self.img_channels = resolution, img_channels
        self.shared = nn.Embedding(c_dim, shared_dim) if c_dim > 0 else None
        self.cond_dim = z_dim + (shared_dim if c_dim > 0 else 0)

        def norm(channels: int) -> nn.Module:
            return ConditionalBatchNorm2d(channels, cond_dim=self.cond_dim, eps=bn_eps, spectral_norm=True,
                                          sn_eps=sn_eps)

        chans = [ch * m for m in mults]
        self.bottom_channels = chans[0]
        self.linear = sn_linear(self.cond_dim, chans[0] * 4 * 4, sn_eps=sn_eps)
        stages, attention = [], {}
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            # As BigGANdeep.py: the first block keeps the width, the last one changes it and upsamples.
            stages.append(nn.ModuleList(
                DeepGBlock(cin, cin if d == 0 else cout, norm=norm, upsample=d == depth - 1, sn_eps=sn_eps)
                for d in range(depth)
            ))
            if 8 * 2**i in attn_res:
                attention[str(i)] = attention_block(cout, sn_eps)
        self.stages = nn.ModuleList(stages)
        self.attention = nn.ModuleDict(attention)
        self.out_bn = nn.BatchNorm2d(chans[-1], eps=1e-5)
        self.out_conv = sn_conv2d(chans[-1], img_channels, 3, padding=1, sn_eps=sn_eps)
        biggan_init(self, init)

    def class_vector(self, c: torch.Tensor | None, n: int) -> torch.Tensor | None:
        return class_vector(self.shared, self.c_dim, c, n)

    def class_embedding(self, c: torch.Tensor) -> torch.Tensor:
        """One-hot class weights for ``forward(z, embedding=...)`` (see ``biggan.Generator``)."""
        return F.one_hot(c.long(), self.c_dim).float()

    def forward(
        self, z: torch.Tensor, c: torch.Tensor | None = None, *, embedding: torch.Tensor | None = None
    ) -> torch.Tensor:
        cls = self.class_vector(embedding.to(z.dtype) if embedding is not None else c, z.shape[0])
        y = z if cls is None else torch.cat([cls, z], dim=1)  # [N, shared_dim + z_dim]
        h = self.linear(y).view(z.shape[0], self.bottom_channels, 4, 4)  # [N, C0, 4, 4]
        for i, stage in enumerate(self.stages):
            for block in stage:
                h = block(h, y)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))

    def ortho_weights(self) -> list[torch.Tensor]:
        """Every parameter with >= 2 dims except the shared embedding (``utils.ortho``'s blacklist)."""
        return [p for name, p in self.named_parameters() if p.ndim >= 2 and not name.startswith("shared.")]


class DeepDiscriminator(nn.Module):
    """BigGAN-deep discriminator, ``D(img, c) -> logits [N]``; ``depth`` blocks per resolution (``D_depth``)."""

    def __init__(
        self,
        *,
        ch: int = 128,
        depth: int = 2,
        resolution: int = 128,
        img_channels: int = 3,
        c_dim: int = 0,
        attn_res: Sequence[int] = (64,),
        sn_eps: float = 1e-6,
        init: str = "ortho",
    ):
        super().__init__()
        _check(resolution, tuple(D_DEEP), "D", depth)
        ins, outs, n_down = D_DEEP[resolution]
        self.img_resolution, self.img_channels, self.c_dim = resolution, img_channels, int(c_dim)
        self.input_conv = sn_conv2d(img_channels, ch * ins[0], 3, padding=1, sn_eps=sn_eps)
        stages, attention, res = [], {}, resolution
        for i, (cin, cout) in enumerate(zip(ins, outs)):
            down = i < n_down
            stages.append(nn.ModuleList(
                DeepDBlock(ch * (cin if d == 0 else cout), ch * cout, downsample=down and d == 0, sn_eps=sn_eps)
                for d in range(depth)
            ))
            res = res // 2 if down else res
            if res in attn_res:
                attention[str(i)] = attention_block(ch * cout, sn_eps)
        self.stages = nn.ModuleList(stages)
        self.attention = nn.ModuleDict(attention)
        self.head = ProjectionHead(ch * outs[-1], c_dim, sn=True, sn_eps=sn_eps)
        biggan_init(self, init)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.c_dim > 0 and c is None:
            raise ValueError("this BigGAN-deep discriminator is class-conditional: pass labels c")
        h = self.input_conv(img)
        for i, stage in enumerate(self.stages):
            for block in stage:
                h = block(h)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        h = F.relu(h).sum(dim=(2, 3))  # [N, C]
        return self.head(h, c if self.c_dim > 0 else None)  # [N]


def biggan_deep(
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
    """BigGAN-deep (Brock et al. 2019, App. B): bottleneck blocks, two per resolution, BigGAN's objective."""
    return build_biggan_bundle(DeepGenerator, DeepDiscriminator, resolution=resolution, img_channels=img_channels,
                               c_dim=c_dim, G=G, D=D, loss=loss, optim=optim, ema=ema)


# scripts/launch_BigGAN_deep.sh: ch 128, depth 2, dim_z 128, shared_dim 128, attention 64, SN_eps 1e-6,
# adam_eps 1e-6, G_lr 1e-4, D_lr 4e-4, num_D_steps 1, G_ortho 0, ema_start 20000 iterations (x 2048 images).
register_model(
    "biggan_deep_imagenet128",
    family="attention",
    builder=biggan_deep,
    description="BigGAN-deep at 128x128, BigGAN-PyTorch launch_BigGAN_deep.sh (ImageNet, ch 128, depth 2)",
    resolution=128,
    img_channels=3,
    c_dim=1000,
    G=dict(z_dim=128, ch=128, depth=2, shared_dim=128, attn_res=[64], sn_eps=1e-6, init="ortho"),
    D=dict(ch=128, depth=2, attn_res=[64], sn_eps=1e-6, init="ortho"),
    loss=dict(loss="hinge", d_repeats=1, ortho=0.0),
    optim=dict(G=dict(lr=1e-4, betas=[0.0, 0.999], eps=1e-6), D=dict(lr=4e-4, betas=[0.0, 0.999], eps=1e-6)),
    ema=dict(decay=0.9999, start_kimg=40960.0),
)
