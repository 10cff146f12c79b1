"""ganzoo's StyleGAN2 training step against the official StyleGAN2-ADA PyTorch code, on the CPU.

Both sides are built at the same small config, pinned here (``GANZOO_CONFIG``, not a registry preset,
so a change of a preset cannot change what is measured): 32x32 RGB, channel_base 4096, channel_max 128,
z = w = 128, 2 mapping layers, residual D, mbstd group 4, no conv_clamp, fp32, R1 gamma 1, path-length
weight 2, style mixing 0.9, and both train on the same random "real" batch. On the CPU the official
code runs its pure-PyTorch reference ops (``upfirdn2d`` and ``bias_act`` fall back to ``impl='ref'``
off CUDA; ``conv2d_gradfix`` is off there as well).

One *cycle* is 16 training steps with the lazy intervals (``Gmain`` x16, ``Greg`` x4, ``Dmain``
x16, ``Dreg`` x1), i.e. the real mix of a training run; ``--cycle fixed`` instead runs all four
phases in each step. Each side's step is what its trainer does per phase: zero the gradients,
enable the phase's module, forward, ``backward`` of the loss times the interval, ``opt.step()``
(the official loop also replaces non-finite gradients, as it does when training). EMA, data
loading and logging are left out on both sides.

The CPU is shared, so the two are timed ALTERNATELY in one process (ganzoo, official,
official, ganzoo, ... so that neither side always runs first) with ``torch.set_num_threads``
threads, and the ratio ``official time / ganzoo time`` of each pair is reported as a median with
its spread. Nothing of the official code is part of ganzoo: point ``--official`` at a checkout of
github.com/NVlabs/stylegan2-ada-pytorch (its ``training/``, ``torch_utils/`` and ``dnnlib/``)::

    python benchmarks/official_stylegan2_cpu.py --official /tmp/h5_official --pairs 7
    python benchmarks/official_stylegan2_cpu.py --official /tmp/h5_official --profile ganzoo
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from ganzoo.bundle import Batch, Bundle, StepContext, count_params
from ganzoo.models.stylegan2 import stylegan2

RES, CH_BASE, CH_MAX, ZW, MAP_LAYERS, MBSTD, LR = 32, 4096, 128, 128, 2, 4, 0.0025
R1_GAMMA, PL_WEIGHT, MIXING = 1.0, 2.0, 0.9  # StyleGAN2Loss arguments of the official side
PHASES = (("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16))  # the official order and intervals
# Every option of ganzoo's stylegan2 builder, called directly (no registry preset is merged in).
GANZOO_CONFIG: dict[str, Any] = dict(
    resolution=RES,
    img_channels=3,
    c_dim=0,
    channel_base=CH_BASE,
    channel_max=CH_MAX,
    conv_clamp=None,
    num_fp16_res=0,
    G=dict(z_dim=ZW, w_dim=ZW, mapping_layers=MAP_LAYERS, mapping_lr_mul=0.01, w_avg_beta=0.995, use_noise=True),
    D=dict(architecture="resnet", mbstd_group_size=MBSTD, mbstd_num_channels=1),
    loss=dict(loss="nonsat", r1_gamma=R1_GAMMA, r1_interval=16, pl_weight=PL_WEIGHT, pl_interval=4, pl_batch_shrink=2,
              pl_decay=0.01, style_mixing_prob=MIXING, g_reg_interval=4),
    optim={k: dict(lr=LR, betas=(0.0, 0.99), eps=1e-8) for k in ("G", "D")},
    ema=dict(half_life_kimg=10.0, rampup=None),  # not timed
)
OFFICIAL_PARAMS = {"G": 1_251_347, "D": 1_346_305}  # the official networks at this config


def build_ganzoo() -> Bundle:
    """ganzoo's side of the benchmark: the pinned config, checked against the official networks' sizes
    and phases (so a change of ganzoo's defaults fails here, not silently in the timings)."""
    bundle = stylegan2(**GANZOO_CONFIG)
    params = {k: count_params(bundle.modules[k]) for k in OFFICIAL_PARAMS}
    assert params == OFFICIAL_PARAMS, f"ganzoo's networks {params} are not the official ones {OFFICIAL_PARAMS}"
    phases = [(p.name, p.interval) for p in bundle.objective.phases]
    assert phases == list(PHASES), f"ganzoo's phases {phases} are not the official {list(PHASES)}"
    return bundle


def ganzoo_step_fn(batch: int) -> Callable[[int, torch.Tensor], None]:
    """One training step of ganzoo's StyleGAN2 at the benchmark config (Trainer._run_phase)."""
    bundle = build_ganzoo()
    modules, objective = bundle.modules, bundle.objective
    opts = {k: spec.build(modules[k].parameters()) for k, spec in objective.optimizers.items()}
    cpu = torch.device("cpu")

    def step(step_idx: int, reals: torch.Tensor, fixed: bool = False) -> None:
        ctx = StepContext(modules, {}, step_idx, step_idx * batch, cpu, 0)
        for phase in objective.phases:
            if not fixed and step_idx % phase.interval:
                continue
            for name, m in modules.items():
                m.requires_grad_(name == phase.module)
            opts[phase.module].zero_grad(set_to_none=True)
            loss, _ = phase.loss(Batch(reals), ctx)
            (loss.float() * phase.interval).backward()
            opts[phase.module].step()

    return step


def official_step_fn(batch: int, root: str) -> Callable[[int, torch.Tensor], None]:
    """One training step of the official code (training_loop.py's phase loop, StyleGAN2Loss)."""
    sys.path.insert(0, root)
    from torch_utils import misc  # type: ignore[import-not-found]
    from training import loss as official_loss  # type: ignore[import-not-found]
    from training import networks  # type: ignore[import-not-found]

    common = dict(channel_base=CH_BASE, channel_max=CH_MAX, num_fp16_res=0, conv_clamp=None)
    G = (
        networks.Generator(
            z_dim=ZW,
            c_dim=0,
            w_dim=ZW,
            img_resolution=RES,
            img_channels=3,
            mapping_kwargs=dict(num_layers=MAP_LAYERS),
            synthesis_kwargs=common,
        )
        .train()
        .requires_grad_(False)
    )
    D = (
        networks.Discriminator(
            c_dim=0, img_resolution=RES, img_channels=3, epilogue_kwargs=dict(mbstd_group_size=MBSTD), **common
        )
        .train()
        .requires_grad_(False)
    )
    loss = official_loss.StyleGAN2Loss(
        torch.device("cpu"), G.mapping, G.synthesis, D, r1_gamma=R1_GAMMA, pl_weight=PL_WEIGHT,
        style_mixing_prob=MIXING,
    )
    phases = []
    for name, module, reg in (("G", G, 4), ("D", D, 16)):
        ratio = reg / (reg + 1)  # lazy regularisation correction, as in training_loop.py
        opt = torch.optim.Adam(module.parameters(), lr=LR * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)
        phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, reg)]
    empty_c = torch.zeros(batch, 0)

    def step(step_idx: int, reals: torch.Tensor, fixed: bool = False) -> None:
        for name, module, opt, interval in phases:
            if not fixed and step_idx % interval:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            gen_z = torch.randn(batch, ZW)
            loss.accumulate_gradients(
                phase=name, real_img=reals, real_c=empty_c, gen_z=gen_z, gen_c=empty_c, sync=True, gain=interval
            )
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()

    return step


