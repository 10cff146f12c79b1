"""Regenerate the taming-transformers fixtures of ``tests/test_pretrained_taming.py``.

Runs the OFFICIAL code of CompVis/taming-transformers (commit 3ba01b241669f5ade541ce990f7650a3b8f65318,
2022-11-07) at a tiny size with seeded random weights and saves, laid out as taming's ``main.py`` lays out a
log directory (``checkpoints/last.ckpt`` + ``configs/<time>-project.yaml``):

* ``vqgan/``: a ``taming.models.vqgan.VQModel`` (ch 32, ch_mult (1, 2), one block per level, attention at
  8x8, 16x16 RGB, 32 codes of 8 dims) with its ``VQLPIPSWithDiscriminator`` loss (PatchGAN ndf 8, 2 layers);
* ``cin_transformer/``: a ``taming.models.cond_transformer.Net2NetTransformer`` shaped as
  ``cin_transformer``: class-conditional (``Labelator``, 10 classes, ``cond_stage_key: class_label``), a
  2-layer minGPT of width 32 over the 8x8 codes of its own tiny VQModel (``DummyLoss``, as the published
  transformers' first stages);
* ``depth_transformer/``: a ``Net2NetTransformer`` shaped as ``drin_transformer``: conditioned on a one-channel
  "depth" map through its own ``VQModel`` cond stage (24 codes; ``cond_stage_key: depth``), the 64 depth codes
  before the 64 image codes in one shared vocabulary of 32;
* ``coord_transformer/``: a ``Net2NetTransformer`` shaped as ``faceshq_transformer``: conditioned on the crop's
  coordinate map through taming's parameter-free ``CoordStage`` (n_embed 32, down_factor 2: 64 tokens);
* ``seg_transformer/``: a ``Net2NetTransformer`` on label maps (S-FLCKR's layout): a ``VQSegmentationModel`` cond
  stage of 5 labels (24 codes, with its ``colorize`` buffer), fed one-hot maps as taming's segmentation data;
* ``outputs.safetensors``: fixed inputs and the official outputs (reconstructions, code indices, decoder output
  from codes, D logits, quantizer loss, transformer logits for fixed code sequences and classes or depth maps).

Both checkpoints are written by PyTorch Lightning's own ``Trainer.save_checkpoint`` (pytorch-lightning 1.9.5:
taming pins 1.0.8, which does not import on torch 2) after ``trainer.strategy.connect(model)``, without a
training step, so ``optimizer_states`` is empty.

Deviations from a published file, all forced by running offline and keeping the fixtures small:

* the LPIPS network inside the loss (``loss.perceptual_loss.*``) keeps taming's layer layout and key names but
  its VGG-16 trunk is 1/16 as wide and random (torchvision's ImageNet VGG-16, 528 MB, and taming's
  ``vgg_lpips`` heads are downloads); ganzoo drops these tensors anyway (its LPIPS is loaded at training start);
* weights with more than 256 entries are rounded to float8 (e4m3) values (still stored as float32, as taming does) so
  that the checkpoints compress: they are stored as ``last.ckpt.xz`` and the tests decompress them;
* ``torch._six`` (imported by taming's ``taming/data/utils.py``, gone in torch 2) and ``transformers`` (imported by
  ``mingpt.py`` only for its sampling filter, never called here) are stubbed.

Command (from the repository root; the private site holds pytorch-lightning 1.9.5, lightning-utilities 0.11.9,
torchmetrics 0.11.4, einops 0.6.1 and setuptools 69.5.1, installed with ``pip install --no-deps --target``)::

    PYTHONPATH=/tmp/taming:/tmp/taming-site .venv/bin/python scripts/make_pretrained_fixtures_taming.py

where /tmp/taming is a checkout of that commit.
"""

from __future__ import annotations

import importlib.machinery
import lzma
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pretrained" / "taming"
SEED = 20240518


def _stubs() -> None:
    import numpy as np

    np.Inf = np.inf  # removed in numpy 2; Lightning 1.9's ModelCheckpoint still reads it
    import pytorch_lightning  # noqa: F401  (before the transformers stub: torchmetrics probes the real package)

    six = types.ModuleType("torch._six")
    six.string_classes = (str, bytes)
    tr = types.ModuleType("transformers")

    def top_k_top_p_filtering(*args, **kwargs):  # pragma: no cover - never called by the fixture
        raise RuntimeError("stub")

    tr.top_k_top_p_filtering = top_k_top_p_filtering
    for mod in (six, tr):
        mod.__spec__ = importlib.machinery.ModuleSpec(mod.__name__, None)
        sys.modules[mod.__name__] = mod


