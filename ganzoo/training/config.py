"""Composing the training config from Python (tests, ``ganzoo bench``), as ``ganzoo train`` would."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig


def compose_train_config(overrides: Sequence[str] | None = None) -> DictConfig:
    """The config ``ganzoo train <overrides>`` runs with (without the ``hydra:`` section)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ..paths import config_dir

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides or []))
