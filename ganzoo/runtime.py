"""Turning configs into live objects: the device and the model bundle.

Shared by training, sampling and evaluation, so that none of them imports another to get these.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
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
    """Split the ``model:`` config group into the registry name and builder keyword arguments.

    ``batch_size`` is not a builder argument: it is the preset's training batch, which
    ``trainer.batch_size`` follows unless it is given (``conf/trainer/default.yaml``). Neither is
    ``init``: the weights a run starts from (``ganzoo.training.init_weights``).
    """
    cfg = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    if "name" not in cfg:
        raise ConfigError("the model config has no 'name:' (the registry key); pick one with model=<name>")
    name = cfg.pop("name")
    cfg.pop("batch_size", None)
    cfg.pop("init", None)
    return name, cfg


AUTO_MIN_RESOLUTION = 8  # the smallest size every family builds (a 4x4 base and one up-sampling block)
AUTO_MAX_RESOLUTION = 256  # photographs give at most this with `auto`; more is a deliberate model.resolution=N


def auto_resolution(native: int) -> int:
    """The smallest power of two >= ``native`` (28 -> 32, 32 -> 32, 178 -> 256), kept within
    [``AUTO_MIN_RESOLUTION``, ``AUTO_MAX_RESOLUTION``]."""
    side = 1 << max(int(native) - 1, 0).bit_length()
    return min(max(side, AUTO_MIN_RESOLUTION), AUTO_MAX_RESOLUTION)


def resolve_geometry(model_cfg: MutableMapping[str, Any], data_cfg: Mapping[str, Any]) -> str | None:
    """Replace ``resolution: auto`` and ``img_channels: auto`` in ``model_cfg`` (in place) by numbers
    that fit the data: :func:`auto_resolution` of its native square side, and its channels.

    Numbers, not ``auto``, are what the run saves, so checkpoints, ``generate``, ``eval`` and resume
    rebuild the same model whatever data they see. Returns a one-line note of the choice, or None
    when neither key is ``auto``. Peeking at the data is cheap (``ganzoo.data.native_geometry``).
    """
    want_res, want_ch = model_cfg.get("resolution") == "auto", model_cfg.get("img_channels") == "auto"
    if not (want_res or want_ch):
        return None
    from .data import native_geometry  # here: sampling and evaluation import this module without data

    native, channels = native_geometry(data_cfg)
    chosen = []
    if want_res:
        model_cfg["resolution"] = auto_resolution(native)
        capped = f" (capped; set model.resolution={native} or so for more)" if native > AUTO_MAX_RESOLUTION else ""
        chosen.append(f"model.resolution={model_cfg['resolution']}{capped}")
    if want_ch:
        model_cfg["img_channels"] = channels
        chosen.append(f"model.img_channels={channels}")
    kind = "grey" if channels == 1 else "colour"
    return f"data {data_cfg.get('name')} is {native}x{native} {kind}; auto geometry: {', '.join(chosen)}"


def build_bundle(model_cfg: Mapping[str, Any], *, num_classes: int = 0) -> Bundle:
    """Build the bundle described by a ``model:`` config; ``c_dim: auto`` takes the data's classes.

    ``resolution`` / ``img_channels`` must be numbers here: :func:`resolve_geometry` turns ``auto``
    into the data's numbers first (the trainer does; saved run configs already hold numbers).
    """
    name, kwargs = model_kwargs(model_cfg)
    if kwargs.get("c_dim") == "auto":
        kwargs["c_dim"] = num_classes
    unresolved = [k for k in ("resolution", "img_channels") if kwargs.get(k) == "auto"]
    if unresolved:
        raise ConfigError(
            f"model.{unresolved[0]}=auto follows the data, which is not known here; resolve it first with "
            "ganzoo.runtime.resolve_geometry(model_cfg, data_cfg), or give numbers (e.g. model.resolution=32 "
            "model.img_channels=1)"
        )
    return build_model(name, **kwargs)
