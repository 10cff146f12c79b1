"""FLOPs of one full training step, and the throughput they mean against the device's peak.

Usage::

    python benchmarks/flops.py --models stylegan2_tiny --batch 8 --device cpu --time-steps 8
    python benchmarks/flops.py --models stylegan2_paper256 --batch 32 --device cuda \\
        --runs fp32=/tmp/runs/fp32 bf16=/tmp/runs/bf16 --out flops.md

One training step is every phase at its interval (StyleGAN2: Gmain and Dmain every step, Greg every
``pl_interval``, Dreg every ``r1_interval``), so each phase's FLOPs (forward, backward and, for R1 and
path length, the double backward) are counted once with ``torch.utils.flop_counter.FlopCounterMode``
and weighted by ``repeats / interval``. The counter sees matrix products and convolutions (the model
FLOPs, 2 per multiply-add); elementwise work and the optimizer are left out, as usual.

``--time-steps N`` also times N eager steps here (after one warm-up cycle); ``--runs label=dir`` reads
the ``metrics.jsonl`` of ``ganzoo train`` runs at the same model and batch and converts their
s/kimg after ``--warmup-kimg`` into achieved TFLOP/s. Peaks are NVIDIA's dense figures for the GPU
(``--peak-tflops`` overrides): fp32 runs are compared with TF32 tensor-core peak (cuDNN convolutions
use TF32 by default) and the plain fp32 peak, bf16/fp16 runs with the 16-bit tensor-core peak.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from bench_report import emit  # benchmarks/bench_report.py (the script's folder is on sys.path)
from torch.utils.flop_counter import FlopCounterMode

from ganzoo.bundle import Batch, StepContext
from ganzoo.training.config import compose_train_config
from ganzoo.training.trainer import build_bundle, resolve_geometry, select_device

# Dense peak TFLOP/s (no sparsity): (fp32, tf32 tensor, bf16/fp16 tensor). Matched on the device name.
PEAKS: list[tuple[str, tuple[float, float, float]]] = [
    ("H200", (67.0, 494.7, 989.4)),
    ("H100 PCIe", (51.2, 378.0, 756.0)),
    ("H100 NVL", (60.0, 417.5, 835.5)),
    ("H100", (67.0, 494.7, 989.4)),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("A100", (19.5, 156.0, 312.0)),
]


class _NoModuleTracking:
    """Stands in for FlopCounterMode's ModuleTracker, whose backward hooks make ``autograd.grad`` fail
    ("A leaf node was passed to _will_engine_execute_node"), i.e. R1 and path length. Totals only."""

    parents = {"Global"}

    def __enter__(self) -> _NoModuleTracking:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def flop_counter() -> FlopCounterMode:
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracking()  # type: ignore[assignment]
    return counter


def device_peaks(device: torch.device) -> tuple[float, float, float] | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((p for key, p in PEAKS if key in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


DEFAULT_MODELS = ["stylegan2_tiny"]


def build(model: str, device: torch.device):
    """The bundle of ``ganzoo train model=<model>`` on ``device``, its modules, objective and optimizers."""
    cfg = compose_train_config([f"model={model}"])
    resolve_geometry(cfg.model, cfg.data)
    bundle = build_bundle(cfg.model)
    modules = {k: m.to(device) for k, m in bundle.modules.items()}
    objective = bundle.objective.to(device)
    opts = {k: spec.build(modules[k].parameters()) for k, spec in objective.optimizers.items()}
    return bundle, modules, objective, opts


def run_phase(phase, bundle, modules, opts, batch: int, step: int, device: torch.device) -> None:
    res, ch = bundle.resolution, bundle.channels
    state = bundle.schedule.state(10**12) if bundle.schedule else {}
    img = torch.rand(batch, ch, res, res, device=device) * 2 - 1
    labels = torch.randint(0, bundle.c_dim, (batch,), device=device) if bundle.c_dim else None
    ctx = StepContext(modules, state, step, step * batch, device, bundle.c_dim)
    for name, m in modules.items():
        m.requires_grad_(name == phase.module)
    opts[phase.module].zero_grad(set_to_none=True)
    loss, _ = phase.loss(Batch(img, labels), ctx)
    (loss.float() * phase.interval).backward()
    opts[phase.module].step()


def count(model: str, batch: int, device: torch.device) -> dict:
    """FLOPs per phase run and per training step (phases weighted by repeats / interval)."""
    bundle, modules, objective, opts = build(model, device)
    per_phase: dict[str, float] = {}
    per_step = 0.0
    for phase in objective.phases:
        with flop_counter() as counter:
            run_phase(phase, bundle, modules, opts, batch, 0, device)
        per_phase[phase.name] = float(counter.get_total_flops())
        per_step += per_phase[phase.name] * phase.repeats / phase.interval
    period = math.lcm(*(p.interval for p in objective.phases))
    return {"bundle": bundle, "modules": modules, "objective": objective, "opts": opts,
            "per_phase": per_phase, "per_step": per_step, "period": period, "resolution": bundle.resolution}


def time_steps(r: dict, batch: int, steps: int, device: torch.device) -> float:
    """Seconds per eager training step, averaged over ``steps`` after one warm-up cycle."""
    def step(s: int) -> None:
        for phase in r["objective"].phases:
            if s % phase.interval == 0:
                for _ in range(phase.repeats):
                    run_phase(phase, r["bundle"], r["modules"], r["opts"], batch, s, device)

    for s in range(r["period"]):
        step(s)
    _sync(device)
    t = time.perf_counter()
    for s in range(steps):
        step(r["period"] + s)
    _sync(device)
    return (time.perf_counter() - t) / steps


def run_s_per_kimg(run_dir: Path, warmup_kimg: float) -> float | None:
    """s/kimg of a ``ganzoo train`` run from its metrics.jsonl, after ``warmup_kimg``."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "img_per_s" in r and "time_s" in r]  # training records (not eval ones)
    starts = [i for i in range(1, len(rows)) if rows[i]["time_s"] < rows[i - 1]["time_s"]]  # a new session
    after = [r for r in rows[starts[-1] if starts else 0 :] if r["kimg"] >= warmup_kimg]
    if len(after) < 2:
        return None
    return (after[-1]["time_s"] - after[0]["time_s"]) / max(after[-1]["kimg"] - after[0]["kimg"], 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--time-steps", type=int, default=0, help="time this many eager steps (0 = none)")
    parser.add_argument("--runs", nargs="*", default=[], help="label=run_dir of `ganzoo train` runs (first model)")
    parser.add_argument("--warmup-kimg", type=float, default=0.5)
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the device's peak")
    parser.add_argument("--out", default=None, help="append the Markdown report to this file")
    args = parser.parse_args(argv)
    device = select_device(args.device)
    torch.manual_seed(0)
    peaks = device_peaks(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    lines = [f"### FLOPs of one training step ({gpu}, batch {args.batch})", "",
             f"Command: `python benchmarks/flops.py {' '.join(sys.argv[1:] if argv is None else argv)}`. "
             f"Peaks (dense TFLOP/s fp32 / tf32 / 16-bit): {peaks or 'unknown'}.", ""]
    for i, model in enumerate(args.models):
        r = count(model, args.batch, device)
        phases = ", ".join(f"{k} {v / 1e9:.2f}" for k, v in r["per_phase"].items())
        lines.append(f"- **{model}** ({r['resolution']}x{r['resolution']}): {r['per_step'] / 1e9:.2f} GFLOP per step "
                     f"= {r['per_step'] / args.batch / 1e6:.1f} MFLOP per image; per phase run (GFLOP): {phases}.")
        if args.time_steps:
            s = time_steps(r, args.batch, args.time_steps, device)
            tflops = r["per_step"] / s / 1e12
            lines.append(f"  - eager fp32 here: {s * 1e3:.1f} ms/step, {s * 1000 / args.batch:.2f} s/kimg, "
                         f"{tflops:.3g} TFLOP/s" + (f" = {100 * tflops / peaks[1]:.1f}% of TF32 peak" if peaks else ""))
        if i == 0 and args.runs:
            lines += ["", "| run | s/kimg | achieved TFLOP/s | % of peak |", "|---|---|---|---|"]
            for spec in args.runs:
                label, _, folder = spec.partition("=")
                spk = run_s_per_kimg(Path(folder), args.warmup_kimg)
                if spk is None:
                    lines.append(f"| {label} | no metrics | | |")
                    continue
                tflops = r["per_step"] * (1000 / args.batch) / spk / 1e12
                peak = args.peak_tflops or (None if peaks is None else peaks[2] if ("bf16" in label or "fp16" in label)
                                            else peaks[1])
                lines.append(f"| {label} | {spk:.2f} | {tflops:.3g} | "
                             f"{'' if peak is None else f'{100 * tflops / peak:.1f}%'} |")
        del r
        if device.type == "cuda":
            torch.cuda.empty_cache()
    text = "\n".join(lines) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
