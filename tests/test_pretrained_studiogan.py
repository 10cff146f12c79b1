"""PyTorch-StudioGAN checkpoints: ganzoo's sagan / biggan compute the official networks' outputs.

The fixtures (scripts/make_pretrained_fixtures_studiogan.py) are tiny SAGAN and BigGAN runs built, perturbed and
saved by StudioGAN's own code (commit 947b35e), with its eval-mode G images and D ``adv_output`` for fixed inputs;
SNGAN is StudioGAN's resnet G without spectral norm and without attention.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from ganzoo.errors import CheckpointError
from ganzoo.pretrained import base
from ganzoo.pretrained.importer import import_checkpoint
from ganzoo.pretrained.run_folder import compose_run_config
from ganzoo.pretrained.studiogan import convert, sniff
from ganzoo.runtime import build_bundle
from ganzoo.training.checkpoint import load_snapshot

ROOT = Path(__file__).parent / "fixtures" / "pretrained" / "studiogan"
STEP = 123
TOL = dict(rtol=1e-4, atol=1e-5)


def ckpt(family: str, role: str) -> Path:
    return ROOT / family / f"model={role}-best-weights-step={STEP}.pth"


def io(family: str) -> dict[str, torch.Tensor]:
    return load_file(str(ROOT / f"{family}_io.safetensors"))


@functools.cache
def _composed(model: str, model_config: str):
    """The run-folder writer's model config (a Hydra composition: cached, it is the slow part)."""
    _, model_cfg = compose_run_config(base.Converted(model=model, model_config=json.loads(model_config), weights={}))
    return model_cfg


def build(conv: base.Converted) -> dict[str, torch.nn.Module]:
    """The bundle the run-folder writer builds for ``conv``, with the converted weights loaded strictly."""
    model_cfg = _composed(conv.model, json.dumps(conv.model_config, sort_keys=True))
    modules = dict(build_bundle(model_cfg).modules)
    for name, sd in conv.weights.items():
        modules[name].load_state_dict(sd, strict=True)
    for name, sd in conv.ema.items():
        modules[f"{name}_ema"] = copy.deepcopy(modules[name])
        modules[f"{name}_ema"].load_state_dict(sd, strict=True)
    return {k: m.eval() for k, m in modules.items()}


def check_outputs(modules: dict[str, torch.nn.Module], ref: dict[str, torch.Tensor]) -> None:
    z, y, x = ref["z"], ref["y"], ref["x"]
    with torch.no_grad():
        torch.testing.assert_close(modules["G"](z, y), ref["G"], **TOL)
        torch.testing.assert_close(modules["D"](x, y), ref["D_x"], **TOL)
        torch.testing.assert_close(modules["D"](ref["G"], y), ref["D_G"], **TOL)
        if "G_ema" in ref:
            torch.testing.assert_close(modules["G_ema"](z, y), ref["G_ema"], **TOL)


@pytest.mark.parametrize("family, preset", [("sagan", "sagan_cifar"), ("biggan", "biggan_cifar"),
                                            ("sngan", "sagan_cifar")])
@pytest.mark.parametrize("entry", ["G", "D"])
def test_official_images_and_logits(family, preset, entry):
    conv = convert(ckpt(family, entry))  # either file brings its siblings
    assert conv.model == preset
    assert conv.model_config["G"].get("sn", True) is (family != "sngan")  # SNGAN's G has no spectral norm
    assert set(conv.weights) == {"G", "D"} and set(conv.ema) == ({"G"} if family == "biggan" else set())
    assert conv.model_config["G"]["sn_eval"] == "stored" and conv.model_config["D"]["activated_shortcut"] is True
    assert conv.source_info["step"] == STEP and conv.source_info["best_fid"] == 42.5
    check_outputs(build(conv), io(family))


@pytest.mark.parametrize("family", ["sagan", "biggan"])
@pytest.mark.parametrize("option", ["G.sn_eval", "D.sn_eval", "D.activated_shortcut"])
def test_each_studiogan_option_is_needed(family, option):
    """Without one of the options ganzoo's default networks miss StudioGAN's outputs (issue 23)."""
    conv = convert(ckpt(family, "G"))
    part, key = option.split(".")
    conv.model_config[part][key] = "power_step" if key == "sn_eval" else False
    if key == "sn_eval":  # the power-step layers have no weight_v buffer
        conv.weights[part] = {k: v for k, v in conv.weights[part].items() if not k.endswith("weight_v")}
        conv.ema = {}
    modules, ref = build(conv), io(family)
    with torch.no_grad():
        out = modules["G"](ref["z"], ref["y"]) if part == "G" else modules["D"](ref["x"], ref["y"])
    expected = ref["G"] if part == "G" else ref["D_x"]
    assert (out - expected).abs().max() > 1e-2 * expected.abs().max()


def test_import_writes_a_run_with_the_official_ema_generator(tmp_path):
    run = import_checkpoint(str(ckpt("biggan", "G_ema")), out=str(tmp_path / "run"))
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.model.name == "biggan_cifar" and cfg["import"].format == "studiogan"
    snap = load_snapshot(run, with_state=False)
    G = build_bundle(cfg.model).modules["G"]
    G.load_state_dict(snap.ema["G"], strict=True)
    ref = io("biggan")
    with torch.no_grad():
        torch.testing.assert_close(G.eval()(ref["z"], ref["y"]), ref["G_ema"], **TOL)


