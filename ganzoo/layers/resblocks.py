"""Residual blocks with spectral normalisation shared by SAGAN and BigGAN.

The generator block is the one of SNGAN's ResNet (Miyato et al. 2018, App. B.4) with
conditional BatchNorm, used by the SAGAN TF code (``generator.block``), StudioGAN's
``resnet.GenBlock`` and BigGAN-PyTorch's ``GBlock``; the discriminator block is BigGAN-PyTorch's
``DBlock``, whose two orderings cover SAGAN's ``block`` (``preactivation=True``) and
``optimized_block`` (``preactivation=False``, the first block, which must not start with a ReLU
on the image). :class:`ProjectionHead` is the projection discriminator's output (Miyato & Koyama
2018, eq. 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .norms import ConditionalBatchNorm2d
from .spectral import sn_conv2d, sn_embedding, sn_linear

Activation = Callable[[torch.Tensor], torch.Tensor]


class BatchNorm2dIgnoringY(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with the ``forward(x, y)`` signature of a conditional norm.

    Lets an unconditional generator use the same blocks (``norm=BatchNorm2dIgnoringY``).
    """

    def forward(self, x: torch.Tensor, y: Any = None) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)


class GBlock(nn.Module):
    """Up-sampling residual block: ``h = conv2(act(norm2(conv1(up(act(norm1(x, y)))), y)))``.

    Shortcut ``conv_sc(up(x))`` (1x1) when ``in != out`` or ``upsample``, else ``x``; the output
    is ``h + shortcut``. Up-sampling is nearest-neighbour x2 (TF ``resize_nearest_neighbor``,
    ``F.interpolate(mode="nearest")`` in BigGAN-PyTorch / StudioGAN), applied before ``conv1``.

    Args:
        norm: ``norm(channels) -> module`` with ``forward(x, y)`` (a conditional BatchNorm, or
            :class:`BatchNorm2dIgnoringY` for an unconditional G).
        sn, sn_eps, n_power_iterations: spectral normalisation of the three convolutions.
        activation: ReLU in SAGAN and BigGAN.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        norm: Callable[[int], nn.Module],
        upsample: bool = True,
        sn: bool = True,
        sn_eps: float = 1e-6,
        n_power_iterations: int = 1,
        activation: Activation = F.relu,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.upsample = upsample
        self.activation = activation
        kw: dict[str, Any] = dict(sn=sn, sn_eps=sn_eps, n_power_iterations=n_power_iterations)
        self.norm1 = norm(in_channels)
        self.conv1 = sn_conv2d(in_channels, out_channels, 3, padding=1, **kw)
        self.norm2 = norm(out_channels)
        self.conv2 = sn_conv2d(out_channels, out_channels, 3, padding=1, **kw)
        self.learnable_sc = in_channels != out_channels or upsample
        self.conv_sc = sn_conv2d(in_channels, out_channels, 1, **kw) if self.learnable_sc else None

    def _up(self, t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, scale_factor=2, mode="nearest") if self.upsample else t

    def forward(self, x: torch.Tensor, y: Any = None) -> torch.Tensor:
        h = self.conv1(self._up(self.activation(self.norm1(x, y))))
        h = self.conv2(self.activation(self.norm2(h, y)))
        sc = self._up(x)
        if self.conv_sc is not None:
            sc = self.conv_sc(sc)
        return h + sc

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, upsample={self.upsample}"


class DBlock(nn.Module):
    """Down-sampling residual block (BigGAN-PyTorch ``DBlock`` semantics).

    ``h = act(x) if preactivation else x``; ``h = conv2(act(conv1(h)))``; ``h = avgpool2(h)`` if
    ``downsample``. Shortcut: a learnable 1x1 conv when ``in != out`` or ``downsample``; with
    ``preactivation`` it is conv then pool (SAGAN ``block``), otherwise pool then conv (SAGAN
    ``optimized_block``, which is cheaper and is only used on the image). ``wide``: the hidden
    width is ``out_channels`` (SAGAN, BigGAN) instead of ``in_channels``.
    ``activated_shortcut`` (with ``preactivation``): the shortcut takes ``act(x)`` instead of ``x``, as
    StudioGAN's ``DiscBlock`` (``models/resnet.py``, ``big_resnet.py``) computes it: it keeps ``x0 = x``
    and then applies an in-place ReLU, which rewrites the tensor ``x0`` names.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        downsample: bool = True,
        preactivation: bool = True,
        sn: bool = True,
        sn_eps: float = 1e-6,
        n_power_iterations: int = 1,
        activation: Activation = F.relu,
        wide: bool = True,
        activated_shortcut: bool = False,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.downsample, self.preactivation = downsample, preactivation
        self.activated_shortcut = activated_shortcut and preactivation
        self.activation = activation
        hidden = out_channels if wide else in_channels
        kw: dict[str, Any] = dict(sn=sn, sn_eps=sn_eps, n_power_iterations=n_power_iterations)
        self.conv1 = sn_conv2d(in_channels, hidden, 3, padding=1, **kw)
        self.conv2 = sn_conv2d(hidden, out_channels, 3, padding=1, **kw)
        self.learnable_sc = in_channels != out_channels or downsample
        self.conv_sc = sn_conv2d(in_channels, out_channels, 1, **kw) if self.learnable_sc else None

    def _down(self, t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, 2) if self.downsample else t

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_sc is None:
            return x
        if self.preactivation:
            return self._down(self.conv_sc(x))
        return self.conv_sc(self._down(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation(x) if self.preactivation else x
        sc = self.shortcut(h if self.activated_shortcut else x)
        h = self.conv2(self.activation(self.conv1(h)))
        return self._down(h) + sc

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels} -> {self.out_channels}, downsample={self.downsample}, "
            f"preactivation={self.preactivation}"
        )


