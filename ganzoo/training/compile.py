"""``trainer.compile``: torch.compile of the forward passes of the first-order training phases.

What is compiled: the modules an objective calls in its losses, as it names them in
:meth:`ganzoo.bundle.Objective.compile_targets` (by default every trained module; StyleGAN2's
objective calls ``G.mapping`` and ``G.synthesis`` rather than ``G``). Each one is compiled in place
(its ``__call__`` gets a compiled twin, as :meth:`torch.nn.Module.compile` does), so parameters,
buffers and state-dict keys stay those of the eager module: checkpoints are interchangeable between
compiled and eager runs (no ``_orig_mod.`` prefixes).

When it is used: only inside the loss of a phase without ``Phase.double_backward``. Compiled graphs
(AOTAutograd) give a first-order backward only, so phases whose loss differentiates a gradient
(R1 through ``autograd.grad(create_graph=True)``, StyleGAN2's path length, WGAN-GP) run eager. The
compiled twins are switched on around each first-order loss and off after it, so everything else
(EMA updates, sample grids, evaluation, the double-backward phases) runs the plain eager modules.
The backward of a compiled forward runs the compiled backward graph whatever the switch says.

Recompilation: dynamo keys each compiled frame on guards (module identity, training mode, grad
mode, ``requires_grad`` of the parameters, input shapes). A training cycle visits a fixed set of
those (one per phase and call site), so graphs are built during the first cycle of phases and
reused afterwards; :func:`compile_counts` reads dynamo's counters so tests and benchmarks can check.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..bundle import Batch, Phase, StepContext
from ..errors import ConfigError

BACKENDS = ("inductor", "aot_eager", "eager")
# Dynamo caches graphs per code object; every module's ``__call__`` shares ``Module._call_impl``, so
# the per-code limit must cover (targets x phases x grad modes). Above it dynamo would silently run
# eager; the accumulated limit stays dynamo's default.
RECOMPILE_LIMIT = 64


class PhaseCompiler:
    """Compiled twins of an objective's modules, switched on only around first-order phase losses."""

    def __init__(self, targets: Sequence[nn.Module], *, backend: str = "inductor", mode: str | None = None):
        if backend not in BACKENDS:
            raise ConfigError(f"trainer.compile_backend={backend!r}; use one of {', '.join(BACKENDS)}")
        seen: set[int] = set()
        self.targets = [m for m in targets if not (id(m) in seen or seen.add(id(m)))]  # type: ignore[func-returns-value]
        on_cpu = any(p.device.type == "cpu" for m in self.targets for p in m.parameters())
        if backend == "inductor" and on_cpu and not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
            raise ConfigError("trainer.compile=true with the inductor backend on the CPU needs a C++ compiler "
                              "(g++ or clang++), and none is on PATH: install one, or set trainer.compile_backend="
                              "aot_eager (compiled graphs, eager kernels) or trainer.compile=false")
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
        # dynamic=None (dynamo's default): static graphs, and a value that changes between calls (a
        # fade-in alpha, a new resolution) becomes symbolic after one recompile instead of one per step.
        self._twins = [torch.compile(m._call_impl, backend=backend, mode=mode) for m in self.targets]
        self.active = False

    @contextmanager
    def enabled(self) -> Iterator[None]:
        """Run the targets compiled inside this block (re-entrant; restores the previous state)."""
        if self.active:
            yield
            return
        for m, twin in zip(self.targets, self._twins):
            m._compiled_call_impl = twin
        self.active = True
        try:
            yield
        finally:
            for m in self.targets:
                m._compiled_call_impl = None
            self.active = False

    def wrap(self, phase: Phase) -> Phase:
        """``phase`` with its loss run compiled, or ``phase`` itself when it needs double backward."""
        if phase.double_backward:
            return phase
        loss = phase.loss

        def compiled_loss(batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, Any]:
            with self.enabled():
                return loss(batch, ctx)

        compiled_loss.__wrapped__ = loss  # type: ignore[attr-defined]
        return replace(phase, loss=compiled_loss)


def compile_phases(
    phases: Sequence[Phase],
    objective: Any,
    modules: Mapping[str, nn.Module],
    *,
    backend: str = "inductor",
) -> tuple[list[Phase], PhaseCompiler]:
    """The trainer's call site: phases whose first-order losses run the compiled targets.

    ``objective.compile_targets(modules)`` names what to compile (see :class:`ganzoo.bundle.Objective`).
    Returns the new phase list (the objective's own list is left untouched) and the compiler.
    """
    targets: list[nn.Module] = list(objective.compile_targets(modules))
    compiler = PhaseCompiler(targets, backend=backend)
    return [compiler.wrap(p) for p in phases], compiler


def compile_counts() -> dict[str, int]:
    """Dynamo's running totals: ``graphs`` built, ``frames`` compiled and ``graph_breaks``. Two reads
    bracket a stretch of training: no new graph between them means nothing was recompiled."""
    from torch._dynamo.utils import counters

    return {
        "graphs": int(counters["stats"].get("unique_graphs", 0)),
        "frames": int(counters["frames"].get("ok", 0)),
        "graph_breaks": int(sum(counters["graph_break"].values())),
    }


def double_backward_phases(phases: Sequence[Phase]) -> list[str]:
    """Names of the phases that run eager under ``trainer.compile`` (for the run's log line)."""
    return [p.name for p in phases if p.double_backward]


TargetsFn = Callable[[Mapping[str, nn.Module]], Sequence[nn.Module]]
