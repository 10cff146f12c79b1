"""PatchGAN discriminator (Isola et al. 2017, pix2pix, Sec. 3.2.2 / App. 6.1.2) as used by VQ-GAN.

The N-layer variant of pix2pix/CycleGAN that taming-transformers' ``NLayerDiscriminator`` builds:
a 4x4 stride-2 conv + LeakyReLU(0.2), ``n_layers - 1`` more 4x4 stride-2 convs (no bias) + BatchNorm
+ LeakyReLU with widths ``ndf * min(2^n, 8)``, one 4x4 stride-1 conv (no bias) + BatchNorm +
LeakyReLU at ``ndf * min(2^n_layers, 8)``, and a 4x4 stride-1 conv to one logit per patch.
Each logit sees a 70x70 receptive field for ``n_layers=3``. The output is a map ``[N, 1, h, w]``;
losses average over it.

Initialisation follows taming's ``weights_init``: conv weights N(0, 0.02) (conv biases keep
PyTorch's default), BatchNorm gains N(1, 0.02) and biases 0. taming's ActNorm alternative
(``use_actnorm``) is off in every VQ-GAN config and is not provided.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchGANDiscriminator", "patchgan_init"]


def patchgan_init(module: nn.Module) -> None:
    """taming's ``weights_init``: conv weights N(0, 0.02); BatchNorm gain N(1, 0.02), bias 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class PatchGANDiscriminator(nn.Module):
    """``D(img, c=None) -> logits [N, 1, h, w]``.

    Args:
        img_channels: input channels (taming's ``disc_in_channels``).
        ndf: width of the first layer (64 in taming).
        n_layers: stride-2 layers (3 in taming; each halves the map).
        resolution: only recorded (``img_resolution``); any input size >= 2^(n_layers+2) works.
        c_dim: must be 0 (taming's VQ-GAN discriminator is unconditional).
    """

    def __init__(self, *, img_channels: int = 3, ndf: int = 64, n_layers: int = 3, resolution: int = 256,
                 c_dim: int = 0):
        super().__init__()
        if n_layers < 1 or ndf < 1:
            raise ValueError(f"PatchGAN needs n_layers >= 1 and ndf >= 1 (got n_layers={n_layers}, ndf={ndf})")
        if c_dim:
            raise ValueError("the PatchGAN discriminator is unconditional: set c_dim=0")
        self.img_channels, self.img_resolution, self.c_dim = img_channels, resolution, 0
        self.ndf, self.n_layers = ndf, n_layers
        layers: list[nn.Module] = [nn.Conv2d(img_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last hidden layer keeps the resolution
            # No bias: the BatchNorm that follows has its own shift.
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))  # one logit per patch
        self.main = nn.Sequential(*layers)
        self.apply(patchgan_init)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.main(img)  # [N, 1, h, w]
