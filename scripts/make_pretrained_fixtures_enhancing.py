"""Regenerate the enhancing-transformers (ViT-VQGAN) fixtures of ``tests/test_pretrained_enhancing.py``.

Runs the OFFICIAL code of thuanz123/enhancing-transformers (commit e1c185da5cc0eeefdded68cbff888d5b9c248372,
2025-04-07) at a tiny size with seeded random weights and writes to ``tests/fixtures/pretrained/enhancing/``:

* ``vitvq_tiny.ckpt.xz``: an ``enhancing.modules.stage1.vitvqgan.ViTVQ`` (16x16 RGB, 4x4 patches, encoder of 2
  blocks and decoder of 1 block, width 128, 2 heads of the default ``dim_head`` 64, MLP 64, 32 codes of 8 dims),
  saved by PyTorch Lightning's own ``Trainer.save_checkpoint`` (pytorch-lightning 1.5.10, the version the
  repository pins) after ``trainer.training_type_plugin.connect(model)``, without a training step, then xz-compressed;
* ``vitvq_narrow_decoder.ckpt.xz``: the same encoder with 1 block and a decoder of width 64 with one head (so the
  official attention has no output layer, ``to_out = Identity``, and ``post_quant`` maps to a width other than the
  encoder's), with only the official ``DummyLoss`` (no discriminator, no LPIPS), saved the same way;
* ``outputs.safetensors``: fixed images in [0, 1] (the official data range) and the official outputs: code indices
  (``encode_codes``), reconstructions (``forward``), the decoder output from those codes (``decode_codes``), the
  quantizer loss, and the discriminator's logits for the images and for the reconstructions; ``narrow_*`` the same
  for the second file (no logits).

Deviations from a published file, all forced by running offline on CPU and keeping the fixtures small:

* the loss: published checkpoints hold a ``VQLPIPSWithDiscriminator`` whose VGG-16 LPIPS (``loss.perceptual_loss``)
  needs a download and whose ``StyleDiscriminator`` has 512 channels at every resolution up to 32 (at least 9 MB).
  Here the loss is the official ``DummyLoss`` and carries, under the same attribute names, (a) an LPIPS
  (``lpips.LPIPS(net="vgg", pnet_rand=True)``, the package the official loss uses) without its VGG trunk, so the
  ``loss.perceptual_loss.*`` keys that ganzoo drops are present, and (b) a ``StyleDiscriminator`` object whose
  layers are the official ``ConvLayer`` / ``StyleBlock`` / ``EqualLinear`` built with a small channel table
  (16x16: 16, 8x8: 32, 4x4: 32) and whose forward is the official ``StyleDiscriminator.forward``;
* the CUDA extensions of ``enhancing/losses/op`` are compiled at import by ``torch.utils.cpp_extension.load``; that
  call is stubbed (no CUDA here) and the official CPU paths run (``fused_leaky_relu``'s CPU branch,
  ``upfirdn2d_native``);
* ``np.float`` (used by the official sin-cos code, removed in numpy 1.24) is set to ``float`` before building;
* every floating weight with more than 256 entries is rounded to a float8 (e4m3) value (still stored as float32,
  as the official code stores it) so that the checkpoint compresses; biases and LayerNorm weights are perturbed
  from their zero / one initialisation so that a wrong mapping of them shows.

Command (from the repository root; /tmp/enhancing-site holds pytorch-lightning 1.5.10, torchmetrics 0.6.0,
pyDeprecate 0.3.1, einops 0.3.0, kornia 0.5.11, tensorboard 2.14.0, absl-py 2.1.0 and setuptools 69.5.1, installed
with ``pip install --no-deps --target``; lpips and omegaconf come from the ganzoo venv)::

    PYTHONPATH=/tmp/enhancing:/tmp/enhancing-site .venv/bin/python scripts/make_pretrained_fixtures_enhancing.py

where /tmp/enhancing is a checkout of that commit.
"""

from __future__ import annotations

import lzma
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pretrained" / "enhancing"
SEED = 20240907
IMAGE, PATCH, DIM, HEADS, MLP = 16, 4, 128, 2, 64
D_CHANNELS = {16: 16, 8: 32, 4: 32}


def _stubs() -> None:
    import torch.utils.cpp_extension as cpp

    np.float = float  # removed in numpy 1.24; enhancing's get_1d_sincos_pos_embed_from_grid uses it
    np.Inf = np.inf  # removed in numpy 2; Lightning 1.5's ModelCheckpoint reads it

    def no_cuda_build(name: str, *args: object, **kwargs: object) -> object:
        return None  # the official ops take their CPU branches and never touch the compiled module

    cpp.load = no_cuda_build


