"""BigGAN-PyTorch weights (ajbrock/BigGAN-PyTorch) imported as ganzoo BigGAN / BigGAN-deep runs.

The fixtures are folders written by the official ``utils.save_weights`` at tiny sizes (BigGAN in torch's
legacy format as the published files, a CIFAR-layout BigGAN and a BigGAN-deep in zip format), with the
official outputs for fixed inputs (``scripts/make_pretrained_fixtures_biggan_pytorch.py``).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from ganzoo.errors import CheckpointError
from ganzoo.pretrained import base
from ganzoo.pretrained.biggan_pytorch import convert, sniff
from ganzoo.pretrained.importer import import_checkpoint
from ganzoo.pretrained.safe_pickle import load_torch
from ganzoo.runtime import build_bundle
from ganzoo.sampling.generate import load_generator
from ganzoo.training.checkpoint import load_module_weights

from .conftest import compose

FIX = Path(__file__).parent / "fixtures" / "pretrained" / "biggan_pytorch"
RUNS = ["biggan", "biggan_cifar", "biggan_deep"]
TOL = dict(rtol=1e-4, atol=1e-5)


def _bundle(conv: base.Converted):
    cfg = compose([f"model={conv.model}"])
    torch.manual_seed(0)
    return build_bundle(OmegaConf.merge(cfg.model, OmegaConf.create(conv.model_config)))


def _images(G: torch.nn.Module, sd: dict, io: dict, train: bool) -> torch.Tensor:
    G = copy.deepcopy(G)
    load_module_weights(G, sd, what="G")
    G.train(train)
    with torch.no_grad():
        return G(io["z"], io["y"])


@pytest.mark.parametrize("run", RUNS)
def test_outputs_match_the_official_code(run):
    """G and G_ema in eval and train mode, and D's logits, equal BigGAN-PyTorch's to float rounding."""
    io = load_file(str(FIX / f"{run}_io.safetensors"))
    spec, conv = base.convert_file(FIX / run)  # auto-detected
    assert spec.name == "biggan_pytorch"
    presets = {"biggan": "biggan_imagenet128", "biggan_cifar": "biggan_cifar", "biggan_deep": "biggan_deep_imagenet128"}
    assert conv.model == presets[run]
    bundle = _bundle(conv)
    G, D = bundle.modules["G"], bundle.modules["D"]
    for key, sd in (("G", conv.weights["G"]), ("G_ema", conv.ema["G"])):
        for mode in ("eval", "train"):
            torch.testing.assert_close(_images(G, sd, io, mode == "train"), io[f"{key}_{mode}"], **TOL)
    assert not torch.allclose(io["G_eval"], io["G_ema_eval"], atol=1e-3)  # the two copies are told apart
    load_module_weights(D, conv.weights["D"], what="D")
    D.eval()
    with torch.no_grad():
        torch.testing.assert_close(D(io["x"], io["y"]), io["D_real"][:, 0], **TOL)
        torch.testing.assert_close(D(io["G_ema_eval"], io["y"]), io["D_fake"][:, 0], **TOL)
    assert not conv.not_found


def test_numbers_come_from_the_file_and_its_config():
    conv = convert(FIX / "biggan")  # legacy torch.save files; hier z of 4 chunks of 8, attention 16 in G and D
    G, D = conv.model_config["G"], conv.model_config["D"]
    assert (conv.model_config["resolution"], conv.model_config["c_dim"]) == (32, 10)
    assert (G["z_dim"], G["ch"], G["shared_dim"], G["hier"], G["attn_res"]) == (32, 4, 16, True, [16])
    # D_attn '16' at 32 px: BigGAN-PyTorch labels all four blocks 16, two of which are 8x8 after pooling
    assert (D["ch"], D["attn_res"]) == (4, [8, 16])
    cifar = convert(FIX / "biggan_cifar")  # zip files; state_dict.pth's config read (ReLUs as records)
    assert cifar.model_config["G"]["sn_eps"] == 1e-8 and cifar.model_config["loss"]["d_repeats"] == 4
    assert cifar.model_config["G"]["shared"] is False and cifar.model_config["G"]["hier"] is False
    assert cifar.source_info["itr"] == 7 and cifar.source_info["config"]["G_activation"].endswith("ReLU")
    deep = convert(FIX / "biggan_deep")
    assert (deep.model_config["G"]["depth"], deep.model_config["G"]["z_dim"]) == (2, 8)
    assert any("state_dict.pth: itr 7" in f for f in deep.found)
    assert any("G_optim.pth" in f and "not imported" in f for f in deep.found)


def test_single_files(tmp_path):
    io = load_file(str(FIX / "biggan_deep_io.safetensors"))
    conv = convert(FIX / "biggan_deep" / "G_ema.pth")
    assert set(conv.weights) == {"G"} and set(conv.ema) == {"G"}
    assert any("G.pth" in line for line in conv.not_found) and any("D.pth" in line for line in conv.not_found)
    G = _bundle(conv).modules["G"]
    torch.testing.assert_close(_images(G, conv.ema["G"], io, False), io["G_ema_eval"], **TOL)
    d_only = convert(FIX / "biggan" / "D.pth")
    assert set(d_only.weights) == {"D"} and not d_only.ema and d_only.model_config["G"]["ch"] == 4
    renamed = tmp_path / "biggan_138k_G_ema.pth"  # a renamed download: the role comes from its keys and name
    shutil.copy(FIX / "biggan" / "G_ema.pth", renamed)
    assert sniff(renamed) and set(convert(renamed).ema) == {"G"}


def test_a_tfhub_port_without_sv0(tmp_path):
    """BigGAN-PyTorch's TFHub/converter.py saves G without sv0 buffers (only logged, never used in a forward)."""
    io = load_file(str(FIX / "biggan_io.safetensors"))
    sd = load_torch(FIX / "biggan" / "G_ema.pth")
    torch.save({k: v for k, v in sd.items() if not k.endswith(".sv0")}, tmp_path / "biggan-32.pth")
    conv = convert(tmp_path / "biggan-32.pth")
    assert set(conv.weights) == {"G"} and not conv.ema  # no "ema" in the name: it is taken for G
    assert conv.model_config["G"]["bn_eps"] == 1e-4 and any("sv0" in n for n in conv.notes)
    conv.model_config["G"]["bn_eps"] = 1e-5  # the fixture's BN_eps; converter.py's get_config says 1e-4
    G = _bundle(conv).modules["G"]
    torch.testing.assert_close(_images(G, conv.weights["G"], io, False), io["G_ema_eval"], **TOL)


