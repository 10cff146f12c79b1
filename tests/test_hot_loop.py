"""Hot-loop settings: Adam fused on CUDA only (the CPU optimizer is torch's default, bit for bit); the
EMA update, code counts and polled time decisions add no per-tensor launches or host syncs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ganzoo.bundle import OptimizerSpec


def _step(module: nn.Module, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    module(torch.linspace(-1, 1, 8).reshape(2, 4)).square().sum().backward()
    opt.step()


def test_cpu_adam_is_unchanged_and_not_fused():
    torch.manual_seed(0)
    spec = OptimizerSpec(lr=1e-2, betas=(0.0, 0.99), weight_decay=0.1, kind="adamw",
                         param_groups=lambda m: [{"params": iter([m.weight]), "weight_decay": 0.1},
                                                 {"params": iter([m.bias]), "weight_decay": 0.0}])
    m = nn.Linear(4, 3)
    ref = copy.deepcopy(m)
    opt = spec.build_for(m)  # groups whose params are iterators are read once, as torch reads them
    groups = [{"params": [ref.weight], "weight_decay": 0.1}, {"params": [ref.bias], "weight_decay": 0.0}]
    ref_opt = torch.optim.AdamW(groups, lr=1e-2, betas=(0.0, 0.99), eps=1e-8)
    assert not opt.defaults.get("fused") and [len(g["params"]) for g in opt.param_groups] == [1, 1]
    for _ in range(3):
        _step(m, opt)
        _step(ref, ref_opt)
    assert torch.equal(m.weight, ref.weight) and torch.equal(m.bias, ref.bias)
    assert not torch.equal(m.weight, copy.deepcopy(nn.Linear(4, 3)).weight)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_adam_is_fused():
    m = nn.Linear(4, 3).cuda()
    opt = OptimizerSpec(lr=1e-2).build(m.parameters())
    assert opt.defaults["fused"] is True
    _step(m, opt)


def test_foreach_ema_equals_the_official_per_tensor_update():
    """StyleGAN2-ADA: ``p_ema.copy_(p.lerp(p_ema, beta))`` per parameter, buffers copied; bit for bit."""
    from ganzoo.training.ema import make_ema, update_ema

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(2, 2))
    ema = make_ema(model)
    ref = copy.deepcopy(ema)
    for beta in (0.5, 0.999, 0.0):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].running_mean.add_(1.0)
            model[1].num_batches_tracked.add_(3)
        update_ema(ema, model, beta)
        with torch.no_grad():
            for pe, p in zip(ref.parameters(), model.parameters()):
                pe.copy_(p.lerp(pe, beta))
            for be, b in zip(ref.buffers(), model.buffers()):
                be.copy_(b)
        for a, b in zip(list(ema.parameters()) + list(ema.buffers()), list(ref.parameters()) + list(ref.buffers())):
            assert torch.equal(a, b)
    assert torch.equal(ema.get_parameter("0.weight"), model[0].weight)  # beta 0: the model itself


def test_code_counts_equal_bincount():
    from ganzoo.layers.quantize import code_counts

    idx = torch.randint(0, 50, (4, 7, 7))
    assert torch.equal(code_counts(idx, 64), torch.bincount(idx.flatten(), minlength=64).float())
    assert code_counts(torch.zeros(0, dtype=torch.long), 5).tolist() == [0.0] * 5


def test_time_cadence_under_several_processes_polls_rank0(monkeypatch):
    """With several ranks the time test is a broadcast (host sync): only every ``poll`` calls."""
    from ganzoo.training import cadence as cad

    asked = []
    monkeypatch.setattr(cad.dist, "world_size", lambda: 2)
    monkeypatch.setattr(cad.dist, "agree", lambda flag, device: asked.append(flag) or flag)
    c = cad.Cadence(kimg=None, minutes=1.0, images=0, seconds=0.0, poll=5)
    answers = [c.due(images=i, seconds=100.0) for i in range(1, 11)]  # past the 60 s mark all along
    assert answers == [False] * 4 + [True] + [False] * 4 + [True]
    assert len(asked) == 2