def _tiny_discriminator() -> nn.Module:
    """A StyleDiscriminator object of the official layers with the small channel table ``D_CHANNELS``."""
    from enhancing.losses.layers import ConvLayer, EqualLinear, StyleBlock, StyleDiscriminator

    d = StyleDiscriminator.__new__(StyleDiscriminator)
    nn.Module.__init__(d)
    blocks: list[nn.Module] = [ConvLayer(3, D_CHANNELS[IMAGE], 1)]
    res, ch = IMAGE, D_CHANNELS[IMAGE]
    while res > 4:
        blocks.append(StyleBlock(ch, D_CHANNELS[res // 2]))
        res, ch = res // 2, D_CHANNELS[res // 2]
    d.blocks = nn.Sequential(*blocks)
    d.stddev_group, d.stddev_feat = 4, 1
    d.final_conv = ConvLayer(ch + 1, D_CHANNELS[4], 3)
    d.final_linear = nn.Sequential(EqualLinear(D_CHANNELS[4] * 16, D_CHANNELS[4], activation="fused_lrelu"),
                                   EqualLinear(D_CHANNELS[4], 1))
    return d


def _lpips_without_trunk() -> nn.Module:
    import lpips

    perceptual = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    del perceptual.net  # the 14.7M-parameter VGG-16 trunk; its lin heads and scaling layer stay
    return perceptual


def _build(encoder: dict, decoder: dict, loss_parts: bool) -> nn.Module:
    from enhancing.modules.stage1.vitvqgan import ViTVQ
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(dict(
        image_key="image", image_size=IMAGE, patch_size=PATCH, encoder=encoder, decoder=decoder,
        quantizer=dict(embed_dim=8, n_embed=32),
        loss=dict(target="enhancing.losses.vqperceptual.DummyLoss"),
    ))
    model = ViTVQ(**cfg)
    if loss_parts:
        model.loss.perceptual_loss = _lpips_without_trunk()
        model.loss.discriminator = _tiny_discriminator()
    model.learning_rate = 1e-4  # main.py sets it before training; configure_optimizers reads it
    return model.eval()


def _perturb(model: nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad or name.startswith("loss.perceptual_loss"):
                continue  # the fixed sin-cos position embeddings; LPIPS heads stay as loaded
            if name.endswith("bias") or p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
            if p.numel() > 256:
                p.copy_(p.to(torch.float8_e4m3fn).float())


def _gap(model: nn.Module, x: torch.Tensor) -> float:
    """Smallest margin between the nearest and second-nearest code (squared l2 distance of unit vectors)."""
    import torch.nn.functional as F

    with torch.no_grad():
        h = F.normalize(model.pre_quant(model.encoder(x)).reshape(-1, 8), dim=1)
        e = F.normalize(model.quantizer.embedding.weight, dim=1)
        d = torch.cdist(h, e).pow(2).sort(dim=1).values
        return float((d[:, 1] - d[:, 0]).min())


def _clear_input(model: nn.Module, n: int) -> torch.Tensor:
    """Images in [0, 1] whose codes have no near tie (so the exact-index test tests the conversion, not luck)."""
    best, best_gap = None, -1.0
    for _ in range(50):
        x = torch.rand(n, 3, IMAGE, IMAGE)
        gap = _gap(model, x)
        if gap > best_gap:
            best, best_gap = x, gap
    print(f"smallest squared-distance margin to the second-nearest code: {best_gap:.3g}")
    return best


def _save(model: nn.Module, out: Path, name: str) -> None:
    import pytorch_lightning as pl

    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(default_root_dir=tmp, logger=False, checkpoint_callback=False, max_epochs=1,
                             enable_progress_bar=False, enable_model_summary=False)
        trainer.training_type_plugin.connect(model)
        ckpt = Path(tmp) / f"{name}.ckpt"
        trainer.save_checkpoint(ckpt)
        with open(ckpt, "rb") as src, lzma.open(out / f"{name}.ckpt.xz", "wb", preset=9) as dst:
            shutil.copyfileobj(src, dst)


def main() -> None:
    from safetensors.torch import save_file

    _stubs()
    torch.manual_seed(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    vit = dict(dim=DIM, heads=HEADS, mlp_dim=MLP)
    narrow = dict(dim=64, heads=1, depth=1, mlp_dim=MLP)  # heads * dim_head (64) == dim: no to_out layer
    for name, prefix, enc, dec, loss_parts in (("vitvq_tiny", "", dict(depth=2, **vit), dict(depth=1, **vit), True),
                                               ("vitvq_narrow_decoder", "narrow_", dict(depth=1, **vit), narrow,
                                                False)):
        model = _build(enc, dec, loss_parts)
        _perturb(model)
        x = _clear_input(model, 4)
        with torch.no_grad():
            codes = model.encode_codes(x)  # [4, 16] raster order
            rec, qloss = model(x)
            dec_out = model.decode_codes(codes)
            out = dict(images=x, codes=codes.long(), reconstructions=rec, decoded=dec_out, quant_loss=qloss.reshape(1))
            if loss_parts:
                out.update(d_logits=model.loss.discriminator(x), d_logits_rec=model.loss.discriminator(rec))
        _save(model, OUT, name)
        tensors.update({prefix + k: v for k, v in out.items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT / "outputs.safetensors"))
    for path in sorted(OUT.iterdir()):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
