"""``model.init``: start a run from existing weights (fine-tuning, as StyleGAN2-ADA's ``--resume``).

The source is a ganzoo run folder or snapshot (trained here or written by ``ganzoo import``) or a
published checkpoint file, converted in memory by :mod:`ganzoo.pretrained` (the import is lazy, so
training does not need that package unless a foreign file is named). Every module the source holds is
loaded strictly (G, D, and the EMA copy, which falls back to the source's G); modules it lacks keep
their fresh initialisation; the optimizers start fresh (moments of another run, data and learning
rate would not fit). A run that resumes takes its own snapshot instead, so ``model.init`` never
overrides trained progress.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from ..errors import CheckpointError
from .checkpoint import load_module_weights, load_snapshot

__all__ = ["load_init"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _is_ganzoo_run(path: Path) -> bool:
    if path.is_dir():
        return (path / "checkpoints").is_dir() or any(path.glob("snapshot-*.safetensors"))
    return path.name.endswith(".safetensors")


def _source(init: str) -> tuple[dict, dict, dict[str, Any], dict[str, Any] | None]:
    """``(weights, ema, provenance, source model config)`` of what ``model.init`` names."""
    path = Path(init).expanduser()
    from ..pretrained.download import is_url  # a tiny module: URLs are only recognised here

    if not is_url(init) and not path.exists():
        raise CheckpointError(f"model.init={init!r} does not exist: pass a run folder, a snapshot-*.safetensors file, "
                              "or a published checkpoint (see docs/pretrained.md)")
    if not is_url(init) and _is_ganzoo_run(path):
        snap = load_snapshot(path, with_state=False)
        provenance: dict[str, Any] = {"path": str(snap.path.resolve()), "sha256": _sha256(snap.path),
                                      "images_seen": int(snap.metadata.get("images_seen", 0) or 0)}
        if "import" in snap.metadata:
            provenance["import"] = json.loads(snap.metadata["import"])
        model_yaml = snap.metadata.get("model_config")
        source_cfg = OmegaConf.to_container(OmegaConf.create(model_yaml)) if model_yaml else None
        return snap.weights, snap.ema, provenance, source_cfg
    from ..pretrained.importer import import_in_memory

    conv, provenance = import_in_memory(init)
    return conv.weights, conv.ema, provenance, {"name": conv.model, **conv.model_config}


def _arch_hint(source_cfg: Mapping[str, Any] | None) -> str:
    if not source_cfg:
        return ""
    from ..pretrained.run_folder import finetune_overrides

    name = source_cfg.get("name")
    return (f" The source was built as model={name} " + " ".join(finetune_overrides(dict(source_cfg)))
            + ": give the same architecture settings.")


def load_init(init: str, modules: Mapping[str, nn.Module], ema: Mapping[str, nn.Module]) -> dict[str, Any]:
    """Load ``model.init`` into ``modules`` and ``ema`` in place; returns the provenance the run records."""
    weights, ema_weights, provenance, source_cfg = _source(init)
    loaded, fresh = [], []
    with torch.no_grad():
        for name, module in modules.items():
            if name not in weights:
                fresh.append(name)
                continue
            try:
                load_module_weights(module, weights[name], what=f"module {name}")
            except CheckpointError as err:
                raise CheckpointError(f"model.init={init!r}: {err}{_arch_hint(source_cfg)}") from err
            loaded.append(name)
        for name, copy in ema.items():
            source = ema_weights.get(name, weights.get(name))
            if source is None:
                copy.load_state_dict(modules[name].state_dict())
                continue
            load_module_weights(copy, source, what=f"the EMA copy of {name}")
            loaded.append(f"EMA of {name}" + ("" if name in ema_weights else f" (the source's {name})"))
    if not loaded:
        raise CheckpointError(f"model.init={init!r} holds none of this model's modules ({', '.join(modules)})")
    return {"source": init, **provenance, "loaded": loaded, "fresh": fresh, "optimizers": "fresh"}
