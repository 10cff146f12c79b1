"""Before/after training and sampling speed: this checkout against an older commit, model by model.

Usage::

    git worktree add /tmp/before 1f0ba11      # the code before the speed work
    python benchmarks/speed_before_after.py --before /tmp/before --rounds 3 \\
        --out benchmarks/results/speed-cpu-2core.md

Each measurement is one process of this checkout's ``benchmarks/speed.py`` (the same measuring
loop for both sides) with the measured version's package first on ``PYTHONPATH``. The two
versions alternate model by model and round by round, so slow drifts of a shared machine hit both
alike. Interference only slows a run, so each cell is the best of the rounds, with the slowest in
brackets (the spread shows how noisy the machine was), and the factor is best after / best before.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch
from bench_report import emit  # benchmarks/bench_report.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
# The CPU preset of every registered family (what `ganzoo train model=<name>` trains here).
DEFAULT_MODELS = ["dcgan", "progan", "stylegan", "stylegan2", "sagan", "biggan", "vqgan", "vit_vqgan",
                  "vqgan_prior", "vit_vqgan_prior"]
_LINE = re.compile(r"^\s*(\S+): +([\d.]+) train img/s +([\d.]+) sample img/s")


def _git_head(path: Path) -> str:
    out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def run_speed(root: Path, model: str, args: argparse.Namespace) -> tuple[float, float] | str:
    """(train img/s, sample img/s) of ``model`` with ``root``'s package, or an error line."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--models", model, "--batch", str(args.batch),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", "cpu",
           "--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    for line in proc.stdout.splitlines():
        m = _LINE.match(line)
        if m and m.group(1) == model:
            return float(m.group(2)), float(m.group(3))
    failed = [ln.split("failed:", 1)[1].strip() for ln in proc.stdout.splitlines() if f"{model}: failed:" in ln]
    tail = failed or (proc.stdout + proc.stderr).strip().splitlines() or [f"exit {proc.returncode}"]
    return tail[-1][:120].replace("|", "/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="a checkout (git worktree) of the older commit")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="append the Markdown table to this file")
    args = parser.parse_args(argv)
    before = Path(args.before).resolve()
    sides = {"before": before, "after": ROOT}
    rows = []
    for model in args.models:
        got: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        errors: dict[str, str] = {}
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for side in order:
                res = run_speed(sides[side], model, args)
                if isinstance(res, str):
                    errors[side] = res
                else:
                    got[side].append(res)
        best = {s: tuple(max(v[i] for v in got[s]) for i in (0, 1)) if got[s] else None for s in got}
        low = {s: tuple(min(v[i] for v in got[s]) for i in (0, 1)) if got[s] else None for s in got}
        rows.append((model, best, low, errors))
        print(f"{model}: best {best} slowest {low} {errors or ''}", flush=True)

    def cell(v: float | None, slow: float | None = None) -> str:
        return "-" if v is None else f"{v:.1f}" + ("" if slow is None else f" ({slow:.1f})")

    def factor(a: float | None, b: float | None) -> str:
        return "-" if a is None or b is None else f"**{a / b:.2f}x**"

    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads {args.threads}"
    cmd = " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        f"### Before/after on cpu ({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC)",
        "",
        f"Machine: {machine}. Before: commit {_git_head(before)}; after: commit {_git_head(ROOT)} (plus any "
        f"uncommitted changes). Batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up steps, "
        f"all phases at their intervals, synthetic data; best of {args.rounds} rounds (slowest in brackets), "
        f"the versions alternating. Command: `python benchmarks/speed_before_after.py {cmd}`",
        "",
        "| model | train img/s before | train img/s after | train factor | sample img/s before | "
        "sample img/s after | sample factor |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, best, low, errors in rows:
        b, a = best["before"] or (None, None), best["after"] or (None, None)
        bl, al = low["before"] or (None, None), low["after"] or (None, None)
        note = "; ".join(f"{k} failed: {v}" for k, v in errors.items() if best[k] is None)
        lines.append(f"| {model} | {cell(b[0], bl[0])} | {cell(a[0], al[0])} | {factor(a[0], b[0])} | "
                     f"{cell(b[1], bl[1])} | {cell(a[1], al[1])} | {factor(a[1], b[1])} |"
                     + (f" {note} |" if note else ""))
    emit("\n".join(lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