def test_import_writes_a_run_that_samples_like_the_official_ema(tmp_path):
    io = load_file(str(FIX / "biggan_io.safetensors"))
    run = import_checkpoint(str(FIX / "biggan"), out=str(tmp_path / "run"))
    _, modules, _ = load_generator(run, device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(modules["G"](io["z"], io["y"]), io["G_ema_eval"], **TOL)
    info = OmegaConf.load(run / "config.yaml")["import"]
    assert info["format"] == "biggan_pytorch" and any("D.pth" in f for f in info["found"])


def test_truncated_and_wrong_files(tmp_path):
    folder = tmp_path / "trunc"
    shutil.copytree(FIX / "biggan_deep", folder)
    data = (folder / "G.pth").read_bytes()
    (folder / "G.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated|damaged"):
        convert(folder)
    legacy = tmp_path / "G.pth"
    legacy.write_bytes((FIX / "biggan" / "G.pth").read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="truncated"):
        convert(legacy)

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    torch.save({"conv.weight": torch.zeros(2, 2)}, wrong / "G.pth")
    assert not sniff(wrong / "G.pth")
    with pytest.raises(CheckpointError, match="should hold BigGAN-PyTorch's Generator"):
        convert(wrong)
    with pytest.raises(CheckpointError, match="not a BigGAN-PyTorch weight file: expected"):
        convert(wrong / "G.pth")
    with pytest.raises(CheckpointError, match="no network weights"):
        convert(FIX / "biggan_deep" / "state_dict.pth")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "G_best0.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="G_best0.pth: pass one of those"):
        convert(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(FIX / "biggan" / "G.pth", mixed / "G.pth")
    shutil.copy(FIX / "biggan_deep" / "D.pth", mixed / "D.pth")
    with pytest.raises(CheckpointError, match="mixes BigGAN and BigGAN-deep"):
        convert(mixed)
