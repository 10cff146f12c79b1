"""Normalisation layers: PixelNorm (ProGAN), AdaIN (StyleGAN), conditional BatchNorm (SAGAN, BigGAN)."""

from __future__ import annotations

import torch
from torch import nn

from .equalized import EqualizedLinear
from .spectral import sn_linear


class PixelNorm(nn.Module):
    """Normalise each feature vector to unit RMS over ``dim`` (ProGAN Sec. 4.2).

    ``x / sqrt(mean(x ** 2, dim) + eps)``; also used on z before StyleGAN's mapping network.
    """

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=self.dim, keepdim=True) + self.eps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, eps={self.eps}"


class AdaIN(nn.Module):
    """Adaptive instance normalisation (StyleGAN, Karras et al. 2019, Sec. 2, eq. 1).

    ``AdaIN(x, y) = y_s * (x - mu(x)) / sigma(x) + y_b`` per sample and channel. The style
    ``(y_s, y_b)`` comes from one equalized affine map of ``w``, ``[N, style_dim] -> [N, 2C]``.
    The official code computes ``x * (1 + s) + b`` with a zero bias; here the scale half of the
    bias starts at 1 instead (the same function at initialisation, one addition less). Like the
    official code, sigma uses ``sqrt(mean((x - mu) ** 2) + eps)`` with ``eps = 1e-8``.
    """

    def __init__(self, channels: int, style_dim: int, *, eps: float = 1e-8):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.affine = EqualizedLinear(style_dim, 2 * channels)
        with torch.no_grad():
            # The bias is stored divided by bias_gain (lr_mul); lr_mul is 1 here, so 1 means 1.
            self.affine.bias[:channels].fill_(1.0 / self.affine.bias_gain)
            self.affine.bias[channels:].zero_()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Instance normalisation without affine parameters."""
        x = x - x.mean(dim=(2, 3), keepdim=True)
        return x * torch.rsqrt(x.square().mean(dim=(2, 3), keepdim=True) + self.eps)

    def style(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y_s, y_b)``, each ``[N, C, 1, 1]``."""
        style = self.affine(w).reshape(w.shape[0], 2, self.channels, 1, 1)  # [N, 2, C, 1, 1]
        return style[:, 0], style[:, 1]

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ys, yb = self.style(w)
        return self.normalize(x) * ys + yb

    def extra_repr(self) -> str:
        return f"channels={self.channels}, eps={self.eps}"


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without affine parameters followed by a per-sample gain and bias.

    Two ways to condition, exactly one must be given:

    * ``num_classes``: class-conditional BN (de Vries et al. 2017; SAGAN, Zhang et al. 2019,
      Sec. 5): ``gain = E_g[y]``, ``bias = E_b[y]`` with two embeddings initialised to 1 and 0,
      indexed by long labels ``y`` ``[N]``.
    * ``cond_dim``: BigGAN's shared embedding + z chunk (Brock et al. 2019, Sec. 3 and App. B):
      ``gain = 1 + L_g(y)``, ``bias = L_b(y)`` with bias-free linear maps of a float vector
      ``y`` ``[N, cond_dim]`` (bias-free as in the official BigGAN-PyTorch ``ccbn``), optionally
      spectrally normalised (BigGAN's G uses SN everywhere but on the shared embedding) with
      :func:`~ganzoo.layers.spectral.sn_linear` (``sn_eps`` is its power-iteration epsilon).

    ``spectral_norm`` is only meaningful for ``cond_dim``: the official SAGAN gathers unnormalised
    ``[num_classes, C]`` tables, so asking for it with ``num_classes`` is an error.
    """

    def __init__(
        self,
        num_features: int,
        *,
        num_classes: int | None = None,
        cond_dim: int | None = None,
        eps: float = 1e-5,
        momentum: float = 0.1,
        spectral_norm: bool = False,
        sn_eps: float = 1e-6,
    ):
        super().__init__()
        if (num_classes is None) == (cond_dim is None):
            raise ValueError("ConditionalBatchNorm2d needs exactly one of num_classes or cond_dim")
        self.num_features = num_features
        self.num_classes = num_classes
        self.cond_dim = cond_dim
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)
        self.gain: nn.Module
        self.bias: nn.Module
        if num_classes is not None:
            if spectral_norm:
                raise ValueError("spectral_norm applies to the cond_dim linears, not to class embeddings")
            self.gain = nn.Embedding(num_classes, num_features)
            self.bias = nn.Embedding(num_classes, num_features)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)
        else:
            assert cond_dim is not None
            self.gain = sn_linear(cond_dim, num_features, bias=False, sn=spectral_norm, sn_eps=sn_eps)
            self.bias = sn_linear(cond_dim, num_features, bias=False, sn=spectral_norm, sn_eps=sn_eps)

    def gain_bias(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample ``(gain, bias)``, each ``[N, C, 1, 1]``."""
        if self.num_classes is not None:
            if y.is_floating_point() and y.ndim == 2 and y.shape[1] == self.num_classes:
                # class weights [N, K] (a one-hot row = that class): mixes the tables linearly,
                # which is how class interpolation drives a table-conditioned G
                gain, bias = y @ self.gain.weight, y @ self.bias.weight  # [N, C]
            elif y.dtype in (torch.int64, torch.int32):
                gain, bias = self.gain(y), self.bias(y)  # [N, C]
            else:
                raise TypeError(
                    f"class-conditional BN expects integer labels [N] or class weights [N, {self.num_classes}], "
                    f"got {y.dtype} {tuple(y.shape)}"
                )
        else:
            gain, bias = 1.0 + self.gain(y), self.bias(y)  # [N, C]
        return gain[:, :, None, None], bias[:, :, None, None]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gain, bias = self.gain_bias(y)
        return self.bn(x) * gain + bias

    def extra_repr(self) -> str:
        if self.num_classes is not None:
            return f"{self.num_features}, num_classes={self.num_classes}"
        return f"{self.num_features}, cond_dim={self.cond_dim}"
