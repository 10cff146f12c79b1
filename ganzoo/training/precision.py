"""Numeric precision of training: ``trainer.precision = fp32 | bf16 | fp16``.

- ``fp32``: nothing changes.
- ``bf16``: every phase's loss runs under ``torch.autocast(device, bfloat16)``; bfloat16 has the
  range of float32, so gradients need no scaling.
- ``fp16``: float16 has a narrow range (max 65504, normal values down to 6e-5), so every optimized
  module gets its own ``torch.amp.GradScaler``: the loss is multiplied by the scale before
  ``backward`` (small gradients do not underflow), gradients are all-reduced across processes
  (still scaled: the mean is linear, and every rank then sees the same inf/NaN flag), ``step``
  unscales them and skips the update when some are not finite, and ``update`` halves the scale
  after such a step and doubles it after 2000 good ones. The scalers' states are saved in
  checkpoints, so a resumed run continues exactly.

Where float16 is used at fp16 depends on the model (the ``set_fp16`` contract):

- A module of a bundle may define ``set_fp16(enabled: bool) -> int``. At ``fp16`` the trainer calls
  ``set_fp16(True)`` once on each such training module (never on the EMA copy, which samples and is
  evaluated in float32). The module then decides itself which of its parts compute in float16 and
  returns how many do (0 means the run is in fact float32: the trainer warns). Its parameters stay
  float32 (it casts weights at use, as StyleGAN2-ADA does), and its outputs are float32.
- A bundle with at least one such module manages precision itself: its losses run without
  autocast. StyleGAN2 is one (float16 in the ``num_fp16_res`` highest resolutions, with
  ``conv_clamp``; see :mod:`ganzoo.models.stylegan2_generator`).
- Every other bundle runs its losses under ``torch.autocast(device, float16)``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")


def manages_fp16(module: nn.Module) -> bool:
    """Whether ``module`` implements the ``set_fp16`` hook (it runs float16 itself at fp16)."""
    return callable(getattr(module, "set_fp16", None))


class Precision:
    """Autocast context and one gradient scaler per optimized module for ``trainer.precision``.

    ``modules``: the training modules of the bundle (name -> module); at ``fp16`` those with
    ``set_fp16`` are switched to float16 here. Call :meth:`backward` and :meth:`step` in place of
    ``loss.backward()`` and ``optimizer.step()``.
    """

    def __init__(self, precision: str, device: torch.device, modules: Mapping[str, nn.Module]):
        if precision not in PRECISIONS:
            raise ConfigError(f"trainer.precision={precision!r}; use {', '.join(PRECISIONS)}")
        self.name = precision
        self.device = device
        fp16 = precision == "fp16"
        self.self_managed = sorted(name for name, m in modules.items() if manages_fp16(m))
        self.fp16_parts = {name: int(modules[name].set_fp16(True)) for name in self.self_managed} if fp16 else {}
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        if dtype is None or (fp16 and self.self_managed):
            self._autocast: AbstractContextManager = nullcontext()
        else:
            self._autocast = torch.autocast(device_type=device.type, dtype=dtype)
        try:
            self.scalers = {name: torch.amp.GradScaler(device.type, enabled=fp16) for name in modules}
        except (RuntimeError, ValueError) as err:  # a device type without gradient scaling
            raise ConfigError(f"trainer.precision=fp16 needs gradient scaling, which {device.type} lacks here "
                              f"({err}); use trainer.precision=bf16 or fp32") from err

    @property
    def autocast(self) -> AbstractContextManager:
        """The context every phase's loss runs in (reusable)."""
        return self._autocast

    @property
    def scaling(self) -> bool:
        return self.name == "fp16"

    def warn_if_unused(self, model: str) -> None:
        """At fp16, a self-managed bundle whose modules switched nothing to float16 trains in float32."""
        if self.scaling and self.self_managed and not any(self.fp16_parts.values()):
            print(f"warning: trainer.precision=fp16 but model {model} runs nothing in float16 (e.g. "
                  "model.num_fp16_res=0): it trains in float32, with gradient scaling", file=sys.stderr, flush=True)

    def backward(self, module: str, loss: torch.Tensor) -> None:
        """``loss.backward()``, with the loss scaled by ``module``'s scaler at fp16."""
        if self.scaling:
            self.scalers[module].scale(loss).backward()
        else:
            loss.backward()

    def step(self, module: str, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; at fp16 unscale, skip the step if a gradient is inf/NaN, update the scale."""
        has_grad = any(p.grad is not None for g in optimizer.param_groups for p in g["params"])
        if not self.scaling or not has_grad:  # GradScaler refuses an optimizer without gradients
            optimizer.step()
            return
        scaler = self.scalers[module]
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """The scalers' states (scale, growth tracker) at fp16; empty otherwise."""
        return {name: s.state_dict() for name, s in self.scalers.items()} if self.scaling else {}

    def load_state_dict(self, state: Mapping[str, Mapping[str, Any]] | None) -> None:
        """Restore :meth:`state_dict`; modules without a saved state (an older checkpoint) start afresh."""
        if not self.scaling:
            return
        for name, scaler_state in (state or {}).items():
            if name in self.scalers and scaler_state:
                self.scalers[name].load_state_dict(dict(scaler_state))
