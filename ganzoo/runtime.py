"""Turning configs into live objects: the device and the model bundle.

Shared by training, sampling and evaluation, so that none of them imports another to get these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from .bundle import Bundle
from .errors import ConfigError
from .registry import build_model


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"trainer.device={name!r} is not a device; use auto, cpu, cuda, cuda:1 or mps") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device=cuda but no CUDA GPU is visible; use trainer.device=auto or cpu")
    return device


def model_kwargs(model_cfg: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split the ``model:`` config group into the registry name and builder keyword arguments."""
    cfg = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    if "name" not in cfg:
        raise ConfigError("the model config has no 'name:' (the registry key); pick one with model=<name>")
    name = cfg.pop("name")
    return name, cfg


def build_bundle(model_cfg: Mapping[str, Any], *, num_classes: int = 0) -> Bundle:
    """Build the bundle described by a ``model:`` config; ``c_dim: auto`` takes the data's classes."""
    name, kwargs = model_kwargs(model_cfg)
    if kwargs.get("c_dim") == "auto":
        kwargs["c_dim"] = num_classes
    return build_model(name, **kwargs)
