"""Where ganzoo's own files live. Library code asks here, never the command line module."""

from __future__ import annotations

from pathlib import Path

from .errors import GanzooError


def config_dir() -> Path:
    """The ``conf/`` folder: inside the installed package, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "train.yaml").exists():
            return candidate
    raise GanzooError(f"ganzoo's conf/ folder was not found next to {here}; reinstall ganzoo")
