"""User-facing errors. The CLI prints their message without a traceback and exits with 2."""


class GanzooError(Exception):
    """Base class: the message says what went wrong and what to do."""


class ConfigError(GanzooError, ValueError):
    """A configuration that cannot work (unknown model, bad resolution, unknown key...)."""


class DataError(GanzooError):
    """Missing, empty or unreadable data."""


class CheckpointError(GanzooError):
    """A checkpoint that cannot be read or does not fit the model asked for."""
