"""Writing a converted checkpoint as an ordinary run folder (DESIGN.md, "Runs that were not trained here").

The folder looks like one ``ganzoo train`` wrote: ``config.yaml`` (the composed training config with
``model=<preset>`` and the numbers read from the file; ``data=folder`` with no root, since the
training images are not known; ``import:`` with the provenance) and ``checkpoints/`` holding one
safetensors snapshot whose metadata carries the model config. ``generate``, ``eval`` (with
``--data root=...``), ``reconstruct`` and fine-tuning (``model.init=``) read it like any run.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf, open_dict

from .. import __version__
from ..errors import CheckpointError, ConfigError
from ..runtime import build_bundle
from ..training.checkpoint import load_module_weights, save_snapshot
from .base import Converted, FormatSpec

__all__ = ["sha256_of", "write_run", "finetune_overrides", "compose_run_config"]

# Keys of a model config that are training settings, not architecture: left out of the fine-tune command.
# A prior's tokenizer pins (stage1_hash, stage1_model, and the same of cond_stage) are recomputed by the builder.
_TRAINING_KEYS = ("optim", "loss", "ema", "batch_size", "init", "sample", "schedule", "stage1_hash", "stage1_model",
                  "cond_stage_hash", "cond_stage_model")


_PARTS = {"stage1": "tokenizer (stage 1)", "cond_stage": "condition tokenizer (cond stage)"}


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _flat(d: Any, prefix: str) -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}"))
        return out
    return {prefix: d}


def finetune_overrides(model_config: dict[str, Any]) -> list[str]:
    """``model.*=...`` overrides that rebuild this architecture from its preset's yaml on the command line."""
    arch = {k: v for k, v in model_config.items() if k not in (*_TRAINING_KEYS, "name")}
    out = []
    for key, value in _flat(arch, "model").items():
        if value is None or isinstance(value, list | tuple):
            text = json.dumps(value) if value is not None else "null"
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
        out.append(f"{key}={text}")
    return out


def compose_run_config(conv: Converted) -> tuple[Any, Any]:
    """The composed training config and its model section, with the converter's numbers merged in."""
    from ..paths import config_dir
    from ..training.config import compose_train_config

    if not (config_dir() / "model" / f"{conv.model}.yaml").exists():
        raise ConfigError(f"the converter chose model {conv.model!r}, which has no conf/model/{conv.model}.yaml")
    cfg = compose_train_config([f"model={conv.model}", "data=folder"])
    with open_dict(cfg):
        cfg.model = OmegaConf.merge(cfg.model, OmegaConf.create(conv.model_config))
    auto = [k for k in ("resolution", "img_channels", "c_dim") if cfg.model.get(k) == "auto"]
    if auto:
        raise ConfigError(f"the {conv.model} converter left model.{auto[0]}=auto; it must read the number from "
                          "the file")
    return cfg, cfg.model


def write_run(conv: Converted, out: Path, *, spec: FormatSpec, source: Path, sha256: str, url: str | None = None,
              force: bool = False) -> Path:
    """Write ``conv`` as a run folder at ``out`` (and a prior's tokenizers at ``out/stage1``, ``out/cond_stage``);
    returns ``out``."""
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        if not force:
            raise CheckpointError(f"{str(out)!r} exists and is not empty; choose another --out or add --force")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _write(conv, out, spec=spec, source=source, sha256=sha256, url=url)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # never leave half a run behind
        raise


def _write(conv: Converted, out: Path, *, spec: FormatSpec, source: Path, sha256: str, url: str | None) -> Path:
    for part in ("stage1", "cond_stage"):  # a prior's tokenizers: runs of their own, pinned by the prior
        if getattr(conv, part) is not None:
            part_dir = _write(getattr(conv, part), out / part, spec=spec, source=source, sha256=sha256, url=url)
            conv.model_config[part] = str(part_dir.resolve())
    cfg, model_cfg = compose_run_config(conv)
    with torch.random.fork_rng(devices=[]):  # modules the file lacks get a reproducible fresh initialisation
        torch.manual_seed(0)
        bundle = build_bundle(model_cfg)
    with open_dict(cfg.model):  # what the builder pinned (a prior's tokenizer hash) is part of the run's config
        for key, value in bundle.info.get("resolved", {}).items():
            cfg.model[key] = value
    not_found = list(conv.not_found)
    for name, module in bundle.modules.items():
        if name in conv.weights:
            load_module_weights(module, conv.weights[name], what=f"module {name} of {conv.model} (from {source.name})")
        else:
            not_found.append(f"{name}: not in the file; written with a fresh initialisation (seed 0): "
                             f"fine-tuning trains it from scratch")
    ema: dict[str, torch.nn.Module] = {}
    if bundle.ema is not None and bundle.ema.module in bundle.modules:
        import copy

        name = bundle.ema.module
        ema[name] = copy.deepcopy(bundle.modules[name])
        if name in conv.ema:
            load_module_weights(ema[name], conv.ema[name], what=f"the EMA copy of {name} (from {source.name})")
        else:
            not_found.append(f"EMA of {name}: not in the file; the EMA copy is the trained {name}")
    images_seen = int(conv.source_info.get("images_seen", 0) or 0)
    total_kimg = getattr(bundle.schedule, "total_kimg", None)
    if callable(total_kimg):  # a progressive model is stored fully grown
        images_seen = max(images_seen, int(math.ceil(total_kimg() * 1000)))
    provenance = {
        "source": source.name,
        "path": str(source.resolve()),
        "url": url,
        "sha256": sha256,
        "size_bytes": source.stat().st_size,
        "format": spec.name,
        "format_description": spec.description,
        "part": _PARTS.get(out.name, "model"),
        "found": list(conv.found),
        "not_found": not_found,
        "notes": list(conv.notes),
        "info": _plain(conv.source_info),
        "imported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "ganzoo_version": __version__,
    }
    with open_dict(cfg):
        cfg["import"] = provenance
    model_yaml = OmegaConf.to_yaml(cfg.model, resolve=True)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    state = {"format": 1, "step": 0, "images_seen": images_seen, "optimizers": {}, "objective": {}, "imported": True,
             "ganzoo_version": __version__}
    metadata = {"model": str(cfg.model.name), "model_config": model_yaml, "config": config_yaml,
                "images_seen": str(images_seen), "step": "0", "ganzoo_version": __version__,
                "import": json.dumps(provenance)}
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    save_snapshot(ckpt_dir, modules=bundle.modules, ema=ema, state=state, metadata=metadata, keep=0)
    (out / "config.yaml").write_text(config_yaml)
    return out


def _plain(value: Any) -> Any:
    """JSON/YAML-safe copy of converter info (numbers, strings, lists, dicts; anything else as text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
