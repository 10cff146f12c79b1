"""``ganzoo import`` of NVlabs' TensorFlow-era pickles against the official outputs.

Fixtures (scripts/make_pretrained_fixtures_nvlabs_tf.py): StyleGAN2 and StyleGAN2-ADA TF pickles built to the
official variable layout, with outputs of the official PyTorch converter (stylegan2-ada-pytorch legacy.py) and
networks; StyleGAN v1 and ProGAN pickles written by the official TensorFlow networks themselves, with their
TensorFlow outputs. Every variable of every file must be consumed (the converters check it).
"""

from __future__ import annotations

import copy
import pickle
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from safetensors.torch import load_file

from ganzoo.errors import CheckpointError
from ganzoo.pretrained import nvlabs_tf, nvlabs_tf_stylegan2, nvlabs_tf_v1
from ganzoo.pretrained.base import Converted, convert_file, detect_format
from ganzoo.pretrained.importer import import_checkpoint
from ganzoo.runtime import build_bundle
from ganzoo.training.checkpoint import load_module_weights
from ganzoo.training.config import compose_train_config

FIX = Path(__file__).parent / "fixtures" / "pretrained" / "nvlabs_tf"
FAMILIES = {"stylegan2": "stylegan2", "stylegan2_ada": "stylegan2", "stylegan": "stylegan", "progan": "progan",
            "progan_nofuse": "progan"}
TOL = dict(rtol=1e-4, atol=1e-5)


def _build(conv: Converted) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """G, D and the EMA copy of G, built from the converted config and strictly loaded."""
    cfg = compose_train_config([f"model={conv.model}", "data=folder"])
    with open_dict(cfg):
        cfg.model = OmegaConf.merge(cfg.model, OmegaConf.create(conv.model_config))
    bundle = build_bundle(cfg.model)
    g, d = bundle.modules["G"], bundle.modules["D"]
    load_module_weights(g, conv.weights["G"], what="G")
    load_module_weights(d, conv.weights["D"], what="D")
    g_ema = copy.deepcopy(g)
    load_module_weights(g_ema, conv.ema["G"], what="G_ema")
    return g.eval(), d.eval(), g_ema.eval()


def _generate(g: torch.nn.Module, family: str, z: torch.Tensor, psi: float, c: torch.Tensor | None = None
              ) -> torch.Tensor:
    if family == "progan":
        return g(z)  # no truncation in ProGAN
    return g(z, c, truncation_psi=psi, noise_mode="const")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_outputs_match_the_official_code(name):
    spec, conv = convert_file(FIX / f"{name}.pkl")
    assert spec.name == "nvlabs_tf" and conv.model.startswith(FAMILIES[name])
    ref = load_file(str(FIX / f"{name}_outputs.safetensors"))
    g, d, g_ema = _build(conv)
    with torch.no_grad():
        for net, tag in ((g_ema, "gema"), (g, "g")):
            for psi, key in ((1.0, "psi1"), (0.7, "psi07")):
                if f"{tag}_{key}" in ref:
                    out = _generate(net, FAMILIES[name], ref["z"], psi, ref.get("c"))
                    torch.testing.assert_close(out, ref[f"{tag}_{key}"], **TOL)
        torch.testing.assert_close(d(ref["img_in"], ref.get("c")), ref["d_logits"].flatten(), **TOL)


class _Net:
    """Pickled as ``dnnlib.tflib.network.Network`` (as the official files), with a hostile build_module_src."""

    def __init__(self, state: dict) -> None:
        self._state = state

    def __getstate__(self) -> dict:
        return self._state


