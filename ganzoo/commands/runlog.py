"""A `ganzoo train` run folder's log (`train.log`: what the console showed) and the removal of a folder that a
command which failed before training created (issue 19.21)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HYDRA_FILES = {".hydra", "train.log", "cli.log"}


def _holds_only_hydra_files(run_dir: Path) -> bool:
    """True when ``run_dir`` holds nothing but what Hydra writes as a job starts (``.hydra/``, the job log)."""
    try:
        return all(p.name in HYDRA_FILES for p in run_dir.iterdir())
    except OSError:
        return False


def _discard_run_folder(run_dir: Path, result: dict[str, Any]) -> None:
    """Remove the folder a command that failed before training created: nothing in it but Hydra's files and what
    the failed start-up wrote (no snapshot). A folder holding a snapshot is never touched."""
    import shutil

    if any(run_dir.glob("checkpoints/snapshot-*")):
        return
    if result.get("tee") is not None:
        result.pop("tee").uninstall()
    import logging

    for handler in logging.getLogger().handlers:  # Hydra's job log handler holds the file open
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.resolve():
            handler.close()
    shutil.rmtree(run_dir, ignore_errors=True)


class _Log:
    """The run's log file, fed by :class:`_Tee`. Lines are held in memory until :meth:`start` (the command passed
    its checks), so a refused command leaves the file as it was; then they are appended and the file follows."""

    def __init__(self, path: Path) -> None:
        self.path, self.lines, self.file, self.closed = path, [], None, False

    def line(self, text: str) -> None:
        if self.closed:  # a stream handler that kept the tee (Hydra's logging) writes to the console only
            return
        if self.file is None:
            self.lines.append(text)
            return
        self.file.write(text + "\n")
        self.file.flush()

    def start(self) -> None:
        if self.file is not None or self.closed:
            return
        try:
            self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        except OSError:  # the folder was checked writable; a log that cannot be kept costs only the log
            return
        for text in self.lines:
            self.line(text)
        self.lines = []

    def close(self) -> None:
        self.closed, self.lines = True, []
        if self.file is not None:
            self.file.close()
            self.file = None


class _Tee:
    """stdout or stderr written to the console as before and, line by line, to a :class:`_Log`. Progress bars
    redraw a line with ``\\r``: the log gets each line's final state only."""

    def __init__(self, stream: Any, log: _Log) -> None:
        self._stream, self._log, self._pending = stream, log, ""

    @classmethod
    def install(cls, path: Path) -> Any:
        """Tee stdout and stderr into ``path``; returns an object with ``start()`` and ``uninstall()``."""
        import os

        if os.environ.get("RANK", "0") != "0":  # one log per run: rank 0's console
            return None
        log = _Log(path)
        tees = (cls(sys.stdout, log), cls(sys.stderr, log))
        sys.stdout, sys.stderr = tees

        class Installed:
            start = log.start

            def uninstall(self) -> None:
                for tee, name in zip(tees, ("stdout", "stderr")):
                    tee._flush_pending()
                    if getattr(sys, name) is tee:
                        setattr(sys, name, tee._stream)
                log.close()

        return Installed()

    def write(self, text: str) -> int:
        n = self._stream.write(text)
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._log.line(line.rsplit("\r", 1)[-1])
        return n

    def _flush_pending(self) -> None:
        text = self._pending.rsplit("\r", 1)[-1]
        if text.strip():
            self._log.line(text)
        self._pending = ""

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ... of the console stream
        return getattr(self._stream, name)
