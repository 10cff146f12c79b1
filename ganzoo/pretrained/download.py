"""Downloading a published checkpoint once, into a cache, with its SHA-256 kept beside it.

``ganzoo import https://.../ffhq.pkl`` downloads to ``<cache>/<url hash>/<file name>`` (atomically:
a ``.part`` file renamed when complete), records the file's SHA-256 in ``<file>.sha256`` and checks it
again on every later use, so a damaged cache is noticed. ``--sha256`` checks a hash the user knows.
Offline, the message says exactly where to put a copy fetched elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import CheckpointError
from .run_folder import sha256_of

__all__ = ["is_url", "cache_path", "fetch"]


def is_url(text: str) -> bool:
    return urllib.parse.urlparse(str(text)).scheme in ("http", "https", "file")


def default_cache() -> Path:
    root = os.environ.get("GANZOO_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "ganzoo")
    return Path(root).expanduser() / "pretrained"


def cache_path(url: str, cache_dir: Path | None = None) -> Path:
    """Where ``url`` is (or will be) cached: one folder per URL, the file keeps its published name."""
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return (cache_dir or default_cache()) / key / name


def _check(path: Path, expected: str | None) -> str:
    digest = sha256_of(path)
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.exists() and sidecar.read_text().strip() != digest:
        raise CheckpointError(f"the cached {str(path)!r} no longer has the SHA-256 recorded when it was downloaded: it "
                              "was damaged or replaced. Delete it (and its .sha256) to download it again.")
    if expected and digest != expected.lower():
        raise CheckpointError(f"{str(path)!r} has SHA-256 {digest}, not the expected {expected}: the download is "
                              "damaged or is another file. Delete it to download it again.")
    return digest


def fetch(url: str, *, cache_dir: Path | None = None, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """The cached copy of ``url``, downloading it first when absent; returns the local path."""
    dest = cache_path(url, cache_dir)
    if dest.exists():
        _check(dest, sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as fh:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(1 << 20):
                fh.write(block)
                done += len(block)
        if total and done != total:
            raise CheckpointError(f"the download of {url} stopped at {done} of {total} bytes; run the command again")
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        part.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise CheckpointError(
            f"cannot download {url} ({reason}). Without internet access, fetch the file elsewhere and either pass "
            f"its local path to `ganzoo import`, or put it at {str(dest)!r} (the cache this URL maps to)."
        ) from err
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    digest = _check(part, sha256)  # a wrong file never enters the cache
    os.replace(part, dest)
    dest.with_name(dest.name + ".sha256").write_text(digest + "\n")
    return dest
