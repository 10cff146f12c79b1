"""Every ``conf/model/*.yaml`` builds what its registry preset builds: ``ganzoo train model=X`` and
``build_model("X")`` must not disagree silently.

For each yaml the test composes the config ``ganzoo train model=X`` runs (default data: the embedded
Fashion-MNIST, 28x28 grey, 10 classes), resolves ``auto`` as the trainer does, and compares the bundle
with the registry preset's (both built on the meta device): the parameter count of every module, the
optimizer of every module (lr, betas, eps, weight decay, kind and its parameter groups), the EMA spec,
the phases, the schedule (batch and level over the whole growth), and the batch: where the preset
names the batch its learning rate is tuned for (``optim.batch_size``, the VQ families' batch-scaled
lr), the yaml names the same ``batch_size`` and ``trainer.batch_size`` follows it; where the preset
names none, the batch must not reach the builder at all (it is a run setting).

A yaml that deliberately differs from its preset lists the keys in ``DELIBERATE`` with the reason; those
keys are set back to the preset's value (or dropped, where the preset leaves them to the builder's
default) before the comparison, and every key the preset names must otherwise equal the yaml's.
``init`` (the fine-tuning source) and ``batch_size`` are not builder options (``runtime.model_kwargs``
drops them).
"""

from __future__ import annotations

import copy
import dataclasses
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ganzoo.bundle import Bundle, count_params
from ganzoo.registry import build_model_shapes, resolve_config
from ganzoo.runtime import model_kwargs, resolve_geometry

from .conftest import compose

YAMLS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "model").glob("*.yaml"))

_AUTO = "auto geometry: the yaml follows the data (32 px grey on the default data)"
_CPU = "CPU size of the yaml (the official numbers are the preset and the paper experiment)"
_CPU_SCHEDULE = "CPU schedule: phases 300-400x shorter than official, so the whole growth fits 20 kimg"
DELIBERATE: dict[str, dict[str, str]] = {
    # The preset is the paper's 64x64 RGB network (experiment=dcgan_paper); the yaml trains at the data's geometry.
    "dcgan": {"resolution": _AUTO, "img_channels": _AUTO},
    # The presets are the official 1024 px configurations; the yamls are the CPU sizes, marked "CPU" in them.
    "progan": {
        "resolution": _AUTO, "img_channels": _AUTO,
        "G.fmap_base": _CPU, "G.fmap_max": _CPU, "D.fmap_base": _CPU, "D.fmap_max": _CPU,
        "D.mbstd_group_size": "the official code's default 4; the paper's 1-GPU preset uses its whole minibatch, 16",
        "ema.half_life_kimg": "CPU: the average shortened with the phases",
        "schedule.fade_kimg": _CPU_SCHEDULE, "schedule.stab_kimg": _CPU_SCHEDULE,
        "schedule.batch_sizes": "CPU: no per-resolution batches (the yaml stops at 32 px)",
    },
    "stylegan": {
        "resolution": _AUTO, "img_channels": _AUTO,
        "G.z_dim": _CPU, "G.w_dim": _CPU, "G.mapping_fmaps": _CPU,
        "G.fmap_base": _CPU, "G.fmap_max": _CPU, "D.fmap_base": _CPU, "D.fmap_max": _CPU,
        "ema.half_life_kimg": "CPU: the average shortened with the phases",
        "schedule.fade_kimg": _CPU_SCHEDULE, "schedule.stab_kimg": _CPU_SCHEDULE,
        "schedule.batch_sizes": "CPU: no per-resolution batches",
        "schedule.default_batch": "CPU: batch 16 at every resolution (more, smaller steps train faster here)",
    },
    # The preset is sized for grey 32 px data already; the yaml takes the channels from the data, and the
    # default data is grey, but the preset (used by `ganzoo list` and the tests) builds RGB.
    "stylegan2": {"img_channels": "auto channels: the yaml follows the data (grey on the default data); preset RGB"},
    # Class-conditional on labelled data (c_dim: auto); the preset itself is unconditional.
    "sagan": {"c_dim": "c_dim: auto takes the data's 10 classes; the preset is unconditional"},
    "sagan_tiny": {"c_dim": "c_dim: auto (inherited from sagan.yaml) takes the data's classes; preset unconditional"},
}
# Images seen at which the schedules are compared: the whole growth of every preset (1024 px included).
SCHEDULE_POINTS = [0, *(10**k for k in range(3, 9)), *(3 * 10**k for k in range(3, 9))]


@cache
def _classes() -> int:
    from ganzoo.data import build_dataset

    return build_dataset(compose([]).data, resolution=8, channels=3).num_classes


