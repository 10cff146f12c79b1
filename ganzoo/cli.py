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

from .commands.listing import _list
from .commands.overrides import _check_overrides
from .commands.runlog import _discard_run_folder, _holds_only_hydra_files, _Tee
from .errors import GanzooError
from .paths import config_dir  # noqa: F401  (re-exported: ganzoo.cli.config_dir)

COMMANDS = ("train", "generate", "eval", "bench", "list", "reconstruct", "import", "project", "directions", "edit")
SUMMARIES = {
    "train": "train a model: ganzoo train model=dcgan data=emoji trainer.kimg=50 (Hydra)",
    "generate": "draw images from a run: grids, interpolations, style mixing, classes, attention",
    "eval": "score a run: FID, KID, precision/recall, IS, PPL, diversity; rFID, PSNR, SSIM (VQ)",
    "bench": "train several models with one budget, score them alike, write a ranked table",
    "list": "the registered models, their families and parameter counts",
    "reconstruct": "VQ tokenizers: inputs next to their reconstructions, codes, PSNR/SSIM/usage",
    "import": "turn a published checkpoint (StyleGAN, BigGAN, taming, ...) into a run folder",
    "project": "invert real images into a run's latent space (W, W+, Z) or codes (VQ tokenizers)",
    "directions": "discover edit directions without labels (SeFa, GANSpace PCA, class means)",
    "edit": "move a sampled or projected latent along a direction: a grid and a GIF",
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


def _set_sigint(handler: Any) -> Any:
    """Install ``handler`` for SIGINT and return the previous one (a no-op outside the main thread)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not in the main thread
        return None


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
        "  ganzoo generate PRIOR --mode complete --image a.png --keep top --n 4 --top-k 100   # VQ-GAN completion\n"
        "  ganzoo generate SR_PRIOR --mode condition --from-data test --n-images 4 --n 4     # super-resolution\n"
        "see docs/sampling.md",
    )
    add_generate_args(parser)
    args = parser.parse_args(argv)
    if args.mode == "arithmetic":
        from .editing import arithmetic  # noqa: F401  (registers the mode's runner with generate)
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
    parser.add_argument("--metrics", default=None,
                        help="comma list (default fid,kid,pr; with --task complete:KEEP fid,kid; with --task "
                        f"condition fid,kid,psnr,ssim). What a run can have depends on its kind: {kinds}. "
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
    task = parser.add_argument_group("conditional tasks of code priors (--num-fake = images of the split used)")
    task.add_argument("--task", default=None, metavar="TASK",
                      help="complete:KEEP (keep a region of each image, e.g. complete:top, complete:left:0.25, "
                      "complete:MASK.png, and sample the rest) or condition (a code-conditioned prior, the condition "
                      "derived from each image): outputs vs the split (fid, kid, pr) and vs their ground truth (psnr, "
                      "ssim, lpips)")
    task.add_argument("--temperature", type=float, default=None, help="--task: softmax temperature of the codes")
    task.add_argument("--top-k", dest="top_k", type=int, default=None, help="--task: draw from the K likeliest codes")
    task.add_argument("--top-p", dest="top_p", type=float, default=None, help="--task: nucleus mass P")
    args = parser.parse_args(argv)
    from .evaluation import EvalProtocol, evaluate_checkpoint
    from .sampling.generate import parse_opts

    if args.task is None and any(v is not None for v in (args.temperature, args.top_k, args.top_p)):
        from .errors import ConfigError

        raise ConfigError("--temperature, --top-k and --top-p set the sampling of a --task; add --task or drop them")
    if args.metrics is None:
        from .conditional_eval import DEFAULT_TASK_METRICS, parse_task

        args.metrics = ",".join(DEFAULT_TASK_METRICS[parse_task(args.task)[0]]) if args.task else "fid,kid,pr"
    protocol = EvalProtocol.from_config(
        {"metrics": args.metrics, "num_fake": args.num_fake, "num_real": args.num_real, "split": args.split,
         "seed": args.seed, "truncation_psi": args.psi, "weights": args.weights, "lpips_weights": args.lpips_weights,
         "allow_download": not args.no_download, "cache_dir": args.cache_dir, "batch_size": args.batch}
    )
    result, out = evaluate_checkpoint(args.checkpoint, protocol, ema=not args.raw, device=args.device,
                                      data_overrides=parse_opts(args.data), task=args.task,
                                      sample_opts={"temperature": args.temperature, "top_k": args.top_k,
                                                   "top_p": args.top_p})
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


# -- project, directions, edit (ganzoo/editing/) -------------------------------------------------------
def _project(argv: list[str]) -> int:
    from .commands.project import run

    return run(argv)


def _directions(argv: list[str]) -> int:
    from .commands.directions import run

    return run(argv)


def _edit(argv: list[str]) -> int:
    from .commands.edit import run

    return run(argv)


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
                "reconstruct": _reconstruct, "import": _import, "project": _project, "directions": _directions,
                "edit": _edit}
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
