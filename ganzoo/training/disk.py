"""Where a run writes: a start-up check that the folder takes files, and a message for a failed write.

A read-only or missing-permission checkpoint folder would otherwise fail only at the first save, after
all the training since the start; a full disk fails inside safetensors or ``torch.save`` with a bare
``OSError``. Both become a :class:`CheckpointError` that says what happened, that earlier snapshots are
intact (every write is atomic), and what to do.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from safetensors import SafetensorError

from ..errors import CheckpointError

__all__ = ["check_writable", "write_failed", "WRITE_ERRORS"]

WRITE_ERRORS = (OSError, SafetensorError)


def check_writable(folder: Path, *, what: str = "checkpoints") -> None:
    """Create ``folder`` if needed and write (then remove) a file in it; a clear error when that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise CheckpointError(
            f"cannot write {what} to {str(folder)!r} ({err.strerror or err}), so nothing was trained. Make the folder "
            "writable, free space, or choose another run folder (hydra.run.dir=...)."
        ) from err


def write_failed(err: BaseException, folder: Path) -> CheckpointError:
    """The error to raise when a snapshot write in ``folder`` failed with ``err``."""
    text = str(err)
    full = getattr(err, "errno", None) == errno.ENOSPC or "No space left" in text
    cause = "the disk is full" if full else f"the write failed ({text})"
    kept = sorted(p.name for p in folder.glob("snapshot-*.safetensors")
                  if p.with_name(p.name.replace(".safetensors", ".state.pt")).exists()) if folder.is_dir() else []
    intact = f"the snapshots already written are intact ({', '.join(kept[-2:])})" if kept else \
        "no snapshot was completed yet"
    return CheckpointError(
        f"could not save a checkpoint in {str(folder)!r}: {cause}. No half-written file was kept and {intact}. "
        f"{'Free some space, then' if full else 'Fix the cause, then'} continue with "
        f"`ganzoo train trainer.resume={folder.parent}`."
    )
