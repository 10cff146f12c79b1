"""Checkpoints: weights as safetensors, training state as a ``weights_only`` torch file.

A snapshot named ``snapshot-<images_seen>`` is two files in ``<run>/checkpoints/``:

- ``<name>.safetensors``: every module's state dict under ``<module>.`` and the EMA copies
  under ``ema.<module>.``; its metadata holds the model name and the resolved config (YAML),
  so ``ganzoo generate`` needs nothing else.
- ``<name>.state.pt``: optimizers, objective state, RNG states, step and images seen, loaded
  with ``torch.load(weights_only=True)``: no code is ever unpickled.

- ``<name>.sha256.json``: the SHA-256 and size of both files, recorded when they were written
  (the weights' hash cannot live inside the safetensors file itself); ``latest.json`` repeats them.
  Every load verifies them (:func:`verify_snapshot`); a snapshot written before checksums (no
  sidecar) still loads, unverified.

``latest.json`` names the newest complete snapshot. Both files are written to temporary names, the
checksum sidecar is written, then both are renamed, so a crash never leaves a half-written
checkpoint behind and every complete snapshot has its checksums; ``latest.json`` is updated only
after both files are in place. A write interrupted by Ctrl-C removes what it had renamed.
Temporary files of a killed write are removed by :func:`clean_temp_files` on the next start. A
snapshot with a non-finite weight is never written.

Fault injection (tests, ``docs/reliability.md``): ``GANZOO_FAULT=<point>:<n>[:<signal>]`` (several
separated by commas) sends the process ``signal`` (default KILL; ``ENOSPC`` raises a disk-full error
instead) the ``n``-th time it reaches
``point``: ``<kind>.begin`` (temporary file created, empty), ``<kind>.written`` (temporary file
complete, not yet renamed) or ``<kind>.renamed`` for ``kind`` in weights, state, checksum, latest, and the
trainer's ``step`` (after each optimizer step) and ``startup``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
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
            if sig.upper() == "ENOSPC":  # a full disk at this point of the write
                raise OSError(errno.ENOSPC, "No space left on device (GANZOO_FAULT)")
            os.kill(os.getpid(), getattr(signal, f"SIG{(sig or 'KILL').upper()}"))


def _write_kind(path: Path) -> str:
    if path.name.endswith(".sha256.json"):
        return "checksum"
    if path.name.endswith(".safetensors"):
        return "weights"
    if path.name.endswith(".state.pt"):
        return "state"
    return "latest" if path.name == "latest.json" else "other"


# Temporary names made by atomic_write: ".<final name>.<random>" (tempfile.mkstemp).
_TEMP_RE = re.compile(r"^\.(snapshot-\d+|best|latest)\.(safetensors|state\.pt|sha256\.json|json)\.[A-Za-z0-9_]+$")


def _write_temp(path: Path, write_fn) -> str:
    """Write ``path``'s content to a temporary file beside it (``write_fn(tmp_path)``); returns its name."""
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
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def _commit(tmp: str, path: Path) -> None:
    """Atomically rename a temporary file made by :func:`_write_temp` to ``path``."""
    try:
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fault_point(f"{_write_kind(path)}.renamed")


def atomic_write(path: Path, write_fn) -> None:
    """Call ``write_fn(tmp_path)`` then atomically rename the result to ``path``."""
    _commit(_write_temp(path, write_fn), path)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def clean_temp_files(ckpt_dir: Path) -> list[Path]:
    """Remove temporary files left by writes that were killed (only names ``atomic_write`` makes), and
    checksum sidecars whose snapshot was never renamed into place."""
    removed = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            orphan_sums = (p.name.startswith("snapshot-") and p.name.endswith(SUMS_SUFFIX)
                           and not _weights_of_sums(p).exists())
            if (_TEMP_RE.match(p.name) or orphan_sums) and p.is_file():
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


