"""The contract between the format converters and the run-folder writer.

A converter is a function ``convert(path) -> Converted`` registered with :func:`register_format`
together with a cheap, safe ``sniff(path)`` that says whether a file looks like its format. The
writer (:mod:`ganzoo.pretrained.run_folder`) knows no format: it builds the named preset, loads the
converted tensors strictly and writes an ordinary run folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

__all__ = ["require", "Converted", "FormatSpec", "register_format", "formats", "detect_format", "convert_file"]


@dataclass
class Converted:
    """One published network, in ganzoo's terms (see DESIGN.md, "Runs that were not trained here")."""

    model: str  # registered preset, e.g. "stylegan2"
    model_config: dict[str, Any]  # merged over conf/model/<model>.yaml: the numbers read from the file
    weights: dict[str, dict[str, torch.Tensor]]  # bundle module -> complete state dict
    ema: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stage1: Converted | None = None  # a VQ prior's tokenizer, written as its own run first
    cond_stage: Converted | None = None  # a code-conditioned prior's condition tokenizer, likewise
    source_info: dict[str, Any] = field(default_factory=dict)


Converter = Callable[[Path], Converted]


def require(cond: bool, msg: str) -> None:
    """Raise a :class:`CheckpointError` with ``msg`` (what the file holds, what was expected) unless ``cond``."""
    if not cond:
        raise CheckpointError(msg)


@dataclass
class FormatSpec:
    name: str
    description: str
    sniff: Callable[[Path], bool]
    convert: Converter


_FORMATS: dict[str, FormatSpec] = {}


def register_format(name: str, *, description: str, sniff: Callable[[Path], bool]) -> Callable[[Converter], Converter]:
    """Decorator: ``@register_format("nvlabs_pytorch", description=..., sniff=...)`` on ``convert(path)``."""

    def add(fn: Converter) -> Converter:
        _FORMATS[name] = FormatSpec(name, description, sniff, fn)
        return fn

    return add


def formats() -> dict[str, FormatSpec]:
    from . import load_format_modules

    load_format_modules()
    return dict(_FORMATS)


def detect_format(path: Path) -> FormatSpec:
    """The one format whose sniff accepts ``path``; a clear error when none (or several) does."""
    specs = formats()
    hits = []
    for spec in specs.values():
        try:
            if spec.sniff(path):
                hits.append(spec)
        except CheckpointError:
            raise
        except Exception:  # noqa: BLE001  (a sniff that cannot parse the file simply says no)
            continue
    if len(hits) == 1:
        return hits[0]
    listing = ", ".join(f"{s.name} ({s.description})" for s in specs.values())
    if not hits:
        raise CheckpointError(
            f"{str(path)!r} is not a checkpoint format ganzoo can import. Known formats: {listing}. If it is one of "
            "them, name it with --format; if the file was downloaded, check that the download finished."
        )
    raise CheckpointError(f"{str(path)!r} looks like several formats ({', '.join(h.name for h in hits)}): name one "
                          "with --format")


def convert_file(path: Path, fmt: str | None = None) -> tuple[FormatSpec, Converted]:
    specs = formats()
    if fmt is None:
        spec = detect_format(path)
    elif fmt in specs:
        spec = specs[fmt]
    else:
        raise CheckpointError(f"--format {fmt!r} is not known; choose one of {', '.join(sorted(specs))}")
    return spec, spec.convert(path)