def run_cycle(step: Callable[..., None], reals: torch.Tensor, steps: int, fixed: bool) -> float:
    t = time.perf_counter()
    for s in range(steps):
        step(s, reals, fixed)
    return time.perf_counter() - t


def profile(step: Callable[..., None], reals: torch.Tensor, steps: int, fixed: bool, rows: int) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    run_cycle(step, reals, steps, fixed)  # warm-up
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        run_cycle(step, reals, steps, fixed)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, help="checkout of NVlabs/stylegan2-ada-pytorch")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=7, help="alternating (ganzoo, official) timings")
    parser.add_argument("--warmup", type=int, default=1, help="untimed cycles per side first")
    parser.add_argument("--cycle", choices=["interval", "fixed"], default="interval")
    parser.add_argument("--steps", type=int, default=16, help="steps per cycle (16 = one Dreg interval)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", choices=["ganzoo", "official"], default=None)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    fixed = args.cycle == "fixed"
    torch.manual_seed(0)
    reals = torch.rand(args.batch, 3, RES, RES) * 2 - 1
    sides: dict[str, Any] = {}
    if args.profile in (None, "ganzoo"):
        sides["ganzoo"] = ganzoo_step_fn(args.batch)
    if args.profile in (None, "official"):
        sides["official"] = official_step_fn(args.batch, args.official)
    print(
        f"{platform.platform()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, batch {args.batch}, cycle {args.cycle} x {args.steps} steps",
        flush=True,
    )
    if args.profile:
        print(profile(sides[args.profile], reals, args.steps, fixed, args.rows))
        return 0

    for _ in range(args.warmup):
        for step in sides.values():
            run_cycle(step, reals, args.steps, fixed)
    times: dict[str, list[float]] = {"ganzoo": [], "official": []}
    for i in range(args.pairs):
        order = ("ganzoo", "official") if i % 2 == 0 else ("official", "ganzoo")
        for name in order:
            times[name].append(run_cycle(sides[name], reals, args.steps, fixed))
        print(
            f"pair {i}: ganzoo {times['ganzoo'][-1]:.2f} s, official {times['official'][-1]:.2f} s, "
            f"ratio {times['official'][-1] / times['ganzoo'][-1]:.3f}",
            flush=True,
        )
    ratios = [o / g for g, o in zip(times["ganzoo"], times["official"])]
    med = statistics.median(ratios)
    print(
        f"ganzoo median {statistics.median(times['ganzoo']):.2f} s/cycle, "
        f"official median {statistics.median(times['official']):.2f} s/cycle"
    )
    print(
        f"speed ratio official/ganzoo: median {med:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, "
        f"{len(ratios)} pairs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
