"""What a resumed run is: the run's own config, plus what the user overrides, checked for exactness.

``ganzoo train trainer.resume=RUN [overrides]`` starts from the config saved with the snapshot (or
``RUN/config.yaml``): only the keys given on the command line change. Changing a setting that
decides which images are drawn or how the numbers are computed (:data:`EXACT_KEYS`) would silently
turn "continue exactly" into another run, so it needs ``trainer.resume_force=true``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import CheckpointError
from .checkpoint import find_resumable, read_metadata

# Settings whose change breaks bit-exact continuation (data order, RNG streams, numerics).
EXACT_KEYS = ("seed", "data", "trainer.batch_size", "trainer.accumulate", "trainer.precision", "augment")
GROUPS = ("model", "data", "trainer", "logger", "augment")


def saved_config(resume: str | Path) -> DictConfig | None:
    """The config a run was trained with: from the snapshot to resume, else the run's config.yaml."""
    path = Path(resume).expanduser()
    snap = find_resumable(path)
    if snap is not None:
        yaml_text = read_metadata(snap).get("config")
        if yaml_text:
            return OmegaConf.create(yaml_text)
    run_dir = path if path.is_dir() else path.parent.parent
    run_dir = run_dir.parent if run_dir.name == "checkpoints" else run_dir
    if (run_dir / "config.yaml").exists():
        return OmegaConf.load(run_dir / "config.yaml")
    return None


def run_folder(resume: str | Path) -> Path | None:
    """The run folder a resume path belongs to (a run folder, its checkpoints/ or a snapshot file)."""
    p = Path(resume).expanduser()
    if p.is_file():
        p = p.parent
    if p.name == "checkpoints":
        p = p.parent
    return p if (p / "checkpoints").is_dir() or (p / "config.yaml").exists() else None


def _override_key(item: str) -> tuple[str, bool]:
    """``"+a.b=1"`` -> ``("a.b", False)``; ``"~a.b"`` -> ``("a.b", True)`` (a deletion)."""
    key = item.split("=", 1)[0].strip()
    delete = key.startswith("~")
    return key.lstrip("~+"), delete


def _set(d: dict[str, Any], key: str, value: Any, *, delete: bool = False) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        if not isinstance(d.get(p), dict):
            d[p] = {}
        d = d[p]
    if delete:
        d.pop(parts[-1], None)
    else:
        d[parts[-1]] = value


def _fill_missing(dst: dict[str, Any], src: Mapping[str, Any]) -> None:
    """Add keys of ``src`` missing from ``dst`` (settings added to ganzoo after the run was started)."""
    for k, v in src.items():
        if k not in dst:
            dst[k] = v
        elif isinstance(dst[k], dict) and isinstance(v, Mapping):
            _fill_missing(dst[k], v)


def merge_for_resume(composed: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The config of a resumed run: the saved config, with the command line's keys taken from
    ``composed`` (Hydra's config of this command). Without ``trainer.resume`` it is ``composed``."""
    resume = composed.trainer.get("resume")
    if not resume:
        return composed
    saved = saved_config(str(resume))
    if saved is None:
        return composed
    if "import" in saved:
        name = OmegaConf.select(saved, "model.name", default="<preset>")
        raise CheckpointError(
            f"{str(resume)!r} was written by `ganzoo import`, not by training: it has no optimizer state to resume. "
            f"Fine-tune from it instead: ganzoo train model={name} model.init={resume} (see docs/pretrained.md)"
        )
    merged = OmegaConf.to_container(saved, resolve=True)
    for item in overrides:
        key, delete = _override_key(item)
        if key.startswith("hydra") or not key:
            continue
        if key.split("@")[0] == "experiment":  # a preset sets many groups: take the composed config whole
            return composed
        node = OmegaConf.select(composed, key, default=None)
        value = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        _set(merged, key.split("@")[0], value, delete=delete)
    fill = OmegaConf.to_container(composed, resolve=True)
    if (fill.get("model") or {}).get("name") != (merged.get("model") or {}).get("name"):
        # the command line's model group is the default (dcgan), not the run's: none of its keys belong
        fill.pop("model", None)
    _fill_missing(merged, fill)
    out = OmegaConf.create(merged)
    OmegaConf.set_struct(out, True)
    return out


def _flatten(d: Any, prefix: str) -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def exactness_differences(saved: Mapping[str, Any] | DictConfig, now: Mapping[str, Any] | DictConfig) -> list[str]:
    """``key: saved -> now`` for each :data:`EXACT_KEYS` setting that differs."""
    a = OmegaConf.to_container(saved, resolve=True) if isinstance(saved, DictConfig) else dict(saved)
    b = OmegaConf.to_container(now, resolve=True) if isinstance(now, DictConfig) else dict(now)
    diffs = []
    for key in EXACT_KEYS:
        fa = _flatten(OmegaConf.select(OmegaConf.create(a), key, default=None), key)
        fb = _flatten(OmegaConf.select(OmegaConf.create(b), key, default=None), key)
        for k in sorted(set(fa) | set(fb)):
            # A key missing from the saved config is a setting added since: its default changes nothing.
            if k in fa and fa[k] != fb.get(k) and k not in ("data.download", "data.verify", "data.resize_on_device"):
                diffs.append(f"{k}: {fa.get(k)!r} -> {fb.get(k)!r}")
    return diffs


def state_problem(state: Any, optimizers: Mapping[str, Any]) -> str | None:
    """What is wrong with a loaded training-state dict, or None."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a dict"
    missing = [k for k in ("step", "images_seen", "optimizers") if k not in state]
    if missing:
        return f"no {', '.join(missing)}"
    if not all(isinstance(state[k], int) and state[k] >= 0 for k in ("step", "images_seen")):
        return "step and images_seen must be non-negative integers"
    opts = state["optimizers"]
    if not isinstance(opts, dict) or any(not isinstance(opts.get(k), dict) for k in optimizers):
        return f"optimizer states for {sorted(optimizers)} expected"
    return None
