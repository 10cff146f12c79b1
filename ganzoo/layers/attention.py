"""Self-attention for feature maps (SAGAN, Zhang et al. 2019, Sec. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .spectral import sn_conv2d


class SelfAttention2d(nn.Module):
    """SAGAN self-attention block: ``y = x + gamma * o(attention(f, g) applied to h)``.

    With ``f(x)`` (query, ``C / qk_reduction`` channels), ``g(x)`` (key, same width) and ``h(x)``
    (value, ``C / v_reduction``) 1x1 convolutions, ``beta_ji = softmax_i(f(x_j)^T g(x_i))``
    (Sec. 3, eq. 1) is the weight query position ``j`` gives key position ``i``; the attended
    values are mapped back to ``C`` channels by the 1x1 convolution ``o`` (``v`` in eq. 2) and
    added with a learned scalar ``gamma`` that starts at 0 (eq. 3), so the block is the identity
    at first. (Eq. 1 writes ``s_ij = f(x_i)^T g(x_j)`` with ``f`` on the attended side; ``f`` and
    ``g`` have the same shape, so swapping their names changes nothing. Here they follow the
    official code: ``f`` = ``theta``, the un-pooled query; ``g`` = ``phi``, the pooled key.)

    Checked against the official TF code (``non_local.sn_non_local_block_sim``), StudioGAN's
    ``ops.SelfAttention`` and BigGAN-PyTorch's ``Attention``, which all agree on:

    * ``pool``: keys and values are 2x2 max-pooled, so ``HW / 4`` key positions (needs even H, W).
    * ``bias=False``: none of the four 1x1 convolutions has a bias (TF ``sn_conv1x1``).
    * value width ``C / 2`` (``v_reduction=2``), query/key width ``C / 8``. The paper's text
      gives ``C / 8`` for the value too (Sec. 3); the code, and so the parameter counts, use
      ``C / 2``.
    * weights use Xavier-uniform initialisation (the SAGAN code; BigGAN and StudioGAN
      re-initialise their whole model orthogonally, which models can still do).
    * ``spectral_norm`` on all four convolutions (both SAGAN networks use SN everywhere), with
      :mod:`ganzoo.layers.spectral` so the power-iteration vectors are checkpointed buffers.
    """

    def __init__(
        self,
        channels: int,
        *,
        qk_reduction: int = 8,
        v_reduction: int = 2,
        pool: bool = True,
        spectral_norm: bool = False,
        bias: bool = False,
        sn_eps: float = 1e-6,
    ):
        super().__init__()
        if channels < qk_reduction or channels < v_reduction:
            raise ValueError(
                f"SelfAttention2d: {channels} channels are too few for qk_reduction={qk_reduction} "
                f"and v_reduction={v_reduction}"
            )
        self.channels = channels
        self.qk_channels = channels // qk_reduction
        self.v_channels = channels // v_reduction
        self.pool = pool

        def conv1x1(cin: int, cout: int) -> nn.Module:
            conv = sn_conv2d(cin, cout, kernel_size=1, bias=bias, sn=spectral_norm, sn_eps=sn_eps)
            nn.init.xavier_uniform_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            return conv

        self.f = conv1x1(channels, self.qk_channels)  # query
        self.g = conv1x1(channels, self.qk_channels)  # key
        self.h = conv1x1(channels, self.v_channels)  # value
        self.o = conv1x1(self.v_channels, channels)  # output projection
        self.gamma = nn.Parameter(torch.zeros([]))

    def _pool(self, t: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(t, 2) if self.pool else t

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax weights ``[N, HW, HW']`` (query positions x key positions)."""
        if self.pool and (x.shape[2] % 2 or x.shape[3] % 2):
            raise ValueError(f"SelfAttention2d(pool=True) needs even H and W, got {tuple(x.shape[2:])}")
        query = self.f(x).flatten(2)  # [N, Cq, HW]
        key = self._pool(self.g(x)).flatten(2)  # [N, Cq, HW']
        logits = torch.bmm(query.transpose(1, 2), key)  # [N, HW, HW']
        return F.softmax(logits, dim=-1)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights ``[N, HW, HW']``; each row (query position) sums to 1."""
        return self._attention(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        beta = self._attention(x)  # [N, HW, HW']
        value = self._pool(self.h(x)).flatten(2)  # [N, Cv, HW']
        attended = torch.bmm(value, beta.transpose(1, 2))  # [N, Cv, HW]
        out = self.o(attended.reshape(n, self.v_channels, h, w))  # [N, C, H, W]
        return x + self.gamma * out

    def extra_repr(self) -> str:
        return f"channels={self.channels}, qk={self.qk_channels}, v={self.v_channels}, pool={self.pool}"
