"""Regenerate tests/fixtures/pretrained/biggan_pytorch/ by running BigGAN-PyTorch's own code.

Source: https://github.com/ajbrock/BigGAN-PyTorch at commit 98459431a5d618d644d54cd1e9fceb1e5045648d
(2019-07-18). For each of three tiny runs this script

1. builds the config as ``train.py`` does (``utils.prepare_parser`` on launch-script-like flags, then
   ``resolution``/``n_classes`` from the dataset and the activation modules from ``utils.activation_dict``),
   and G, D and the EMA copy with ``BigGAN.py`` / ``BigGANdeep.py`` (``train.py``'s calls, ``utils.ema``);
2. gives them non-trivial seeded state: every parameter plus noise (attention gains and the output BN's
   gain/bias far from their 0/1 initial values), three train-mode forwards of G and D (so the ``u0``/``sv0``
   spectral-norm buffers and the BN ``stored_mean``/``stored_var`` move), and one ``ema.update`` with
   decay 0.5 (so G_ema differs from G, buffers included);
3. saves the folder with ``utils.save_weights`` (``G.pth``, ``G_optim.pth``, ``D.pth``, ``D_optim.pth``,
   ``state_dict.pth``, ``G_ema.pth``), exactly as ``train_fns.save_and_sample`` does;
4. records fixed inputs and the official outputs in ``<run>_io.safetensors``: ``G(z, G.shared(y))`` of G
   and G_ema in eval mode and in train mode (batch statistics, one power iteration), and the eval-mode D
   logits ``D(x, y)`` of random images and of G_ema's images.

Runs: ``biggan`` (BigGAN.py, 32 px, G_ch/D_ch 4, hier z 32, shared 16, attention 16 in G and D, saved in
torch's legacy non-zip format as the published torch-1.0 files are), ``biggan_cifar`` (BigGAN.py, the
CIFAR script's layout: no shared embedding, no hier, no attention, N02 init; zip format) and
``biggan_deep`` (BigGANdeep.py, 32 px, depth 2, attention 16; zip format).

Command (``datasets.py`` imports h5py, which the ganzoo venv lacks)::

    git --git-dir=<mirror of ajbrock/BigGAN-PyTorch> archive 98459431a5d6 | tar -x -C /tmp/bgp
    .venv/bin/pip install --no-deps --target /tmp/biggan_pytorch-site h5py
    PYTHONPATH=/tmp/bgp:/tmp/biggan_pytorch-site .venv/bin/python \\
        scripts/make_pretrained_fixtures_biggan_pytorch.py /tmp/bgp
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pretrained" / "biggan_pytorch"
N = 2  # samples per fixed batch

COMMON = ["--dataset", "C10", "--G_nl", "inplace_relu", "--D_nl", "inplace_relu", "--ema", "--use_ema",
          "--ema_start", "0", "--ema_decay", "0.5", "--num_D_steps", "1", "--seed", "0"]
RUNS: dict[str, dict] = {
    # launch_BigGAN_bs256x8.sh's flags at a tiny width, attention in G and D.
    "biggan": dict(legacy=True, flags=[
        "--G_ch", "4", "--D_ch", "4", "--dim_z", "32", "--shared_dim", "16", "--hier", "--G_shared",
        "--G_attn", "16", "--D_attn", "16", "--SN_eps", "1e-6", "--BN_eps", "1e-5", "--adam_eps", "1e-6",
        "--G_lr", "1e-4", "--D_lr", "4e-4", "--G_init", "ortho", "--D_init", "ortho"]),
    # launch_cifar_ema.sh: parser defaults for the rest (no G_shared, no hier, SN_eps 1e-8).
    "biggan_cifar": dict(legacy=False, flags=[
        "--G_ch", "2", "--D_ch", "2", "--dim_z", "16", "--G_attn", "0", "--D_attn", "0",
        "--G_init", "N02", "--D_init", "N02", "--G_lr", "2e-4", "--D_lr", "2e-4", "--num_D_steps", "4"]),
    # launch_BigGAN_deep.sh's flags at a tiny width.
    "biggan_deep": dict(legacy=False, flags=[
        "--model", "BigGANdeep", "--G_ch", "4", "--D_ch", "4", "--G_depth", "2", "--D_depth", "2",
        "--dim_z", "8", "--shared_dim", "8", "--hier", "--G_shared", "--G_attn", "16", "--D_attn", "16",
        "--SN_eps", "1e-6", "--BN_eps", "1e-5", "--adam_eps", "1e-6", "--G_init", "ortho", "--D_init", "ortho"]),
}


def _config(flags: list[str]) -> dict:
    """train.py's ``run``: parse, then dataset-derived numbers and activation modules."""
    import utils  # BigGAN-PyTorch's utils.py

    config = vars(utils.prepare_parser().parse_args(COMMON + flags))
    config["resolution"] = utils.imsize_dict[config["dataset"]]
    config["n_classes"] = utils.nclass_dict[config["dataset"]]
    config["G_activation"] = utils.activation_dict[config["G_nl"]]
    config["D_activation"] = utils.activation_dict[config["D_nl"]]
    config["skip_init"] = False
    return config


