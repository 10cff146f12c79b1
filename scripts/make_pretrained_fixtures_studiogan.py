"""Regenerate tests/fixtures/pretrained/studiogan/ by running PyTorch-StudioGAN's own code.

Source: https://github.com/POSTECH-CVLab/PyTorch-StudioGAN at commit
947b35e9835b67860fdce44d337f6d7fee7c8db3 (2023-08-06). For each network family this script

1. reads StudioGAN's own CIFAR-10 config (``src/configs/CIFAR10/SAGAN.yaml``, ``BigGAN.yaml``, ``SNGAN.yaml``)
   through its ``config.Configurations``, shrinks the widths (``g_conv_dim``, ``d_conv_dim``, ``z_dim``,
   ``g_shared_dim``) and builds G, D (and G_ema) with ``models.model.load_generator_discriminator``;
2. gives them non-trivial random state (seeded): one Adam step on a dummy loss (so the optimizer state is
   real; not for SNGAN, to keep the fixtures small), extra parameter noise, non-zero attention gains, three
   train-mode forwards (so the spectral-norm ``u``/``v`` vectors are neither random nor converged) and random
   BatchNorm running statistics;
3. saves the checkpoints exactly as ``worker.WORKER.save`` does (the same state dicts passed to
   ``utils.misc.save_model``, which names them ``model=G-best-weights-step=N.pth`` and ``torch.save``-s them);
4. records fixed inputs and the official eval-mode outputs (G images; D's ``adv_output``) in
   ``<family>_io.safetensors``.

Command (StudioGAN needs ``kornia`` to import its config module; seaborn and pkg_resources are stubbed
because only plotting and a version check use them)::

    git --git-dir=<mirror> archive 947b35e9835b67860fdce44d337f6d7fee7c8db3 | tar -x -C /tmp/studiogan
    .venv/bin/pip install --no-deps --target /tmp/studiogan-site kornia==0.6.12
    PYTHONPATH=/tmp/studiogan/src:/tmp/studiogan-site .venv/bin/python \
        scripts/make_pretrained_fixtures_studiogan.py /tmp/studiogan
"""

from __future__ import annotations

import argparse
import os
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pretrained" / "studiogan"
STEP = 123


def _stub_unused_imports() -> None:
    """StudioGAN's utils.misc imports seaborn (plots) and pkg_resources (a version compare) at import time."""
    import packaging.version

    sys.modules.setdefault("seaborn", types.ModuleType("seaborn"))
    pkg = types.ModuleType("pkg_resources")
    pkg.parse_version = packaging.version.parse  # type: ignore[attr-defined]
    sys.modules.setdefault("pkg_resources", pkg)


def _build(src: Path, cfg_name: str, overrides: dict):
    import config  # StudioGAN's src/config.py
    from models import model as studio_model
    from utils import misc

    cwd = os.getcwd()
    os.chdir(src / "src")
    try:
        cfgs = config.Configurations(f"configs/{cfg_name if '/' in cfg_name else 'CIFAR10/' + cfg_name}.yaml")
    finally:
        os.chdir(cwd)
    for key, value in overrides.items():
        setattr(cfgs.MODEL, key, value)
    cfgs.RUN.mixed_precision = False
    cfgs.MODULES = cfgs.define_modules()
    Gen, _, _, Dis, Gen_ema, _, _, ema = studio_model.load_generator_discriminator(
        DATA=cfgs.DATA, OPTIMIZATION=cfgs.OPTIMIZATION, MODEL=cfgs.MODEL, STYLEGAN=cfgs.STYLEGAN,
        MODULES=cfgs.MODULES, RUN=cfgs.RUN, device="cpu", logger=None)
    cfgs.define_optimizer(Gen, Dis)
    return cfgs, misc, Gen, Dis, Gen_ema


def _randomise(cfgs, Gen, Dis, gen: torch.Generator, adam_step: bool) -> None:
    n, z_dim, k, r = 8, cfgs.MODEL.z_dim, cfgs.DATA.num_classes, cfgs.DATA.img_size
    z = torch.randn(n, z_dim, generator=gen)
    y = torch.randint(0, k, (n,), generator=gen)
    # one real optimizer step each, so the saved optimizer state has its moments
    steps = [(Gen, cfgs.OPTIMIZATION.g_optimizer, lambda: Gen(z, y).square().mean()),
             (Dis, cfgs.OPTIMIZATION.d_optimizer,
              lambda: Dis(torch.randn(n, 3, r, r, generator=gen), y)["adv_output"].mean())]
    for net, opt, loss_of in steps if adam_step else []:
        net.train()
        opt.zero_grad()
        loss_of().backward()
        opt.step()
    with torch.no_grad():
        for net in (Gen, Dis):
            for name, p in net.named_parameters():
                if name.endswith("sigma"):  # attention gain, 0 at init
                    p.copy_(0.3 + 0.4 * torch.rand(p.shape, generator=gen))
                else:
                    p.add_(0.05 * torch.randn(p.shape, generator=gen))
        for _ in range(3):  # train mode: power iterations update u and v
            Gen.train()(torch.randn(n, z_dim, generator=gen), torch.randint(0, k, (n,), generator=gen))
            Dis.train()(torch.randn(n, 3, r, r, generator=gen), torch.randint(0, k, (n,), generator=gen))
        for net in (Gen, Dis):
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
                    m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


