"""When a periodic action (sample grids, checkpoints, evaluation) is next due.

An action repeats every ``kimg`` thousand images, every ``minutes`` of training time, or both
(whichever comes first). Image counts are the same on every rank; training time is not, so under
several processes the time test is decided by rank 0 and broadcast, and all ranks act together;
that broadcast is a host sync, so it happens only every ``poll`` calls (the same calls on every rank),
and a time-based action then fires at most ``poll`` steps late.
"""
from __future__ import annotations

import math

import torch

from . import distributed as dist


def next_multiple(value: float, every: float) -> float:
    """The first multiple of ``every`` above ``value`` (``inf`` when ``every`` is 0: never)."""
    if every <= 0:
        return math.inf
    return (math.floor(value / every) + 1) * every


class Cadence:
    """Tracks the next image count and the next training second at which an action is due."""

    def __init__(self, *, kimg: float | None, minutes: float | None, images: int, seconds: float,
                 device: torch.device | str = "cpu", poll: int = 1) -> None:
        self.device = torch.device(device)
        self.poll = max(1, int(poll))
        self._calls = 0
        self.every_images = float(kimg or 0) * 1000
        self.every_seconds = float(minutes or 0) * 60
        self.advance(images, seconds)

    @property
    def active(self) -> bool:
        return self.every_images > 0 or self.every_seconds > 0

    def advance(self, images: int, seconds: float) -> None:
        """Schedule the next occurrence after the one that just happened at (images, seconds)."""
        self.next_images = next_multiple(images, self.every_images)
        self.next_seconds = next_multiple(seconds, self.every_seconds)

    def due(self, images: int, seconds: float) -> bool:
        if images >= self.next_images:
            return True
        if self.every_seconds <= 0:
            return False
        if dist.world_size() == 1:
            return seconds >= self.next_seconds
        self._calls += 1
        if self._calls % self.poll:
            return False
        # One decision for all ranks, or they would wait on each other.
        return dist.agree(seconds >= self.next_seconds, self.device)
