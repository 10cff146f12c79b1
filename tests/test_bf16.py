"""bf16 autocast on the CPU: every registered model runs every phase of its objective.

One step at step 0 runs every phase (each interval divides 0), including lazy regularisers such
as StyleGAN2's path length and R1, under ``torch.autocast(cpu, bfloat16)`` as the trainer does
with ``trainer.precision=bf16``. Paper-size presets are skipped (their code is the code of the
family's small variants, which run here).
"""

from __future__ import annotations

import math

import pytest
import torch

from ganzoo.bundle import Batch, StepContext, count_params
from ganzoo.registry import build_model, build_model_shapes, list_models

MAX_PARAMS = 4_000_000
MAX_RESOLUTION = 64


@pytest.mark.parametrize("name", list_models())
def test_every_phase_runs_in_bf16(name):
    shapes = build_model_shapes(name)  # sizes without building 100M-parameter presets for real
    params = sum(count_params(m) for m in shapes.modules.values())
    if params > MAX_PARAMS or shapes.resolution > MAX_RESOLUTION:
        pytest.skip(f"paper-size preset ({params / 1e6:.1f}M parameters, {shapes.resolution}px)")
    torch.manual_seed(0)
    bundle = build_model(name)
    device = torch.device("cpu")
    n = 4
    state = bundle.schedule.state(10**12) if bundle.schedule else {}
    img = torch.rand(n, bundle.channels, bundle.resolution, bundle.resolution) * 2 - 1
    label = torch.randint(0, bundle.c_dim, (n,)) if bundle.c_dim else None
    ctx = StepContext(bundle.modules, state, 0, 0, device, bundle.c_dim)
    ran = []
    for phase in bundle.objective.phases:
        if phase.active is not None and not phase.active(ctx):
            continue
        module = bundle.modules[phase.module]
        for key, m in bundle.modules.items():
            m.requires_grad_(key == phase.module)
        module.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            loss, logs = phase.loss(Batch(img, label), ctx)
        assert loss.ndim == 0 and math.isfinite(float(loss.detach())), f"{name}/{phase.name}: loss {loss}"
        loss.float().backward()
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads, f"{name}/{phase.name}: no gradient reached {phase.module}"
        assert all(torch.isfinite(g).all() for g in grads), f"{name}/{phase.name}: non-finite gradient"
        ran.append(phase.name)
    assert ran, f"{name}: no phase ran"