def make(src: Path, family: str, cfg_name: str, overrides: dict, seed: int, adam_step: bool = True) -> None:
    cfgs, misc, Gen, Dis, Gen_ema = _build(src, cfg_name, overrides)
    gen = torch.Generator().manual_seed(seed)
    _randomise(cfgs, Gen, Dis, gen, adam_step)
    if Gen_ema is not None:  # a distinct average: G's weights plus noise, G's buffers (as utils.ema copies them)
        Gen_ema.load_state_dict(Gen.state_dict())
        with torch.no_grad():
            for p in Gen_ema.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=gen))
    for net in (Gen, Dis, Gen_ema):
        if net is not None:
            net.eval()

    # worker.WORKER.save: the dicts handed to misc.save_model
    ckpt_dir = OUT / family
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for f in ckpt_dir.glob("*.pth"):
        f.unlink()
    g_states = {"state_dict": Gen.state_dict(), "optimizer": cfgs.OPTIMIZATION.g_optimizer.state_dict()}
    run_name = f"{cfgs.DATA.name}-{cfg_name.split('/')[-1]}-train-2026_12_03_00_00_00"
    d_states = {
        "state_dict": Dis.state_dict(), "optimizer": cfgs.OPTIMIZATION.d_optimizer.state_dict(), "seed": seed,
        "run_name": run_name, "step": STEP, "epoch": 1, "topk": "initialize",
        "aa_p": 0.0, "best_step": STEP, "best_fid": 42.5, "best_fid_ckpt": f"./checkpoints/{run_name}",
        "lecam_emas": {"G_loss": 7777, "D_loss_real": 7777, "D_loss_fake": 7777, "D_real": 7777, "D_fake": 7777,
                       "decay": 0.9, "start_itr": 0},
    }
    misc.save_model(model="G", when="best", step=STEP, ckpt_dir=str(ckpt_dir), states=g_states)
    misc.save_model(model="D", when="best", step=STEP, ckpt_dir=str(ckpt_dir), states=d_states)
    if Gen_ema is not None:
        misc.save_model(model="G_ema", when="best", step=STEP, ckpt_dir=str(ckpt_dir),
                        states={"state_dict": Gen_ema.state_dict()})

    n = 2
    z = torch.randn(n, cfgs.MODEL.z_dim, generator=gen)
    y = torch.arange(n) % cfgs.DATA.num_classes
    r = cfgs.DATA.img_size
    x = torch.randn(n, 3, r, r, generator=gen).clamp(-1, 1)
    out = {"z": z, "y": y, "x": x}
    with torch.no_grad():
        out["G"] = Gen(z, y, eval=True)
        out["D_x"] = Dis(x, y, eval=True)["adv_output"]
        out["D_G"] = Dis(out["G"].clone(), y, eval=True)["adv_output"]
        if Gen_ema is not None:
            out["G_ema"] = Gen_ema(z, y, eval=True)
    save_file({k: v.contiguous() for k, v in out.items()}, str(OUT / f"{family}_io.safetensors"))
    print(family, {k: tuple(v.shape) for k, v in out.items()}, sorted(p.name for p in ckpt_dir.iterdir()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studiogan", type=Path, help="a checkout of PyTorch-StudioGAN (the folder holding src/)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.studiogan / "src"))
    _stub_unused_imports()
    torch.manual_seed(0)
    make(args.studiogan, "sagan", "SAGAN", dict(g_conv_dim=4, d_conv_dim=4, z_dim=16), seed=1)
    make(args.studiogan, "biggan", "BigGAN",
         dict(g_conv_dim=4, d_conv_dim=4, z_dim=20, g_shared_dim=8), seed=2)
    # SNGAN: resnet G without spectral norm, no attention (fixture size: no optimizer step, empty Adam state)
    make(args.studiogan, "sngan", "SNGAN", dict(g_conv_dim=4, d_conv_dim=4, z_dim=16), seed=3, adam_step=False)


if __name__ == "__main__":
    main()
