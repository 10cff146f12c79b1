"""Clean stops: Ctrl-C, SIGTERM and SIGUSR1 finish the current step, save a checkpoint and stop.

SIGTERM is what schedulers (SLURM, Kubernetes) send before they kill a job; SIGUSR1 is SLURM's
pre-emption warning (``sbatch --signal=USR1@60``). A second Ctrl-C aborts at once (the snapshot
being written, if any, is discarded: writes are atomic); a second SIGTERM/SIGUSR1 changes nothing.
Under several processes the ranks agree (:attr:`StopRequest.code`, :meth:`StopRequest.adopt`): a signal that
reaches any of them stops all of them after the same step.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from ..errors import EXIT_INTERRUPTED, EXIT_SIGTERM, EXIT_SIGUSR1

_EXIT_CODES = {"SIGINT": EXIT_INTERRUPTED, "SIGTERM": EXIT_SIGTERM, "SIGUSR1": EXIT_SIGUSR1}
_WHAT = {"SIGINT": "Ctrl-C", "SIGTERM": "SIGTERM", "SIGUSR1": "SIGUSR1"}
_ORDER = ("SIGUSR1", "SIGTERM", "SIGINT")  # codes 1, 2, 3: ranks that received different signals take the last


def exit_code_for(reason: str | None) -> int:
    """The exit code of a run stopped by ``reason`` (a signal name), 0 for a finished run."""
    return _EXIT_CODES.get(reason or "", 0)


def describe(reason: str) -> str:
    return _WHAT.get(reason, reason)


class StopRequest:
    """Context manager: while active, stop signals set :attr:`reason` instead of killing the process."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    @property
    def code(self) -> int:
        """The stop as a number for the ranks' agreement (0: none)."""
        return _ORDER.index(self.reason) + 1 if self.reason in _ORDER else 0

    def adopt(self, code: int) -> None:
        """Stop as the ranks agreed (:attr:`code`); a rank that received no signal takes the agreed one."""
        if code and self.reason is None:
            self.reason = _ORDER[code - 1]
            print(f"\n{describe(self.reason)} reached another process: stopping after this step...", file=sys.stderr,
                  flush=True)

    def __enter__(self) -> StopRequest:
        for name in ("SIGINT", "SIGTERM", "SIGUSR1"):
            sig = getattr(signal, name, None)
            if sig is None:  # SIGUSR1 does not exist on Windows
                continue
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread: leave the signals alone
                break
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.reason is not None:
            if name == "SIGINT":
                raise KeyboardInterrupt
            return
        self.reason = name
        hint = " (Ctrl-C again to abort without saving)" if name == "SIGINT" else ""
        print(f"\n{describe(name)} received: stopping after this step and saving a checkpoint{hint}...",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
