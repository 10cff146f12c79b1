"""`ganzoo train` overrides checked before Hydra runs: misspelt groups and keys get the closest valid names
(issue 19.15), and nothing is written for a command that cannot run."""

from __future__ import annotations

from typing import Any

from ..paths import config_dir


def _check_overrides(argv: list[str]) -> None:
    """Compose the config the way ``ganzoo train`` will, before Hydra starts, and turn Hydra's composition errors
    (a misspelt config name or key) into a :class:`~ganzoo.errors.ConfigError` naming the closest valid names and,
    for a key, where it really lives (``model.lr`` -> ``model.optim.G.lr``). Hydra's own flags (``-m``,
    ``--config-dir``, ``--cfg``, ...) and ``hydra.*`` keys are left to Hydra."""
    if any(a.startswith("-") for a in argv):
        return
    overrides = [a for a in argv if not a.lstrip("+~").startswith(("hydra.", "hydra/")) and ("=" in a or a[:1] == "~")]
    if not overrides:
        return
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    from ..errors import ConfigError
    from ..training.config import compose_train_config

    try:
        compose_train_config(overrides)
        return
    except MissingConfigException as err:
        raise ConfigError(_missing_config_message(err)) from None
    except OverrideParseException as err:
        raise ConfigError(f"cannot read the override: {str(err).splitlines()[0]}. Overrides look like key=value, "
                          "e.g. trainer.kimg=50 or model=sagan; quote lists for the shell: 'trainer.eval.metrics=[fid,"
                          "kid]'") from None
    except (HydraException, OmegaConfBaseException) as err:
        key = _bad_key(err)
        if key is None:
            raise ConfigError(f"the config cannot be composed: {str(err).splitlines()[0]}") from None
        good = [o for o in overrides if _override_key(o) != key]
        raise ConfigError(_unknown_key_message(key, good)) from None


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def _bad_key(err: Exception) -> str | None:
    """The dotted key Hydra could not set or delete (``Could not override 'model.lr'``), else None."""
    import re

    text = str(err)
    for pattern in (r"Could not override '([^']+)'", r"Could not delete from config\. '([^']+)'",
                    r"full_key: (\S+)"):
        m = re.search(pattern, text) or (re.search(pattern, str(err.__cause__)) if err.__cause__ else None)
        if m:
            return m.group(1)
    return None


def _config_options(group: str) -> list[str]:
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _missing_config_message(err: Exception) -> str:
    import difflib
    import re

    m = re.search(r"Could not find '([^']+)/([^'/]+)'", str(err))
    if not m:
        return f"the config cannot be composed: {str(err).splitlines()[0]}"
    group, name = m.group(1), m.group(2)
    options = _config_options(group)
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    hint = f" Closest: {', '.join(close)}." if close else ""
    more = " (`ganzoo list` shows the models with their sizes)" if group == "model" else ""
    return f"{group}={name}: there is no {group} config {name!r}.{hint} Choose from: {', '.join(options)}{more}."


def _leaves(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys of every value of a config (containers too), e.g. ``model.optim.G.lr``."""
    from omegaconf import DictConfig

    out = []
    if isinstance(node, DictConfig):
        for k in node.keys():
            key = f"{prefix}{k}"
            out.append(key)
            try:
                child = node._get_node(k)
            except Exception:  # noqa: BLE001 - a node that cannot be read has no sub-keys to offer
                continue
            out += _leaves(child, key + ".")
    return out


def _unknown_key_message(key: str, good: list[str]) -> str:
    """``trainer.kimgg``: did you mean ``trainer.kimg``; ``model.lr``: the key is ``model.optim.G.lr`` (and D)."""
    import difflib

    from ..training.config import compose_train_config

    try:
        cfg = compose_train_config(good)
    except Exception:  # noqa: BLE001 - another mistake: suggest against the default config
        cfg = compose_train_config([])
    keys = _leaves(cfg)
    leaf, top = key.split(".")[-1], key.split(".")[0]
    parent = key.rsplit(".", 1)[0] if "." in key else None
    groups = [g for g in ("model", "data", "trainer", "logger", "augment", "experiment") if _config_options(g)]
    if parent is None:
        tops = [k for k in keys if "." not in k]
        close = difflib.get_close_matches(key, sorted(set(groups) | set(tops)), n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        return (f"{key}: there is no top-level key {key!r} in this config.{hint} Config groups: {', '.join(groups)} "
                f"(e.g. model=sagan); other top-level keys: {', '.join(t for t in tops if t not in groups)}.")
    siblings = [k[len(parent) + 1:] for k in keys if k.startswith(parent + ".") and "." not in k[len(parent) + 1:]]
    # The same name deeper in the same section (model.lr -> model.optim.G.lr), then close spellings beside it.
    same_leaf = [k for k in keys if k.split(".")[-1] == leaf and k.split(".")[0] == top and k != key]
    close = [f"{parent}.{c}" for c in difflib.get_close_matches(leaf, siblings, n=3, cutoff=0.6)]
    suggestions = list(dict.fromkeys(same_leaf + close))[:4]
    msg = f"{key}: {parent} has no key {leaf!r} in this config."
    if suggestions:
        msg += f" Did you mean {' or '.join(suggestions)}?"
    if siblings:
        msg += f" {parent} has: {', '.join(siblings)}."
    return msg
