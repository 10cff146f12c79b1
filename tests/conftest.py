"""Shared fixtures: composing the real Hydra config and running tiny trainings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def compose(overrides: list[str] | None = None):
    """The config ``ganzoo train <overrides>`` would run with (hydra section left out)."""
    from ganzoo.training.config import compose_train_config

    return compose_train_config(overrides)


SMOKE = ["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu"]


@pytest.fixture
def smoke_cfg():
    """A function returning a tiny-config composition with extra overrides."""

    def make(*extra: str):
        return compose(SMOKE + list(extra))

    return make


@pytest.fixture
def train_run(tmp_path: Path):
    """Train with the tiny config into ``tmp_path/<name>`` and return (trainer, summary)."""
    from ganzoo.training.trainer import Trainer

    def run(*extra: str, name: str = "run"):
        cfg = compose(SMOKE + list(extra))
        trainer = Trainer(cfg, tmp_path / name)
        return trainer, trainer.fit()

    return run


@pytest.fixture(scope="session")
def stage1(tmp_path_factory) -> Path:
    """A vqgan_tiny tokenizer after 3 steps, shared by the code-prior tests (its codes matter, not its quality).
    Read-only: a test that changes a tokenizer copies it first."""
    from ganzoo.training.trainer import Trainer

    run = tmp_path_factory.mktemp("stage1") / "vq"
    Trainer(compose(["model=vqgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=4",
                     "trainer.batch_size=8", "trainer.steps=3"]), run).fit()
    return run
