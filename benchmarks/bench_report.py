"""Shared output of the benchmark scripts: print a Markdown block and append it to ``--out``."""
from __future__ import annotations

from pathlib import Path


def emit(text: str, out: str | None) -> None:
    """Print ``text``; when ``out`` is given, append it (and a blank line) to that file."""
    print(text)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(text + "\n")
