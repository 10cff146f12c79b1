"""Regenerate tests/fixtures/pretrained/studiogan/stylegan2/ by running PyTorch-StudioGAN's own StyleGAN2 code.

Source: https://github.com/POSTECH-CVLab/PyTorch-StudioGAN at commit
947b35e9835b67860fdce44d337f6d7fee7c8db3 (2023-08-06), ``src/models/stylegan2.py`` built by
``src/models/model.py`` ``load_generator_discriminator`` from StudioGAN's own configs. Two tiny runs:

* ``cifar_spd``: ``configs/CIFAR10/StyleGAN2.yaml`` (cAdaIN G, SPD projection D, ``orig`` D, 2 mapping
  layers, mbstd group 32) with ``img_size`` 16 (its 32 would double the fixture), 10 classes;
* ``ffhq_uncond``: ``configs/FFHQ/StyleGAN2.yaml`` (unconditional, ``resnet`` D, 8 mapping layers, mbstd
  group 4) with ``img_size`` 16.

The widths are made tiny (``z_dim`` / ``w_dim`` 16; ``channel_base`` 64, ``channel_max`` 8 instead of
model.py's 16384 / 32768 and 512) by wrapping the two classes model.py calls; ``num_fp16_res=4`` and
``conv_clamp=256`` are what model.py passes under ``-mpc`` (the flag of every training command in StudioGAN's
README). Every parameter and buffer but the resampling filters gets seeded random values (G_ema its own; the
``_randomise`` of ``make_pretrained_fixtures_nvlabs_pytorch.py``),
and the files are written by ``utils.misc.save_model`` with the dicts ``worker.WORKER.save`` builds.
``<run>_io.safetensors`` holds ``z``, the labels (``y`` integers for D, ``c`` one-hot for G), images ``x``, the
official G and G_ema images (``noise_mode='const'``, truncation 1) and D's ``adv_output`` on ``x`` and on
G_ema's images. Float16 blocks are run with ``force_fp32=True`` (the CPU has no float16 convolutions).

Command (the StudioGAN checkout and kornia as for ``make_pretrained_fixtures_studiogan.py``)::

    PYTHONPATH=/tmp/studiogan/src:/tmp/studiogan-site .venv/bin/python \
        scripts/make_pretrained_fixtures_studiogan_stylegan2.py /tmp/studiogan
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_pretrained_fixtures_nvlabs_pytorch import _randomise  # noqa: E402  (the same seeded values)
from make_pretrained_fixtures_studiogan import _build, _stub_unused_imports  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pretrained" / "studiogan" / "stylegan2"
STEP = 77
TINY = dict(channel_base=64, channel_max=8, num_fp16_res=4, conv_clamp=256)


def _tiny_classes() -> None:
    """model.py builds ``module.Generator`` / ``module.Discriminator``: give them tiny widths."""
    from models import stylegan2

    G_cls, D_cls = stylegan2.Generator, stylegan2.Discriminator

    def generator(*args, **kwargs):
        kwargs["synthesis_kwargs"] = {**kwargs["synthesis_kwargs"], **TINY}
        return G_cls(*args, **kwargs)

    def discriminator(*args, **kwargs):
        return D_cls(*args, **{**kwargs, **TINY})

    stylegan2.Generator, stylegan2.Discriminator = generator, discriminator


def make(src: Path, run: str, cfg_name: str, overrides: dict, img_size: int | None, seed: int, n: int) -> None:
    cfgs, misc, Gen, Dis, Gen_ema = _build(src, cfg_name, overrides) if img_size is None else \
        _build_at(src, cfg_name, overrides, img_size)
    _randomise(Gen, seed)
    _randomise(Dis, seed + 1)
    _randomise(Gen_ema, seed + 2)
    for net in (Gen, Dis, Gen_ema):
        net.eval()
    ckpt_dir = OUT / run
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for f in ckpt_dir.glob("*.pth"):
        f.unlink()
    run_name = f"{cfgs.DATA.name}-{cfg_name.split('/')[-1]}-train-2026_12_03_00_00_00"
    # worker.WORKER.save (optimizer states left out to keep the fixture small: the converter ignores them)
    d_states = {"state_dict": Dis.state_dict(), "seed": seed, "run_name": run_name, "step": STEP, "epoch": 1,
                "topk": "initialize", "aa_p": 0.0, "best_step": STEP, "best_fid": 12.5,
                "best_fid_ckpt": f"./checkpoints/{run_name}"}
    misc.save_model(model="G", when="current", step=STEP, ckpt_dir=str(ckpt_dir),
                    states={"state_dict": Gen.state_dict()})
    misc.save_model(model="D", when="current", step=STEP, ckpt_dir=str(ckpt_dir), states=d_states)
    misc.save_model(model="G_ema", when="current", step=STEP, ckpt_dir=str(ckpt_dir),
                    states={"state_dict": Gen_ema.state_dict()})

    gen = torch.Generator().manual_seed(seed + 3)
    k, r = cfgs.DATA.num_classes, cfgs.DATA.img_size
    z = torch.randn(n, cfgs.MODEL.z_dim, generator=gen)
    y = torch.arange(n) % k
    c = torch.nn.functional.one_hot(y, k).float() if Gen.c_dim else torch.zeros(n, 0)
    x = torch.randn(n, 3, r, r, generator=gen)
    io = {"z": z, "y": y, "c": c, "x": x}
    with torch.no_grad():
        for key, net in (("G", Gen), ("G_ema", Gen_ema)):
            io[f"{key}_img"] = net(z, c, eval=True, noise_mode="const", force_fp32=True)
        io["D_x"] = Dis(x, y, eval=True, force_fp32=True)["adv_output"].reshape(n)
        io["D_G_ema"] = Dis(io["G_ema_img"].clone(), y, eval=True, force_fp32=True)["adv_output"].reshape(n)
    save_file({key: v.contiguous() for key, v in io.items()}, str(OUT / f"{run}_io.safetensors"))
    print(run, {key: tuple(v.shape) for key, v in io.items()}, sorted(p.name for p in ckpt_dir.iterdir()))


def _build_at(src: Path, cfg_name: str, overrides: dict, img_size: int):
    """``_build`` with another ``DATA.img_size`` (StudioGAN reads it from DATA, not MODEL)."""
    import config

    orig = config.Configurations.define_modules

    def define_modules(self):
        self.DATA.img_size = img_size
        return orig(self)

    config.Configurations.define_modules = define_modules
    try:
        return _build(src, cfg_name, overrides)
    finally:
        config.Configurations.define_modules = orig


def main() -> None:
    cli = argparse.ArgumentParser(description="StudioGAN StyleGAN2 test fixtures")
    cli.add_argument("studiogan", type=Path, help="StudioGAN checkout at the commit above")
    args = cli.parse_args()
    sys.path.insert(0, str(args.studiogan / "src"))
    _stub_unused_imports()
    _tiny_classes()
    torch.manual_seed(0)
    small = dict(z_dim=16, w_dim=16)
    make(args.studiogan, "cifar_spd", "StyleGAN2", small, 16, seed=10, n=4)
    make(args.studiogan, "ffhq_uncond", "FFHQ/StyleGAN2", small, 16, seed=20, n=8)


if __name__ == "__main__":
    main()
