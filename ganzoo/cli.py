"""The ``ganzoo`` command: train, generate, eval, bench, list, reconstruct, import (``ganzoo --help``).

``train`` is a Hydra application (``ganzoo train model=stylegan2 data=emoji trainer.kimg=50``,
``-m`` for multirun, ``--config-dir`` for your own configs). The other commands take plain
options; ``ganzoo <command> --help`` lists them.

Exit codes: 0 done; 2 a configuration, data or checkpoint error (the message says what to do);
3 training diverged (stopped; nothing diverged was written); 130 Ctrl-C; 138 SIGUSR1; 143 SIGTERM
(after one Ctrl-C, SIGUSR1 or SIGTERM ``train`` saves a checkpoint first); 141 the output pipe was closed
(``ganzoo --help | head -3``). See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from .errors import GanzooError
from .paths import config_dir  # noqa: F401  (re-exported: ganzoo.cli.config_dir)

COMMANDS = ("train", "generate", "eval", "bench", "list", "reconstruct", "import")
SUMMARIES = {
    "train": "train a model: ganzoo train model=dcgan data=emoji trainer.kimg=50 (Hydra)",
    "generate": "draw images from a run: grids, interpolations, style mixing, classes, attention",
    "eval": "score a run: FID, KID, precision/recall, IS, PPL, diversity; rFID, PSNR, SSIM (VQ)",
    "bench": "train several models with one budget, score them alike, write a ranked table",
    "list": "the registered models, their families and parameter counts",
    "reconstruct": "VQ tokenizers: inputs next to their reconstructions, codes, PSNR/SSIM/usage",
    "import": "turn a published checkpoint (StyleGAN, BigGAN, taming, ...) into a run folder",
}


def _usage() -> str:
    from . import __version__

    width = max(map(len, COMMANDS))
    lines = [f"usage: ganzoo <command> [options]      (ganzoo {__version__})", "",
             "A PyTorch model zoo of GAN architectures behind one registry and one trainer.",
             "`ganzoo <command> --help` lists a command's options.", "", "commands:"]
    lines += [f"  {c.ljust(width)}  {SUMMARIES[c]}" for c in COMMANDS]
    lines += ["", "options:", f"  {'-h, --help'.ljust(width + 4)}  this message",
              f"  {'--version'.ljust(width + 4)}  print ganzoo's version", "",
              "exit codes: 0 done; 2 a configuration, data or checkpoint error (the message says what to do);",
              "3 training diverged; 130 Ctrl-C; 138 SIGUSR1; 143 SIGTERM (train saves a checkpoint first);",
              "141 the output pipe was closed. See docs/reliability.md."]
    return "\n".join(lines)


# -- train ---------------------------------------------------------------------------------------
def _resume_in_place(argv: list[str]) -> list[str]:
    """``trainer.resume=RUN`` without ``hydra.run.dir``: continue in RUN's own folder, not a new one, without
    Hydra's ``.hydra/`` files (they keep the run's first command; ``commands.log`` has them all). A resume
    path with nothing to resume is refused here, before Hydra writes anything."""
    if any(a.startswith(("-m", "--multirun")) for a in argv):
        return argv
    values = [a.split("=", 1)[1] for a in argv if a.startswith("trainer.resume=")]
    if not values or values[-1] in ("", "null"):
        return argv
    from .training.resume import check_resume_path, run_folder

    check_resume_path(values[-1])
    if any(a.startswith("hydra.run.dir=") for a in argv):
        return argv
    run = run_folder(values[-1])
    if run is None:
        return argv
    text = str(run.resolve())
    quoted = text if all(c.isalnum() or c in "/._-+:" for c in text) else "'" + text.replace("'", "\\'") + "'"
    keep_hydra = [] if any(a.startswith("hydra.output_subdir=") for a in argv) else ["hydra.output_subdir=null"]
    return [*argv, f"hydra.run.dir={quoted}", *keep_hydra]


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

    from .errors import ConfigError
    from .training.config import compose_train_config

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

    from .training.config import compose_train_config

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


def _train(argv: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from .errors import EXIT_INTERRUPTED

    result: dict[str, Any] = {}

    @hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
    def app(cfg: DictConfig) -> None:
        from .training.resume import merge_for_resume, record_command, resume_hint
        from .training.signals import describe, exit_code_for
        from .training.trainer import Trainer
        from .training.validate import RESUMING

        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        # Hydra has just made the folder and written .hydra/ and the job log: if the command fails before it
        # trains, a folder that held nothing else before is removed again (a failed command writes nothing).
        fresh = _holds_only_hydra_files(run_dir)
        if result.get("tee") is not None:  # the previous job of a multirun
            result.pop("tee").uninstall()
        result["log"] = run_dir / "train.log"
        result["tee"] = _Tee.install(result["log"])  # the console, also into <run>/train.log
        trainer = None
        try:
            # A resumed run takes its own config; the command line changes only the keys it names.
            cfg = merge_for_resume(cfg, list(hydra_cfg.overrides.task))
            resuming = RESUMING.set(str(cfg.trainer.resume) if cfg.trainer.get("resume") else None)
            try:
                trainer = Trainer(cfg, run_dir)
            finally:
                RESUMING.reset(resuming)
            if trainer.is_main:  # every check passed: the run's history of commands (appended, never rewritten)
                record_command(run_dir, argv)
            if result.get("tee") is not None:  # the console so far, and from now on, into train.log
                result["tee"].start()
            summary = trainer.fit()
        except GanzooError as err:
            print(f"error: {err}", file=sys.stderr)
            result["rc"] = err.exit_code
            if fresh and (trainer is None or trainer.step == 0):
                _discard_run_folder(run_dir, result)
            return
        except KeyboardInterrupt:
            if trainer is None:
                print("interrupted during start-up: nothing was trained or written.", file=sys.stderr)
                if fresh:
                    _discard_run_folder(run_dir, result)
            else:
                print(f"aborted at step {trainer.step}: a checkpoint being written was discarded, earlier ones are "
                      f"intact. {resume_hint(run_dir)}", file=sys.stderr)
            result["rc"] = EXIT_INTERRUPTED
            return
        if summary["stopped"]:
            print(f"stopped by {describe(summary['stopped'])} at {summary['images_seen']} of {summary['total_images']} "
                  f"images ({summary['step']} steps); checkpoint {summary['checkpoint']}. Continue with: "
                  f"ganzoo train trainer.resume={run_dir}")
            result["rc"] = exit_code_for(summary["stopped"])
            return
        minutes = summary.get("time_limit_minutes")
        if minutes is not None:  # the time budget bound before the images did: say so, not a plain "done"
            print(f"stopped at the {minutes:g}-minute budget (trainer.minutes={minutes:g}): {summary['images_seen']} "
                  f"of {summary['total_images']} images, {summary['step']} steps; run folder {run_dir}. Raise "
                  f"trainer.minutes (or set it to null) with trainer.resume={run_dir} to train on")
        else:
            print(f"done: {summary['images_seen']} images, {summary['step']} steps; run folder {run_dir}")
        result["rc"] = 0

    _check_overrides(argv)  # a misspelt name or key: exit 2 with the closest valid ones, not Hydra's raw output
    # Hydra's job log is <run>/<job name>.log: naming the job `train` makes it the train.log the console is teed into.
    job_name = [] if any(a.startswith("hydra.job.name=") for a in argv) else ["hydra.job.name=train"]
    sys.argv = [sys.argv[0]] + _resume_in_place(argv) + job_name
    # Ctrl-C before training starts must raise KeyboardInterrupt whatever handler the host process
    # (a notebook, a test runner, a library) left installed; the trainer installs its own while it runs.
    previous = _set_sigint(signal.default_int_handler)
    try:
        app()
    except GanzooError as err:  # raised while Hydra composes (e.g. unknown model in a multirun job)
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted during start-up: nothing was trained or written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        _set_sigint(previous)
        if result.get("tee") is not None:
            result.pop("tee").uninstall()
        log = result.get("log")
        if log is not None and log.is_file() and log.stat().st_size == 0:  # Hydra's empty job log of a refusal
            log.unlink()
    return int(result.get("rc", 0))


HYDRA_FILES = {".hydra", "train.log", "cli.log"}


def _holds_only_hydra_files(run_dir: Path) -> bool:
    """True when ``run_dir`` holds nothing but what Hydra writes as a job starts (``.hydra/``, the job log)."""
    try:
        return all(p.name in HYDRA_FILES for p in run_dir.iterdir())
    except OSError:
        return False


def _discard_run_folder(run_dir: Path, result: dict[str, Any]) -> None:
    """Remove the folder a command that failed before training created: nothing in it but Hydra's files and what
    the failed start-up wrote (no snapshot). A folder holding a snapshot is never touched."""
    import shutil

    if any(run_dir.glob("checkpoints/snapshot-*")):
        return
    if result.get("tee") is not None:
        result.pop("tee").uninstall()
    import logging

    for handler in logging.getLogger().handlers:  # Hydra's job log handler holds the file open
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.resolve():
            handler.close()
    shutil.rmtree(run_dir, ignore_errors=True)


class _Log:
    """The run's log file, fed by :class:`_Tee`. Lines are held in memory until :meth:`start` (the command passed
    its checks), so a refused command leaves the file as it was; then they are appended and the file follows."""

    def __init__(self, path: Path) -> None:
        self.path, self.lines, self.file, self.closed = path, [], None, False

    def line(self, text: str) -> None:
        if self.closed:  # a stream handler that kept the tee (Hydra's logging) writes to the console only
            return
        if self.file is None:
            self.lines.append(text)
            return
        self.file.write(text + "\n")
        self.file.flush()

    def start(self) -> None:
        if self.file is not None or self.closed:
            return
        try:
            self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        except OSError:  # the folder was checked writable; a log that cannot be kept costs only the log
            return
        for text in self.lines:
            self.line(text)
        self.lines = []

    def close(self) -> None:
        self.closed, self.lines = True, []
        if self.file is not None:
            self.file.close()
            self.file = None


class _Tee:
    """stdout or stderr written to the console as before and, line by line, to a :class:`_Log`. Progress bars
    redraw a line with ``\\r``: the log gets each line's final state only."""

    def __init__(self, stream: Any, log: _Log) -> None:
        self._stream, self._log, self._pending = stream, log, ""

    @classmethod
    def install(cls, path: Path) -> Any:
        """Tee stdout and stderr into ``path``; returns an object with ``start()`` and ``uninstall()``."""
        import os

        if os.environ.get("RANK", "0") != "0":  # one log per run: rank 0's console
            return None
        log = _Log(path)
        tees = (cls(sys.stdout, log), cls(sys.stderr, log))
        sys.stdout, sys.stderr = tees

        class Installed:
            start = log.start

            def uninstall(self) -> None:
                for tee, name in zip(tees, ("stdout", "stderr")):
                    tee._flush_pending()
                    if getattr(sys, name) is tee:
                        setattr(sys, name, tee._stream)
                log.close()

        return Installed()

    def write(self, text: str) -> int:
        n = self._stream.write(text)
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._log.line(line.rsplit("\r", 1)[-1])
        return n

    def _flush_pending(self) -> None:
        text = self._pending.rsplit("\r", 1)[-1]
        if text.strip():
            self._log.line(text)
        self._pending = ""

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ... of the console stream
        return getattr(self._stream, name)


