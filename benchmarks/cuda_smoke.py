"""Every family through the real trainer on a GPU: fp32 and bf16, checkpoint, resume.

For each model: a short ``ganzoo train`` (the composed config, ``trainer=smoke`` sizes) in fp32
and in bf16 autocast; the losses must stay finite and a checkpoint must be written. Then, with
``trainer.deterministic=true``, N steps straight against N/2 + resume + N/2, compared bit for bit
(on CUDA some kernels have no deterministic variant, so a difference is reported, not hidden).

Usage (on a GPU machine)::

    python benchmarks/cuda_smoke.py --models sagan_tiny biggan_tiny --out results.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ganzoo.training.config import compose_train_config
from ganzoo.training.trainer import Trainer


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in {**trainer.modules, **{f"ema.{k}": v for k, v in trainer.ema.items()}}.items():
        out.update({f"{name}.{k}": v.detach().float().cpu().clone() for k, v in m.state_dict().items()})
    return out


def _train(overrides: list[str], run_dir: Path) -> tuple[Trainer, dict, float]:
    cfg = compose_train_config(overrides)
    trainer = Trainer(cfg, run_dir)
    t = time.perf_counter()
    summary = trainer.fit()
    return trainer, summary, time.perf_counter() - t


def _last_losses(run_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {k: v for k, v in rows[-1].items() if k.startswith("loss/")}


def overrides(model: str, device: str) -> list[str]:
    """The command line of ``model``'s smoke runs: its yaml at ``trainer=smoke`` sizes."""
    return [f"model={model}", "trainer=smoke", f"trainer.device={device}", "trainer.grid=8"]


def check(model: str, *, device: str, steps: int, tmp: Path) -> dict[str, object]:
    base = overrides(model, device)
    result: dict[str, object] = {"model": model}
    for precision in ("fp32", "bf16"):
        run = tmp / f"{model}_{precision}"
        trainer, summary, secs = _train(base + [f"trainer.precision={precision}", f"trainer.steps={steps}"], run)
        losses = _last_losses(run)
        finite = all(math.isfinite(v) for v in losses.values())
        result[precision] = {
            "ok": finite and summary["checkpoint"] is not None,
            "img_s": round(summary["images_seen"] / secs, 1),
            "losses": {k: round(v, 4) for k, v in losses.items()},
        }
    det = base + ["trainer.deterministic=true"]
    straight, _, _ = _train(det + [f"trainer.steps={steps}"], tmp / f"{model}_straight")
    _train(det + [f"trainer.steps={steps // 2}"], tmp / f"{model}_half")
    resumed, _, _ = _train(det + [f"trainer.steps={steps}", f"trainer.resume={tmp / f'{model}_half'}"],
                           tmp / f"{model}_resumed")
    a, b = _state(straight), _state(resumed)
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    result["resume_max_abs_diff"] = worst
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default=None, help="append a Markdown table to this file")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            try:
                r = check(model, device=args.device, steps=args.steps, tmp=Path(tmp))
            except Exception as err:  # report every model, keep going
                r = {"model": model, "error": f"{type(err).__name__}: {err}"}
            print(json.dumps(r), flush=True)
            rows.append(r)
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else args.device
    lines = [
        f"### Trainer on {dev} ({datetime.now(timezone.utc).strftime('%Y-%m-%d')}), torch {torch.__version__}",
        "",
        f"Command: `python benchmarks/cuda_smoke.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        "| model | fp32 ok | fp32 img/s | bf16 ok | bf16 img/s | resume max abs diff (deterministic) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error'][:120]} | | | | |")
            continue
        f32, b16 = r["fp32"], r["bf16"]
        lines.append(f"| {r['model']} | {f32['ok']} | {f32['img_s']} | {b16['ok']} | {b16['img_s']} | "
                     f"{r['resume_max_abs_diff']:.3g} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text + "\n")
    return 0 if all("error" not in r and r["fp32"]["ok"] and r["bf16"]["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