SUMS_SUFFIX = ".sha256.json"
_NUMBERED_RE = re.compile(r"^snapshot-(\d+)\.(safetensors|state\.pt|sha256\.json)$")
_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """Print a warning once per process (a path is resolved several times by one command)."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)


def _state_path(weights_path: Path) -> Path:
    return weights_path.with_name(weights_path.name.replace(".safetensors", ".state.pt"))


def sums_path(weights_path: Path) -> Path:
    """The checksum sidecar of a snapshot: ``<name>.sha256.json`` beside ``<name>.safetensors``."""
    return weights_path.with_name(weights_path.name.replace(".safetensors", SUMS_SUFFIX))


def _weights_of_sums(path: Path) -> Path:
    return path.with_name(path.name[: -len(SUMS_SUFFIX)] + ".safetensors")


def _file_record(name: str, path: str | os.PathLike) -> dict[str, Any]:
    return {"file": name, "sha256": file_sha256(path), "bytes": os.path.getsize(path)}


def _pointer(name: str, images_seen: int, step: int, sums: Mapping[str, str] | None) -> str:
    pointer: dict[str, Any] = {"name": name, "images_seen": int(images_seen), "step": int(step)}
    if sums:
        pointer["sha256"] = dict(sums)
    return json.dumps(pointer)


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
    """Write one snapshot atomically, with its checksums, and prune older ones beyond ``keep`` (0 keeps all).

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
    state_path, sums_file = _state_path(weights_path), sums_path(weights_path)
    # Both files go to temporary names first; their checksums are recorded, then both are renamed. So every
    # complete snapshot (weights and state in place) written by this version has its sidecar.
    tmp_w = tmp_s = None
    sums_started = False
    try:
        tmp_w = _write_temp(weights_path, lambda tmp: save_file(tensors, tmp, metadata=meta))
        tmp_s = _write_temp(state_path, lambda tmp: torch.save(state, tmp))
        records = {"weights": _file_record(weights_path.name, tmp_w), "state": _file_record(state_path.name, tmp_s)}
        sums = {k: r["sha256"] for k, r in records.items()}
        sums_started = True
        atomic_write(sums_file, lambda tmp: Path(tmp).write_text(json.dumps({"format": 1, **records}, indent=1)))
        os.replace(tmp_w, weights_path)
        fault_point("weights.renamed")
        os.replace(tmp_s, state_path)
        fault_point("state.renamed")
    except BaseException:
        # A write stopped before the state file was renamed (a second Ctrl-C, a full disk) leaves nothing of
        # this snapshot behind: no temporary file, no weights file without its state (an orphan).
        if tmp_s is None or os.path.exists(tmp_s):
            weights_renamed = tmp_w is not None and not os.path.exists(tmp_w)
            for tmp in (tmp_w, tmp_s):
                if tmp is not None and os.path.exists(tmp):
                    os.unlink(tmp)
            if weights_renamed:
                weights_path.unlink(missing_ok=True)
            if sums_started:
                sums_file.unlink(missing_ok=True)
        raise
    if named:
        return weights_path
    pointer = _pointer(name, int(state["images_seen"]), int(state["step"]), sums)
    atomic_write(ckpt_dir / "latest.json", lambda tmp: Path(tmp).write_text(pointer))
    if keep > 0:
        # The snapshot just written (finite, checked above) is always kept, even when snapshots of an
        # abandoned, later timeline (a resume from an earlier snapshot) sort after it.
        others = [p for p in sorted(ckpt_dir.glob("snapshot-*.safetensors")) if p != weights_path]
        for old in others[: max(len(others) - (keep - 1), 0)]:
            _state_path(old).unlink(missing_ok=True)
            sums_path(old).unlink(missing_ok=True)
            old.unlink(missing_ok=True)
    return weights_path


def recorded_checksums(weights_path: Path) -> dict[str, str] | None:
    """``{"weights": sha256, "state": sha256}`` recorded when the snapshot was written (its sidecar, else
    ``latest.json`` when it names this snapshot); None for a snapshot written before checksums."""
    sidecar = sums_path(weights_path)
    if sidecar.exists():
        try:
            data = json.loads(sidecar.read_text())
            return {k: str(data[k]["sha256"]) for k in ("weights", "state")}
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"the checksum file {str(sidecar)!r} is unreadable ({err})") from err
    pointer = weights_path.parent / "latest.json"
    if pointer.exists():
        try:
            data = json.loads(pointer.read_text())
            if data.get("name") + ".safetensors" == weights_path.name and isinstance(data.get("sha256"), dict):
                return {k: str(data["sha256"][k]) for k in ("weights", "state")}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    return None


def checksum_problem(weights_path: Path, *, state: bool = True) -> str | None:
    """What does not match the checksums recorded for a snapshot (its weights, and its state file when
    ``state``), or None (it matches, or it was written before checksums)."""
    try:
        sums = recorded_checksums(weights_path)
    except CheckpointError as err:
        return str(err)
    if sums is None:
        return None
    files = [("weights", weights_path)] + ([("state", _state_path(weights_path))] if state else [])
    for kind, path in files:
        if path.exists() and file_sha256(path) != sums[kind]:
            return (f"{str(path)!r} does not match the SHA-256 recorded when it was written "
                    f"(in {sums_path(weights_path).name})")
    return None


def newest_verified_snapshot(ckpt_dir: Path, *, exclude: Path | None = None) -> Path | None:
    """The newest complete snapshot whose files match their recorded checksums (one written before
    checksums counts: it cannot be checked)."""
    for p in reversed(complete_snapshots(ckpt_dir)):
        if p != exclude and checksum_problem(p) is None:
            return p
    return None


def verify_snapshot(weights_path: Path, *, state: bool = True) -> None:
    """Raise :class:`CheckpointError` naming the newest snapshot that verifies when ``weights_path`` (and its
    state file when ``state``) no longer match the checksums recorded at write time."""
    problem = checksum_problem(weights_path, state=state)
    if problem is None:
        return
    good = newest_verified_snapshot(weights_path.parent, exclude=weights_path)
    hint = (f"The newest snapshot in that folder that verifies is {str(good)!r}: use it instead (pass the file: "
            f"`ganzoo generate {good}`, `ganzoo train trainer.resume={good}`)." if good is not None
            else "No other snapshot in that folder verifies; retrain, or restore the file from a copy.")
    what = "the file was changed or damaged after it was written (disk error, an incomplete copy, an edit)"
    if problem.startswith(repr(str(weights_path))):  # say what the damaged weights file now holds
        try:
            bad = nonfinite_keys(load_file(str(weights_path)))
            what += f"; it now holds non-finite weights ({', '.join(bad[:3])})" if bad else ""
        except Exception as err:  # noqa: BLE001  (any parse failure: the file is unreadable)
            problem = f"cannot read checkpoint {str(weights_path)!r} ({err}): it is corrupt, and {problem}"
    raise CheckpointError(f"{problem}: {what}, so it is not used. {hint}")


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


