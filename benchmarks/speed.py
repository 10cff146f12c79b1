"""Training and sampling throughput (images/second) and peak memory for registered models.

Usage::

    python benchmarks/speed.py                              # CPU-sized presets on the best device
    python benchmarks/speed.py --models stylegan2_f --batch 8 --device cuda
    python benchmarks/speed.py --out benchmarks/results/speed-cpu.md

Training speed runs the model's real phases through the generic trainer for ``--steps`` steps
after ``--warmup`` steps (the synthetic data is random noise in [-1, 1], so data loading is not
measured). Sampling speed times ``bundle.sample`` of the EMA-free generator in eval mode.
Results are appended as a Markdown table with the machine and versions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import sys
import time
from datetime import datetime, timezone

import torch
from bench_report import emit  # benchmarks/bench_report.py (the script's folder is on sys.path)

from ganzoo.bundle import Batch, StepContext, count_params
from ganzoo.training.config import compose_train_config
from ganzoo.training.trainer import build_bundle, resolve_geometry, select_device

try:
    from ganzoo.training.precision import PRECISIONS, Precision
except ImportError:  # a package older than trainer.precision=fp16 (speed_before_after.py measures old commits)
    PRECISIONS, Precision = ("fp32", "bf16"), None


class _Autocast:
    """The precision handling of packages without ``ganzoo.training.precision``: bf16 autocast only."""

    def __init__(self, precision: str, device: torch.device, modules: dict) -> None:
        self.autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if precision == "bf16"
                         else contextlib.nullcontext())

    def backward(self, module: str, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, module: str, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()

DEFAULT_MODELS = ["dcgan_tiny", "dcgan", "progan", "stylegan", "stylegan2", "stylegan2_cifar"]


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB (process peak)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(model: str):
    """The bundle ``ganzoo train model=<model>`` trains (its yaml, `auto` geometry from the default data)."""
    cfg = compose_train_config([f"model={model}"])
    resolve_geometry(cfg.model, cfg.data)  # `auto` presets: the geometry `ganzoo train model=<name>` would use
    return build_bundle(cfg.model)


def measure(
    model: str, *, batch: int, steps: int, warmup: int, device: torch.device, precision: str = "fp32"
) -> dict[str, float]:
    bundle = build(model)
    modules = {k: m.to(device) for k, m in bundle.modules.items()}
    objective = bundle.objective.to(device)
    opts = {k: spec.build(modules[k].parameters()) for k, spec in objective.optimizers.items()}
    # The final resolution of a growing model (its largest, slowest stage).
    state = bundle.schedule.state(10**12) if bundle.schedule else {}
    res, ch = bundle.resolution, bundle.channels
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # The trainer's precision handling: autocast, fp16 blocks of self-managed models, gradient scalers.
    prec = (Precision or _Autocast)(precision, device, modules)
    autocast = prec.autocast

    def train_step(step: int) -> None:
        img = torch.rand(batch, ch, res, res, device=device) * 2 - 1
        labels = torch.randint(0, bundle.c_dim, (batch,), device=device) if bundle.c_dim else None
        ctx = StepContext(modules, state, step, step * batch, device, bundle.c_dim)
        for phase in objective.phases:
            if step % phase.interval:
                continue
            for m_name, m in modules.items():
                m.requires_grad_(m_name == phase.module)
            opts[phase.module].zero_grad(set_to_none=True)
            with autocast:
                loss, _ = phase.loss(Batch(img, labels), ctx)
            prec.backward(phase.module, loss.float() * phase.interval)
            prec.step(phase.module, opts[phase.module])

    for s in range(warmup):
        train_step(s)
    _sync(device)
    t = time.perf_counter()
    for s in range(warmup, warmup + steps):
        train_step(s)
    _sync(device)
    train_ips = steps * batch / (time.perf_counter() - t)

    sample_opts = bundle.sample_opts(state) if bundle.sample_opts else {}
    if bundle.info.get("kind") == "autoencoder":  # an autoencoder "samples" reconstructions of reals
        sample_opts["reals"] = torch.rand(batch, ch, res, res, device=device) * 2 - 1
    with torch.no_grad(), autocast:
        for m in modules.values():
            m.eval()
        bundle.sample(modules, batch, **sample_opts)
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            bundle.sample(modules, batch, **sample_opts)
        _sync(device)
        sample_ips = steps * batch / (time.perf_counter() - t)
    return {
        "resolution": res,
        # a code prior has no G/D: its row counts prior + tokenizer as G, as `ganzoo bench` does
        "params_G": count_params(bundle.modules["G"]) if "G" in bundle.modules else
        sum(count_params(m) for m in bundle.modules.values()),
        "params_D": count_params(bundle.modules["D"]) if "D" in bundle.modules else 0,
        "train_img_s": train_ips,
        "sample_img_s": sample_ips,
        "peak_mem_mb": _peak_mem_mb(device),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                        help="as trainer.precision: bf16 = autocast; fp16 = gradient scaling (StyleGAN2: fp16 blocks)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--out", default=None, help="append the Markdown table to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    torch.manual_seed(0)
    rows = []
    for name in args.models:
        try:
            r = measure(name, batch=args.batch, steps=args.steps, warmup=args.warmup, device=device,
                        precision=args.precision)
        except Exception as err:  # one failing model must not hide the others' rows
            print(f"{name:>18}: failed: {type(err).__name__}: {err}", flush=True)
            rows.append((name, {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"}))
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append((name, r))
        print(f"{name:>18}: {r['train_img_s']:8.1f} train img/s  {r['sample_img_s']:8.1f} sample img/s  "
              f"{r['peak_mem_mb']:8.0f} MiB peak", flush=True)
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    machine = (f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
               f"threads {torch.get_num_threads()}{gpu}")
    lines = [
        f"### Speed on {device.type} ({datetime.now(timezone.utc).strftime('%Y-%m-%d')})",
        "",
        f"Machine: {machine}. Precision {args.precision}. Batch {args.batch}, {args.steps} timed steps after "
        f"{args.warmup} warm-up steps. "
        f"Command: `python benchmarks/speed.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        "| model | res | G params | D params | train img/s | sample img/s | peak memory (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | | |")
            continue
        lines.append(f"| {name} | {r['resolution']} | {r['params_G'] / 1e6:.2f}M | {r['params_D'] / 1e6:.2f}M | "
                     f"{r['train_img_s']:.1f} | {r['sample_img_s']:.1f} | {r['peak_mem_mb']:.0f} |")
    text = "\n".join(lines) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