def test_a_lone_file_and_its_detection(tmp_path):
    lone = tmp_path / "sagan_G.pth"  # renamed: no siblings, found by the pickle's layer names
    shutil.copy(ckpt("sagan", "G"), lone)
    assert sniff(lone) and base.detect_format(lone).name == "studiogan"
    conv = convert(lone)
    assert set(conv.weights) == {"G"} and any(line.startswith("D:") for line in conv.not_found)
    with torch.no_grad():
        torch.testing.assert_close(build(conv)["G"](io("sagan")["z"], io("sagan")["y"]), io("sagan")["G"], **TOL)
    lone_d = tmp_path / "biggan_D.pth"  # a D alone: its backbone from run_name, G described by StudioGAN's table
    shutil.copy(ckpt("biggan", "D"), lone_d)
    conv = convert(lone_d)
    assert conv.model == "biggan_cifar" and set(conv.weights) == {"D"}
    ref = io("biggan")
    with torch.no_grad():
        torch.testing.assert_close(build(conv)["D"](ref["x"], ref["y"]), ref["D_x"], **TOL)
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"linear.weight": torch.zeros(2, 2)}}, other)
    assert not sniff(other)


def test_truncated_and_wrong_files_are_refused(tmp_path):
    data = ckpt("sagan", "G").read_bytes()
    cut = tmp_path / f"model=G-best-weights-step={STEP}.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        convert(cut)
    not_dict = tmp_path / "list.pth"
    torch.save([1, 2], not_dict)
    with pytest.raises(CheckpointError, match="expected a PyTorch-StudioGAN checkpoint"):
        convert(not_dict)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"linear.weight": torch.zeros(2, 2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a StudioGAN resnet/big_resnet G or D"):
        convert(foreign)


def test_missing_and_unknown_tensors_are_named(tmp_path):
    sd = torch.load(ckpt("sagan", "D"), weights_only=True)  # our own fixture, read as plain tensors
    missing = copy.deepcopy(sd)
    del missing["state_dict"]["blocks.2.0.conv2d2.weight_u"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"expected 'blocks\.2\.0\.conv2d2\.weight_u'"):
        convert(tmp_path / "missing.pth")
    stray = copy.deepcopy(sd)
    stray["state_dict"]["blocks.0.0.bn0.weight"] = torch.ones(8)
    torch.save(stray, tmp_path / "stray.pth")
    with pytest.raises(CheckpointError, match=r"no place in ganzoo's network.*blocks\.0\.0\.bn0\.weight"):
        convert(tmp_path / "stray.pth")


def test_a_d_with_another_conditioning_leaves_the_generator_importable(tmp_path):
    sd = torch.load(ckpt("biggan", "D"), weights_only=True)
    sd["state_dict"]["linear2.weight_orig"] = torch.zeros(10, 8)  # an AC / ContraGAN-style head
    run = tmp_path / "run"
    run.mkdir()
    torch.save(sd, run / f"model=D-best-weights-step={STEP}.pth")
    with pytest.raises(CheckpointError, match="auxiliary classifier"):
        convert(run / f"model=D-best-weights-step={STEP}.pth")  # nothing else to import
    shutil.copy(ckpt("biggan", "G"), run / f"model=G-best-weights-step={STEP}.pth")
    conv = convert(run / f"model=G-best-weights-step={STEP}.pth")
    assert set(conv.weights) == {"G"} and any("D: not imported" in line for line in conv.not_found)
    ref = io("biggan")
    with torch.no_grad():
        torch.testing.assert_close(build(conv)["G"](ref["z"], ref["y"]), ref["G"], **TOL)


def test_stored_spectral_norm_is_torch_spectral_norm_in_train_and_eval():
    """``sn_eval="stored"`` follows torch.nn.utils.spectral_norm step by step (u, v, weights, outputs)."""
    from ganzoo.layers.spectral import SNConv2d, set_sn_eval

    torch.manual_seed(0)
    theirs = torch.nn.utils.spectral_norm(torch.nn.Conv2d(3, 5, 3, padding=1), eps=1e-6)
    ours = SNConv2d(3, 5, 3, padding=1, sn_eps=1e-6)
    set_sn_eval(ours, "stored")
    with torch.no_grad():
        ours.weight.copy_(theirs.weight_orig)
        ours.bias.copy_(theirs.bias)
        ours.weight_u.copy_(theirs.weight_u)
        ours.weight_v.copy_(theirs.weight_v)
    x = torch.randn(2, 3, 6, 6)
    for training in (True, True, False, True, False):
        theirs.train(training)
        ours.train(training)
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(ours.weight_v, theirs.weight_v, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(ours.weight_u, theirs.weight_u, rtol=1e-6, atol=1e-7)


def test_a_dcgan_run_is_refused_by_name_without_a_traceback(tmp_path):
    """StudioGAN's DCGAN (deep_conv backbone): G and D saved together, imported through the D file."""
    g = {"linear0.weight": torch.zeros(8, 4), "blocks.0.0.deconv0.weight": torch.zeros(8, 4, 4, 4),
         "blocks.0.0.bn0.weight": torch.ones(4), "conv4.weight": torch.zeros(3, 4, 3, 3)}
    d = {"blocks.0.0.conv0.weight": torch.zeros(4, 3, 3, 3), "blocks.0.0.conv1.weight": torch.zeros(4, 4, 4, 4),
         "linear1.weight": torch.zeros(1, 4)}
    for role, sd in (("G", g), ("D", d)):
        torch.save({"state_dict": sd, "step": 5}, tmp_path / f"model={role}-current-weights-step=5.pth")
    with pytest.raises(CheckpointError, match="deep_conv"):
        convert(tmp_path / "model=D-current-weights-step=5.pth")