def set_aside_later_snapshots(start: Path, *, images_seen: int, step: int) -> tuple[Path, list[str]] | None:
    """Resuming from ``start`` abandons the snapshots written after it: move them (numbered snapshots past
    ``images_seen``, complete or not, and a ``best`` snapshot reached after it) into
    ``checkpoints/abandoned-<UTC time>/``, point ``latest.json`` at ``start``, and return the folder and the
    names moved (None when there was nothing later). Nothing is deleted."""
    ckpt_dir = start.parent
    later = []
    for p in sorted(ckpt_dir.iterdir()):
        m = _NUMBERED_RE.match(p.name)
        if m and p.is_file() and int(m.group(1)) > images_seen:
            later.append(p)
    try:
        best = json.loads((ckpt_dir / "best.json").read_text())
        if int(best.get("images_seen", -1)) > images_seen and start.name != "best.safetensors":
            later += [p for p in (ckpt_dir / "best.json", ckpt_dir / "best.safetensors", ckpt_dir / "best.state.pt",
                                  ckpt_dir / f"best{SUMS_SUFFIX}") if p.exists()]
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    if not later:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    dest, i = ckpt_dir / f"abandoned-{stamp}", 1
    while dest.exists():
        dest, i = ckpt_dir / f"abandoned-{stamp}-{i}", i + 1
    dest.mkdir()
    for p in later:
        os.replace(p, dest / p.name)
    if _NUMBERED_RE.match(start.name):
        try:
            sums = recorded_checksums(start)
        except CheckpointError:
            sums = None
        pointer = _pointer(start.name[: -len(".safetensors")], images_seen, step, sums)
        atomic_write(ckpt_dir / "latest.json", lambda tmp: Path(tmp).write_text(pointer))
    names = sorted({p.name.split(".")[0] for p in later})
    return dest, names


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
        verify_snapshot(weights_path, state=False)  # a damaged file with a checksum: name one that verifies
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
    """Resolve a run folder, a ``checkpoints/`` folder or a snapshot file to the weights file.

    For a folder: the snapshot ``latest.json`` names, else the newest complete one (weights and state). A
    weights file without its state (a write that was interrupted) is never taken silently: it is skipped
    with a warning, and used only when passed explicitly."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(
            f"checkpoint path {str(p)!r} does not exist. Pass a run folder (containing checkpoints/), "
            "a checkpoints/ folder, or a snapshot-*.safetensors file."
        )
    if p.is_file():
        if p.name.endswith(".state.pt"):
            p = p.with_name(p.name.replace(".state.pt", ".safetensors"))
        elif p.name.endswith(SUMS_SUFFIX):
            p = _weights_of_sums(p)
        return p
    ckpt_dir = _ckpt_dir(p)
    pointer = ckpt_dir / "latest.json"
    if pointer.exists():
        try:
            name = json.loads(pointer.read_text())["name"]
            candidate = ckpt_dir / f"{name}.safetensors"
            if candidate.exists():
                return candidate
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
    snaps = sorted(ckpt_dir.glob("snapshot-*.safetensors"))
    if not snaps:
        raise CheckpointError(
            f"no checkpoint found in {str(p)!r}: expected checkpoints/snapshot-*.safetensors. "
            "Has this run saved one yet (see trainer.checkpoint_every_kimg)?"
        )
    complete = [s for s in snaps if _state_path(s).exists()]
    orphans = [s for s in snaps if s not in complete and (not complete or s.name > complete[-1].name)]
    if not complete:
        raise CheckpointError(
            f"no complete checkpoint in {str(p)!r}: {orphans[-1].name} has no training-state file beside it (its "
            "write was interrupted, e.g. by a second Ctrl-C or a kill), so it is not used by default. To use its "
            f"weights anyway, pass the file itself: {orphans[-1]}"
        )
    if orphans:
        _warn_once(f"{', '.join(o.name for o in orphans)} in {str(ckpt_dir)!r} has no training-state file (its write "
                   f"was interrupted) and is not used; using {complete[-1].name}, the newest complete snapshot.")
    return complete[-1]


def load_snapshot(path: str | os.PathLike, *, with_state: bool = True) -> Snapshot:
    """Load a snapshot without executing any code from the files, after checking the files against the
    checksums recorded when they were written (:func:`verify_snapshot`)."""
    weights_path = find_checkpoint(path)
    if weights_path.exists():
        verify_snapshot(weights_path, state=with_state)
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
    state_path = _state_path(weights_path)
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