def _narrow_lpips() -> None:
    """taming's LPIPS with a random VGG-16 trunk of 1/16 width (same 30 feature layers and key names)."""
    import taming.modules.losses.lpips as lp
    from torchvision.models.vgg import make_layers

    cfg = [4, 4, "M", 8, 8, "M", 16, 16, 16, "M", 32, 32, 32, "M", 32, 32, 32, "M"]
    lp.models = types.SimpleNamespace(vgg16=lambda pretrained=False, **_: types.SimpleNamespace(
        features=make_layers(cfg)))
    lp.LPIPS.load_from_pretrained = lambda self, name="vgg_lpips": None


def _round(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point() and t.numel() > 256:
                t.copy_(t.to(torch.float8_e4m3fn).float())


def _gap(vq, x: torch.Tensor) -> float:
    """Smallest margin between the nearest and the second-nearest code (squared distances) over all positions."""
    with torch.no_grad():
        h = vq.quant_conv(vq.encoder(x)).permute(0, 2, 3, 1).reshape(-1, vq.quantize.e_dim)
        d = torch.cdist(h, vq.quantize.embedding.weight).pow(2).sort(dim=1).values
        return float((d[:, 1] - d[:, 0]).min())


def _clear_input(vq, n: int, channels: int = 3) -> torch.Tensor:
    """Images in [-1, 1] whose codes have no near tie (so that the exact-index test tests conversion, not luck)."""
    best, best_gap = None, -1.0
    for _ in range(50):
        x = torch.rand(n, channels, 16, 16) * 2 - 1
        gap = _gap(vq, x)
        if gap > best_gap:
            best, best_gap = x, gap
    print(f"smallest squared-distance margin to the second-nearest code: {best_gap:.3g}")
    return best


def _save(model, cfg: dict, run: Path, stamp: str) -> None:
    """Lightning's own save: ``Trainer.save_checkpoint``; the config as main.py's SetupCallback writes it."""
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    with tempfile.TemporaryDirectory() as tmp:
        # main.py's default checkpoint callback (taming main.py: modelcheckpoint, save_last)
        ckpt_cb = pl.callbacks.ModelCheckpoint(dirpath=tmp, filename="{epoch:06}", verbose=True, save_last=True)
        trainer = pl.Trainer(default_root_dir=tmp, logger=False, accelerator="cpu", devices=1, callbacks=[ckpt_cb],
                             enable_progress_bar=False, enable_model_summary=False)
        trainer.strategy.connect(model)
        ckpt = Path(tmp) / "last.ckpt"
        trainer.save_checkpoint(ckpt)
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)
        with open(ckpt, "rb") as src, lzma.open(run / "checkpoints" / "last.ckpt.xz", "wb", preset=9) as dst:
            shutil.copyfileobj(src, dst)
    (run / "configs").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(cfg), run / "configs" / f"{stamp}-project.yaml")


def _ddconfig(ch_mult: list[int], attn: list[int], channels: int = 3) -> dict:
    return dict(double_z=False, z_channels=16, resolution=16, in_channels=channels, out_ch=channels, ch=32,
                ch_mult=ch_mult, num_res_blocks=1, attn_resolutions=attn, dropout=0.0)


def _net2net(cond_key: str, first: dict, cond: dict) -> tuple[dict, torch.nn.Module]:
    """A tiny Net2NetTransformer (2 layers of width 32, vocabulary 32, 128 positions) on ``cond``, with trained-like
    codebooks and position embeddings, rounded and in eval mode."""
    from main import instantiate_from_config  # taming's main.py

    cfg = {"model": {"base_learning_rate": 4.5e-6, "target": "taming.models.cond_transformer.Net2NetTransformer",
                     "params": {
        "first_stage_key": "image", "cond_stage_key": cond_key,
        "transformer_config": {"target": "taming.modules.transformer.mingpt.GPT", "params": {
            "vocab_size": 32, "block_size": 128, "n_layer": 2, "n_head": 2, "n_embd": 32}},
        "first_stage_config": first, "cond_stage_config": cond}}}
    model = instantiate_from_config(cfg["model"])
    with torch.no_grad():
        model.first_stage_model.quantize.embedding.weight.normal_(0.0, 0.5)
        if hasattr(model.cond_stage_model, "quantize"):
            model.cond_stage_model.quantize.embedding.weight.normal_(0.0, 0.5)
        model.transformer.pos_emb.normal_(0.0, 0.02)
    _round(model)
    return cfg, model.eval()


