"""Provenance of a metric value: everything needed to tell whether two numbers are comparable.

FID-type numbers depend on the feature network, its weights, the resize, the sample counts and the
reference data (Parmar et al. 2022, "On Aliased Resizing and Surprising Subtleties in GAN Evaluation",
Sec. 3-4; Kynkäänniemi et al. 2023, "The Role of ImageNet Classes in Fréchet Inception Distance"), so each
value is stored with them, one JSON line per value.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["Provenance", "ganzoo_version", "write_metrics_jsonl"]


def ganzoo_version() -> str:
    """Installed distribution version, else the package attribute, else ``"unknown"``."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("ganzoo")
    except PackageNotFoundError:
        import ganzoo

        return str(getattr(ganzoo, "__version__", "unknown"))


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """Plain JSON types; non-finite floats become the strings "inf", "-inf", "nan" (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.detach().cpu().tolist())
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalar
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, (Path, torch.device)):
        return str(value)
    return str(value)


@dataclass
class Provenance:
    """One metric value and the conditions it was measured under."""

    metric: str
    value: float | dict[str, float]
    extractor: str | None = None
    weights_sha256: str | None = None
    resize: str | None = None
    num_real: int | None = None
    num_fake: int | None = None
    reference_dataset: str | None = None
    reference_split: str | None = None
    reference_resolution: int | None = None
    seed: int | None = None
    truncation_psi: float | None = None
    checkpoint_path: str | None = None
    checkpoint_sha256: str | None = None
    images_seen: int | None = None
    ganzoo_version: str = field(default_factory=ganzoo_version)
    torch_version: str = field(default_factory=lambda: torch.__version__)
    device: str | None = None
    timestamp: str = field(default_factory=_utc_now)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-serialisable dict of every field."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def write_metrics_jsonl(path: str | os.PathLike[str], records: Iterable[Provenance | Mapping[str, Any]]) -> None:
    """Append records as JSON lines to ``path`` (created with its folder if missing).

    All lines go out in one write followed by ``fsync``, so a crash leaves whole lines behind.
    """
    lines = []
    for rec in records:
        data = rec.to_dict() if isinstance(rec, Provenance) else _jsonable(rec)
        lines.append(json.dumps(data, sort_keys=False, allow_nan=False) + "\n")
    if not lines:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as f:
        f.write("".join(lines))
        f.flush()
        os.fsync(f.fileno())
