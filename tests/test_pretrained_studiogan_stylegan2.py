"""PyTorch-StudioGAN's StyleGAN2 checkpoints imported as ganzoo StyleGAN2 runs.

The fixtures (scripts/make_pretrained_fixtures_studiogan_stylegan2.py) are two tiny runs built by StudioGAN's own
``load_generator_discriminator`` from its CIFAR10 (cAdaIN G, SPD D, ``orig``) and FFHQ (unconditional, ``resnet``)
StyleGAN2 configs, with seeded random weights, saved by its ``save_model``, with the official G / G_ema images
(constant noise, truncation 1) and D's ``adv_output``.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from ganzoo.errors import CheckpointError
from ganzoo.pretrained import base
from ganzoo.pretrained.importer import import_checkpoint
from ganzoo.pretrained.studiogan import convert, sniff
from ganzoo.runtime import build_bundle
from ganzoo.sampling.generate import load_generator

from .conftest import compose

ROOT = Path(__file__).parent / "fixtures" / "pretrained" / "studiogan" / "stylegan2"
STEP = 77
TOL = dict(rtol=1e-4, atol=1e-5)


def ckpt(run: str, role: str) -> Path:
    return ROOT / run / f"model={role}-current-weights-step={STEP}.pth"


@functools.cache
def io(run: str) -> dict[str, torch.Tensor]:
    return load_file(str(ROOT / f"{run}_io.safetensors"))


@functools.cache
def _preset(model: str):
    return compose([f"model={model}"]).model


def build(conv: base.Converted, **d_over) -> dict[str, torch.nn.Module]:
    cfg = OmegaConf.merge(_preset(conv.model), OmegaConf.create(conv.model_config), {"D": d_over})
    torch.manual_seed(0)
    modules = dict(build_bundle(cfg).modules)
    for name, sd in conv.weights.items():
        modules[name].load_state_dict(sd, strict=True)
    if "G" in conv.ema:
        modules["G_ema"] = build_bundle(cfg).modules["G"]
        modules["G_ema"].load_state_dict(conv.ema["G"], strict=True)
    return {k: m.eval() for k, m in modules.items()}


def labels(ref: dict[str, torch.Tensor]) -> torch.Tensor | None:
    return ref["c"] if ref["c"].shape[1] else None


@pytest.mark.parametrize("run, entry", [("cifar_spd", "G"), ("cifar_spd", "G_ema"), ("ffhq_uncond", "D")])
def test_official_images_and_logits(run, entry):
    spec, conv = base.convert_file(ckpt(run, entry))  # auto-detected; any of the three files brings the others
    assert spec.name == "studiogan" and conv.model == "stylegan2"
    assert set(conv.weights) == {"G", "D"} and set(conv.ema) == {"G"} and not conv.not_found
    modules, ref = build(conv), io(run)
    c = labels(ref)
    with torch.no_grad():
        torch.testing.assert_close(modules["G"](ref["z"], c, noise_mode="const"), ref["G_img"], **TOL)
        torch.testing.assert_close(modules["G_ema"](ref["z"], c, noise_mode="const"), ref["G_ema_img"], **TOL)
        torch.testing.assert_close(modules["D"](ref["x"], c), ref["D_x"], **TOL)
        torch.testing.assert_close(modules["D"](ref["G_ema_img"], c), ref["D_G_ema"], **TOL)
    assert not torch.allclose(ref["G_img"], ref["G_ema_img"], atol=1e-2)  # the two copies are told apart


def test_numbers_come_from_shapes_and_studiogan_configs():
    cfg = convert(ckpt("cifar_spd", "D")).model_config
    assert (cfg["resolution"], cfg["c_dim"], cfg["channel_base"], cfg["channel_max"]) == (16, 10, 64, 8)
    assert (cfg["conv_clamp"], cfg["num_fp16_res"]) == (256, 4)  # models/model.py under -mpc
    assert cfg["G"] == dict(z_dim=16, w_dim=16, mapping_layers=2, mapping_lr_mul=0.01, use_noise=True,
                            w_avg_beta=0.998)
    assert cfg["D"] == dict(architecture="orig", mbstd_group_size=32, mbstd_num_channels=1, mapping_layers=8)
    conv = convert(ckpt("ffhq_uncond", "G"))
    assert conv.model_config["c_dim"] == 0 and conv.model_config["G"]["mapping_layers"] == 8
    assert conv.model_config["D"] == dict(architecture="resnet", mbstd_group_size=4, mbstd_num_channels=1)
    assert conv.source_info["run_name"].startswith("FFHQ-StyleGAN2-train") and conv.source_info["step"] == STEP
    assert any("linear1" in n for n in conv.notes) and any("-mpc" in n for n in conv.notes)


def test_the_mbstd_group_from_the_run_name_is_needed(tmp_path):
    """FFHQ's config groups 4 (here 8 images): another group size misses the official logits, and without a run
    name the group falls back to the rule of StudioGAN's configs by size."""
    conv = convert(ckpt("ffhq_uncond", "G"))
    ref = io("ffhq_uncond")
    with torch.no_grad():
        out = build(conv, mbstd_group_size=8)["D"](ref["x"], None)
    assert (out - ref["D_x"]).abs().max() > 1e-3 * ref["D_x"].abs().max()
    run = tmp_path / "run"
    shutil.copytree(ROOT / "ffhq_uncond", run)
    d = torch.load(run / ckpt("ffhq_uncond", "D").name, weights_only=True)  # our own fixture, plain tensors
    del d["run_name"]
    torch.save(d, run / ckpt("ffhq_uncond", "D").name)
    conv = convert(run / ckpt("ffhq_uncond", "G").name)
    assert conv.model_config["D"]["mbstd_group_size"] == 8 and any("configs at 16 px" in n for n in conv.notes)


