"""Checkpoints: weights as safetensors, training state as a ``weights_only`` torch file.

A snapshot named ``snapshot-<images_seen>`` is two files in ``<run>/checkpoints/``:

- ``<name>.safetensors``: every module's state dict under ``<module>.`` and the EMA copies
  under ``ema.<module>.``; its metadata holds the model name and the resolved config (YAML),
  so ``ganzoo generate`` needs nothing else.
- ``<name>.state.pt``: optimizers, objective state, RNG states, step and images seen, loaded
  with ``torch.load(weights_only=True)``: no code is ever unpickled.

``latest.json`` names the newest complete snapshot. Every file is written to a temporary name
and renamed, so a crash never leaves a half-written checkpoint behind, and ``latest.json`` is
updated only after both files are in place.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError

FORMAT_VERSION = 1
EMA_PREFIX = "ema."


def atomic_write(path: Path, write_fn) -> None:
    """Call ``write_fn(tmp_path)`` then atomically rename the result to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
    }
    np_state = np.random.get_state()
    state["numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    state["numpy_pos"] = int(np_state[2])
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _contiguous(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


@dataclass
class Snapshot:
    """A loaded checkpoint: weights per module (``ema`` for EMA copies) and training state."""

    weights: dict[str, dict[str, torch.Tensor]]
    ema: dict[str, dict[str, torch.Tensor]]
    metadata: dict[str, str]
    state: dict[str, Any] | None
    path: Path

    @property
    def config_yaml(self) -> str:
        return self.metadata.get("config", "")

    @property
    def model_name(self) -> str:
        return self.metadata.get("model", "")


def save_snapshot(
    ckpt_dir: Path,
    *,
    modules: Mapping[str, nn.Module],
    ema: Mapping[str, nn.Module],
    state: dict[str, Any],
    metadata: Mapping[str, str],
    keep: int = 3,
    name: str | None = None,
) -> Path:
    """Write one snapshot atomically and prune older ones beyond ``keep`` (0 keeps all).

    With ``name`` (e.g. ``"best"``) the snapshot is written under that name and neither
    ``latest.json`` nor the pruning of numbered snapshots is touched.
    """
    named = name is not None
    name = name or f"snapshot-{int(state['images_seen']):010d}"
    tensors: dict[str, torch.Tensor] = {}
    for mod_name, mod in modules.items():
        tensors.update({f"{mod_name}.{k}": v for k, v in _contiguous(mod.state_dict()).items()})
    for mod_name, mod in ema.items():
        tensors.update({f"{EMA_PREFIX}{mod_name}.{k}": v for k, v in _contiguous(mod.state_dict()).items()})
    meta = {"format": str(FORMAT_VERSION), **{k: str(v) for k, v in metadata.items()}}
    weights_path = ckpt_dir / f"{name}.safetensors"
    atomic_write(weights_path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    atomic_write(ckpt_dir / f"{name}.state.pt", lambda tmp: torch.save(state, tmp))
    if named:
        return weights_path
    pointer = {"name": name, "images_seen": int(state["images_seen"]), "step": int(state["step"])}
    atomic_write(ckpt_dir / "latest.json", lambda tmp: Path(tmp).write_text(json.dumps(pointer)))
    if keep > 0:
        snaps = sorted(ckpt_dir.glob("snapshot-*.safetensors"))
        for old in snaps[:-keep]:
            old.unlink(missing_ok=True)
            old.with_name(old.name.replace(".safetensors", ".state.pt")).unlink(missing_ok=True)
    return weights_path


def find_checkpoint(path: str | os.PathLike) -> Path:
    """Resolve a run folder, a ``checkpoints/`` folder or a snapshot file to the weights file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(
            f"checkpoint path {str(p)!r} does not exist. Pass a run folder (containing checkpoints/), "
            "a checkpoints/ folder, or a snapshot-*.safetensors file."
        )
    if p.is_file():
        if p.name.endswith(".state.pt"):
            p = p.with_name(p.name.replace(".state.pt", ".safetensors"))
        return p
    ckpt_dir = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    pointer = ckpt_dir / "latest.json"
    if pointer.exists():
        try:
            name = json.loads(pointer.read_text())["name"]
            candidate = ckpt_dir / f"{name}.safetensors"
            if candidate.exists():
                return candidate
        except (json.JSONDecodeError, KeyError):
            pass
    snaps = sorted(ckpt_dir.glob("snapshot-*.safetensors"))
    if not snaps:
        raise CheckpointError(
            f"no checkpoint found in {str(p)!r}: expected checkpoints/snapshot-*.safetensors. "
            "Has this run saved one yet (see trainer.checkpoint_every_kimg)?"
        )
    return snaps[-1]


def load_snapshot(path: str | os.PathLike, *, with_state: bool = True) -> Snapshot:
    """Load a snapshot without executing any code from the files."""
    weights_path = find_checkpoint(path)
    try:
        flat = load_file(str(weights_path))
        with open(weights_path, "rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(header_len))
        metadata = header.get("__metadata__", {}) or {}
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {str(weights_path)!r} ({err}). The file is corrupt or not a "
            "ganzoo safetensors checkpoint; use an earlier snapshot from the same checkpoints/ folder."
        ) from err
    weights: dict[str, dict[str, torch.Tensor]] = {}
    ema: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in flat.items():
        target = ema if key.startswith(EMA_PREFIX) else weights
        key = key[len(EMA_PREFIX) :] if key.startswith(EMA_PREFIX) else key
        mod, _, rest = key.partition(".")
        target.setdefault(mod, {})[rest] = tensor
    state = None
    state_path = weights_path.with_name(weights_path.name.replace(".safetensors", ".state.pt"))
    if with_state:
        if not state_path.exists():
            raise CheckpointError(
                f"{str(weights_path)!r} has no training-state file {state_path.name!r} beside it, so the "
                "run cannot be resumed exactly. It can still be used by `ganzoo generate`."
            )
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001  (any unpickling failure is a corrupt file for the user)
            raise CheckpointError(
                f"cannot read training state {str(state_path)!r} ({type(err).__name__}: {err}). "
                "It is corrupt or was not written by ganzoo; resume from an earlier snapshot."
            ) from err
    return Snapshot(weights, ema, dict(metadata), state, weights_path)


def load_module_weights(module: nn.Module, sd: Mapping[str, torch.Tensor], *, what: str) -> None:
    """``load_state_dict`` with a message that names the mismatch and what to do."""
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if wrong:
            k = wrong[0]
            parts.append(f"shape of {k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}")
        raise CheckpointError(
            f"checkpoint does not fit {what}: {'; '.join(parts)}. It was saved by another model or "
            "configuration: use the same model= and model.* settings as the run that wrote it."
        )
    module.load_state_dict(sd)
