"""``ganzoo bench``: train several models on one dataset with one budget and seeds, score them all
with one protocol, and write ``table.md``, ``table.csv``, plots and a sample grid per model.

A preset is a yaml file in ``conf/bench/`` (``cpu``, ``gpu_cifar10``); any key can be overridden
with ``key=value`` arguments. Runs go to ``<out>/runs/<model>_s<seed>/`` and are resumed if they
were interrupted, so a benchmark can be stopped and restarted.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from . import __version__
from .bundle import count_params
from .errors import ConfigError, StoppedError
from .registry import list_models

# Lower is better for these; higher for the rest.
LOWER_IS_BETTER = {"fid", "kid_mean"}
METRIC_LABELS = {"fid": "FID", "kid_mean": "KID", "precision": "Precision", "recall": "Recall", "is_mean": "IS"}


# The keys a preset may have; `eval:` keys are the ones passed to every run's `trainer.eval`.
BENCH_KEYS = ("name", "data", "models", "stage1", "tasks", "seeds", "kimg", "minutes", "overrides", "model_overrides",
              "eval",
              "out")
EVAL_KEYS = ("every_kimg", "every_minutes", "metrics", "num_fake", "num_real", "split", "weights")


def _parse_value(key: str, value: str) -> Any:
    if not value:
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ConfigError(f"bench override {key}={value!r} is not a valid value ({str(err).splitlines()[0]}); lists "
                          "look like models=[dcgan,sagan], numbers like kimg=10") from None


def _check_key(key: str, cfg: DictConfig, preset_keys: set[str]) -> None:
    """Unknown keys would be ignored (and the full preset would run): refuse them, naming the known ones."""
    import difflib

    top, _, rest = key.partition(".")
    known = sorted(set(BENCH_KEYS) | preset_keys)
    if top not in known:
        close = difflib.get_close_matches(top, known, n=1)
        raise ConfigError(f"bench has no key {top!r}{f' (did you mean {close[0]!r}?)' if close else ''}; known keys: "
                          f"{', '.join(known)}, and eval.<{'|'.join(EVAL_KEYS)}>")
    if top == "eval" and rest:
        sub = rest.split(".")[0]
        eval_known = sorted(set(EVAL_KEYS) | set((cfg.get("eval") or {}).keys()))
        if sub not in eval_known:
            close = difflib.get_close_matches(sub, eval_known, n=1)
            raise ConfigError(f"bench has no key eval.{sub}{f' (did you mean eval.{close[0]}?)' if close else ''}; "
                              f"known eval keys: {', '.join(eval_known)}")
    elif top in ("kimg", "minutes", "seeds", "models", "data", "name", "out") and rest:
        raise ConfigError(f"bench key {top} has no sub-keys; write {top}=<value>")


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _check_values(cfg: DictConfig) -> None:
    """Wrong types in one paragraph, before anything trains (a ValueError deep in a run otherwise)."""
    problems = []
    if not _positive(cfg.get("kimg")):
        problems.append(f"kimg={cfg.get('kimg')!r} must be a number > 0 (thousands of images per run), e.g. kimg=15")
    if cfg.get("minutes") is not None and not _positive(cfg.minutes):
        problems.append(f"minutes={cfg.minutes!r} must be null or a number > 0, e.g. minutes=4")
    seeds = cfg.get("seeds")
    if not OmegaConf.is_list(seeds) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                             for s in seeds):
        problems.append(f"seeds={seeds!r} must be a list of integers, e.g. seeds=[0,1]")
    models = cfg.get("models")
    if not OmegaConf.is_list(models) or not models or not all(isinstance(m, str) for m in models):
        problems.append(f"models={models!r} must be a list of model names, e.g. models=[dcgan,sagan]")
    for key in ("overrides",):
        value = cfg.get(key)
        if value is not None and not (OmegaConf.is_list(value) and all(isinstance(v, str) for v in value)):
            problems.append(f"{key}={value!r} must be a list of key=value strings, e.g. overrides=[trainer.grid=16]")
    ev = cfg.get("eval")
    if not OmegaConf.is_dict(ev):
        problems.append("eval: must be a mapping (every_kimg, every_minutes, metrics, num_fake, num_real, split)")
    else:
        for key in ("every_kimg", "every_minutes"):
            if ev.get(key) is not None and not _positive(ev.get(key)):
                problems.append(f"eval.{key}={ev.get(key)!r} must be null or a number > 0")
        metrics = ev.get("metrics")
        if metrics is not None and not (OmegaConf.is_list(metrics) and all(isinstance(m, str) for m in metrics)):
            problems.append(f"eval.metrics={metrics!r} must be a list, e.g. eval.metrics=[fid,kid] ([] turns scoring "
                            "off)")
        elif metrics:
            allowed = ("fid", "kid", "pr", "is")
            bad = [m for m in metrics if m not in allowed]
            if bad:
                problems.append(f"eval.metrics: {bad} cannot rank a benchmark; choose from {list(allowed)}")
        num_fake = ev.get("num_fake")
        if not (isinstance(num_fake, int) and not isinstance(num_fake, bool) and num_fake >= 2):
            problems.append(f"eval.num_fake={num_fake!r} must be an integer >= 2")
        num_real = ev.get("num_real")
        if num_real is not None and not (isinstance(num_real, int) and not isinstance(num_real, bool)
                                         and num_real >= 2):
            problems.append(f"eval.num_real={num_real!r} must be null (the whole split) or an integer >= 2")
    if problems:
        raise ConfigError("bench preset: " + "; ".join(problems) + ".")


def load_preset(name_or_path: str, overrides: Sequence[str] = ()) -> DictConfig:
    """A bench preset from ``conf/bench/<name>.yaml`` (or a path), with ``key=value`` overrides."""
    from .paths import config_dir

    path = Path(name_or_path)
    if not path.suffix:
        path = config_dir() / "bench" / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (config_dir() / "bench").glob("*.yaml"))
        raise ConfigError(f"no bench preset {name_or_path!r}; known presets: {known} (or pass a yaml path)")
    cfg = OmegaConf.load(path)
    preset_keys = set(cfg.keys())
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bench override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        _check_key(key, cfg, preset_keys)
        OmegaConf.update(cfg, key, _parse_value(key, value), merge=False)
    _check_values(cfg)
    unknown = set(name for name in cfg.models if name not in list_models())
    if unknown:
        raise ConfigError(f"bench preset lists unknown models {sorted(unknown)}; see `ganzoo list`")
    from .registry import build_model_shapes

    stage1 = dict(cfg.get("stage1") or {})
    for name in cfg.models:
        needs = bool(build_model_shapes(name).info.get("missing"))
        if needs and name not in stage1:
            raise ConfigError(f"bench model {name} samples with a trained tokenizer: name it in the preset's stage1:, "
                              f"e.g. stage1: {{{name}: vqgan}}")
        if name in stage1 and (stage1[name] not in list_models() or not needs):
            raise ConfigError(f"stage1: {name}: {stage1[name]} must pair a code prior with a registered tokenizer")
    from .conditional_eval import parse_task

    for name, specs in dict(cfg.get("tasks") or {}).items():  # conditional tasks of code priors (ganzoo eval --task)
        if name not in cfg.models or name not in stage1:
            raise ConfigError(f"tasks: {name}: conditional tasks belong to a code prior of this preset (listed in "
                              "models: and stage1:)")
        for spec in specs:
            parse_task(str(spec))
    return cfg


def scoring(cfg: DictConfig) -> str:
    """``"off"`` (eval.metrics empty), ``"end"`` (no every_kimg / every_minutes: once, at the end of every run) or
    ``"periodic"``."""
    ev = cfg.eval
    if not ev.get("metrics"):
        return "off"
    return "end" if ev.get("every_kimg") is None and ev.get("every_minutes") is None else "periodic"


def _machine() -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "ganzoo": __version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def _train_overrides(cfg: DictConfig, model: str, seed: int, run_dir: Path, *, share: float = 1.0,
                     evaluate: bool = True) -> list[str]:
    """``ganzoo train`` overrides of one run; ``share`` of the budget (a two-stage model's stages split it)."""
    ev = cfg.eval
    mode = scoring(cfg)
    evaluate = evaluate and mode != "off"
    # No interval given: score once, at the end of the run (the trainer always scores when its budget is spent).
    every_kimg = float(cfg.kimg) * share if mode == "end" else ev.get("every_kimg")
    out = [
        f"model={model}",
        f"data={cfg.data}",
        f"seed={seed}",
        f"trainer.kimg={float(cfg.kimg) * share:g}",
        f"trainer.eval.every_kimg={'null' if every_kimg is None else f'{float(every_kimg):g}'}",
        f"trainer.eval.metrics=[{','.join(ev.metrics or [])}]",
        f"trainer.eval.num_fake={ev.num_fake}",
        f"trainer.eval.num_real={'null' if ev.num_real is None else ev.num_real}",
        f"trainer.eval.split={ev.split}",
        f"trainer.eval.best_metric={_best_metric(ev.metrics)}",
        "trainer.progress=false",
        "trainer.log_every=10",
    ]
    if not evaluate:  # a tokenizer: scored through the prior that samples with it
        out = [o for o in out if not o.startswith("trainer.eval.")]
    if cfg.get("minutes") is not None:
        out.append(f"trainer.minutes={float(cfg.minutes) * share:g}")
    if ev.get("every_minutes") is not None and evaluate:  # the same number of curve points for every model
        out.append(f"trainer.eval.every_minutes={float(ev.every_minutes) * share:g}")
    if ev.get("weights"):
        out.append(f"trainer.eval.weights={ev.weights}")
    out += list(cfg.get("overrides") or [])
    out += list((cfg.get("model_overrides") or {}).get(model, []) or [])
    if (run_dir / "checkpoints" / "latest.json").exists():
        out.append(f"trainer.resume={run_dir}")
    return out


def _best_metric(metrics: Sequence[str] | None) -> str:
    if not metrics:
        return "null"
    return "precision" if metrics[0] == "pr" else metrics[0]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_one(cfg: DictConfig, model: str, seed: int, out: Path) -> dict[str, Any]:
    """Train (or finish training) one model/seed and return its summary row. A model listed under the preset's
    ``stage1:`` (a code prior) first trains its tokenizer; the two stages share the model's budget."""
    from .runtime import build_bundle

    run_dir = out / "runs" / f"{model}_s{seed}"
    stage1 = (cfg.get("stage1") or {}).get(model)  # a code prior: its tokenizer is trained first
    share = 0.5 if stage1 else 1.0  # the two stages split the model's budget
    extra: list[str] = []
    stage1_time = 0.0
    if stage1:
        stage1_dir = out / "runs" / f"{model}_stage1_{stage1}_s{seed}"
        _train_once(cfg, stage1, seed, stage1_dir, share=share, evaluate=False)
        extra = [f"model.stage1={stage1_dir}"]
        stage1_rows = [r for r in _read_jsonl(stage1_dir / "metrics.jsonl") if "img_per_s" in r]
        stage1_time = stage1_rows[-1].get("time_s", 0.0) if stage1_rows else 0.0
    _train_once(cfg, model, seed, run_dir, share=share, extra=extra)
    rows = _read_jsonl(run_dir / "metrics.jsonl")
    evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
    train_rows = [r for r in rows if "img_per_s" in r]
    final = evals[-1] if evals else {}
    # Sizes of the configuration that was trained (a model's yaml may differ from its registry preset).
    bundle = build_bundle(OmegaConf.load(run_dir / "config.yaml").model)
    return {
        "model": model,
        "seed": seed,
        "run_dir": str(run_dir),
        **_sizes(bundle),
        "resolution": bundle.resolution,
        "kimg": train_rows[-1]["kimg"] if train_rows else 0.0,
        "train_time_s": (train_rows[-1].get("time_s", 0.0) if train_rows else 0.0) + stage1_time,
        # The first interval includes start-up (data, first-call overheads): skip it when there are others.
        "img_per_s": statistics.median([r["img_per_s"] for r in (train_rows[1:] or train_rows)] or [0.0]),
        "final": {k[len("eval/"):]: v for k, v in final.items() if k.startswith("eval/")},
        "tasks": _score_tasks(cfg, model, run_dir),
        "curve": [{"kimg": r["kimg"], "time_s": _train_time_at(train_rows, r["kimg"]), **{k[5:]: v for k, v in r.items()
                   if k.startswith("eval/")}} for r in evals],
    }


def _score_tasks(cfg: DictConfig, model: str, run_dir: Path) -> dict[str, dict[str, float]]:
    """``tasks: {model: [complete:top, condition]}``: each task scored like ``ganzoo eval RUN --task T`` (its
    default metrics, the preset's eval sizes and split), appended to the run's eval.jsonl."""
    from .conditional_eval import DEFAULT_TASK_METRICS, parse_task
    from .evaluation import EvalProtocol, evaluate_checkpoint

    ev, scores = cfg.eval, {}
    for spec in list((cfg.get("tasks") or {}).get(model) or []):
        proto = EvalProtocol.from_config({"metrics": list(DEFAULT_TASK_METRICS[parse_task(spec)[0]]),
                                          "num_fake": ev.num_fake, "num_real": ev.num_real, "split": ev.split,
                                          "weights": ev.get("weights")})
        scores[spec] = evaluate_checkpoint(run_dir, proto, task=spec)[0].values
    return scores


def _train_time_at(train_rows: list[dict[str, Any]], kimg: float) -> float:
    """Training seconds when ``kimg`` was reached, interpolated between log lines (evaluation time excluded)."""
    pts = [(0.0, 0.0)] + [(float(r["kimg"]), float(r.get("time_s", 0.0))) for r in train_rows]
    for (k0, t0), (k1, t1) in zip(pts, pts[1:]):
        if k0 <= kimg <= k1:
            return t0 + (t1 - t0) * ((kimg - k0) / (k1 - k0) if k1 > k0 else 1.0)
    return pts[-1][1]


def _train_once(cfg: DictConfig, model: str, seed: int, run_dir: Path, *, share: float = 1.0,
                evaluate: bool = True, extra: Sequence[str] = ()) -> None:
    """Train one run unless its ``bench_done.json`` says it finished (a stopped run is resumed)."""
    from .training.config import compose_train_config
    from .training.trainer import Trainer

    done_marker = run_dir / "bench_done.json"
    if done_marker.exists():
        return
    overrides = _train_overrides(cfg, model, seed, run_dir, share=share, evaluate=evaluate) + list(extra)
    t0 = time.time()
    summary = Trainer(compose_train_config(overrides), run_dir).fit()
    if summary.get("stopped"):  # a stopped run is not finished: no marker, so the next bench resumes it
        from .training.signals import describe, exit_code_for

        raise StoppedError(f"{model} (seed {seed}) stopped by {describe(summary['stopped'])} at "
                           f"{summary['images_seen']} images; run the same `ganzoo bench` command again to "
                           "resume it", exit_code_for(summary["stopped"]))
    done_marker.write_text(json.dumps({"wall_s": time.time() - t0}))


def _sizes(bundle: Any) -> dict[str, int]:
    """G = everything that draws an image (a code prior: prior + tokenizer), D = the discriminator (0 if none)."""
    if bundle.info.get("kind") == "prior":
        return {"params_G": sum(count_params(m) for m in bundle.modules.values()), "params_D": 0}
    return {"params_G": count_params(bundle.modules["G"]), "params_D": count_params(bundle.modules["D"])}


def _mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    m = statistics.fmean(values)
    prec = 3 if abs(m) < 10 else 1
    if len(values) == 1:
        return f"{m:.{prec}f}"
    return f"{m:.{prec}f} ± {statistics.stdev(values):.{prec}f}"


def _ranked(rows: list[dict[str, Any]], metric: str) -> list[str]:
    """Models best first by their mean final ``metric``; models without it last, in run order."""
    order = list(dict.fromkeys(r["model"] for r in rows))
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0

    def key(m: str) -> tuple[int, float, int]:
        vals = [r["final"][metric] for r in rows if r["model"] == m and metric in r["final"]]
        return (0, sign * statistics.fmean(vals), order.index(m)) if vals else (1, 0.0, order.index(m))

    return sorted(order, key=key)


def write_table(rows: list[dict[str, Any]], cfg: DictConfig, out: Path, command: str) -> Path:
    """``table.md`` and ``table.csv``: one line per model, mean ± std over seeds. Curve plots are linked only when
    they exist (``write_plots`` writes them when there are scores); without scores the table says so."""
    metric_keys = [k for k in METRIC_LABELS if any(k in r["final"] for r in rows)]
    models = _ranked(rows, metric_keys[0]) if metric_keys else list(dict.fromkeys(r["model"] for r in rows))
    header = ["rank", "model", "res", "G params", "D params", "kimg", "train img/s", "train min"] + [
        METRIC_LABELS[k] + (" ↓" if k in LOWER_IS_BETTER else " ↑") for k in metric_keys
    ]
    lines, csv_rows = [], []
    for m in models:
        rs = [r for r in rows if r["model"] == m]
        first = rs[0]
        d_cell = f"{first['params_D'] / 1e6:.2f}M" if first["params_D"] else "–"
        cells = [str(models.index(m) + 1), m, str(first["resolution"]), f"{first['params_G'] / 1e6:.2f}M", d_cell,
                 f"{statistics.fmean(r['kimg'] for r in rs):.1f}",
                 f"{statistics.fmean(r['img_per_s'] for r in rs):.0f}",
                 f"{statistics.fmean(r['train_time_s'] for r in rs) / 60:.1f}"]
        cells += [_mean_std([r["final"][k] for r in rs if k in r["final"]]) for k in metric_keys]
        lines.append("| " + " | ".join(cells) + " |")
        for r in rs:
            csv_rows.append({"model": m, "seed": r["seed"], "resolution": r["resolution"], "params_G": r["params_G"],
                             "params_D": r["params_D"], "kimg": r["kimg"], "train_img_per_s": r["img_per_s"],
                             "train_time_s": r["train_time_s"], **{k: r["final"].get(k) for k in metric_keys}})
    ev = cfg.eval
    machine = _machine()
    mode = scoring(cfg)
    if mode == "off":
        scores = ("Scoring is off (`eval.metrics=[]`): no model was scored, and the rows are in run order, not "
                  "ranked.")
    elif not metric_keys:
        scores = ("No run has a score (see each run's metrics.jsonl and eval.jsonl): the rows are in run order, not "
                  "ranked.")
    else:
        when = ("once, at the end of training (no `eval.every_kimg` or `eval.every_minutes`)" if mode == "end"
                else "at the end of training")
        scores = (f"Rows are ranked by the first score. Scores of the EMA generator {when}: "
                  f"{', '.join(METRIC_LABELS[k] for k in metric_keys)} from {ev.num_fake} generated images against "
                  f"{'all' if ev.num_real is None else ev.num_real} real images of the `{ev.split}` split, Inception "
                  "pool3 features (see each run's eval.jsonl for the extractor weights hash and full provenance). "
                  "Mean ± std over seeds where there are several.")
    curves = [f for f in ("curves_kimg.png", "curves_time.png") if (out / f).exists()]
    md = [
        f"# Benchmark `{cfg.name}`",
        "",
        f"Data `{cfg.data}`, budget {cfg.kimg} kimg per run"
        + (f" or {cfg.minutes} min" if cfg.get("minutes") is not None else "")
        + f", seeds {list(cfg.seeds)}"
        + (f" (a code prior and its tokenizer, {', '.join(f'{k} on {v}' for k, v in cfg.stage1.items())}, share "
           "their model's budget: half each; G counts prior + tokenizer)" if cfg.get("stage1") else "")
        + ". " + scores,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *lines,
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs"
        + (f", GPU {machine['cuda']}" if machine["cuda"] else ", no GPU")
        + f"; Python {machine['python']}, torch {machine['torch']}, ganzoo {machine['ganzoo']}; "
        f"finished {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        *([" ".join(f"![metric vs {'images' if 'kimg' in f else 'time'}]({f})" for f in curves), ""] if curves else []),
        *_task_table(rows),
        "Samples (EMA generator, fixed latents, end of training):",
        "",
        *[f"- `{m}`: ![{m}](samples/{m}.png)" for m in models],
    ]
    (out / "table.md").write_text("\n".join(md) + "\n")
    with open(out / "table.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(csv_rows[0]))
        writer.writeheader()
        writer.writerows(csv_rows)
    (out / "provenance.json").write_text(json.dumps(
        {"command": command, "preset": OmegaConf.to_container(cfg, resolve=True), "machine": machine}, indent=2))
    return out / "table.md"


def _task_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines of the conditional-task scores (``tasks:``), one line per model and task, mean ± std over
    seeds; nothing without tasks."""
    pairs = list(dict.fromkeys((r["model"], t) for r in rows for t in r.get("tasks") or {}))
    if not pairs:
        return []
    labels = {"fid": "FID ↓", "kid_mean": "KID ↓", "psnr": "PSNR ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓"}
    keys = [k for k in labels if any(f"{t}/{k}" in r["tasks"].get(t, {}) for r in rows for _, t in pairs)]
    lines = ["Conditional tasks (`ganzoo eval RUN --task T`: outputs vs the split; PSNR/SSIM/LPIPS vs the ground "
             "truth):", "", "| model | task | " + " | ".join(labels[k] for k in keys) + " |",
             "|" + "---|" * (2 + len(keys))]
    for model, task in pairs:
        vals = [r["tasks"][task] for r in rows if r["model"] == model and task in r.get("tasks", {})]
        cells = [_mean_std([v[f"{task}/{k}"] for v in vals if f"{task}/{k}" in v]) for k in keys]
        lines.append(f"| {model} | `{task}` | " + " | ".join(cells) + " |")
    return [*lines, ""]


def write_plots(rows: list[dict[str, Any]], out: Path) -> None:
    """The first metric against images seen and against wall time, one line per model (mean over seeds). Nothing
    is written without scores, and plots of an earlier bench in the same folder are removed (never linked stale)."""
    for stale in ("curves_kimg.png", "curves_time.png"):
        (out / stale).unlink(missing_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = next((k for k in METRIC_LABELS if any(k in c for r in rows for c in r["curve"])), None)
    if metric is None:
        return
    for axis, fname, label in (("kimg", "curves_kimg.png", "images seen (k)"),
                               ("time_s", "curves_time.png", "training wall time (min)")):
        fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
        for m in dict.fromkeys(r["model"] for r in rows):
            curves = [r["curve"] for r in rows if r["model"] == m and r["curve"]]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            xs = [statistics.fmean(c[i][axis] for c in curves) / (60 if axis == "time_s" else 1) for i in range(n)]
            ys = [statistics.fmean(c[i][metric] for c in curves) for i in range(n)]
            ax.plot(xs, ys, marker="o", ms=3, label=m)
        ax.set_xlabel(label)
        ax.set_ylabel(METRIC_LABELS[metric])
        if metric in LOWER_IS_BETTER and all(y > 0 for r in rows for c in r["curve"] for y in [c.get(metric, 1)]):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname)
        plt.close(fig)


def copy_samples(rows: list[dict[str, Any]], out: Path) -> None:
    (out / "samples").mkdir(parents=True, exist_ok=True)
    for m in dict.fromkeys(r["model"] for r in rows):
        run = Path(next(r["run_dir"] for r in rows if r["model"] == m))
        grids = sorted((run / "samples").glob("fakes_*.png"))
        if grids:
            shutil.copyfile(grids[-1], out / "samples" / f"{m}.png")


def run_bench(cfg: DictConfig, *, command: str, out: Path | None = None) -> Path:
    out = Path(out or cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    mode = scoring(cfg)
    if mode == "off":
        print("[bench] scoring is off (eval.metrics=[]): runs are trained but not scored, and the table is not ranked",
              flush=True)
    elif mode == "end":
        print("[bench] eval.every_kimg and eval.every_minutes are null: every run is scored once, at its end "
              "(one point per curve)", flush=True)
    rows = []
    for model in cfg.models:
        for seed in cfg.seeds:
            print(f"[bench] {model} seed {seed}", flush=True)
            rows.append(run_one(cfg, model, int(seed), out))
    (out / "runs.json").write_text(json.dumps(rows, indent=1, default=_json_default))
    write_plots(rows, out)
    copy_samples(rows, out)
    return write_table(rows, cfg, out, command)


def _json_default(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return str(x)