def test_lone_files_and_detection(tmp_path):
    lone = tmp_path / "stylegan2_G_ema.pth"  # renamed: read alone, found by its state_dict names
    shutil.copy(ckpt("cifar_spd", "G_ema"), lone)
    assert sniff(lone) and base.detect_format(lone).name == "studiogan"
    conv = convert(lone)
    assert set(conv.weights) == {"G"} and any(line.startswith("D:") for line in conv.not_found)
    assert conv.model_config["D"]["mapping_layers"] == 8  # StudioGAN's SPD D for a conditional G
    ref = io("cifar_spd")
    with torch.no_grad():
        torch.testing.assert_close(build(conv)["G"](ref["z"], ref["c"], noise_mode="const"), ref["G_ema_img"], **TOL)
    lone_d = tmp_path / "stylegan2_D.pth"
    shutil.copy(ckpt("cifar_spd", "D"), lone_d)
    assert sniff(lone_d)
    conv = convert(lone_d)
    assert set(conv.weights) == {"D"} and conv.model_config["G"]["z_dim"] == 512
    with torch.no_grad():
        torch.testing.assert_close(build(conv)["D"](ref["x"], ref["c"]), ref["D_x"], **TOL)


def _edited(tmp_path: Path, run: str, role: str, edit) -> Path:
    """A copy of the run with one file's state_dict edited; returns the edited file."""
    folder = tmp_path / run
    shutil.copytree(ROOT / run, folder)
    obj = torch.load(folder / ckpt(run, role).name, weights_only=True)
    edit(obj["state_dict"])
    torch.save(obj, folder / ckpt(run, role).name)
    return folder / ckpt(run, role).name


def test_a_d_with_another_conditioning_leaves_the_generators_importable(tmp_path):
    path = _edited(tmp_path, "cifar_spd", "D", lambda sd: sd.update({"linear2.weight": torch.zeros(8, 8)}))
    conv = convert(path.with_name(ckpt("cifar_spd", "G").name))
    assert set(conv.weights) == {"G"} and any("linear2" in line and "D: not imported" in line
                                              for line in conv.not_found)
    path.with_name(ckpt("cifar_spd", "G").name).unlink()
    path.with_name(ckpt("cifar_spd", "G_ema").name).unlink()
    with pytest.raises(CheckpointError, match="another conditioning head.*no G to import"):
        convert(path)


def test_truncated_missing_extra_and_foreign_tensors(tmp_path):
    data = ckpt("ffhq_uncond", "G").read_bytes()
    cut = tmp_path / "cut" / ckpt("ffhq_uncond", "G").name
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        convert(cut)
    missing = _edited(tmp_path / "m", "ffhq_uncond", "G", lambda sd: sd.pop("synthesis.b8.conv0.noise_const"))
    with pytest.raises(CheckpointError, match=r"synthesis\.b8\.conv0\.noise_const is missing"):
        convert(missing)
    extra = _edited(tmp_path / "e", "ffhq_uncond", "G_ema", lambda sd: sd.update({"synthesis.b8.extra": torch.ones(2)}))
    with pytest.raises(CheckpointError, match=r"no place in ganzoo's StyleGAN2.*synthesis\.b8\.extra"):
        convert(extra)
    blur = _edited(tmp_path / "f", "cifar_spd", "D", lambda sd: sd["b8.conv1.resample_filter"].fill_(1 / 16))
    with pytest.raises(CheckpointError, match=r"b8\.conv1\.resample_filter.*not the \[1, 3, 3, 1\] filter"):
        convert(blur)
    sg3 = tmp_path / "sg3.pth"
    torch.save({"state_dict": {"synthesis.input.affine.weight": torch.zeros(4, 16), "mapping.fc0.weight":
                               torch.zeros(16, 16)}}, sg3)
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        convert(sg3)


def test_import_writes_a_run_that_samples_like_the_official_ema(tmp_path):
    run = import_checkpoint(str(ckpt("cifar_spd", "D")), out=str(tmp_path / "run"))
    _, modules, _ = load_generator(run, device="cpu")
    ref = io("cifar_spd")
    with torch.no_grad():
        torch.testing.assert_close(modules["G"](ref["z"], ref["c"], noise_mode="const"), ref["G_ema_img"], **TOL)
    assert OmegaConf.load(run / "config.yaml")["import"]["format"] == "studiogan"
