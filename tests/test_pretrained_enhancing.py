"""enhancing-transformers ViT-VQGAN checkpoints: ganzoo's vit_vqgan computes the official ViTVQ's outputs.

The fixtures (scripts/make_pretrained_fixtures_enhancing.py) are two tiny ``ViTVQ`` models built, perturbed and
saved by the official code (commit e1c185d) with Lightning's ``Trainer.save_checkpoint``, with the official code
indices, reconstructions, decoder outputs from codes, quantizer loss and discriminator logits for fixed images in
[0, 1]; ganzoo works in [-1, 1], so its inputs are ``2 x - 1`` and its images are compared with ``2 y - 1``.
"""

from __future__ import annotations

import copy
import lzma
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from ganzoo.errors import CheckpointError
from ganzoo.pretrained import base
from ganzoo.pretrained.enhancing import convert, sniff
from ganzoo.pretrained.importer import import_checkpoint
from ganzoo.pretrained.run_folder import compose_run_config
from ganzoo.runtime import build_bundle
from ganzoo.training.checkpoint import load_snapshot

ROOT = Path(__file__).parent / "fixtures" / "pretrained" / "enhancing"
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The fixture checkpoints, decompressed (they are stored xz-compressed)."""
    out = tmp_path_factory.mktemp("enhancing")
    paths = {}
    for name in ("vitvq_tiny", "vitvq_narrow_decoder"):
        paths[name] = out / f"{name}.ckpt"
        paths[name].write_bytes(lzma.decompress((ROOT / f"{name}.ckpt.xz").read_bytes()))
    return paths


@pytest.fixture(scope="module")
def ref() -> dict[str, torch.Tensor]:
    return load_file(str(ROOT / "outputs.safetensors"))


def build(conv: base.Converted) -> dict[str, torch.nn.Module]:
    """The bundle the run-folder writer builds for ``conv``, with the converted weights loaded strictly."""
    _, model_cfg = compose_run_config(conv)
    modules = dict(build_bundle(model_cfg).modules)
    for name, sd in conv.weights.items():
        modules[name].load_state_dict(sd, strict=True)
    return {k: m.eval() for k, m in modules.items()}


def check_autoencoder(G: torch.nn.Module, ref: dict[str, torch.Tensor], prefix: str = "") -> None:
    x = ref[prefix + "images"] * 2 - 1
    n = x.shape[0]
    with torch.no_grad():
        rec, q = G(x)
        assert torch.equal(q.indices.reshape(n, -1), ref[prefix + "codes"])
        torch.testing.assert_close(rec, ref[prefix + "reconstructions"] * 2 - 1, **TOL)
        torch.testing.assert_close(q.loss.reshape(1), ref[prefix + "quant_loss"], **TOL)
        dec = G.decode_indices(ref[prefix + "codes"].reshape(q.indices.shape))
        torch.testing.assert_close(dec, ref[prefix + "decoded"] * 2 - 1, **TOL)


def test_official_codes_images_and_logits(files, ref):
    conv = convert(files["vitvq_tiny"])
    assert conv.model == "vit_vqgan" and set(conv.weights) == {"G", "D"} and not conv.not_found
    cfg = conv.model_config
    assert (cfg["resolution"], cfg["img_channels"], cfg["G"]["patch_size"], cfg["G"]["pos_embed"]) == (16, 3, 4,
                                                                                                     "sincos")
    assert cfg["G"]["encoder"] == dict(dim=128, depth=2, heads=2, mlp_dim=64, mlp_act="tanh", qkv_bias=False,
                                       norm_eps=1e-5, head="none")
    assert (cfg["G"]["n_embed"], cfg["G"]["lookup_dim"]) == (32, 8)
    assert (cfg["D"]["channel_base"], cfg["D"]["channel_max"]) == (256, 32)
    assert any(line.startswith("loss.perceptual_loss") for line in conv.found)
    modules = build(conv)
    check_autoencoder(modules["G"], ref)
    with torch.no_grad():
        torch.testing.assert_close(modules["D"](ref["images"] * 2 - 1), ref["d_logits"], **TOL)
        torch.testing.assert_close(modules["D"](ref["reconstructions"] * 2 - 1), ref["d_logits_rec"], **TOL)


def test_narrow_decoder_without_attention_output_and_without_discriminator(files, ref):
    conv = convert(files["vitvq_narrow_decoder"])
    assert set(conv.weights) == {"G"} and any(line.startswith("D:") for line in conv.not_found)
    assert conv.model_config["G"]["decoder"]["dim"] == 64 and conv.model_config["G"]["decoder"]["heads"] == 1
    assert "decoder.proj_in.weight" in conv.weights["G"]
    check_autoencoder(build(conv)["G"], ref, "narrow_")


def test_ganzoo_defaults_miss_the_official_function(files, ref):
    """With the blocks' default GELU MLP (the option left out) the reconstructions are far off."""
    conv = convert(files["vitvq_tiny"])
    for part in ("encoder", "decoder"):
        conv.model_config["G"][part]["mlp_act"] = "gelu"
    with torch.no_grad():
        rec, _ = build(conv)["G"](ref["images"] * 2 - 1)
    expected = ref["reconstructions"] * 2 - 1
    assert (rec - expected).abs().max() > 1e-2 * expected.abs().max()


