"""Checkpoints: weights as safetensors, training state as a ``weights_only`` torch file.

A snapshot named ``snapshot-<images_seen>`` is two files in ``<run>/checkpoints/``:

- ``<name>.safetensors``: every module's state dict under ``<module>.`` and the EMA copies
  under ``ema.<module>.``; its metadata holds the model name and the resolved config (YAML),
  so ``ganzoo generate`` needs nothing else.
- ``<name>.state.pt``: optimizers, objective state, RNG states, step and images seen, loaded
  with ``torch.load(weights_only=True)``: no code is ever unpickled.

``latest.json`` names the newest complete snapshot. Every file is written to a temporary name
and renamed, so a crash never leaves a half-written checkpoint behind, and ``latest.json`` is
updated only after both files are in place. Temporary files of a killed write are removed by
:func:`clean_temp_files` on the next start. A snapshot with a non-finite weight is never written.

Fault injection (tests, ``docs/reliability.md``): ``GANZOO_FAULT=<point>:<n>[:<signal>]`` (several
separated by commas) sends the process ``signal`` (default KILL) the ``n``-th time it reaches
``point``: ``<kind>.begin`` (temporary file created, empty), ``<kind>.written`` (temporary file
complete, not yet renamed) or ``<kind>.renamed`` for ``kind`` in weights, state, latest, and the
trainer's ``step`` (after each optimizer step) and ``startup``.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
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


_FAULT_COUNTS: dict[str, int] = {}


def reset_fault_counts() -> None:
    """Start counting fault-point visits from zero (each training run in a process counts its own)."""
    _FAULT_COUNTS.clear()


def fault_point(name: str) -> None:
    """Test hook: deliver the signal that ``$GANZOO_FAULT`` names at its ``n``-th visit of ``name``."""
    spec = os.environ.get("GANZOO_FAULT")
    if not spec:
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    for item in spec.split(","):
        point, _, rest = item.strip().partition(":")
        count, _, sig = rest.partition(":")
        if point == name and count.isdigit() and int(count) == _FAULT_COUNTS[name]:
            os.kill(os.getpid(), getattr(signal, f"SIG{(sig or 'KILL').upper()}"))


def _write_kind(path: Path) -> str:
    if path.name.endswith(".safetensors"):
        return "weights"
    if path.name.endswith(".state.pt"):
        return "state"
    return "latest" if path.name == "latest.json" else "other"


# Temporary names made by atomic_write: ".<final name>.<random>" (tempfile.mkstemp).
_TEMP_RE = re.compile(r"^\.(snapshot-\d+|best|latest)\.(safetensors|state\.pt|json)\.[A-Za-z0-9_]+$")


def atomic_write(path: Path, write_fn) -> None:
    """Call ``write_fn(tmp_path)`` then atomically rename the result to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = _write_kind(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        fault_point(f"{kind}.begin")
        write_fn(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        fault_point(f"{kind}.written")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fault_point(f"{kind}.renamed")


def clean_temp_files(ckpt_dir: Path) -> list[Path]:
    """Remove temporary files left by writes that were killed (only names ``atomic_write`` makes)."""
    removed = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            if _TEMP_RE.match(p.name) and p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def nonfinite_keys(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys of floating-point tensors holding a NaN or an infinity."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def check_finite_weights(modules: Mapping[str, nn.Module], path: str | os.PathLike) -> None:
    """Refuse weights with NaN or infinity (a diverged run), naming the tensors and what to do."""
    bad = []
    for name, module in modules.items():
        bad += [f"{name}.{k}" for k in nonfinite_keys(module.state_dict())]
    if bad:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds non-finite weights ({', '.join(bad[:3])}{'...' if len(bad) > 3 else ''}): "
            "the run had diverged when it was written, so its images or scores would be meaningless. Use an earlier "
            "snapshot from the same checkpoints/ folder (pass the snapshot-*.safetensors file)."
        )


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
    bad = nonfinite_keys(tensors)
    if bad:  # the invariant behind every guarantee on checkpoints: never write a diverged snapshot
        raise CheckpointError(f"refusing to write snapshot {name!r}: non-finite weights in {bad[:3]}")
    meta = {"format": str(FORMAT_VERSION), **{k: str(v) for k, v in metadata.items()}}
    weights_path = ckpt_dir / f"{name}.safetensors"
    atomic_write(weights_path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    atomic_write(ckpt_dir / f"{name}.state.pt", lambda tmp: torch.save(state, tmp))
    if named:
        return weights_path
    pointer = {"name": name, "images_seen": int(state["images_seen"]), "step": int(state["step"])}
    atomic_write(ckpt_dir / "latest.json", lambda tmp: Path(tmp).write_text(json.dumps(pointer)))
    if keep > 0:
        # The snapshot just written (finite, checked above) is always kept, even when snapshots of an
        # abandoned, later timeline (a resume from an earlier snapshot) sort after it.
        others = [p for p in sorted(ckpt_dir.glob("snapshot-*.safetensors")) if p != weights_path]
        for old in others[: max(len(others) - (keep - 1), 0)]:
            old.with_name(old.name.replace(".safetensors", ".state.pt")).unlink(missing_ok=True)
            old.unlink(missing_ok=True)
    return weights_path


def _state_path(weights_path: Path) -> Path:
    return weights_path.with_name(weights_path.name.replace(".safetensors", ".state.pt"))


def complete_snapshots(ckpt_dir: Path) -> list[Path]:
    """Numbered snapshots whose weights and state files both exist, oldest first."""
    return [p for p in sorted(ckpt_dir.glob("snapshot-*.safetensors")) if _state_path(p).exists()]


def _ckpt_dir(p: Path) -> Path:
    return p / "checkpoints" if (p / "checkpoints").is_dir() else p


def find_resumable(path: str | os.PathLike) -> Path | None:
    """The snapshot to resume from, or None when a run folder holds no complete snapshot yet (its
    first write was killed). A snapshot file named explicitly must exist."""
    p = Path(path).expanduser()
    if p.is_file():
        return find_checkpoint(p)
    if not p.is_dir():
        find_checkpoint(p)  # raises the "does not exist" message
    ckpt_dir = _ckpt_dir(p)
    pointer = ckpt_dir / "latest.json"
    if pointer.exists():
        try:
            candidate = ckpt_dir / f"{json.loads(pointer.read_text())['name']}.safetensors"
            if candidate.exists() and _state_path(candidate).exists():
                return candidate
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
    snaps = complete_snapshots(ckpt_dir)
    return snaps[-1] if snaps else None


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a snapshot's weights file, reading only its header."""
    weights_path = find_checkpoint(path)
    try:
        with open(weights_path, "rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            if header_len > 100_000_000:
                raise ValueError("header too large")
            return dict(json.loads(fh.read(header_len)).get("__metadata__", {}) or {})
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read checkpoint {str(weights_path)!r} ({err}); it is corrupt") from err


def newest_finite_snapshot(ckpt_dir: Path) -> Path | None:
    """The newest complete snapshot that loads and holds only finite weights (each is loaded to check)."""
    for p in reversed(complete_snapshots(ckpt_dir)):
        try:
            snap = load_snapshot(p)
        except CheckpointError:
            continue
        if not any(nonfinite_keys(sd) for sd in [*snap.weights.values(), *snap.ema.values()]):
            return p
    return None


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
    complete = [s for s in snaps if _state_path(s).exists()]  # a weights file whose state write was killed
    return (complete or snaps)[-1]


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
