"""Regenerate tests/fixtures/pretrained/nvlabs_pytorch/ by running the OFFICIAL NVlabs code on the CPU.

Two tiny networks with seeded random weights, each saved as a network pickle exactly as the official
``training/training_loop.py`` writes its snapshots (``copy.deepcopy(module).eval().requires_grad_(False)`` of
G, D, G_ema and the augment pipe, ``.cpu()``, in a dict with ``training_set_kwargs``, then ``pickle.dump``):

* ``ada_uncond.pkl``: NVlabs/stylegan2-ada-pytorch (commit d72cc7d041b42ec8e806021a205ed9349f87c6a4),
  ``training/networks.py``: 16x16, unconditional, residual D, ``num_fp16_res=2``, ``conv_clamp=256``, with a
  real ``AugmentPipe`` ('bgc'); the nested ``synthesis_kwargs`` layout of that repository's train.py.
* ``sg3_cond.pkl``: NVlabs/stylegan3 (commit c233a919a6faee6e36a316ddd4eddababad1adf9),
  ``training/networks_stylegan2.py`` (its ``--cfg=stylegan2``): 16x16, 3 classes, z_dim 24 != w_dim 32,
  3 mapping layers, ``orig`` D with a 2-layer label mapping, mbstd group 2 with 2 channels, the flat
  ``**synthesis_kwargs`` layout, ``augment_pipe=None``.

Next to each, ``<name>_io.safetensors`` holds fixed inputs and the official outputs: mapping ``ws`` of G
and G_ema (psi 1, psi 0.7, and psi 0.5 with cutoff 2), images of G and G_ema with ``noise_mode='const'``
(psi 1 and 0.7) and D's logits on random images and on G_ema's images. On the CPU the ADA code would run
its ``use_fp16`` blocks in float16, so it is called with ``force_fp32=True`` (the stylegan3 code does that by
itself off CUDA). Every parameter and buffer (but the fixed resampling filters) is randomised with a seed, so
``w_avg``, biases, noise strengths and the style biases are all non-trivial.

Command (checkouts from ``git archive`` of the two repositories; stylegan3's ``conv2d_gradfix`` imports
``pkg_resources``, here from ``pip install --target /tmp/nvlabs_pytorch-site "setuptools<80"``)::

    PYTHONPATH=/tmp/nvlabs_pytorch-site .venv/bin/python scripts/make_pretrained_fixtures_nvlabs_pytorch.py \\
        --ada /tmp/nvpt_official --sg3 /tmp/nvpt_sg3
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import subprocess
import sys
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pretrained" / "nvlabs_pytorch"


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Seeded random values for every parameter and buffer but the fixed FIR filters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("resample_filter") or not t.is_floating_point():
                continue
            r = torch.randn(t.shape, generator=gen)
            if name.endswith("affine.bias"):
                r = 1 + 0.3 * r
            elif name.endswith("bias") or name.endswith("noise_strength"):
                r = 0.3 * r
            elif name.endswith("w_avg"):
                r = 0.5 * r
            if name.startswith("mapping.fc"):
                r = r / 0.01  # stored / lr_multiplier (0.01), as the official init: ws of order 1
            t.copy_(r)


def build(kind: str) -> tuple[dict, dict]:
    import dnnlib  # type: ignore[import-not-found]

    E = dnnlib.EasyDict
    torch.manual_seed(0)
    if kind == "ada_uncond":
        from training import augment, networks  # type: ignore[import-not-found]

        common = dict(channel_base=128, channel_max=16, num_fp16_res=2, conv_clamp=256)
        G = networks.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                               mapping_kwargs=E(num_layers=2), synthesis_kwargs=E(**common))
        D = networks.Discriminator(c_dim=0, img_resolution=16, img_channels=3, architecture="resnet",
                                   block_kwargs=E(), mapping_kwargs=E(), epilogue_kwargs=E(mbstd_group_size=4),
                                   **common)
        pipe = augment.AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                                   brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
        pipe.train().requires_grad_(False)
        fp32 = dict(force_fp32=True)
    else:
        from training import networks_stylegan2 as networks  # type: ignore[import-not-found]

        common = dict(channel_base=128, channel_max=16, num_fp16_res=4, conv_clamp=256)
        G = networks.Generator(z_dim=24, c_dim=3, w_dim=32, img_resolution=16, img_channels=3,
                               mapping_kwargs=E(num_layers=3), fused_modconv_default="inference_only", **common)
        D = networks.Discriminator(c_dim=3, img_resolution=16, img_channels=3, architecture="orig",
                                   block_kwargs=E(freeze_layers=0), mapping_kwargs=E(num_layers=2),
                                   epilogue_kwargs=E(mbstd_group_size=2, mbstd_num_channels=2), **common)
        pipe = None
        fp32 = {}
    _randomise(G, 1)
    _randomise(D, 2)
    G_ema = copy.deepcopy(G).eval()
    _randomise(G_ema, 3)  # a distinct EMA copy, so that the test tells G and G_ema apart
    # training_loop.py, "Save network snapshot"
    snapshot = dict(training_set_kwargs=dict(E(class_name="training.dataset.ImageFolderDataset", path="~/data.zip",
                                                 use_labels=G.c_dim > 0, max_size=100, xflip=False, resolution=16)))
    for name, module in [("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", pipe)]:
        if module is not None:
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        snapshot[name] = module

    gen = torch.Generator().manual_seed(4)
    n = 4
    z = torch.randn(n, G.z_dim, generator=gen)
    c = torch.nn.functional.one_hot(torch.arange(n) % max(G.c_dim, 1), max(G.c_dim, 1)).float()[:, : G.c_dim]
    x = torch.randn(n, 3, 16, 16, generator=gen)
    io = dict(z=z, c=c, x=x)
    G_s, G_ema_s, D_s = snapshot["G"], snapshot["G_ema"], snapshot["D"]
    with torch.no_grad():
        for key, net in (("G", G_s), ("G_ema", G_ema_s)):
            io[f"{key}_ws"] = net.mapping(z, c)
            io[f"{key}_ws_psi07"] = net.mapping(z, c, truncation_psi=0.7)
            io[f"{key}_ws_psi05_cut2"] = net.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2)
            io[f"{key}_img"] = net(z, c, noise_mode="const", **fp32)
            io[f"{key}_img_psi07"] = net(z, c, truncation_psi=0.7, noise_mode="const", **fp32)
        io["D_real"] = D_s(x, c, **fp32)
        io["D_fake"] = D_s(io["G_ema_img"], c, **fp32)
    return snapshot, {k: v.contiguous() for k, v in io.items()}


def one(kind: str) -> None:
    from safetensors.torch import save_file

    snapshot, io = build(kind)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / f"{kind}.pkl", "wb") as f:
        pickle.dump(snapshot, f)
    save_file(io, str(OUT / f"{kind}_io.safetensors"))
    print(kind, {k: tuple(v.shape) for k, v in io.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ada", help="checkout of NVlabs/stylegan2-ada-pytorch")
    parser.add_argument("--sg3", help="checkout of NVlabs/stylegan3")
    parser.add_argument("--one", choices=["ada_uncond", "sg3_cond"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one)
        return
    # The two repositories both name their packages training/torch_utils/dnnlib: one process each.
    for kind, root in (("ada_uncond", args.ada), ("sg3_cond", args.sg3)):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        subprocess.run([sys.executable, __file__, "--one", kind], check=True, env=env, cwd=root)


if __name__ == "__main__":
    main()