def main() -> None:
    _stubs()
    from main import instantiate_from_config  # taming's main.py

    _narrow_lpips()
    from safetensors.torch import save_file

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    out: dict[str, torch.Tensor] = {}

    # -- stage 1: VQModel with VQLPIPSWithDiscriminator -----------------------------------------------------------
    torch.manual_seed(SEED)
    vq_cfg = {"model": {"base_learning_rate": 4.5e-6, "target": "taming.models.vqgan.VQModel", "params": {
        "embed_dim": 8, "n_embed": 32, "ddconfig": _ddconfig([1, 2], [8]),
        "lossconfig": {"target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator", "params": {
            "disc_conditional": False, "disc_in_channels": 3, "disc_start": 10001, "disc_weight": 0.8,
            "codebook_weight": 1.0, "disc_ndf": 8, "disc_num_layers": 2}}}}}
    vq = instantiate_from_config(vq_cfg["model"])
    with torch.no_grad():  # codebook spread like trained codes (taming's init is U(-1/K, 1/K), all ties)
        vq.quantize.embedding.weight.normal_(0.0, 0.5)
    _round(vq)
    disc = vq.loss.discriminator
    with torch.no_grad():  # BatchNorm running statistics as after training (official forward, train mode)
        disc.train()
        for _ in range(3):
            disc(torch.rand(4, 3, 16, 16) * 2 - 1)
    vq.eval()
    x = _clear_input(vq, 3)
    with torch.no_grad():
        quant, qloss, (_, _, ind) = vq.encode(x)
        rec = vq.decode(quant)
        codes = torch.randint(0, 32, (2, 8, 8))
        dec = vq.decode(vq.quantize.get_codebook_entry(codes.reshape(-1), (2, 8, 8, 8)))
        out.update({"vq.x": x, "vq.indices": ind.view(3, 8, 8), "vq.rec": rec, "vq.qloss": qloss.reshape(1),
                    "vq.codes": codes, "vq.dec": dec, "vq.d_real": disc.eval()(x), "vq.d_rec": disc(rec)})
    _save(vq, vq_cfg, OUT / "vqgan", "2026-12-03T12-00-00")

    # -- stage 2: class-conditional Net2NetTransformer (cin_transformer shrunk) -------------------------------------
    torch.manual_seed(SEED + 1)
    tr_cfg = {"model": {"base_learning_rate": 4.5e-6, "target": "taming.models.cond_transformer.Net2NetTransformer",
                        "params": {
        "first_stage_key": "image", "cond_stage_key": "class_label",
        "transformer_config": {"target": "taming.modules.transformer.mingpt.GPT", "params": {
            "vocab_size": 32, "block_size": 64, "n_layer": 2, "n_head": 2, "n_embd": 32}},
        "first_stage_config": {"target": "taming.models.vqgan.VQModel", "params": {
            "embed_dim": 8, "n_embed": 32, "ddconfig": _ddconfig([1, 1], []),
            "lossconfig": {"target": "taming.modules.losses.DummyLoss"}}},
        "cond_stage_config": {"target": "taming.modules.util.Labelator", "params": {"n_classes": 10}}}}}
    tr = instantiate_from_config(tr_cfg["model"])
    with torch.no_grad():
        tr.first_stage_model.quantize.embedding.weight.normal_(0.0, 0.5)
        tr.transformer.pos_emb.normal_(0.0, 0.02)  # taming starts it at zero; trained models do not keep that
    _round(tr)
    tr.eval()
    xt = _clear_input(tr.first_stage_model, 2)
    ct = torch.tensor([3, 7])
    with torch.no_grad():
        logits_img, target = tr(xt, ct)  # Net2NetTransformer.forward: codes of the image after the class token
        seq = torch.randint(0, 32, (2, 64))
        logits_seq, _ = tr.transformer(torch.cat([ct[:, None], seq[:, :-1]], dim=1))
    out.update({"tr.x": xt, "tr.c": ct, "tr.indices": target, "tr.logits_img": logits_img, "tr.seq": seq,
                "tr.logits_seq": logits_seq})
    _save(tr, tr_cfg, OUT / "cin_transformer", "2026-12-03T12-30-00")

    # -- stage 2 on a learned condition: depth-to-image Net2NetTransformer (drin_transformer shrunk) ---------------
    torch.manual_seed(SEED + 2)
    first = {"target": "taming.models.vqgan.VQModel", "params": {
        "embed_dim": 8, "n_embed": 32, "ddconfig": _ddconfig([1, 1], []),
        "lossconfig": {"target": "taming.modules.losses.DummyLoss"}}}
    # One channel, fewer codes than the image's. sane_index_shape: at this commit VectorQuantizer2 returns flat
    # indices [N*h*w], which encode_to_c cannot batch (IndexError in torch.cat); [N, h, w] indices it flattens.
    cond = {"target": "taming.models.vqgan.VQModel", "params": {
        "embed_dim": 8, "n_embed": 24, "ddconfig": _ddconfig([1, 1], [], channels=1), "sane_index_shape": True,
        "lossconfig": {"target": "taming.modules.losses.DummyLoss"}}}
    dr_cfg, dr = _net2net("depth", first, cond)
    xd = _clear_input(dr.first_stage_model, 2)
    cd = _clear_input(dr.cond_stage_model, 2, channels=1)
    with torch.no_grad():
        logits_img, target = dr(xd, cd)  # the image's codes after the 64 depth codes
        _, c_ind = dr.encode_to_c(cd)
        seq = torch.randint(0, 32, (2, 64))
        logits_seq, _ = dr.transformer(torch.cat([c_ind, seq[:, :-1]], dim=1))
    out.update({"dr.x": xd, "dr.c": cd, "dr.indices": target, "dr.c_indices": c_ind, "dr.logits_img": logits_img,
                "dr.seq": seq, "dr.logits_seq": logits_seq})
    _save(dr, dr_cfg, OUT / "depth_transformer", "2026-12-03T13-00-00")

    # -- stage 2 on coordinates: CoordStage Net2NetTransformer (faceshq_transformer shrunk) -------------------------
    torch.manual_seed(SEED + 3)
    co_cfg, co = _net2net("coord", first, {"target": "taming.modules.misc.coord.CoordStage",
                                           "params": {"n_embed": 32, "down_factor": 2}})
    xc = _clear_input(co.first_stage_model, 2)
    # taming/data/faceshq.py with the crop the whole frame: np.arange(h*w).reshape(h,w,1)/(h*w), HWC -> NCHW
    coord = torch.from_numpy(np.arange(16 * 16).reshape(16, 16, 1) / (16 * 16)).permute(2, 0, 1)[None].float()
    cc = coord.expand(2, 1, 16, 16).contiguous()
    with torch.no_grad():
        logits_img, target = co(xc, cc)
        _, c_ind = co.encode_to_c(cc)
    out.update({"co.x": xc, "co.c": cc, "co.indices": target, "co.c_indices": c_ind, "co.logits_img": logits_img})
    _save(co, co_cfg, OUT / "coord_transformer", "2026-12-03T13-30-00")

    # -- stage 2 on label maps: a VQSegmentationModel cond stage (S-FLCKR's layout, shrunk) -------------------------
    torch.manual_seed(SEED + 4)
    seg = {"target": "taming.models.vqgan.VQSegmentationModel", "params": {
        "n_labels": 5, "embed_dim": 8, "n_embed": 24, "ddconfig": _ddconfig([1, 1], [], channels=5),
        "sane_index_shape": True, "lossconfig": {"target": "taming.modules.losses.DummyLoss"}}}
    sg_cfg, sg = _net2net("segmentation", first, seg)
    xs = _clear_input(sg.first_stage_model, 2)
    # Label maps as taming's segmentation data feeds them: np.eye(n_labels)[segmentation], HWC -> NCHW. The maps
    # are blocky (4x4 cells) like real segmentations; the one whose codes have the widest margin is kept.
    best, best_gap = None, -1.0
    for _ in range(50):
        cells = torch.randint(0, 5, (2, 4, 4))
        labels = cells.repeat_interleave(4, 1).repeat_interleave(4, 2)
        onehot = torch.from_numpy(np.eye(5)[labels.numpy()]).permute(0, 3, 1, 2).float()
        gap = _gap(sg.cond_stage_model, onehot)
        if gap > best_gap:
            best, best_gap = (labels, onehot), gap
    print(f"label maps: smallest squared-distance margin {best_gap:.3g}")
    labels, cs = best
    with torch.no_grad():
        logits_img, target = sg(xs, cs)
        _, c_ind = sg.encode_to_c(cs)
    out.update({"sg.x": xs, "sg.labels": labels.to(torch.uint8), "sg.c": cs, "sg.indices": target,
                "sg.c_indices": c_ind, "sg.logits_img": logits_img})
    _save(sg, sg_cfg, OUT / "seg_transformer", "2026-12-03T14-00-00")

    save_file({k: v.contiguous() for k, v in out.items()}, str(OUT / "outputs.safetensors"))
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    for f in sorted(OUT.rglob("*")):
        if f.is_file():
            print(f"{f.relative_to(OUT)}: {f.stat().st_size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    os.environ.setdefault("PL_DISABLE_FORK", "1")
    main()
