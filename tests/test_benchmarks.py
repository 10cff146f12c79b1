"""Every benchmark script still builds its ganzoo models, so a preset change cannot silently break one.

Each ``benchmarks/*.py`` keeps its model building in a function (no measurement, no official code):
``official_stylegan2_cpu.build_ganzoo`` (its pinned config, checked against the official networks'
parameter counts and phases), ``speed.build`` (``speed.py``'s and ``speed_before_after.py``'s default
models), ``flops.build``, ``cuda_smoke.overrides`` (the smoke config of a model) and
``prior_sampling.build_gpt``. The model lists ``benchmarks/gpu_check.sh`` passes to them are built too.
Registry models are built on the meta device (shapes only), so the test takes seconds.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py"))
# What each script builds, by the function that builds it; bench_report.py only formats output.
BUILDERS = {"bench_report": None, "cuda_smoke": "overrides", "flops": "build", "official_stylegan2_cpu": "build_ganzoo",
            "prior_sampling": "build_gpt", "speed": "build", "speed_before_after": None}


@pytest.fixture(scope="module")
def bench():
    """Import a benchmark script by name as its own folder does (``bench_report`` is imported plainly)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(BENCH))


def _gpu_check_models() -> dict[str, list[str]]:
    """The model lists of gpu_check.sh: its ``X_MODELS=${X_MODELS:-"..."}`` defaults and flops' ``--models``."""
    text = (BENCH / "gpu_check.sh").read_text()
    lists = {m[0]: m[1].split() for m in re.findall(r'^\s*(\w+_MODELS)=\$\{\1:-"([^"]*)"\}', text, re.M)}
    lists["FLOPS"] = re.findall(r"flops\.py --models ([\w ]+?) --", text)[0].split()
    return lists


def _meta(fn, *args, **kwargs):
    with torch.device("meta"):
        return fn(*args, **kwargs)


def test_every_script_is_listed():
    assert sorted(BUILDERS) == SCRIPTS, "a new benchmark script: add its model-building function to BUILDERS"


def test_scripts_import_and_name_their_builders(bench):
    for name, fn in BUILDERS.items():
        module = bench(name)
        assert fn is None or callable(getattr(module, fn)), f"benchmarks/{name}.py has no {fn}()"


def test_official_stylegan2_builds_the_pinned_official_config(bench):
    """The official small config (resnet D, path length 2, mixing 0.9), whatever the stylegan2 preset says."""
    script = bench("official_stylegan2_cpu")
    bundle = script.build_ganzoo()  # asserts the official parameter counts and phases itself
    assert bundle.modules["D"].architecture == "resnet"
    objective = bundle.objective
    assert (objective.pl_weight, objective.style_mixing_prob, objective.r1_gamma) == (2.0, 0.9, 1.0)
    assert "official_loss" not in vars(script) and "training" not in sys.modules  # the official code never ran


def test_speed_and_flops_models_build(bench):
    speed, flops, before_after = bench("speed"), bench("flops"), bench("speed_before_after")
    gpu = _gpu_check_models()
    for model in sorted({*speed.DEFAULT_MODELS, *before_after.DEFAULT_MODELS, *gpu["SPEED_MODELS"],
                         *gpu["SG2_MODELS"]}):
        bundle = _meta(speed.build, model)
        assert bundle.modules and bundle.objective.phases, model
    for model in sorted({*flops.DEFAULT_MODELS, *gpu["FLOPS"]}):
        bundle, modules, objective, opts = _meta(flops.build, model, torch.device("meta"))
        assert set(opts) == set(objective.optimizers), model


def test_cuda_smoke_configs_build(bench):
    from ganzoo.runtime import build_bundle, resolve_geometry
    from ganzoo.training.config import compose_train_config

    smoke = bench("cuda_smoke")
    for model in _gpu_check_models()["SMOKE_MODELS"]:
        cfg = compose_train_config(smoke.overrides(model, "cpu"))
        resolve_geometry(cfg.model, cfg.data)
        bundle = _meta(build_bundle, cfg.model, num_classes=10)
        assert bundle.objective.phases, model


def test_prior_sampling_gpt_builds(bench):
    script = bench("prior_sampling")
    args = script.parser().parse_args([])
    gpt = _meta(script.build_gpt, args)
    assert sum(p.numel() for p in gpt.parameters()) > 0
