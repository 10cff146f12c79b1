"""What a resumed run is: the run's own config, plus what the user overrides, checked for exactness.

``ganzoo train trainer.resume=RUN [overrides]`` starts from the config saved with the snapshot (or
``RUN/config.yaml``): only the keys given on the command line change. Changing a setting that
decides which images are drawn or how the numbers are computed (:data:`EXACT_KEYS`) would silently
turn "continue exactly" into another run, so it needs ``trainer.resume_force=true``.

A resume is checked before Hydra starts (:func:`check_resume_path`), and an in-place resume runs
with ``hydra.output_subdir=null``: a refused command writes nothing, and ``RUN/.hydra/`` keeps the
run's first command. Every command that starts training is appended to ``RUN/commands.log``
(:func:`record_command`), the run's history.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import CheckpointError
from .checkpoint import find_resumable, read_metadata

# Settings whose change breaks bit-exact continuation (data order, RNG streams, numerics).
EXACT_KEYS = ("seed", "data", "trainer.batch_size", "trainer.accumulate", "trainer.precision", "augment")
GROUPS = ("model", "data", "trainer", "logger", "augment")


def _run_config_file(path: Path) -> Path | None:
    """``config.yaml`` of the run a resume path (run folder, checkpoints/ or snapshot file) belongs to."""
    run_dir = path if path.is_dir() else path.parent.parent
    run_dir = run_dir.parent if run_dir.name == "checkpoints" else run_dir
    return run_dir / "config.yaml" if (run_dir / "config.yaml").exists() else None


def saved_config(resume: str | Path) -> DictConfig | None:
    """The config a run was trained with: from the snapshot to resume, else the run's config.yaml."""
    path = Path(resume).expanduser()
    snap = find_resumable(path)
    if snap is not None:
        yaml_text = read_metadata(snap).get("config")
        if yaml_text:
            return OmegaConf.create(yaml_text)
    config_file = _run_config_file(path)
    return OmegaConf.load(config_file) if config_file is not None else None


def check_resume_path(resume: str | Path) -> None:
    """Refuse a ``trainer.resume`` that names nothing to resume: a missing path, or a folder with neither a
    checkpoint nor a ``config.yaml`` (training it would start the default model in a new folder)."""
    path = Path(resume).expanduser()
    if not path.exists():
        raise CheckpointError(
            f"trainer.resume={str(resume)!r} does not exist. Pass a run folder (it holds config.yaml and "
            "checkpoints/), its checkpoints/ folder or a snapshot-*.safetensors file."
        )
    if path.is_dir() and find_resumable(path) is None and _run_config_file(path) is None:
        raise CheckpointError(
            f"trainer.resume={str(resume)!r} is not a ganzoo run folder: it holds no checkpoint "
            "(checkpoints/snapshot-*.safetensors) and no config.yaml, so there is nothing to resume. Pass the run "
            "folder `ganzoo train` printed (runs/<date>_<time>_<model>_<data>), or drop trainer.resume to start "
            "a new run."
        )


def record_command(run_dir: Path, argv: Sequence[str]) -> None:
    """Append ``ganzoo train <argv>`` with the UTC time to ``run_dir/commands.log`` (never rewritten)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}  ganzoo train {shlex.join(argv)}\n"
    with open(run_dir / "commands.log", "a", encoding="utf-8") as fh:
        fh.write(line)


def resume_hint(run_dir: Path) -> str:
    """What ``ganzoo train trainer.resume=<run_dir>`` will do, for a message after a stop."""
    try:
        snap = find_resumable(run_dir)
    except CheckpointError:
        snap = None
    if snap is None:
        return (f"No checkpoint was completed, so there is nothing to continue from: `ganzoo train "
                f"trainer.resume={run_dir}` starts this run again from the beginning, with its config.")
    return f"Continue from {snap.name} with: ganzoo train trainer.resume={run_dir}"


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
    check_resume_path(str(resume))
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
    _refuse_differences(saved, out, str(resume))
    return out


def _refuse_differences(saved: DictConfig, now: DictConfig, resume: str) -> None:
    """Refuse, before anything is built, a resume whose command line changes the model or a setting that breaks
    exactness, naming every difference (the trainer's checks would stop at the first: a ``c_dim`` that no longer
    fits the data before the ``data`` change that caused it). ``trainer.resume_force=true`` lets them through."""
    if bool(OmegaConf.select(now, "trainer.resume_force", default=False)):
        return
    a = OmegaConf.to_container(saved, resolve=True)
    b = OmegaConf.to_container(now, resolve=True)
    fa, fb = _flatten(a.get("model") or {}, "model"), _flatten(b.get("model") or {}, "model")
    model = [f"{k}: {fa[k]!r} -> {fb.get(k)!r}" for k in sorted(fa) if fa[k] != fb.get(k)]
    diffs = model + exactness_differences(saved, now)
    if diffs:
        from ..errors import ConfigError

        raise ConfigError(
            f"resuming {resume!r} with settings that differ from the run's: {'; '.join(diffs)}. "
            + ("The model would not be the one the checkpoint holds; " if model else "")
            + "the run would not continue exactly (other images, random streams or numerics). Drop these overrides "
            "(a resumed run takes its own config; the model.* settings are in the run's config.yaml), or add "
            "trainer.resume_force=true to go on anyway (e.g. with a lower learning rate)."
        )


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
    if any(k in state and not (isinstance(state[k], (int, float)) and state[k] >= 0)
           for k in ("train_time_s", "wall_time_s")):
        return "train_time_s and wall_time_s must be non-negative numbers"
    opts = state["optimizers"]
    if not isinstance(opts, dict) or any(not isinstance(opts.get(k), dict) for k in optimizers):
        return f"optimizer states for {sorted(optimizers)} expected"
    return None
