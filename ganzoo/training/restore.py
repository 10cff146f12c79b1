"""Resuming a run exactly: the checks a snapshot must pass and the state it restores into a trainer."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from ..errors import CheckpointError, ConfigError
from .checkpoint import (
    find_resumable,
    load_module_weights,
    load_snapshot,
    newest_finite_snapshot,
    nonfinite_keys,
    set_aside_later_snapshots,
)
from .resume import exactness_differences, state_problem

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["restore_run"]


def restore_run(trainer: Trainer, path: str) -> None:
    """Load the snapshot ``path`` names (a run folder or file) into ``trainer``: weights, EMA, optimizers,
    objective and precision state, step, images seen, training time and RNG; refuse what would not continue
    exactly. Snapshots of the run written after the one resumed from (an abandoned continuation) are moved
    aside once every check has passed, so pruning never takes the snapshot the run started from."""
    snap_path = find_resumable(path)
    if snap_path is None:
        print(f"warning: {path!r} holds no complete checkpoint yet (none was written, or the first write was "
              "interrupted): this run starts from the beginning, with the run's config.", file=sys.stderr, flush=True)
        return
    snap = load_snapshot(snap_path)
    if "import" in snap.metadata:
        raise CheckpointError(
            f"{str(snap.path)!r} was written by `ganzoo import`, not by training: it has no optimizer state to "
            f"resume. Fine-tune from it instead: ganzoo train model={snap.model_name} model.init={path} (see "
            "docs/pretrained.md)"
        )
    force = bool(trainer.tcfg.get("resume_force", False))
    if snap.model_name and snap.model_name != str(trainer.cfg.model.name):
        raise CheckpointError(
            f"checkpoint {str(snap.path)!r} was written by model {snap.model_name!r}, but this run is "
            f"model={trainer.cfg.model.name}. Resume with model={snap.model_name}."
        )
    saved_model_cfg, diff = snap.metadata.get("model_config"), ""
    if saved_model_cfg is not None and saved_model_cfg != trainer._model_config_yaml():
        saved = OmegaConf.to_container(OmegaConf.create(saved_model_cfg))
        now = OmegaConf.to_container(OmegaConf.create(trainer._model_config_yaml()))
        diff = _dict_diff(saved, now)  # keys added to ganzoo since the run started do not count
    diffs = exactness_differences(OmegaConf.create(snap.config_yaml), trainer.cfg) if snap.config_yaml else []
    if (diff or diffs) and not force:  # every difference in one refusal, not the first one found
        named = "; ".join(([diff] if diff else []) + diffs)
        error = CheckpointError if diff else ConfigError
        raise error(
            f"resuming {str(snap.path)!r} with settings that differ from the run's: {named}. "
            + ("The model would not be the one the checkpoint holds; " if diff else "")
            + "the run would not continue exactly (other images, random streams or numerics). Drop these overrides "
            "(a resumed run takes its own config; the model.* settings are in the run's config.yaml), or add "
            "trainer.resume_force=true to go on anyway (e.g. with a lower learning rate)."
        )
    if diff:
        print(f"warning: resuming with a different model config ({diff}), as trainer.resume_force=true asks",
              file=sys.stderr, flush=True)
    if diffs:
        print(f"warning: resuming with {'; '.join(diffs)}: the run does not continue exactly "
              "(trainer.resume_force=true)", file=sys.stderr, flush=True)
    bad = [f"{k}.{t}" for k, sd in [*snap.weights.items(), *snap.ema.items()] for t in nonfinite_keys(sd)]
    if bad:
        good = newest_finite_snapshot(snap.path.parent)
        raise CheckpointError(
            f"checkpoint {str(snap.path)!r} holds non-finite weights ({', '.join(bad[:3])}): the run had diverged. "
            + (f"Resume from {str(good)!r}, the newest finite snapshot, with a lower learning rate "
               "(model.optim.G.lr, model.optim.D.lr) and trainer.resume_force=true."
               if good else "No finite snapshot is left in its folder; start a new run with a lower learning rate "
               "(model.optim.G.lr, model.optim.D.lr).")
        )
    state = snap.state
    problem = state_problem(state, trainer.optimizers)
    if problem:
        raise CheckpointError(
            f"training state {str(snap.path).replace('.safetensors', '.state.pt')!r} is malformed ({problem}); "
            "it was not written by this version of ganzoo or was edited. Resume from another snapshot."
        )
    for name, module in trainer.modules.items():
        if name not in snap.weights:
            raise CheckpointError(f"checkpoint {str(snap.path)!r} has no weights for module {name!r}")
        load_module_weights(module, snap.weights[name], what=f"module {name}")
    for name, module in trainer.ema.items():
        load_module_weights(module, snap.ema.get(name, snap.weights[name]), what=f"EMA of {name}")
    try:
        for name, opt in trainer.optimizers.items():
            # Hyperparameters come from the config (e.g. a lower lr with resume_force), moments from the file.
            fresh = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
            opt.load_state_dict(state["optimizers"][name])
            for group, hyper in zip(opt.param_groups, fresh):
                group.update(hyper)
        trainer.objective.load_state_dict(state.get("objective", {}))
        trainer.precision.load_state_dict(state.get("scalers"))  # fp16 gradient scales (absent in older files)
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(
            f"the optimizer or objective state in {str(snap.path)!r} does not fit this model ({err}); use the "
            "same model settings as the run that wrote it."
        ) from err
    trainer.step = int(state["step"])
    trainer.images_seen = int(state["images_seen"])
    trainer._restored_rng = state.get("rng")
    trainer.best = state.get("best")
    trainer._time_offset = float(state.get("train_time_s", 0.0))  # absent in files written before it was saved
    trainer._wall_offset = float(state.get("wall_time_s", trainer._time_offset))
    trainer.resumed_from = snap.path
    if trainer.is_main and _same_folder(snap.path.parent, trainer.run_dir / "checkpoints"):
        moved = set_aside_later_snapshots(snap.path, images_seen=trainer.images_seen, step=trainer.step)
        if moved is not None:
            folder, names = moved
            _keep_abandoned_records(trainer.run_dir, folder, trainer.images_seen)
            print(f"warning: resuming from {snap.path.name} ({trainer.images_seen} images) abandons the later "
                  f"{', '.join(names)}: moved to {folder} (nothing was deleted; remove that folder when it is no "
                  "longer needed).", file=sys.stderr, flush=True)


def _keep_abandoned_records(run_dir: Path, folder: Path, images_seen: int) -> None:
    """Beside the abandoned snapshots: a copy of ``metrics.jsonl`` (the resumed run drops its records past the
    snapshot) and the sample grids drawn after it."""
    if (run_dir / "metrics.jsonl").exists():
        shutil.copyfile(run_dir / "metrics.jsonl", folder / "metrics.jsonl")
    grids = [p for p in (run_dir / "samples").glob("fakes_*.png")
             if (m := re.fullmatch(r"fakes_(\d+)\.png", p.name)) and int(m.group(1)) > images_seen]
    if grids:
        (folder / "samples").mkdir(exist_ok=True)
        for p in grids:
            p.replace(folder / "samples" / p.name)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _dict_diff(a: Any, b: Any, prefix: str = "model") -> str:
    """A short description of where two nested dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = []
        for k in sorted(a):  # a key only in `b` is a setting added since `a` was saved: its default changes nothing
            if a.get(k) != b.get(k):
                diffs.append(_dict_diff(a.get(k), b.get(k), f"{prefix}.{k}"))
        return "; ".join(diffs[:5])
    return f"{prefix}: checkpoint {json.dumps(a)} vs now {json.dumps(b)}"
