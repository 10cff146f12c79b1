"""Vector quantisation bottleneck (van den Oord et al. 2017, "Neural Discrete Representation
Learning", Sec. 3.1-3.2 / Eq. 3; Esser et al. 2021, VQ-GAN Sec. 3.1; Yu et al. 2022, ViT-VQGAN
Sec. 3.2).

Each channel vector ``z`` of a ``[N, D, h, w]`` map is replaced by its nearest codebook entry
``e_k``, ``k = argmin_j ||z - e_j||^2``, computed as ``||z||^2 - 2 z.e_j + ||e_j||^2`` in fp32
(an ``[M, K]`` matrix, never an ``[M, K, D]`` tensor). Gradients pass straight through
(``z + sg(e_k - z)``).

Losses (VQ-VAE Eq. 3): ``codebook = ||sg(z) - e||^2`` moves the codes, ``commitment =
||z - sg(e)||^2`` moves the encoder. ``legacy=True`` reproduces taming-transformers'
``VectorQuantizer2`` default, which applies ``beta`` to the codebook term instead of the
commitment term (``commitment + beta * codebook``); ``legacy=False`` is the paper's form
(``codebook + beta * commitment``).

Options:
- ``ema``: the codebook is not trained by gradients but is an exponential moving average of the
  vectors assigned to each code (VQ-VAE App. A.1; VQ-VAE-2): ``N_k <- decay N_k + (1-decay) n_k``,
  ``m_k <- decay m_k + (1-decay) sum z``, ``e_k = m_k / N~_k`` with Laplace smoothing
  ``N~_k = (N_k + eps) / (sum N + K eps) * sum N``. The loss is then ``beta * commitment``.
- ``restart_dead``: codes whose running usage (EMA of assignments per batch) falls below
  ``dead_threshold`` are re-initialised from random vectors of the current batch (Jukebox,
  Dhariwal et al. 2020, Sec. 3.1 / App. A).
- ``lookup_dim``: factorized codes (ViT-VQGAN Sec. 3.2): a linear projection ``D -> lookup_dim``
  before the lookup and ``lookup_dim -> D`` after it; the codebook lives in the low-dim space.
- ``l2_normalize``: both the (projected) encoder vectors and the codes are l2-normalised before the
  lookup (ViT-VQGAN Sec. 3.2), so the distance is a cosine distance.

Under ``torch.distributed`` the EMA statistics and the restart samples are shared by all ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["QuantizerOutput", "VectorQuantizer", "nearest_code", "code_counts", "code_statistics"]


@dataclass
class QuantizerOutput:
    z_q: Tensor  # [N, D, h, w] quantized vectors, straight-through (gradient -> encoder)
    indices: Tensor  # [N, h, w] int64 code indices
    loss: Tensor  # scalar: the quantizer's total loss (see the module docstring)
    codebook_loss: Tensor  # scalar ||sg(z) - e||^2 (EMA mode: its value, detached)
    commitment_loss: Tensor  # scalar ||z - sg(e)||^2
    perplexity: Tensor  # scalar exp(entropy of code usage in the batch)
    usage: Tensor  # scalar share of the codebook used in the batch (0..1)


def _distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def nearest_code(z: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest row of ``codebook`` [K, D] for every row of ``z`` [M, D] -> [M].

    ``||z||^2 - 2 z.e + ||e||^2`` in fp32 with autocast off: bf16 distances would tie or swap
    codes whose distances differ by less than bf16's ~3 significant digits.
    """
    with torch.autocast(device_type=z.device.type, enabled=False):
        z, e = z.float(), codebook.float()
        d = z.pow(2).sum(1, keepdim=True) - 2.0 * (z @ e.t()) + e.pow(2).sum(1)[None, :]  # [M, K]
        return d.argmin(dim=1)


def code_counts(indices: Tensor, n_embed: int) -> Tensor:
    """How many times each of the ``n_embed`` codes occurs in ``indices`` (float [K]).

    A scatter-add rather than ``torch.bincount``, which on CUDA reads the largest index back to the
    host (a sync every training step).
    """
    flat = indices.reshape(-1).long()
    return torch.zeros(n_embed, device=flat.device).index_add_(0, flat, torch.ones(flat.shape, device=flat.device))


