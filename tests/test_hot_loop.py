"""Hot-loop settings: Adam is fused on CUDA only, and the CPU optimizer is torch's default, bit for bit."""

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
