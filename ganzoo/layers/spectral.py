"""Spectral normalisation (Miyato et al. 2018) as layer classes with buffer state.

``W_sn = W / sigma(W)`` where ``sigma`` is the largest singular value of ``W`` reshaped to
``[out, -1]`` (Miyato et al. 2018, Sec. 2.1, eq. 8), estimated by power iteration (Appendix A,
Algorithm 1) with a left singular vector estimate ``u`` kept across steps.

Why own layers instead of ``torch.nn.utils.parametrizations.spectral_norm``:

* the parameter stays ``weight`` (parameter counts, initialisation and BigGAN's orthogonal
  regularisation see the raw weight, as in the official SAGAN TF and BigGAN-PyTorch code);
* the power-iteration state is two plain buffers, ``weight_u`` ``[out]`` and ``weight_sigma``
  ``[]``, so checkpoints, exact resume, the EMA buffer copy and DDP buffer broadcast carry it;
* the power iteration and ``sigma`` run in fp32 with autocast disabled, so bf16 training does not
  make the estimate drift.

Training mode runs ``n_power_iterations`` updates of ``u`` in place (no gradient), then
``sigma = u^T W v`` with ``u`` and ``v`` detached, so the gradient flows through ``W`` in both
the numerator and ``sigma`` (Miyato et al. 2018, Sec. 2.2, eq. 12) exactly as in the official
implementations. Eval mode never changes ``weight_u`` or ``weight_sigma``: the same iterations
run from the stored ``u`` without storing the result, as BigGAN-PyTorch's ``power_iteration(update=False)``.

:func:`set_sn_eval` ``(module, "stored")`` gives a layer ``torch.nn.utils.spectral_norm``'s eval rule instead
(torch's ``SpectralNorm.compute_weight`` with ``do_power_iteration=False``): a third buffer ``weight_v``
``[in * k * k]``, stored by every training-mode forward next to ``u``, and in eval mode ``sigma = u^T W v``
from the stored pair without a further step. Imported checkpoints of torch-SN models (StudioGAN) use it to
compute exactly the official function; the default (``"power_step"``) is unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_SN_KEYS = ("n_power_iterations", "sn_eps")
SN_EVAL_MODES = ("power_step", "stored")


class _SpectralNormMixin:
    """Shared state and maths of the spectrally normalised layers (``weight`` is ``[out, ...]``)."""

    weight: nn.Parameter
    weight_u: torch.Tensor
    weight_sigma: torch.Tensor
    training: bool
    register_buffer: Any
    sn_eval: str = "power_step"  # see set_sn_eval

    def _init_sn(self, n_power_iterations: int, sn_eps: float) -> None:
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        self.n_power_iterations = n_power_iterations
        self.sn_eps = sn_eps
        out = self.weight.shape[0]
        u = F.normalize(torch.randn(out, device=self.weight.device), dim=0, eps=sn_eps)
        self.register_buffer("weight_u", u)
        self.register_buffer("weight_sigma", torch.ones([], device=self.weight.device))

    def sn_weight(self) -> torch.Tensor:
        """The spectrally normalised weight ``W / sigma``, same shape and dtype as ``weight``."""
        weight = self.weight
        with torch.autocast(device_type=weight.device.type, enabled=False):
            # at least fp32 (fp64 modules keep fp64, e.g. for gradient checks)
            dtype = torch.promote_types(weight.dtype, torch.float32)
            w = weight.to(dtype).reshape(weight.shape[0], -1)  # [out, in * k * k]
            with torch.no_grad():
                u = self.weight_u.to(dtype)
                if not self.training and self.sn_eval == "stored":
                    v = self.weight_v.to(dtype)  # torch spectral_norm in eval mode: the stored u, v as they are
                else:
                    # Eval mode runs the same iterations without storing u (BigGAN-PyTorch's
                    # power_iteration(update=False)), so sigma = ||W v|| from a fresh step in both modes.
                    for _ in range(self.n_power_iterations):
                        v = F.normalize(w.t() @ u, dim=0, eps=self.sn_eps)  # [in * k * k]
                        u = F.normalize(w @ v, dim=0, eps=self.sn_eps)  # [out]
                if self.training:
                    self.weight_u.copy_(u)
                    if self.sn_eval == "stored":
                        self.weight_v.copy_(v)
                # Clones: the buffer may be updated in place by a later forward before backward.
                u, v = u.clone(), v.clone()
            sigma = torch.dot(u, w @ v)  # [] differentiable in W only
            if self.training:
                self.weight_sigma.copy_(sigma.detach())
            return (w / sigma).reshape(weight.shape).to(weight.dtype)

    def set_sn_eval(self, mode: str) -> None:
        """``"power_step"`` (default) or ``"stored"`` (adds the ``weight_v`` buffer), see the module docstring."""
        if mode not in SN_EVAL_MODES:
            raise ValueError(f"sn_eval={mode!r}; choose one of {SN_EVAL_MODES}")
        self.sn_eval = mode
        if mode == "stored" and "weight_v" not in self._buffers:  # type: ignore[attr-defined]
            with torch.no_grad():
                w = self.weight.detach().float().reshape(self.weight.shape[0], -1)
                v = F.normalize(w.t() @ self.weight_u.float(), dim=0, eps=self.sn_eps)
            self.register_buffer("weight_v", v.to(self.weight_u.dtype))

    def _sn_repr(self) -> str:
        stored = ", sn_eval='stored'" if self.sn_eval == "stored" else ""
        return f"n_power_iterations={self.n_power_iterations}, sn_eps={self.sn_eps}{stored}"


class SNConv2d(_SpectralNormMixin, nn.Conv2d):
    """``nn.Conv2d`` with a spectrally normalised weight (see the module docstring)."""

    def __init__(self, *args: Any, n_power_iterations: int = 1, sn_eps: float = 1e-6, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._init_sn(n_power_iterations, sn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.sn_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._sn_repr()}"


class SNLinear(_SpectralNormMixin, nn.Linear):
    """``nn.Linear`` with a spectrally normalised weight (see the module docstring)."""

    def __init__(self, *args: Any, n_power_iterations: int = 1, sn_eps: float = 1e-6, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._init_sn(n_power_iterations, sn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.sn_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._sn_repr()}"


class SNEmbedding(_SpectralNormMixin, nn.Embedding):
    """``nn.Embedding`` with a spectrally normalised table (projection discriminator's embedding).

    The table ``[num_embeddings, dim]`` is normalised as a matrix with ``u`` over the
    ``num_embeddings`` rows, like BigGAN-PyTorch's ``SNEmbedding`` and torch's ``spectral_norm``
    on an embedding (``dim=0``).
    """

    def __init__(self, *args: Any, n_power_iterations: int = 1, sn_eps: float = 1e-6, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._init_sn(n_power_iterations, sn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.embedding(
            x, self.sn_weight(), self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._sn_repr()}"


def set_sn_eval(module: nn.Module, mode: str) -> None:
    """Set the eval-mode rule of every spectrally normalised layer in ``module`` (see the module docstring)."""
    if mode not in SN_EVAL_MODES:
        raise ValueError(f"sn_eval={mode!r}; choose one of {SN_EVAL_MODES}")
    for m in module.modules():
        if isinstance(m, _SpectralNormMixin):
            m.set_sn_eval(mode)


def _split(kw: dict[str, Any], sn: bool) -> dict[str, Any]:
    """Drop the SN keywords for the plain layer so call sites can pass them unconditionally."""
    return kw if sn else {k: v for k, v in kw.items() if k not in _SN_KEYS}


def sn_conv2d(*args: Any, sn: bool = True, **kw: Any) -> nn.Conv2d:
    """``SNConv2d`` when ``sn`` else a plain ``nn.Conv2d`` (SN keywords are then ignored)."""
    return SNConv2d(*args, **kw) if sn else nn.Conv2d(*args, **_split(kw, sn))


def sn_linear(*args: Any, sn: bool = True, **kw: Any) -> nn.Linear:
    """``SNLinear`` when ``sn`` else a plain ``nn.Linear`` (SN keywords are then ignored)."""
    return SNLinear(*args, **kw) if sn else nn.Linear(*args, **_split(kw, sn))


def sn_embedding(*args: Any, sn: bool = True, **kw: Any) -> nn.Embedding:
    """``SNEmbedding`` when ``sn`` else a plain ``nn.Embedding`` (SN keywords are then ignored)."""
    return SNEmbedding(*args, **kw) if sn else nn.Embedding(*args, **_split(kw, sn))
