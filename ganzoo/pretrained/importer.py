"""``ganzoo import SOURCE``: a published checkpoint (file, folder or URL) -> a ganzoo run folder."""

from __future__ import annotations

import argparse
import hashlib
import shlex
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .base import Converted, convert_file, formats
from .download import fetch, is_url
from .run_folder import finetune_overrides, sha256_of, write_run

__all__ = ["add_import_args", "run_import", "import_checkpoint", "import_in_memory", "source_sha256"]


def add_import_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="checkpoint file, a folder of weights (BigGAN-PyTorch), or an http(s) URL")
    parser.add_argument("--out", default=None, help="run folder to write (default runs/imported/<source name>)")
    parser.add_argument("--format", default=None, help="skip auto-detection: " + ", ".join(sorted(formats())))
    parser.add_argument("--sha256", default=None, help="expected SHA-256 of the file (checked before anything else)")
    parser.add_argument("--cache-dir", default=None, help="download cache (default ~/.cache/ganzoo/pretrained)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")


def source_sha256(path: Path) -> str:
    """SHA-256 of a file; of a folder, the SHA-256 of its files' ``name  sha256`` lines in name order."""
    if path.is_file():
        return sha256_of(path)
    lines = [f"{p.relative_to(path).as_posix()}  {sha256_of(p)}\n" for p in sorted(path.rglob("*")) if p.is_file()]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _local(source: str, *, sha256: str | None = None, cache_dir: str | None = None) -> tuple[Path, str | None, str]:
    """``(local path, url or None, SHA-256)`` of a file, folder or URL (downloaded into the cache)."""
    url = source if is_url(source) else None
    path = fetch(source, cache_dir=Path(cache_dir) if cache_dir else None, sha256=sha256) if url else \
        Path(source).expanduser()
    if not path.exists():
        raise CheckpointError(f"{str(path)!r} does not exist: pass a checkpoint file, a folder of weights or a URL")
    digest = source_sha256(path)
    if sha256 and not url and digest != sha256.lower():
        raise CheckpointError(f"{str(path)!r} has SHA-256 {digest}, not the expected {sha256}: it is another or a "
                              "damaged file")
    return path, url, digest


def import_in_memory(source: str, fmt: str | None = None) -> tuple[Converted, dict[str, Any]]:
    """Convert ``source`` without writing a run (``model.init`` of a published file); with its provenance."""
    path, url, digest = _local(source)
    spec, conv = convert_file(path, fmt)
    if conv.stage1 is not None or conv.cond_stage is not None:
        raise CheckpointError(f"{source!r} is a prior with its own tokenizer: import it first with `ganzoo import`, "
                              "then use the run folder as model.init")
    provenance = {"path": str(path.resolve()), "url": url, "sha256": digest, "format": spec.name,
                  "found": conv.found, "not_found": conv.not_found, "notes": conv.notes}
    return conv, provenance


def import_checkpoint(source: str, *, out: str | None = None, fmt: str | None = None, sha256: str | None = None,
                      cache_dir: str | None = None, force: bool = False) -> Path:
    """Import ``source`` and return the run folder written (see :mod:`ganzoo.pretrained`)."""
    path, url, digest = _local(source, sha256=sha256, cache_dir=cache_dir)
    spec, conv = convert_file(path, fmt)
    name = path.name.split(".")[0] if path.is_file() else path.name
    dest = Path(out) if out else Path("runs") / "imported" / name
    return write_run(conv, dest, spec=spec, source=path, sha256=digest, url=url, force=force)


def _needs_condition(model: dict[str, Any]) -> bool:
    """A code-conditioned prior samples from a condition image, except on coordinates (the frame's own map)."""
    cond = model.get("cond_stage")
    return bool(cond) and not (isinstance(cond, dict) and cond.get("kind") == "coord")


def run_import(args: argparse.Namespace) -> tuple[Path, list[str]]:
    """The CLI: import, then the lines to print (what was found, and the commands that use the run)."""
    run = import_checkpoint(args.source, out=args.out, fmt=args.format, sha256=args.sha256, cache_dir=args.cache_dir,
                            force=args.force)
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run / "config.yaml")
    info = OmegaConf.to_container(cfg["import"])
    model = OmegaConf.to_container(cfg.model, resolve=True)
    lines = [f"imported {info['source']} ({info['format']}, sha256 {info['sha256'][:16]}...) as model={model['name']}"]
    lines += [f"  found: {item}" for item in info["found"]]
    lines += [f"  not found: {item}" for item in info["not_found"]]
    lines += [f"  note: {item}" for item in info["notes"]]
    q = shlex.quote(str(run))
    arch = " ".join(shlex.quote(o) for o in finetune_overrides(model))
    lines += [
        f"run folder: {run}",
        f"  ganzoo generate {q} --mode condition --image <condition map>" if _needs_condition(model)
        else f"  ganzoo generate {q} --n 16",
        f"  ganzoo eval {q} --data root=<folder of real images>",
        f"  ganzoo train model={model['name']} {arch} model.init={q} data=folder data.root=<your images> augment=ada",
    ]
    return run, lines
