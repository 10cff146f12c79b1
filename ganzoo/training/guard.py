"""Divergence guard: every phase loss of every step is checked without a host-device sync per step.

Per phase the guard keeps, on the training device, a flag "some loss was not finite", a flag "some
loss exploded" and a running level (an exponential moving average of ``|loss|``). A loss explodes
when it exceeds ``max_loss`` or ``loss_factor`` times ``max(level, loss_floor)``. The flags are read
(one sync) only by :meth:`DivergenceGuard.problem`, which the trainer calls at log time and before it
writes anything (checkpoint, sample grid, evaluation), so nothing is written after a divergence.
:meth:`problem` also compares each module's largest weight magnitude with its value at the previous
check: a jump by more than ``weight_jump`` times (or a non-finite weight) is a divergence too.

Under several processes each rank's flags come from its own shard's losses, so ranks could disagree;
:meth:`DivergenceGuard.check` (what the trainer calls) makes them agree: when any rank sees a problem,
every rank stops at the same check with the same message (``distributed.agree_problems``).

The non-finite check is always on; ``enabled: false`` turns off only the explosion and weight-jump
checks. The thresholds (``conf/trainer/default.yaml``, ``trainer.guard.*``) are far outside what a
healthy run of any ganzoo model reaches; see ``docs/reliability.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from . import distributed as dist


@dataclass
class GuardConfig:
    """``trainer.guard``: thresholds of the divergence guard."""

    enabled: bool = True
    loss_factor: float = 1000.0  # |loss| above this multiple of its running level
    loss_floor: float = 1.0  # the level never counts as smaller than this (losses near 0 are not "levels")
    max_loss: float = 1.0e7  # |loss| above this is an explosion whatever the level
    level_beta: float = 0.99  # EMA factor of the running level
    weight_jump: float = 100.0  # largest |weight| of a module grew this many times since the previous check

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> GuardConfig:
        data = dict(cfg or {})
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"unknown trainer.guard key(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**data)


class DivergenceGuard:
    """Accumulates on-device flags from phase losses; :meth:`problem` reads them (one sync)."""

    def __init__(self, config: GuardConfig, device: torch.device):
        self.config = config
        self.device = device
        self._nonfinite: dict[str, torch.Tensor] = {}
        self._exploded: dict[str, torch.Tensor] = {}
        self._peak: dict[str, torch.Tensor] = {}
        self._level: dict[str, torch.Tensor] = {}
        self._weight_ref: dict[str, float] = {}

    def observe(self, phase: str, loss: torch.Tensor) -> None:
        """Record one phase loss (no host sync)."""
        x = loss.detach().float().abs().reshape(())
        finite = torch.isfinite(x)
        if phase not in self._nonfinite:
            false = torch.zeros((), dtype=torch.bool, device=x.device)
            self._nonfinite[phase], self._exploded[phase] = false, false.clone()
            self._peak[phase] = torch.zeros((), device=x.device)
            self._level[phase] = torch.where(finite, x, torch.zeros_like(x))
        self._nonfinite[phase] = self._nonfinite[phase] | ~finite
        if not self.config.enabled:
            return
        cfg = self.config
        level = self._level[phase]
        limit = torch.clamp(level, min=cfg.loss_floor) * cfg.loss_factor
        exploded = finite & ((x > cfg.max_loss) | (x > limit))
        self._exploded[phase] = self._exploded[phase] | exploded
        self._peak[phase] = torch.where(exploded, torch.maximum(self._peak[phase], x), self._peak[phase])
        self._level[phase] = torch.where(finite & ~exploded, level * cfg.level_beta + x * (1 - cfg.level_beta), level)

    def reset_weights(self, modules: Mapping[str, nn.Module]) -> None:
        """Take the current weights as the reference of the weight-jump check."""
        self._weight_ref = {k: v for k, v in _max_abs(modules).items() if math.isfinite(v)}

    def check(self, modules: Mapping[str, nn.Module]) -> str | None:
        """:meth:`problem` agreed by all ranks: None only when no rank saw one (one tiny all-reduce per check)."""
        return dist.agree_problems(self.problem(modules), self.device)

    def problem(self, modules: Mapping[str, nn.Module]) -> str | None:
        """A sentence describing the divergence, or None when all is well. Syncs with the device."""
        phases = list(self._nonfinite)
        if phases:
            flags = torch.stack([torch.stack([self._nonfinite[p], self._exploded[p]]) for p in phases]).cpu()
            bad = [p for p, f in zip(phases, flags) if bool(f[0])]
            if bad:
                return f"{_join(phase_words(p) for p in bad)} became NaN or infinite"
            boom = [p for p, f in zip(phases, flags) if bool(f[1])]
            if boom:
                parts = [f"{phase_words(p)} reached {float(self._peak[p]):.3g} (running level "
                         f"{float(self._level[p]):.3g})" for p in boom]
                return (f"the loss exploded: {'; '.join(parts)}; the guard stops above {self.config.loss_factor:g}x "
                        f"the running level or above {self.config.max_loss:g}")
        now = _max_abs(modules)
        nonfinite = [k for k, v in now.items() if not math.isfinite(v)]
        if nonfinite:
            return f"the weights of {', '.join(nonfinite)} became NaN or infinite"
        if self.config.enabled:
            jumps = [f"{k} from {self._weight_ref[k]:.3g} to {v:.3g}" for k, v in now.items()
                     if self._weight_ref.get(k, 0.0) > 0 and v > self.config.weight_jump * self._weight_ref[k]]
            if jumps:
                return (f"the weights exploded: the largest |weight| of {'; '.join(jumps)} since the previous check "
                        f"(more than {self.config.weight_jump:g}x)")
        self._weight_ref = now
        return None


# What each training phase's loss is, for people; the name in brackets is its key in metrics.jsonl.
PHASE_WORDS = {
    "Gmain": "the generator's loss",
    "Greg": "the generator's regulariser (path length)",
    "Dmain": "the discriminator's loss",
    "D": "the discriminator's loss",
    "Dreg": "the discriminator's R1 penalty",
    "AE": "the autoencoder's loss",
    "prior": "the prior's loss",
}


def phase_words(phase: str) -> str:
    """``Gmain`` -> ``the generator's loss (Gmain)``; an unknown phase -> ``the loss of phase X``."""
    words = PHASE_WORDS.get(phase)
    return f"{words} ({phase})" if words else f"the loss of phase {phase}"


