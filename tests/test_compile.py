"""trainer.compile: compiled first-order phases train like eager ones, double-backward phases stay eager,
graphs are not rebuilt every step, and checkpoints are interchangeable with eager runs.

The CPU tests use dynamo's ``aot_eager`` backend (the AOTAutograd graphs of ``inductor`` run by eager
kernels: no C++ build); one slow test runs ``inductor`` itself.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ganzoo.training.compile import compile_counts, compile_phases
from ganzoo.training.trainer import Trainer

from .conftest import compose

BASE = ["trainer=smoke", "trainer.device=cpu", "trainer.batch_size=4", "trainer.grid=0",
        "trainer.checkpoint_every_kimg=0", "trainer.log_every=2"]
# Differences of a few float32 ulps per op (AOTAutograd decompositions) grow over a handful of GAN steps.
RTOL, ATOL = 1e-4, 1e-5


def _run(tmp: Path, name: str, *extra: str) -> Trainer:
    trainer = Trainer(compose([*BASE, *extra]), tmp / name)
    trainer.fit()
    return trainer


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {f"{k}.{n}": t.detach().clone() for k, m in trainer.modules.items() for n, t in m.state_dict().items()}
    out.update({f"ema.{k}.{n}": t.detach().clone() for k, m in trainer.ema.items() for n, t in m.state_dict().items()})
    return out


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    far = [k for k in a if a[k].is_floating_point() and not torch.allclose(a[k], b[k], rtol=RTOL, atol=ATOL)]
    assert not far, f"compiled training left eager training in {far[:5]}"


def _checkpoint_keys(run_dir: Path) -> set[str]:
    path = sorted((run_dir / "checkpoints").glob("snapshot-*.safetensors"))[-1]
    with safe_open(str(path), framework="pt") as f:
        return set(f.keys())


@pytest.mark.parametrize("model", ["dcgan_tiny", pytest.param("stylegan2_tiny", marks=pytest.mark.slow)])
def test_compiled_training_matches_eager_without_recompiling(tmp_path, model):
    """Four steps compiled == four steps eager (weights and EMA, rtol 1e-4 / atol 1e-5). StyleGAN2's Greg
    and Dreg (every 2 steps here) take double-backward gradients and run eager; the graphs of all compiled
    phases are built in the first two steps and none in the next two."""
    extra = [f"model={model}"] + (["model.loss.pl_interval=2", "model.loss.r1_interval=2"] if "style" in model else [])
    eager = _run(tmp_path, "eager", *extra, "trainer.steps=4")
    compiled = Trainer(compose([*BASE, *extra, "trainer.steps=2", "trainer.compile=true",
                                "trainer.compile_backend=aot_eager"]), tmp_path / "compiled")
    second = {p.name for p in compiled.objective.phases if p.double_backward}
    assert second == ({"Greg", "Dreg"} if model == "stylegan2_tiny" else set())
    for own, wrapped in zip(compiled.objective.phases, compiled.phases):  # eager phases are left as they are
        assert (wrapped is own) == own.double_backward
    start = _weights(compiled)
    compiled.fit()
    warm = compile_counts()
    compiled.tcfg.steps = 4
    compiled.fit()
    after = compile_counts()
    assert after["graphs"] == warm["graphs"] > 0, (warm, after)
    assert after["graph_breaks"] == warm["graph_breaks"]
    _assert_close(_weights(eager), _weights(compiled))
    moved = [k for k, v in _weights(compiled).items() if v.is_floating_point() and not torch.equal(v, start[k])]
    assert len(moved) > len(start) // 2  # it trained: the comparison above is not vacuous
    # Compiled modules are the eager modules: same state-dict keys, nothing like `_orig_mod.`.
    assert _checkpoint_keys(tmp_path / "compiled") == _checkpoint_keys(tmp_path / "eager")
    assert not any("_orig_mod" in k for k in _checkpoint_keys(tmp_path / "compiled"))


def test_checkpoints_interchangeable_between_compiled_and_eager(tmp_path):
    """An eager run resumed compiled, and a compiled run resumed eager, both follow the eager run."""
    model = "model=dcgan_tiny"
    straight = _run(tmp_path, "straight", model, "trainer.steps=4")
    _run(tmp_path, "half_eager", model, "trainer.steps=2")
    comp = ["trainer.compile=true", "trainer.compile_backend=aot_eager"]
    _run(tmp_path, "half_compiled", model, "trainer.steps=2", *comp)
    on = _run(tmp_path, "eager_then_compiled", model, "trainer.steps=4", f"trainer.resume={tmp_path / 'half_eager'}",
              *comp)
    off = _run(tmp_path, "compiled_then_eager", model, "trainer.steps=4",
               f"trainer.resume={tmp_path / 'half_compiled'}")
    assert on.resumed_from is not None and off.resumed_from is not None
    _assert_close(_weights(straight), _weights(on))
    _assert_close(_weights(straight), _weights(off))


def test_sampling_and_ema_run_eager(tmp_path):
    """Outside a first-order phase loss no module has its compiled twin switched on."""
    trainer = Trainer(compose([*BASE, "model=stylegan2_tiny", "trainer.steps=1", "trainer.compile=true",
                               "trainer.compile_backend=aot_eager"]), tmp_path / "run")
    seen: list[bool] = []

    def spy(loss):
        def run(batch, ctx):
            seen.append(trainer.compiler.active)
            return loss(batch, ctx)

        return run

    spied = [replace(p, loss=spy(p.loss)) for p in trainer.objective.phases]
    trainer.phases, trainer.compiler = compile_phases(spied, trainer.objective, trainer.modules, backend="aot_eager")
    trainer.fit()
    assert seen == [True, False, True, False]  # Gmain, Greg (eager), Dmain, Dreg (eager)
    assert all(m._compiled_call_impl is None for m in trainer.compiler.targets)
    assert not trainer.compiler.active


def test_bad_backend_is_a_config_error(tmp_path):
    from ganzoo.errors import ConfigError

    with pytest.raises(ConfigError, match="compile_backend"):
        Trainer(compose([*BASE, "model=dcgan_tiny", "trainer.compile=true", "trainer.compile_backend=tvm"]), tmp_path)


@pytest.mark.slow
def test_inductor_matches_eager(tmp_path):
    """The real backend (C++ kernels on the CPU): three dcgan_tiny steps within the same tolerance."""  # ~2 min
    import torch._inductor.config as inductor_config

    eager = _run(tmp_path, "eager", "model=dcgan_tiny", "trainer.steps=3")
    with inductor_config.patch(fallback_random=True):  # the eager RNG stream inside compiled graphs
        compiled = _run(tmp_path, "compiled", "model=dcgan_tiny", "trainer.steps=3", "trainer.compile=true")
    _assert_close(_weights(eager), _weights(compiled))


def test_inductor_without_a_cpu_compiler_is_a_config_error(tmp_path, monkeypatch):
    """No g++/clang++ on PATH: a message that names the alternatives instead of a failure mid-step."""
    from ganzoo.errors import ConfigError

    monkeypatch.setattr("ganzoo.training.compile.shutil.which", lambda name: None)
    with pytest.raises(ConfigError, match="C\\+\\+ compiler.*aot_eager"):
        Trainer(compose([*BASE, "model=dcgan_tiny", "trainer.compile=true"]), tmp_path)
