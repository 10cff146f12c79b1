"""Model registry: ``@register_model(name)``, ``build_model(name, **overrides)``, ``list_models()``.

A registry entry is a builder function ``builder(**cfg) -> Bundle`` plus preset keyword
arguments; a tiny variant is the same builder registered again under another name with
smaller presets::

    @register_model("dcgan", family="baseline")
    def dcgan(*, resolution=64, G=None, D=None, ...) -> Bundle: ...

    register_model("dcgan_tiny", family="baseline", builder=dcgan, G={"base_channels": 8})
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .bundle import Bundle
from .errors import ConfigError

Builder = Callable[..., Bundle]


@dataclass
class ModelEntry:
    name: str
    family: str
    builder: Builder
    presets: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, family: str, builder: Builder | None = None, description: str = "", **presets: Any
) -> Callable[[Builder], Builder] | Builder:
    """Register ``builder`` under ``name``. Use as a decorator, or pass ``builder=`` directly."""

    def add(fn: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name].builder is not fn:
            raise ValueError(f"model name {name!r} is already registered")
        doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        _REGISTRY[name] = ModelEntry(name, family, fn, dict(presets), doc)
        return fn

    return add(builder) if builder is not None else add


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (importing registers every family)


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))}. "
            "Run `ganzoo list` to see them with their parameter counts."
        )
    return _REGISTRY[name]


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``over`` into a copy of ``base`` (dicts merge, other values replace)."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The full keyword arguments ``build_model`` passes to the builder (presets + overrides)."""
    entry = get_entry(name)
    cfg = deep_merge(entry.presets, overrides)
    params = inspect.signature(entry.builder).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(cfg) - set(params))
        if unknown:
            raise ConfigError(
                f"model {name!r} has no option(s) {unknown}. Allowed: {sorted(params)}."
            )
    return cfg


def build_model(name: str, **overrides: Any) -> Bundle:
    """Build the bundle of registered model ``name``; ``overrides`` update its presets."""
    entry = get_entry(name)
    cfg = resolve_config(name, **overrides)
    bundle = entry.builder(**cfg)
    bundle.family = bundle.family or entry.family
    bundle.info.setdefault("name", name)
    return bundle


def build_model_shapes(name: str, **overrides: Any) -> Bundle:
    """:func:`build_model` on PyTorch's meta device: every shape and parameter count, no memory and no
    initialisation time (``ganzoo list`` and the test collection size 200M-parameter presets with it).
    The weights hold no values, so the bundle can be inspected but not run."""
    with torch.device("meta"):
        return build_model(name, **overrides)


def construct(cls: type, kwargs: Mapping[str, Any] | None, *, where: str, **fixed: Any) -> Any:
    """Instantiate ``cls(**fixed, **kwargs)``; unknown keys in ``kwargs`` fail with the allowed ones."""
    kwargs = dict(kwargs or {})
    allowed = [p for p in accepted_kwargs(cls) if p not in fixed]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"{where} has no option(s) {unknown}. Allowed: {allowed}.")
    return cls(**fixed, **kwargs)


def accepted_kwargs(cls: type) -> list[str]:
    """Keyword arguments ``cls(...)`` accepts, following ``**kwargs`` passed up to base classes."""
    names: list[str] = []
    for klass in cls.__mro__ if isinstance(cls, type) else (cls,):
        init = klass.__init__ if isinstance(klass, type) else klass
        if init is object.__init__:
            break
        params = inspect.signature(init).parameters
        names += [p for p, v in params.items() if p != "self" and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)
                  and p not in names]
        if not any(v.kind is v.VAR_KEYWORD for v in params.values()):
            break
    return names
