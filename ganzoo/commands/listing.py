"""`ganzoo list`: registered models with their sizes, from the yamls read with OmegaConf and built once on the
meta device; the table is cached by a hash of the code, configs and torch version (issue 19.17)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..paths import config_dir


# -- list ----------------------------------------------------------------------------------------
def _model_yaml(name: str) -> Any:
    """``conf/model/<name>.yaml`` with its ``defaults:`` (other model configs, then ``_self_``) merged, as Hydra
    composes it for ``model=<name>``, but with OmegaConf alone: ``ganzoo list`` reads 33 of them."""
    from omegaconf import OmegaConf

    node = OmegaConf.load(config_dir() / "model" / f"{name}.yaml")
    defaults = list(node.pop("defaults", None) or [])
    parts = [_model_yaml(d) for d in defaults if isinstance(d, str) and d != "_self_"]
    if defaults and defaults[-1] != "_self_":  # _self_ first: the file's own keys lose to its defaults
        return OmegaConf.merge(node, *parts)
    return OmegaConf.merge(*parts, node)


def _default_train_config(name: str) -> Any:
    """What ``compose_train_config(["model=<name>"])`` gives for the keys a model is built from (model, data,
    trainer), read with OmegaConf; tests hold it equal to the Hydra composition for every model config."""
    from omegaconf import OmegaConf

    def group(folder: str, option: str) -> Any:
        node = OmegaConf.load(config_dir() / folder / f"{option}.yaml")
        node.pop("defaults", None)
        return node

    return OmegaConf.create({"model": _model_yaml(name), "data": group("data", "fashion"),
                             "trainer": group("trainer", "default")})


def _list_cache_key() -> str:
    """A hash of everything a parameter count depends on: ganzoo's code, its configs and the torch version."""
    import hashlib
    from importlib import metadata

    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    try:
        digest.update(metadata.version("torch").encode())
    except metadata.PackageNotFoundError:
        pass
    for path in sorted([*root.rglob("*.py"), *config_dir().rglob("*.yaml")]):
        digest.update(str(path.relative_to(path.parents[1])).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def _list_cache_file() -> Path:
    import os

    root = os.environ.get("GANZOO_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "ganzoo")
    return Path(root).expanduser() / "list" / f"{_list_cache_key()}.json"


def _list_rows() -> list[list[str]]:
    """One row per registered model: name, family, preset size, train size (conf/model), description. Models are
    built on the meta device (shapes only), each configuration once."""
    import json

    import torch

    from ..bundle import count_params
    from ..registry import get_entry, list_models
    from ..runtime import build_bundle, model_kwargs, resolve_geometry

    sizes: dict[str, str] = {}

    def size(model_cfg: Any, auto: bool = False) -> str:
        name, kwargs = model_kwargs(model_cfg)
        key = json.dumps([name, kwargs, auto], sort_keys=True, default=str)
        if key not in sizes:
            with torch.device("meta"):  # sizes only: no memory, no init time
                bundle = build_bundle(model_cfg)
            counts = ", ".join(f"{k} {count_params(m) / 1e6:.2f}M" for k, m in bundle.modules.items())
            geometry = f"auto={bundle.resolution}px/{bundle.channels}ch" if auto else f"{bundle.resolution}px"
            sizes[key] = f"{geometry} {counts}"
        return sizes[key]

    rows = []
    for name in list_models():
        entry = get_entry(name)
        preset = size({"name": name})
        train = ""
        if (config_dir() / "model" / f"{name}.yaml").exists():
            cfg = _default_train_config(name)
            auto = resolve_geometry(cfg.model, cfg.data) is not None  # `auto` sized at the default data
            train = size(cfg.model, auto)
            train = "same" if train == preset else train
        rows.append([name, entry.family, preset, train or "-", entry.description])
    return rows


def _list(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ganzoo list",
        description="Registered models, their family and sizes: 'preset' is the registry entry (build_model(name)), "
        "'train' is conf/model/<name>.yaml, what `ganzoo train model=<name>` runs, when it differs. A train "
        "size marked 'auto' follows the data; it is shown at the default data (data=fashion). The table is cached "
        "under $GANZOO_CACHE/list (default ~/.cache/ganzoo/list), keyed by a hash of ganzoo's code and configs.",
    )
    parser.add_argument("--no-cache", action="store_true", help="recount every model, ignoring the cache")
    args = parser.parse_args(argv)
    import json
    import os

    cache = _list_cache_file()
    rows = None
    if not args.no_cache and cache.is_file():
        try:
            rows = json.loads(cache.read_text())
        except (OSError, ValueError):
            rows = None
    if rows is None:
        rows = _list_rows()
        try:  # a cache that cannot be written only costs the next call its speed
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(rows))
            tmp.replace(cache)
        except OSError:
            pass
    header = ("model", "family", "preset", "train (conf/model)")
    widths = [max(len(r[i]) for r in rows + [list(header)]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  description")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    return 0