def test_changed_position_embeddings_become_learned(files, tmp_path, ref):
    ckpt = torch.load(files["vitvq_tiny"], weights_only=True)  # our own fixture, read as plain tensors
    ckpt["state_dict"]["decoder.de_pos_embedding"] += 0.5
    torch.save(ckpt["state_dict"], tmp_path / "bare_state_dict.pth")  # the bare state dict is read too
    conv = convert(tmp_path / "bare_state_dict.pth")
    assert conv.model_config["G"]["pos_embed"] == "learned"
    G = build(conv)["G"]
    torch.testing.assert_close(G.decoder.pos.weight, ckpt["state_dict"]["decoder.de_pos_embedding"])
    with torch.no_grad():  # the encoder's (unchanged) sin-cos values: same codes as the official model
        assert torch.equal(G.encode(ref["images"] * 2 - 1).indices.reshape(4, -1), ref["codes"])


def test_import_writes_a_run(files, tmp_path, ref):
    run = import_checkpoint(str(files["vitvq_tiny"]), out=str(tmp_path / "run"))
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.model.name == "vit_vqgan" and cfg["import"].format == "enhancing"
    snap = load_snapshot(run, with_state=False)
    G = build_bundle(cfg.model).modules["G"]
    G.load_state_dict(snap.weights["G"], strict=True)
    check_autoencoder(G.eval(), ref)


def test_detection(files, tmp_path):
    assert sniff(files["vitvq_tiny"]) and base.detect_format(files["vitvq_tiny"]).name == "enhancing"
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"encoder.conv_in.weight": torch.zeros(2, 2)}}, other)
    assert not sniff(other)


def test_truncated_and_wrong_files_are_refused(files, tmp_path):
    data = files["vitvq_tiny"].read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        convert(cut)
    not_dict = tmp_path / "list.ckpt"
    torch.save([1, 2], not_dict)
    with pytest.raises(CheckpointError, match="expected an enhancing-transformers ViTVQ checkpoint"):
        convert(not_dict)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"linear.weight": torch.zeros(2, 2)}}, foreign)
    with pytest.raises(CheckpointError, match="expected 'encoder.to_patch_embedding.0.weight'"):
        convert(foreign)


def test_missing_block_tensor_is_named(files, tmp_path):
    ckpt = torch.load(files["vitvq_tiny"], weights_only=True)
    broken = copy.deepcopy(ckpt)
    del broken["state_dict"]["encoder.transformer.layers.1.1.fn.net.2.bias"]
    torch.save(broken, tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match=r"lacks 'encoder\.transformer\.layers\.1\.1\.fn\.net\.2\.bias'"):
        convert(tmp_path / "missing.ckpt")