def _set_sigint(handler: Any) -> Any:
    """Install ``handler`` for SIGINT and return the previous one (a no-op outside the main thread)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not in the main thread
        return None


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

    from .bundle import count_params
    from .registry import get_entry, list_models
    from .runtime import build_bundle, model_kwargs, resolve_geometry

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


# -- generate ------------------------------------------------------------------------------------
def _generate(argv: list[str]) -> int:
    from .sampling.generate import add_generate_args, run_generate

    parser = argparse.ArgumentParser(
        prog="ganzoo generate",
        description="Draw images from a trained checkpoint (EMA weights by default): seeded grids, truncation,\n"
        "latent interpolations, style-mixing grids, per-class rows, truncation sweeps, class interpolations and\n"
        "self-attention maps. Outputs go to <run>/generated/ unless --out is given.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  ganzoo generate RUN --n 64 --seed 0                      # 8x8 grid from seed 0\n"
        "  ganzoo generate RUN --seeds 0-15 --psi 0.7               # one image per seed, truncated (style GANs)\n"
        "  ganzoo generate RUN --mode interp --seeds 1,2,3 --steps 24 --gif --pingpong\n"
        "  ganzoo generate RUN --mode interp --seeds 1,2 --space z  # slerp in Z (any GAN)\n"
        "  ganzoo generate RUN --mode mix --rows 1,2,3 --cols 4,5,6 --crossover middle\n"
        "  ganzoo generate RUN --n 16 --class 3 --truncation 0.5    # one class, BigGAN truncation in Z\n"
        "  ganzoo generate RUN --mode classes --n 8                 # one row per class, same z per column\n"
        "  ganzoo generate RUN --mode truncation-sweep --thresholds 2,1,0.5,0.04 --seeds 0-3\n"
        "  ganzoo generate RUN --mode class-interp --classes 3,5 --steps 8 --n 4\n"
        "  ganzoo generate RUN --mode attention --seeds 0-3 --query 8,8 --query 20,12   # SAGAN Fig. 1\n"
        "see docs/sampling.md",
    )
    add_generate_args(parser)
    args = parser.parse_args(argv)
    try:
        paths = run_generate(args)
    except OSError as err:  # a folder where a file goes, a read-only or full disk: a message, not a traceback
        raise GanzooError(f"cannot write {err.filename or args.out or 'the images'}: {err.strerror or err}. Pass "
                          "--out with a writable file (or an existing folder) and try again") from None
    for path in paths:
        print(path)
    return 0


# -- eval ----------------------------------------------------------------------------------------
def _eval(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ganzoo eval",
        description="Score a checkpoint (EMA weights by default) against the data it was trained on. Results, "
        "with their provenance, are appended to <run>/eval.jsonl.",
    )
    parser.add_argument("checkpoint", help="run folder, checkpoints/ folder or snapshot-*.safetensors")
    from .evaluation import KIND_NAMES, METRICS_BY_KIND

    kinds = "; ".join(f"{KIND_NAMES[k]}: {', '.join(m)}" for k, m in METRICS_BY_KIND.items())
    parser.add_argument("--metrics", default="fid,kid,pr",
                        help=f"comma list (default fid,kid,pr). What a run can have depends on its kind: {kinds}. "
                        "ppl needs a style generator (stylegan, stylegan2); a tokenizer's fid, kid, pr compare "
                        "reconstructions with their inputs (rfid = fid), and psnr, ssim, codebook come with any of its "
                        "metrics. A metric the run's kind cannot have is refused")
    parser.add_argument("--num-fake", type=int, default=10_000, help="generated images (default 10000)")
    parser.add_argument("--num-real", type=int, default=None, help="real images (default: the whole split)")
    parser.add_argument("--split", default="train", help="reference split of the training data (default train)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated latents")
    parser.add_argument("--psi", type=float, default=None, help="truncation psi (style-based models)")
    parser.add_argument("--weights", default=None, help="Inception weights file (TorchScript)")
    parser.add_argument("--lpips-weights", default=None, help="torchvision VGG16/AlexNet weights for ppl/diversity")
    parser.add_argument("--no-download", action="store_true", help="never download feature weights")
    parser.add_argument("--cache-dir", default=None, help="reference-statistics cache (default ~/.cache/ganzoo)")
    parser.add_argument("--batch", type=int, default=64, help="images per forward pass (default 64)")
    parser.add_argument("--raw", action="store_true", help="score the trained weights, not the EMA copy")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:1, "
                        "mps")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                        help="change the run's data config, e.g. --data root=~/ffhq for an imported run (repeatable)")
    args = parser.parse_args(argv)
    from .evaluation import EvalProtocol, evaluate_checkpoint
    from .sampling.generate import parse_opts

    protocol = EvalProtocol.from_config(
        {"metrics": args.metrics, "num_fake": args.num_fake, "num_real": args.num_real, "split": args.split,
         "seed": args.seed, "truncation_psi": args.psi, "weights": args.weights, "lpips_weights": args.lpips_weights,
         "allow_download": not args.no_download, "cache_dir": args.cache_dir, "batch_size": args.batch}
    )
    result, out = evaluate_checkpoint(args.checkpoint, protocol, ema=not args.raw, device=args.device,
                                      data_overrides=parse_opts(args.data))
    for k, v in result.values.items():
        print(f"{k:>10}: {v:.6g}")
    for k, why in result.skipped.items():
        print(f"{k:>10}: skipped ({why})")
    print(f"written to {out}")
    return 0


# -- bench ---------------------------------------------------------------------------------------
def _bench(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ganzoo bench",
        description="Train several models on one dataset with one budget and seeds, score them with one protocol, "
        "and write table.md, table.csv, plots and sample grids. Interrupted runs are resumed.",
        epilog="examples: ganzoo bench cpu | ganzoo bench cpu models=[dcgan,stylegan2] seeds=[0,1] kimg=5 | "
        "ganzoo bench gpu_cifar10",
    )
    parser.add_argument("preset", nargs="?", default="cpu", help="conf/bench/<preset>.yaml or a yaml path")
    parser.add_argument("overrides", nargs="*", help="key=value (models=[a,b], seeds=[0,1], kimg=10, eval.num_fake=..)")
    parser.add_argument("--out", default=None, help="output folder (default: the preset's out)")
    args = parser.parse_args(argv)
    from .benchmark import load_preset, run_bench

    cfg = load_preset(args.preset, args.overrides)
    command = "ganzoo bench " + " ".join([args.preset, *args.overrides] + (["--out", args.out] if args.out else []))
    table = run_bench(cfg, command=command, out=args.out)
    print(table.read_text())
    print(f"written to {table.parent}")
    return 0


# -- reconstruct ---------------------------------------------------------------------------------
def _reconstruct(argv: list[str]) -> int:
    from .sampling.reconstruct import add_reconstruct_args, run_reconstruct

    parser = argparse.ArgumentParser(
        prog="ganzoo reconstruct",
        description="Reconstruct images with a trained VQ autoencoder (vqgan, vit_vqgan): an input/reconstruction "
        "grid, the codes as an image, and PSNR, SSIM, codebook usage, perplexity (LPIPS when its weights exist) "
        "printed and written to metrics.json. Outputs go to <run>/reconstruct/ unless --out is given.",
        epilog="examples: ganzoo reconstruct RUN --n 16 | ganzoo reconstruct RUN --images photos/ --histogram",
    )
    add_reconstruct_args(parser)
    args = parser.parse_args(argv)
    paths, record = run_reconstruct(args)
    for key in ("psnr", "ssim", "lpips", "usage", "num_used", "perplexity"):
        if key in record:
            value = record[key]
            print(f"{key:>10}: {value:.6g}" if isinstance(value, float) else f"{key:>10}: {value}")
    if "lpips_skipped" in record:
        print(f"{'lpips':>10}: skipped ({record['lpips_skipped']})")
    for path in paths:
        print(path)
    return 0


# -- import --------------------------------------------------------------------------------------
def _import(argv: list[str]) -> int:
    from .pretrained.importer import add_import_args, run_import

    parser = argparse.ArgumentParser(
        prog="ganzoo import",
        description="Turn a published checkpoint (NVlabs StyleGAN2-ADA / TF StyleGAN, StyleGAN2, ProGAN pickles, "
        "BigGAN-PyTorch weights, StudioGAN, taming-transformers and enhancing-transformers checkpoints) into a "
        "ganzoo run folder, read without running any code from the file. See docs/pretrained.md.",
        epilog="examples: ganzoo import ffhq.pkl | ganzoo import https://host/path/ffhq.pkl --out runs/ffhq | "
        "ganzoo import weights/138k/ --format biggan_pytorch",
    )
    add_import_args(parser)
    _, lines = run_import(parser.parse_args(argv))
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            code = _main(argv)
        except SystemExit:  # argparse's --help and usage errors: their output is flushed here too
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # inside the try: a closed pipe (`ganzoo --help | head -3`) is caught here
        return code
    except BrokenPipeError:
        # The reader went away: stop quietly. Point stdout at /dev/null so the interpreter's final flush is silent.
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141  # 128 + SIGPIPE, what the shell reports for a command stopped by a closed pipe


# The config keys behind the options of generate, eval and reconstruct: their messages name the option the user
# typed (`--device cuda`), not the key of `ganzoo train` it sets (`trainer.device=cuda`).
FLAG_OF_KEY = {
    "generate": {"trainer.device": "--device"},
    "eval": {"trainer.device": "--device", "data.split": "--split"},
    "reconstruct": {"trainer.device": "--device", "data.split": "--split"},
}


def _in_flags(message: str, command: str) -> str:
    """``message`` with each config key that ``command`` sets from an option named by that option:
    ``trainer.device='nope'`` -> ``--device 'nope'``, ``set data.split=train`` -> ``pass --split train``."""
    import re

    for key, flag in FLAG_OF_KEY.get(command, {}).items():
        message = re.sub(rf"\b(?:set|use) {re.escape(key)}=", f"pass {flag} ", message)
        message = re.sub(rf"\b{re.escape(key)}=", f"{flag} ", message)
        message = re.sub(rf"\b{re.escape(key)}\b", flag, message)
    return message


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 1
    if argv[0] in ("--version", "-V"):
        from . import __version__

        print(f"ganzoo {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    handlers = {"train": _train, "generate": _generate, "eval": _eval, "bench": _bench, "list": _list,
                "reconstruct": _reconstruct, "import": _import}
    if command not in handlers:
        import difflib

        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"error: unknown command {command!r}.{hint} Commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return handlers[command](rest)
    except GanzooError as err:
        print(f"error: {_in_flags(str(err), command)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:  # Ctrl-C while a command starts (imports, data) or runs: no traceback
        print("interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