@torch.no_grad()
def _perturb(net: torch.nn.Module, gen: torch.Generator) -> None:
    for name, p in net.named_parameters():
        if name.endswith("gamma"):
            p.copy_(torch.empty_like(p).uniform_(0.5, 1.5, generator=gen))  # attention on, not the identity
        elif name.startswith("output_layer.0."):
            p.add_(0.5 * torch.randn(p.shape, generator=gen))
        else:
            p.add_(0.05 * p.detach().abs().mean() * torch.randn(p.shape, generator=gen))


def _make_run(name: str, spec: dict, root: Path) -> None:
    import utils

    config = _config(spec["flags"])
    utils.seed_rng(config["seed"])
    model = __import__(config["model"])
    G = model.Generator(**config)
    D = model.Discriminator(**config)
    G_ema = model.Generator(**{**config, "skip_init": True, "no_optim": True})
    ema = utils.ema(G, G_ema, config["ema_decay"], config["ema_start"])
    gen = torch.Generator().manual_seed(1234)
    _perturb(G, gen)
    _perturb(D, gen)
    G.train()
    D.train()
    with torch.no_grad():
        for _ in range(3):  # move the SN and BN buffers as training steps would
            zz = torch.randn(8, G.dim_z, generator=gen)
            yy = torch.randint(0, config["n_classes"], (8,), generator=gen)
            D(G(zz, G.shared(yy)), yy)
    ema.update(config["ema_start"] + 1)
    state_dict = {"itr": 7, "epoch": 1, "save_num": 0, "save_best_num": 0, "best_IS": 1.5, "best_FID": 321.0,
                  "config": config}
    run_dir = root / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    save = torch.save
    if spec["legacy"]:  # the published files come from torch 1.0, which wrote the legacy stream
        torch.save = functools.partial(save, _use_new_zipfile_serialization=False)
    try:
        utils.save_weights(G, D, state_dict, str(root), name, None, G_ema)
    finally:
        torch.save = save

    z = torch.randn(N, G.dim_z, generator=gen)
    y = torch.randint(0, config["n_classes"], (N,), generator=gen)
    x = torch.rand(N, 3, config["resolution"], config["resolution"], generator=gen) * 2 - 1
    io = {"z": z, "y": y, "x": x}
    with torch.no_grad():
        for key, net in (("G", G), ("G_ema", G_ema)):
            net.eval()
            io[f"{key}_eval"] = net(z, net.shared(y))
            train_copy = copy.deepcopy(net).train()
            io[f"{key}_train"] = train_copy(z, train_copy.shared(y))
        D.eval()
        io["D_real"] = D(x, y)
        io["D_fake"] = D(io["G_ema_eval"], y)
    save_file({k: v.contiguous() for k, v in io.items()}, str(root / f"{name}_io.safetensors"))
    print(name, {k: tuple(v.shape) for k, v in io.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("official", type=Path, help="checkout of ajbrock/BigGAN-PyTorch")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sys.path.insert(0, str(args.official.resolve()))
    args.out.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(args.official)  # utils.prepare_parser's roots are relative; nothing is written there
    try:
        for name, spec in RUNS.items():
            _make_run(name, spec, args.out.resolve())
    finally:
        os.chdir(cwd)


if __name__ == "__main__":
    main()
