"""User-facing errors and the exit codes of ``ganzoo``.

The CLI prints an error's message without a traceback and exits with its ``exit_code``.
Exit codes (also in ``docs/reliability.md``):

- 0: done (the budget was spent)
- 2: a configuration, data or checkpoint problem (:class:`GanzooError`)
- 3: training diverged and was stopped (:class:`DivergedError`)
- 130: interrupted with Ctrl-C (a checkpoint was saved unless it was a second Ctrl-C)
- 138: stopped by SIGUSR1 (pre-emption warning) after saving a checkpoint
- 143: stopped by SIGTERM after saving a checkpoint
"""

EXIT_DONE = 0
EXIT_ERROR = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention
EXIT_SIGUSR1 = 138  # 128 + SIGUSR1
EXIT_SIGTERM = 143  # 128 + SIGTERM


class GanzooError(Exception):
    """Base class: the message says what went wrong and what to do."""

    exit_code = EXIT_ERROR


class ConfigError(GanzooError, ValueError):
    """A configuration that cannot work (unknown model, bad resolution, unknown key...)."""


class DataError(GanzooError):
    """Missing, empty or unreadable data."""


class CheckpointError(GanzooError):
    """A checkpoint that cannot be read or does not fit the model asked for."""


class DivergedError(GanzooError):
    """Training produced non-finite or exploding losses or weights; nothing after the last good
    checkpoint was written."""

    exit_code = EXIT_DIVERGED


class StoppedError(GanzooError):
    """A run stopped by a signal before its budget was spent (library callers such as ``ganzoo bench``)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
