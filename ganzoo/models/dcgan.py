"""DCGAN (Radford, Metz & Chintala, ICLR 2016): the baseline.

Generator: project ``z`` to ``4x4x(ngf * 2^(L-1))`` with a transposed conv, then ``L-1``
stride-2 transposed convs halving the channels, each followed by BatchNorm + ReLU, and a last
transposed conv to RGB with tanh (paper Sec. 3, Fig. 1). Discriminator mirrors it with strided
convs and LeakyReLU(0.2), BatchNorm everywhere except the first layer, and a final 4x4 conv to
one logit. Weights ~ N(0, 0.02), BatchNorm gains ~ N(1, 0.02) (Sec. 4). Adam(2e-4, beta1 0.5).

At 64x64 with ``z_dim=100, base_channels=64`` (the paper/PyTorch-example configuration) G has
3,576,704 and D 2,765,568 parameters. Any power-of-two resolution >= 8 works: one more block
per doubling.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..bundle import Bundle, EMASpec, OptimizerSpec, gan_bundle, is_power_of_two
from ..errors import ConfigError
from ..losses.objectives import AdversarialObjective, optimizer_spec
from ..registry import construct, register_model


def _num_blocks(resolution: int) -> int:
    if not is_power_of_two(resolution) or resolution < 8:
        raise ConfigError(
            f"DCGAN cannot produce resolution {resolution}: it must be a power of two >= 8 "
            "(set model.resolution=32 or 64, for example)"
        )
    return int(math.log2(resolution)) - 2  # stride-2 stages after the 4x4 projection


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Sec. 4): conv weights N(0, 0.02); BatchNorm gain N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    def __init__(
        self,
        *,
        z_dim: int = 100,
        base_channels: int = 64,
        resolution: int = 64,
        img_channels: int = 3,
        c_dim: int = 0,
    ):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = resolution, img_channels
        n = _num_blocks(resolution)
        chans = [base_channels * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 512,256,128,64
        # Class conditioning (not in the paper): a learned embedding concatenated to z.
        self.embed = nn.Embedding(c_dim, z_dim) if c_dim > 0 else None
        in_dim = z_dim * (2 if c_dim > 0 else 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, chans[0], 4, 1, 0, bias=False),  # [N, C0, 4, 4]
            nn.BatchNorm2d(chans[0]),
            nn.ReLU(True),
        ]
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(chans[-1], img_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def class_embedding(self, c: torch.Tensor) -> torch.Tensor:
        """The continuous class code ``[N, z_dim]`` that ``forward(z, embedding=...)`` takes.

        The class-embedding protocol of ``ganzoo generate --mode class-interp`` (docs/sampling.md):
        interpolating two classes' codes interpolates between the classes at a fixed ``z``.
        """
        if self.embed is None:
            raise ValueError("this generator is unconditional: it has no class embedding")
        return self.embed(c)

    def forward(
        self, z: torch.Tensor, c: torch.Tensor | None = None, *, embedding: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.embed is not None:
            if embedding is None:
                if c is None:
                    raise ValueError("this generator is class-conditional: pass labels c (or a class embedding)")
                embedding = self.embed(c)
            z = torch.cat([z, embedding.to(z.dtype)], dim=1)
        return self.net(z[:, :, None, None])  # [N, C, R, R]


class DCGANDiscriminator(nn.Module):
    def __init__(self, *, base_channels: int = 64, resolution: int = 64, img_channels: int = 3, c_dim: int = 0):
        super().__init__()
        self.img_resolution, self.img_channels, self.c_dim = resolution, img_channels, c_dim
        n = _num_blocks(resolution)
        chans = [base_channels * 2**i for i in range(n)]  # e.g. 64,128,256,512
        layers: list[nn.Module] = [nn.Conv2d(img_channels, chans[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)  # [N, C_last, 4, 4]
        self.out = nn.Conv2d(chans[-1], 1, 4, 1, 0, bias=False)
        # Class conditioning (not in the paper): projection discriminator (Miyato & Koyama 2018).
        self.embed = nn.Embedding(c_dim, chans[-1]) if c_dim > 0 else None
        self.apply(dcgan_init)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(img)
        logits = self.out(h).flatten()  # [N]
        if self.embed is not None and c is not None:
            logits = logits + (h.sum((2, 3)) * self.embed(c)).sum(1)
        return logits


@register_model("dcgan", family="baseline")
def dcgan(
    *,
    resolution: int = 64,
    img_channels: int = 3,
    c_dim: int = 0,
    G: dict[str, Any] | None = None,
    D: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
    ema: dict[str, Any] | None = None,
) -> Bundle:
    """DCGAN baseline (Radford et al. 2016), non-saturating loss, Adam(2e-4, (0.5, 0.999))."""
    shape = dict(resolution=resolution, img_channels=img_channels, c_dim=c_dim)
    gen = construct(DCGANGenerator, G, where="model.G (dcgan)", **shape)
    disc = construct(DCGANDiscriminator, D, where="model.D (dcgan)", **shape)
    loss = dict(loss or {})
    adam = OptimizerSpec(lr=2e-4, betas=(0.5, 0.999))
    optim = dict(optim or {})
    objective = construct(
        AdversarialObjective,
        {"loss": "nonsat", **loss},
        where="model.loss (dcgan)",
        optim_G=optimizer_spec(optim.get("G"), adam),
        optim_D=optimizer_spec(optim.get("D"), adam),
    )
    # The paper uses no EMA; a generator average is cheap and still helps samples.
    ema_spec = construct(EMASpec, {"half_life_kimg": 10.0, "rampup": 0.05, **(ema or {})}, where="model.ema")
    return gan_bundle(
        gen,
        disc,
        objective,
        ema=ema_spec,
    )


register_model(
    "dcgan_tiny",
    family="baseline",
    builder=dcgan,
    description="DCGAN with 8 base channels at 32x32 (tests and quick CPU runs)",
    resolution=32,
    G={"base_channels": 8, "z_dim": 32},
    D={"base_channels": 8},
)
