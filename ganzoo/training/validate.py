"""Check every trainer, data and top-level value before anything is built, and report all problems
in one paragraph (no traceback). Model keys are left to each family's builder, which names its
allowed keys; only ``model.c_dim``, ``model.resolution`` and ``model.img_channels`` are checked here
because the trainer matches them to the data (each may be ``auto``; a builder still says which
resolutions its architecture supports).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .guard import GuardConfig

Check = Callable[[Any], bool]


def _int(lo: int | None = None) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and (lo is None or v >= lo)


def _num(lo: float | None = None, strict: bool = False) -> Check:
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:  # v != v: NaN
            return False
        return lo is None or (v > lo if strict else v >= lo)

    return ok


def _opt(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _choice(*options: str) -> Check:
    return lambda v: v in options


# key -> (check, what a valid value is, an example)
TRAINER_RULES: dict[str, tuple[Check, str, str]] = {
    "kimg": (_opt(_num(0, strict=True)), "a number of thousands of images > 0", "20"),
    "steps": (_opt(_int(1)), "null or an integer >= 1", "1000"),
    "batch_size": (_int(1), "an integer >= 1", "64"),
    "accumulate": (_int(1), "an integer >= 1 that divides batch_size", "1"),
    "num_workers": (_int(0), "an integer >= 0", "0"),
    "device": (_str, "auto, cpu, cuda, cuda:N or mps", "auto"),
    "precision": (_choice("fp32", "bf16", "fp16"), "fp32, bf16 or fp16 (with gradient scaling)", "fp32"),
    "deterministic": (_bool, "true or false", "false"),
    "compile": (_bool, "true or false (torch.compile of the first-order phases)", "true"),
    "compile_backend": (_choice("inductor", "aot_eager", "eager"), "inductor, aot_eager or eager", "inductor"),
    "ema": (_bool, "true or false", "true"),
    "log_every": (_int(1), "an integer >= 1 (steps between log lines)", "20"),
    "sample_every_kimg": (_num(0), "a number >= 0 (0 = only at the end)", "5"),
    "checkpoint_every_kimg": (_num(0), "a number >= 0 (0 = only at the end)", "10"),
    "keep_checkpoints": (_int(0), "an integer >= 0 (0 keeps all)", "3"),
    "grid": (_int(0), "an integer >= 0 (0 = no sample grids)", "64"),
    "grid_seed": (_int(0), "an integer >= 0", "123"),
    "resume": (_opt(_str), "null or a run folder / snapshot path", "runs/<run>"),
    "resume_force": (_bool, "true or false", "false"),
    "force_c_dim": (_bool, "true or false", "false"),
    "progress": (_bool, "true or false", "true"),
    "minutes": (_opt(_num(0, strict=True)), "null or a number of minutes > 0", "60"),
}
EVAL_RULES: dict[str, tuple[Check, str, str]] = {
    "every_kimg": (_opt(_num(0, strict=True)), "null or a number > 0", "5"),
    "every_minutes": (_opt(_num(0, strict=True)), "null or a number of training minutes > 0", "2.5"),
    "num_fake": (_int(2), "an integer >= 2", "2000"),
    "num_real": (_opt(_int(1)), "null or an integer >= 1", "null"),
    "seed": (_int(0), "an integer >= 0", "0"),
    "truncation_psi": (_opt(_num()), "null or a number", "0.7"),
    "batch_size": (_int(1), "an integer >= 1", "64"),
    "allow_download": (_bool, "true or false", "true"),
}
GUARD_RULES: dict[str, tuple[Check, str, str]] = {
    "enabled": (_bool, "true or false", "true"),
    "loss_factor": (_num(1, strict=True), "a number > 1", "1000"),
    "loss_floor": (_num(0, strict=True), "a number > 0", "1.0"),
    "max_loss": (_num(0, strict=True), "a number > 0", "1e7"),
    "level_beta": (lambda v: _num(0)(v) and v < 1, "a number in [0, 1)", "0.99"),
    "weight_jump": (_num(1, strict=True), "a number > 1", "100"),
}
DATA_RULES: dict[str, tuple[Check, str, str]] = {
    "name": (_str, "a dataset name (see conf/data/)", "fashion"),
    "root": (_opt(_str), "null or a folder path", "/data/images"),
    "flip": (_bool, "true or false", "false"),
    "max_images": (_opt(_int(1)), "null or an integer >= 1", "null"),
    "verify": (_bool, "true or false", "true"),
    "resize_on_device": (lambda v: v == "auto" or isinstance(v, bool), "auto, true or false", "auto"),
}


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def _apply(rules: Mapping[str, tuple[Check, str, str]], values: Mapping[str, Any], prefix: str, out: list[str]) -> None:
    for key, (check, what, example) in rules.items():
        if key in values and not check(values[key]):
            out.append(f"{prefix}{key}={values[key]!r} must be {what} (e.g. {prefix}{key}={example})")


def config_problems(cfg: Mapping[str, Any] | DictConfig) -> list[str]:
    """Every invalid trainer / data / top-level value (and model.c_dim), one sentence each."""
    try:
        plain = _plain(cfg)
    except Exception as err:  # noqa: BLE001  (a broken interpolation is a config problem for the user)
        return [f"the config cannot be resolved ({err})"]
    problems: list[str] = []
    seed = plain.get("seed")
    if not _int(0)(seed):
        problems.append(f"seed={seed!r} must be an integer >= 0 (e.g. seed=0)")
    trainer = plain.get("trainer") or {}
    n_before = len(problems)
    _apply(TRAINER_RULES, trainer, "trainer.", problems)
    bs, acc = trainer.get("batch_size"), trainer.get("accumulate", 1)
    model_bs = (plain.get("model") or {}).get("batch_size") if isinstance(plain.get("model"), Mapping) else None
    if model_bs is not None and model_bs == bs:  # trainer.batch_size followed the preset's batch_size
        problems[n_before:] = [p + " (it follows model.batch_size: set that, or trainer.batch_size)"
                               if p.startswith("trainer.batch_size=") else p for p in problems[n_before:]]
    if _int(1)(bs) and _int(1)(acc) and bs % acc != 0:
        problems.append(f"trainer.batch_size={bs} is not divisible by trainer.accumulate={acc}")
    if trainer.get("steps") is None and "kimg" in trainer and trainer.get("kimg") is None:
        problems.append("trainer.kimg=null needs trainer.steps (the budget is one or the other)")
    ev = trainer.get("eval") or {}
    if isinstance(ev, Mapping):
        on = ev.get("every_kimg") is not None or ev.get("every_minutes") is not None
        _apply(EVAL_RULES if on else {k: EVAL_RULES[k] for k in ("every_kimg", "every_minutes")},
               ev, "trainer.eval.", problems)
    guard = trainer.get("guard") or {}
    if isinstance(guard, Mapping):
        unknown = sorted(set(guard) - set(GuardConfig.__dataclass_fields__))
        if unknown:
            problems.append(f"trainer.guard has unknown key(s) {unknown} (allowed: {sorted(GUARD_RULES)})")
        _apply(GUARD_RULES, guard, "trainer.guard.", problems)
    data = plain.get("data") or {}
    if isinstance(data, Mapping):
        _apply(DATA_RULES, data, "data.", problems)
    model = plain.get("model") or {}
    if isinstance(model, Mapping) and "c_dim" in model:
        c_dim = model["c_dim"]
        if c_dim != "auto" and not _int(0)(c_dim):
            problems.append(f"model.c_dim={c_dim!r} must be 0 (unconditional), a number of classes >= 1, or auto "
                            "(the data's classes)")
    if isinstance(model, Mapping):
        res, ch = model.get("resolution", "auto"), model.get("img_channels", "auto")
        if res != "auto" and not _int(4)(res):
            problems.append(f"model.resolution={res!r} must be auto (the data's size, rounded up to a power of two) "
                            "or a power of two such as 32, 64 or 256")
        if ch != "auto" and not (_int(1)(ch) and ch in (1, 3)):
            problems.append(f"model.img_channels={ch!r} must be auto (the data's channels), 1 (grey) or 3 (RGB)")
    return problems


def validate_config(cfg: Mapping[str, Any] | DictConfig) -> None:
    """Raise one :class:`ConfigError` listing every invalid value."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(
            f"invalid configuration: {'; '.join(problems)}. Fix these on the command line or in your yaml "
            "(`ganzoo train --cfg job` prints the composed config)."
        )


