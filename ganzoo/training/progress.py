"""The training progress bar, whose end follows whichever budget binds first: the images (``trainer.kimg`` or
``trainer.steps``) or the time (``trainer.minutes``, issue 19.16), and the RNG seeding of a run (issue 19.23)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed torch, Python's ``random`` and NumPy's global RNG from ``seed``, so that identical runs start (and save)
    identical RNG states whatever the process drew before."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


class BudgetBar:
    """A tqdm bar over images whose total is the images the time budget will allow when that is the smaller, so
    the ETA counts down the minutes left rather than the images of ``trainer.kimg``."""

    def __init__(self, bar: Any, *, total_images: int, limit_s: float | None, images: int, seconds: float):
        self.bar, self.total_images, self.limit_s = bar, total_images, limit_s
        self.start_images, self.start_s = images, seconds  # this session's start: the rate is measured from here
        self.time_bound = False

    def update(self, images: int, seconds: float) -> None:
        """``images`` seen now, after ``seconds`` of training (the run's, earlier sessions included)."""
        if self.limit_s is not None and seconds > self.start_s and images > self.start_images:
            rate = (images - self.start_images) / (seconds - self.start_s)
            projected = images + int(rate * max(self.limit_s - seconds, 0.0))  # the images seen when time is up
            if projected < self.total_images:  # the total is set before the bar draws itself
                self.time_bound = True
                self.bar.total = max(projected, images)
            elif self.time_bound:  # faster than it looked: the image budget binds after all
                self.time_bound = False
                self.bar.total = self.total_images
        self.bar.update(min(images, self.total_images) - self.bar.n)

    def finish(self, images: int, *, time_up: bool) -> None:
        """At the end of the run: a spent time budget fills the bar (ETA 0), whatever kimg would have allowed."""
        if time_up and images < self.total_images and not self.bar.disable:  # (a disabled bar has no desc)
            self.bar.total = max(images, self.bar.n)
            self.bar.set_description_str(f"{self.bar.desc} (time budget {self.limit_s / 60:g} min)", refresh=False)
            self.bar.refresh()