def _join(items: Any) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def divergence_remedies(precision: str, good: str | None) -> str:
    """What to try after a divergence, with the keys to set: the learning rates, fp32 only for a run not in fp32,
    and the guard's thresholds."""
    lr = "a lower learning rate (model.optim.G.lr and model.optim.D.lr, e.g. half of each)"
    if good:
        first = (f"resume from {good!r} with {lr}: `ganzoo train trainer.resume={good} model.optim.G.lr=... "
                 "model.optim.D.lr=... trainer.resume_force=true`")
    else:
        first = f"start again with {lr}"
    others = [] if str(precision) == "fp32" else [f"trainer.precision=fp32 (this run used {precision})"]
    others.append("the guard's thresholds trainer.guard.* (see docs/reliability.md)")
    return f"Try {first}. Other remedies: {'; '.join(others)}."


def _max_abs(modules: Mapping[str, nn.Module]) -> dict[str, float]:
    """Largest |parameter| per module (NaN if any is NaN), in one device sync."""
    names, values = [], []
    for name, module in modules.items():
        params = [p.detach() for p in module.parameters() if p.is_floating_point() and p.numel()]
        if params:
            names.append(name)
            values.append(torch.stack([p.abs().amax().float() for p in params]).amax())
    if not values:
        return {}
    return dict(zip(names, torch.stack(values).cpu().tolist()))