def test_the_network_source_in_the_file_is_never_run(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    src = f"open({str(marker)!r}, 'w').write('x')"
    _Net.__module__, _Net.__qualname__ = "dnnlib.tflib.network", "Network"
    for mod in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"):  # only while pickling
        monkeypatch.setitem(sys.modules, mod, type(sys)(mod))
    sys.modules["dnnlib.tflib.network"].Network = _Net
    state = dict(version=4, name="G", static_kwargs={}, components={}, build_module_src=src, build_func_name="G_main",
                 variables=[])
    path = tmp_path / "net.pkl"
    path.write_bytes(pickle.dumps((_Net(state), _Net(state), _Net(state)), protocol=3))
    monkeypatch.undo()
    assert nvlabs_tf.sniff(path)
    with pytest.raises(CheckpointError):
        convert_file(path)
    assert not marker.exists()


def test_stylegan_fused_resampling_convs_match_tensorflow():
    """From 128x128 up StyleGAN fuses up-sampling + conv into TF's unflipped conv2d_transpose: the converter
    flips those kernels. The fixture holds TF's outputs of the same weights with fused_scale=True."""
    g, d, gs = nvlabs_tf.read_networks(FIX / "stylegan.pkl")
    gs.component_kwargs["synthesis"]["fused_scale"] = True
    g.component_kwargs["synthesis"]["fused_scale"] = True
    d.kwargs["fused_scale"] = True
    conv = nvlabs_tf_v1.convert_stylegan(g, d, gs)
    ref = load_file(str(FIX / "stylegan_outputs.safetensors"))
    _, disc, g_ema = _build(conv)
    with torch.no_grad():
        for psi, key in ((1.0, "psi1"), (0.7, "psi07")):
            torch.testing.assert_close(_generate(g_ema, "stylegan", ref["z"], psi), ref[f"gema_fused_{key}"], **TOL)
        torch.testing.assert_close(disc(ref["img_in"]), ref["d_fused_logits"].flatten(), **TOL)
    # Without the flip the fused layers would compute another function.
    assert not torch.allclose(conv.ema["G"]["synthesis.blocks.1.conv0.weight"],
                              nvlabs_tf_v1.convert_stylegan(*nvlabs_tf.read_networks(FIX / "stylegan.pkl"))
                              .ema["G"]["synthesis.blocks.1.conv0.weight"])


def test_preset_and_numbers_come_from_the_file():
    _, conv = convert_file(FIX / "stylegan2_ada.pkl")
    assert conv.model_config["conv_clamp"] == 1.5 and conv.model_config["num_fp16_res"] == 4
    assert conv.model_config["c_dim"] == 4 and conv.model_config["D"]["mapping_layers"] == 0
    assert conv.model_config["channel_base"] == 128 and conv.model_config["channel_max"] == 16
    assert conv.source_info["family"].startswith("StyleGAN2-ADA")
    _, conv = convert_file(FIX / "stylegan2.pkl")
    assert conv.model_config["num_fp16_res"] == 0 and conv.model_config["D"]["mbstd_group_size"] == 4
    assert any("+ 1" in n for n in conv.notes)


@pytest.mark.parametrize("name", ["stylegan2", "progan"])
def test_import_writes_a_run(tmp_path, name):
    run = import_checkpoint(str(FIX / f"{name}.pkl"), out=str(tmp_path / name))
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.model.name == FAMILIES[name] and cfg.model.resolution == 16


def test_sniff_accepts_the_pickles_only(tmp_path):
    for name in FAMILIES:
        assert nvlabs_tf.sniff(FIX / f"{name}.pkl")
        assert detect_format(FIX / f"{name}.pkl").name == "nvlabs_tf"
    other = tmp_path / "sd.pt"
    torch.save({"w": torch.zeros(2)}, other)
    assert not nvlabs_tf.sniff(other)


def test_truncated_file_is_a_checkpoint_error(tmp_path):
    cut = tmp_path / "cut.pkl"
    cut.write_bytes((FIX / "stylegan2.pkl").read_bytes()[:50_000])
    with pytest.raises(CheckpointError, match="truncated|cannot be read"):
        convert_file(cut, "nvlabs_tf")


def test_wrong_file_names_what_was_expected(tmp_path):
    wrong = tmp_path / "dict.pkl"
    wrong.write_bytes(pickle.dumps({"G": [1, 2]}))
    with pytest.raises(CheckpointError, match=r"\(G, D, Gs\)"):
        convert_file(wrong, "nvlabs_tf")


def test_missing_variable_is_named():
    g, d, gs = nvlabs_tf.read_networks(FIX / "stylegan2.pkl")
    del gs.params["synthesis/8x8/Conv1/mod_bias"]
    with pytest.raises(CheckpointError, match="synthesis/8x8/Conv1/mod_bias"):
        nvlabs_tf_stylegan2.convert_networks(g, d, gs)


def test_unused_variable_is_refused():
    g, d, gs = nvlabs_tf.read_networks(FIX / "stylegan.pkl")
    d.params["8x8/Extra/weight"] = d.params["8x8/Conv0/weight"]
    with pytest.raises(CheckpointError, match="8x8/Extra/weight"):
        nvlabs_tf_v1.convert_stylegan(g, d, gs)


def test_unsupported_configurations_are_refused():
    g, d, gs = nvlabs_tf.read_networks(FIX / "stylegan2.pkl")
    gs.kwargs["architecture"] = "resnet"
    with pytest.raises(CheckpointError, match="architecture='resnet'"):
        nvlabs_tf_stylegan2.convert_networks(g, d, gs)
    g, d, gs = nvlabs_tf.read_networks(FIX / "stylegan2.pkl")
    gs.kwargs["fmap_max"] = 8  # the kwargs no longer describe the variables
    with pytest.raises(CheckpointError, match="disagree"):
        nvlabs_tf_stylegan2.convert_networks(g, d, gs)
    g, d, gs = nvlabs_tf.read_networks(FIX / "progan.pkl")
    gs.kwargs["label_size"] = 10
    with pytest.raises(CheckpointError, match="class-conditional ProGAN"):
        nvlabs_tf_v1.convert_progan(g, d, gs)