class ProjectionHead(nn.Module):
    """Projection discriminator output (Miyato & Koyama 2018, eq. 3): ``psi(h) + <embed(y), h>``.

    ``h`` ``[N, C]`` are the pooled features (SAGAN and BigGAN: ``sum(relu(h), dims=(2, 3))``);
    ``psi`` is a linear map with bias, ``embed`` an (SN) embedding of the class. With
    ``num_classes=0`` or ``y=None`` only ``psi(h)`` is returned. Output: logits ``[N]``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int = 0,
        *,
        sn: bool = True,
        sn_eps: float = 1e-6,
        n_power_iterations: int = 1,
    ):
        super().__init__()
        kw: dict[str, Any] = dict(sn=sn, sn_eps=sn_eps, n_power_iterations=n_power_iterations)
        self.num_classes = num_classes
        self.linear = sn_linear(in_features, 1, **kw)
        self.embed = sn_embedding(num_classes, in_features, **kw) if num_classes > 0 else None

    def forward(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.linear(h).squeeze(1)  # [N]
        if self.embed is not None and y is not None:
            out = out + (self.embed(y) * h).sum(dim=1)
        return out


def init_weights(module: nn.Module, scheme: str, *, zero_bias: bool = True) -> None:
    """Initialise every Conv2d, Linear and Embedding weight of ``module`` (SN layers included).

    ``scheme``: ``"ortho"`` (BigGAN, StudioGAN), ``"xavier"``/``"glorot"`` (the SAGAN TF code's
    ``xavier_initializer``, uniform), ``"N02"`` (normal, std 0.02). ``zero_bias`` zeroes the
    biases (TF, StudioGAN); BigGAN-PyTorch keeps PyTorch's default biases. The class tables of
    :class:`ConditionalBatchNorm2d` (gain 1, bias 0) and BatchNorm layers are left alone.
    """
    init: Callable[[torch.Tensor], Any]
    if scheme == "ortho":
        init = nn.init.orthogonal_
    elif scheme in ("xavier", "glorot"):
        init = nn.init.xavier_uniform_
    elif scheme == "N02":
        init = lambda w: nn.init.normal_(w, 0.0, 0.02)  # noqa: E731
    else:
        raise ValueError(f"unknown init scheme {scheme!r}; use 'ortho', 'xavier' or 'N02'")
    skip = {
        id(m)
        for cbn in module.modules()
        if isinstance(cbn, ConditionalBatchNorm2d) and cbn.num_classes is not None
        for m in (cbn.gain, cbn.bias)
    }
    with torch.no_grad():
        for m in module.modules():
            if id(m) in skip or not isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                continue
            init(m.weight)
            bias = getattr(m, "bias", None)
            if zero_bias and isinstance(bias, torch.Tensor):
                bias.zero_()
