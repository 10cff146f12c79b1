"""Loss functions (pure) and per-family objectives."""

from . import functional

__all__ = ["functional"]