def code_statistics(indices: Tensor, n_embed: int) -> tuple[Tensor, Tensor]:
    """``(perplexity, usage)`` of a set of code indices (any shape).

    perplexity = exp(-sum_k p_k log p_k) with p_k the share of vectors assigned to code k (as taming's
    EMA quantizer logs it); usage = share of the ``n_embed`` codes used at least once.
    """
    counts = code_counts(indices, n_embed)
    p = counts / counts.sum().clamp_min(1.0)
    perplexity = torch.exp(-(p * torch.log(p + 1e-10)).sum())
    usage = (counts > 0).float().mean()
    return perplexity, usage


class VectorQuantizer(nn.Module):
    """Nearest-code quantizer for ``[N, D, h, w]`` maps. See the module docstring for the options.

    Args:
        n_embed: number of codes K.
        embed_dim: channels D of the input (and output) map.
        beta: weight of the commitment term (0.25 in VQ-VAE / taming); see ``legacy``.
        ema: EMA codebook updates instead of a codebook loss (``decay``, Laplace ``eps``).
        restart_dead: restart codes used less than ``dead_threshold`` times per batch on average.
        l2_normalize: cosine-similarity lookup with unit-norm codes.
        lookup_dim: factorized low-dim lookup space (None: look up in ``embed_dim``).
        legacy: taming's default loss form, ``commitment + beta * codebook``.
    """

    def __init__(
        self,
        n_embed: int,
        embed_dim: int,
        *,
        beta: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart_dead: bool = False,
        dead_threshold: float = 1.0,
        usage_decay: float = 0.99,
        l2_normalize: bool = False,
        lookup_dim: int | None = None,
        legacy: bool = True,
    ):
        super().__init__()
        if n_embed < 1 or embed_dim < 1:
            raise ValueError(f"n_embed={n_embed} and embed_dim={embed_dim} must be >= 1")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay} must be in [0, 1)")
        self.n_embed, self.embed_dim = int(n_embed), int(embed_dim)
        self.beta, self.ema, self.decay, self.eps = float(beta), bool(ema), float(decay), float(eps)
        self.restart_dead, self.dead_threshold = bool(restart_dead), float(dead_threshold)
        self.usage_decay = float(usage_decay)
        self.l2_normalize, self.legacy = bool(l2_normalize), bool(legacy)
        self.lookup_dim = int(lookup_dim) if lookup_dim else self.embed_dim
        factorized = lookup_dim is not None and int(lookup_dim) != self.embed_dim
        self.proj_in = nn.Linear(self.embed_dim, self.lookup_dim) if factorized else None
        self.proj_out = nn.Linear(self.lookup_dim, self.embed_dim) if factorized else None

        K, d = self.n_embed, self.lookup_dim
        if self.ema:
            # taming's EmbeddingEMA starts from N(0, 1) codes; the running sums are buffers so the
            # optimizer never touches them and they are saved in the checkpoint.
            embed = torch.randn(K, d)
            self.register_buffer("embed", embed)
            self.register_buffer("embed_avg", embed.clone())
            self.register_buffer("cluster_size", torch.zeros(K))
            self.embedding = None
        else:
            self.embedding = nn.Embedding(K, d)
            nn.init.uniform_(self.embedding.weight, -1.0 / K, 1.0 / K)  # taming VectorQuantizer2
            # Running usage (only for dead-code restarts); in EMA mode cluster_size plays this role.
            if self.restart_dead:
                self.register_buffer("cluster_size", torch.zeros(K))

    # -- codebook access -----------------------------------------------------------------------
    @property
    def weight(self) -> Tensor:
        """The stored codebook [K, lookup_dim] (a parameter, or the EMA buffer)."""
        return self.embed if self.ema else self.embedding.weight

    def codebook(self) -> Tensor:
        """The codebook as used by the lookup [K, lookup_dim] (l2-normalised if configured)."""
        w = self.weight
        return F.normalize(w, dim=1) if self.l2_normalize else w

    def lookup(self, indices: Tensor) -> Tensor:
        """Codes of ``indices`` [N, h, w] as a map [N, D, h, w] (stage 2 decodes its samples)."""
        e = self.codebook()[indices]  # [N, h, w, d]
        if self.proj_out is not None:
            e = self.proj_out(e)  # [N, h, w, D]
        return e.permute(0, 3, 1, 2).contiguous()  # [N, D, h, w]

    # -- forward -------------------------------------------------------------------------------
    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.dim() != 4 or z.shape[1] != self.embed_dim:
            raise ValueError(f"expected z of shape [N, {self.embed_dim}, h, w], got {tuple(z.shape)}")
        n, _, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.embed_dim)  # [M, D], M = N*h*w
        if self.proj_in is not None:
            flat = self.proj_in(flat)  # [M, d]
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = flat.float()
            if self.l2_normalize:
                flat = F.normalize(flat, dim=1)
            codebook = self.codebook().float()
            idx = nearest_code(flat, codebook)  # [M]
            e = codebook[idx]  # [M, d]
            if self.training and self.ema:
                # As taming's EMAVectorQuantizer: this batch is quantized with the codes before the update.
                e = e.detach().clone()
                self._ema_update(flat.detach(), idx)
            commitment = F.mse_loss(flat, e.detach())
            if self.ema:
                codebook_loss = commitment.detach()
                loss = self.beta * commitment
            else:
                codebook_loss = F.mse_loss(e, flat.detach())
                loss = commitment + self.beta * codebook_loss if self.legacy else codebook_loss + self.beta * commitment
            q = flat + (e - flat).detach()  # straight-through estimator
        if self.training and self.restart_dead:
            self._restart_dead(flat.detach(), idx)
        if self.proj_out is not None:
            q = self.proj_out(q)  # [M, D]
        z_q = q.reshape(n, h, w, self.embed_dim).permute(0, 3, 1, 2).contiguous()  # [N, D, h, w]
        indices = idx.reshape(n, h, w)
        perplexity, usage = code_statistics(idx.detach(), self.n_embed)
        return QuantizerOutput(z_q, indices, loss, codebook_loss, commitment, perplexity, usage)

    # -- codebook maintenance ------------------------------------------------------------------
    def _counts(self, flat: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Per-code assignment counts [K] and vector sums [K, d], summed over all ranks."""
        onehot = F.one_hot(idx, self.n_embed).to(flat.dtype)  # [M, K]
        counts = onehot.sum(0)
        sums = onehot.t() @ flat  # [K, d]
        if _distributed():
            tdist.all_reduce(counts)
            tdist.all_reduce(sums)
        return counts, sums

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, idx: Tensor) -> None:
        counts, sums = self._counts(flat, idx)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.n_embed * self.eps) * total  # Laplace
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    @torch.no_grad()
    def _restart_dead(self, flat: Tensor, idx: Tensor) -> None:
        if not self.ema:  # EMA mode already tracks usage in cluster_size
            counts = code_counts(idx, self.n_embed).to(self.cluster_size)
            if _distributed():
                tdist.all_reduce(counts)
            self.cluster_size.mul_(self.usage_decay).add_(counts, alpha=1.0 - self.usage_decay)
        dead = (self.cluster_size < self.dead_threshold)[:, None]  # [K, 1]
        # A random batch vector for every code (with replacement), used where the code is dead: no
        # host read of how many are dead, so no device sync per step.
        pick = torch.randint(0, flat.shape[0], (self.n_embed,), device=flat.device)
        new = flat[pick].to(self.weight.dtype)  # [K, d]
        if _distributed():
            tdist.broadcast(new, src=0)  # every rank restarts the same codes with the same vectors
        self.weight.data.copy_(torch.where(dead, new, self.weight.data))
        # A restarted code counts as just used, so it is not restarted again at once.
        self.cluster_size.copy_(torch.where(dead[:, 0], torch.full_like(self.cluster_size, self.dead_threshold),
                                            self.cluster_size))
        if self.ema:
            self.embed_avg.copy_(torch.where(dead, new * self.dead_threshold, self.embed_avg))

    def extra_repr(self) -> str:
        opts = [f"n_embed={self.n_embed}", f"embed_dim={self.embed_dim}", f"beta={self.beta}"]
        if self.lookup_dim != self.embed_dim:
            opts.append(f"lookup_dim={self.lookup_dim}")
        opts += [k for k in ("ema", "restart_dead", "l2_normalize", "legacy") if getattr(self, k)]
        return ", ".join(opts)
