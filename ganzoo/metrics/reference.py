"""Cache of reference (real-data) feature statistics.

Computing Inception features of 50k real images costs minutes on a GPU and hours on a CPU, and every
run evaluating against the same data needs the same numbers. Entries are keyed by a SHA-256 of a
canonical JSON of everything that changes the result: dataset, split, resolution, extractor name and
weights hash, number of images, and a fingerprint of the data itself (so a changed folder is never
served stale statistics). Files are ``.npz`` written atomically (temporary file + ``os.replace``) and read
with ``allow_pickle=False``.

Location: ``cache_dir`` argument, else ``$GANZOO_CACHE/refstats``, else ``~/.cache/ganzoo/refstats``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from ganzoo.errors import ConfigError, DataError
from ganzoo.metrics.fid import feature_stats

__all__ = [
    "REQUIRED_KEYS",
    "data_fingerprint",
    "load_reference_features",
    "reference_key",
    "reference_stats",
    "refstats_dir",
]

REQUIRED_KEYS = (
    "dataset",
    "split",
    "resolution",
    "extractor",
    "weights_sha256",
    "num_images",
    "data_fingerprint",
)
ENV_CACHE = "GANZOO_CACHE"


def refstats_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where reference statistics live (see the module docstring for the order)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get(ENV_CACHE)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "ganzoo"
    return base / "refstats"


def _canonical_json(fields: dict) -> str:
    try:
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"reference key fields must be plain JSON values (str, int, float, bool): {exc}") from exc


def reference_key(key_fields: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of ``key_fields``; checks the required fields are present."""
    missing = [k for k in REQUIRED_KEYS if k not in key_fields]
    if missing:
        raise ConfigError(
            f"reference statistics key is missing {missing}; required fields: {list(REQUIRED_KEYS)} "
            "(data_fingerprint: e.g. data_fingerprint() of the file list or of the first/last images)"
        )
    return hashlib.sha256(_canonical_json(key_fields).encode("ascii")).hexdigest()


def data_fingerprint(items: Iterable[object]) -> str:
    """SHA-256 over a sequence of file names, strings, bytes, arrays or tensors (order matters).

    Typical use: the sorted relative file list with sizes, or the first and last few images.
    """
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, torch.Tensor):
            item = item.detach().cpu().contiguous().numpy()
        if isinstance(item, np.ndarray):
            h.update(f"{item.dtype.str}{item.shape}".encode())
            h.update(np.ascontiguousarray(item).tobytes())
        elif isinstance(item, bytes):
            h.update(item)
        else:
            h.update(str(item).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def _slug(key_fields: dict) -> str:
    raw = f"{key_fields['dataset']}-{key_fields['split']}-{key_fields['resolution']}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)[:80]


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_npz(path: Path, names: tuple[str, ...], key_json: str) -> dict[str, np.ndarray] | None:
    """Arrays of a cache file, or None (with a warning) when it is unreadable or belongs to another key."""
    try:
        with np.load(path, allow_pickle=False) as data:
            stored_key = str(data["key_json"])
            arrays = {n: data[n] for n in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        warnings.warn(
            f"reference cache file {path} is unreadable ({type(exc).__name__}: {exc}); recomputing", stacklevel=3
        )
        return None
    if stored_key != key_json:
        warnings.warn(f"reference cache file {path} holds a different key; recomputing", stacklevel=3)
        return None
    return arrays


def load_reference_features(path: str | os.PathLike[str]) -> np.ndarray:
    """Load the raw features ``[N, D]`` stored by :func:`reference_stats` with ``keep_features=True``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["features"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read reference features {path} ({exc}); delete the file to recompute it") from exc


def reference_stats(
    key_fields: dict,
    compute_fn: Callable[[], np.ndarray],
    *,
    keep_features: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, Path | None]:
    """Reference ``(mu, sigma, features_path)``, from the cache or by calling ``compute_fn()``.

    Args:
        key_fields: must contain :data:`REQUIRED_KEYS`; extra JSON-valued fields (e.g. ``mirror``) are
            part of the key too.
        compute_fn: returns the real features ``[N, D]``; ``N`` must equal ``key_fields["num_images"]``.
        keep_features: also store and return the path of the raw features (needed by KID and
            precision/recall); load them with :func:`load_reference_features`.
        cache_dir: overrides the cache location.

    Unreadable or mismatching cache files are recomputed (with a warning) and overwritten atomically.
    """
    digest = reference_key(key_fields)
    key_json = _canonical_json(key_fields)
    root = refstats_dir(cache_dir)
    stem = f"{_slug(key_fields)}-{digest}"
    stats_path = root / f"{stem}.npz"
    feats_path = root / f"{stem}-features.npz"

    if stats_path.is_file() and (not keep_features or feats_path.is_file()):
        stats = _read_npz(stats_path, ("mu", "sigma"), key_json)
        # Only the key of the (large) features file is read here; load_reference_features reads the data.
        feats_ok = not keep_features or _read_npz(feats_path, (), key_json) is not None
        if stats is not None and feats_ok:
            return stats["mu"], stats["sigma"], (feats_path if keep_features else None)

    features = np.asarray(compute_fn())
    if features.ndim != 2:
        raise DataError(f"compute_fn must return features shaped [N, D], got {features.shape}")
    if features.shape[0] != key_fields["num_images"]:
        raise DataError(
            f"the key says num_images={key_fields['num_images']} but compute_fn returned {features.shape[0]} "
            "feature rows; set num_images to the number of images actually used"
        )
    mu, sigma = feature_stats(features)
    key_arr = np.asarray(key_json)
    if keep_features:
        _atomic_savez(feats_path, features=features.astype(np.float32), key_json=key_arr)
    _atomic_savez(stats_path, mu=mu, sigma=sigma, key_json=key_arr)
    return mu, sigma, (feats_path if keep_features else None)