# The run being resumed while a Trainer is built (set by ``ganzoo train``): a resumed run keeps its model, so
# check_classes suggests what works then (trainer.force_c_dim, a new run), never a new model.c_dim.
RESUMING: ContextVar[str | None] = ContextVar("ganzoo_resuming", default=None)


def check_classes(c_dim: int, num_classes: int, data_name: str, *, force: bool = False) -> None:
    """A conditional model must have exactly the data's classes (``force`` allows more, never fewer)."""
    if c_dim <= 0:
        return
    resuming = RESUMING.get()
    if resuming and (num_classes > c_dim or num_classes == 0 or (num_classes < c_dim and not force)):
        new_run = (f"or train a new run on it (ganzoo train model=<the run's model> data={data_name} takes the "
                   "data's classes with model.c_dim=auto)")
        has = f"{num_classes} classes" if num_classes else "no labels"
        head = (f"dataset {data_name!r} has {has} but the run being resumed ({resuming}) has a class-conditional "
                f"model with c_dim={c_dim}, and a resumed run keeps its model: model.c_dim cannot change")
        if 0 < num_classes < c_dim:
            raise ConfigError(f"{head}. Add trainer.force_c_dim=true to go on with its {num_classes} classes "
                              f"({c_dim - num_classes} class(es) of the model are then never trained), {new_run}")
        raise ConfigError(f"{head}, and it cannot train on these labels. Resume on the run's own data, {new_run}")
    if num_classes == 0:
        raise ConfigError(
            f"model is class-conditional (c_dim={c_dim}) but dataset {data_name!r} has no labels; "
            "set model.c_dim=0 or use labelled data (class subfolders for data=folder)"
        )
    if num_classes > c_dim:
        raise ConfigError(
            f"dataset {data_name!r} has {num_classes} classes but model.c_dim={c_dim}; "
            f"set model.c_dim={num_classes} (or model.c_dim=auto)"
        )
    if num_classes < c_dim and not force:
        raise ConfigError(
            f"dataset {data_name!r} has {num_classes} classes but model.c_dim={c_dim}, so {c_dim - num_classes} "
            f"class(es) would never be trained; set model.c_dim={num_classes} (or model.c_dim=auto), or add "
            "trainer.force_c_dim=true if that is what you want (e.g. fine-tuning on a subset of classes)"
        )


def report_empty_class_folders(dataset: Any) -> list[str]:
    """Warn about subfolders of an image folder that hold no images (so they are not classes)."""
    from ..data import ImageFolderDataset

    if not isinstance(dataset, ImageFolderDataset):  # torchvision sets keep their own files under root
        return []
    root, names = getattr(dataset, "root", None), getattr(dataset, "class_names", None)
    if root is None or not names:
        return []
    empty = sorted(p.name for p in Path(root).iterdir()
                   if p.is_dir() and not p.name.startswith(".") and p.name not in set(names))
    if empty:
        warnings.warn(
            f"class folder(s) {empty} under {str(root)!r} contain no readable images and are left out: the data has "
            f"{len(names)} classes ({', '.join(names[:10])}{'...' if len(names) > 10 else ''}). Add images or remove "
            "the folders if the class count matters (model.c_dim).",
            stacklevel=2,
        )
    return empty