def _composed(name: str, *extra: str) -> tuple[Any, str, dict[str, Any]]:
    """The composed config of ``ganzoo train model=name``, the registry key and the builder's kwargs."""
    cfg = compose([f"model={name}", *extra])
    resolve_geometry(cfg.model, cfg.data)  # as the trainer: auto -> the data's numbers
    key, kwargs = model_kwargs(cfg.model)
    if kwargs.get("c_dim") == "auto":
        kwargs["c_dim"] = _classes()
    return cfg, key, kwargs


def _leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _revert(kwargs: dict[str, Any], path: str, preset: dict[str, Any]) -> None:
    """Set ``kwargs[path]`` (dotted) to the preset's value, or drop it where the preset does not name it."""
    *parents, last = path.split(".")
    node, ref = kwargs, preset
    for k in parents:
        node = node.setdefault(k, {})
        ref = ref.get(k, {}) if isinstance(ref, dict) else {}
    if last in ref:
        node[last] = copy.deepcopy(ref[last])
    else:
        node.pop(last, None)


def _signature(bundle: Bundle) -> dict[str, Any]:
    """What training depends on: module sizes, optimizers, EMA, phases and the schedule."""
    optimizers = {}
    for name, spec in bundle.objective.optimizers.items():
        fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name != "param_groups"}
        groups = spec.param_groups(bundle.modules[name]) if spec.param_groups else [{"params": []}]
        fields["groups"] = [(sum(p.numel() for p in g["params"]), g.get("weight_decay")) for g in groups]
        optimizers[name] = fields
    schedule = [bundle.schedule.state(n) for n in SCHEDULE_POINTS] if bundle.schedule else None
    return {
        "params": {k: count_params(m) for k, m in bundle.modules.items()},
        "optimizers": optimizers,
        "ema": bundle.ema,
        "phases": [(p.name, p.module, p.interval, p.repeats, p.needs_batch) for p in bundle.objective.phases],
        "schedule": schedule,
    }


def test_every_yaml_has_a_preset_and_every_deliberate_entry_a_yaml():
    from ganzoo.registry import list_models

    assert set(DELIBERATE) <= set(YAMLS)
    assert not [n for n in YAMLS if compose([f"model={n}"]).model.name not in list_models()]


@pytest.mark.parametrize("name", YAMLS)
def test_yaml_builds_its_registry_preset(name):
    cfg, key, kwargs = _composed(name)
    assert key == name, f"conf/model/{name}.yaml builds {key!r}"
    preset = resolve_config(name)
    deliberate = DELIBERATE.get(name, {})

    # Every key the preset names has the preset's value in the yaml, unless it is a declared difference;
    # each declared difference is real (a stale entry fails).
    yaml_leaves, preset_leaves = _leaves(kwargs), _leaves(preset)
    differ = sorted(k for k, v in preset_leaves.items() if k not in deliberate and yaml_leaves.get(k, v) != v)
    assert not differ, f"{name}: the yaml disagrees with the preset on {differ}; fix one or declare why"
    stale = [k for k in deliberate if yaml_leaves.get(k, "<unset>") == preset_leaves.get(k, "<unset>")]
    assert not stale, f"{name}: DELIBERATE lists {stale}, which the yaml does not change"

    reverted = copy.deepcopy(kwargs)
    for path in deliberate:
        _revert(reverted, path, preset)
    built, ref = _signature(build_model_shapes(name, **reverted)), _signature(build_model_shapes(name))
    for part in ref:
        assert built[part] == ref[part], f"{name}: {part} differs from the registry preset"

    # The batch: the preset's tuned one (its lr is per image) named by the yaml and used by the trainer;
    # where the preset names none, the batch is a run setting that never reaches the builder.
    tuned = preset.get("optim", {}).get("batch_size")
    if tuned is not None:
        assert cfg.model.get("batch_size") == tuned, f"{name}: the yaml must name the preset's batch {tuned}"
        assert int(cfg.trainer.batch_size) == tuned
    else:
        other = int(cfg.trainer.batch_size) + 8
        assert _composed(name, f"trainer.batch_size={other}")[2] == kwargs, f"{name}: the batch reaches the builder"


def test_the_batch_follows_the_command_line():
    """trainer.batch_size=N wins over the yaml's batch, and a batch-scaled lr follows it (per image as taming)."""
    cfg, name, kwargs = _composed("vqgan_imagenet_f16_1024", "trainer.batch_size=24")
    assert int(cfg.trainer.batch_size) == 24
    lrs = {k: s.lr for k, s in build_model_shapes(name, **kwargs).objective.optimizers.items()}
    assert lrs == pytest.approx({"G": 4.5e-6 * 24, "D": 4.5e-6 * 24})
