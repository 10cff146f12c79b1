"""NVlabs StyleGAN2-ADA PyTorch / stylegan3 (StyleGAN2 config) network pickles imported as ganzoo StyleGAN2 runs.

The fixtures are snapshot pickles written as the official training loops write them, by the official code at
16x16 with seeded random weights, with the official outputs for fixed inputs
(``scripts/make_pretrained_fixtures_nvlabs_pytorch.py``). The security tests check that nothing a pickle names
is run: neither a ``__reduce__`` calling a shell, nor the network source a persistence record carries.
"""

from __future__ import annotations

import collections
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from ganzoo.errors import CheckpointError
from ganzoo.pretrained import base
from ganzoo.pretrained.importer import import_checkpoint
from ganzoo.pretrained.nvlabs_pytorch import PersistentModule, convert, read_snapshot, sniff
from ganzoo.pretrained.safe_pickle import AttrDict, UnsafeFileError
from ganzoo.runtime import build_bundle
from ganzoo.sampling.generate import load_generator
from ganzoo.training.checkpoint import load_module_weights

from .conftest import compose

FIX = Path(__file__).parent / "fixtures" / "pretrained" / "nvlabs_pytorch"
RUNS = ["ada_uncond", "sg3_cond"]
TOL = dict(rtol=1e-4, atol=1e-5)


def _bundle(conv: base.Converted):
    cfg = compose([f"model={conv.model}"])
    torch.manual_seed(0)
    return build_bundle(OmegaConf.merge(cfg.model, OmegaConf.create(conv.model_config)))


def _labels(io: dict[str, torch.Tensor]) -> torch.Tensor | None:
    return io["c"] if io["c"].shape[1] else None


@pytest.mark.parametrize("run", RUNS)
def test_outputs_match_the_official_code(run):
    """Mapping ws (truncated or not), const-noise images of G and G_ema and D's logits equal the official ones."""
    io = load_file(str(FIX / f"{run}_io.safetensors"))
    spec, conv = base.convert_file(FIX / f"{run}.pkl")  # auto-detected
    assert spec.name == "nvlabs_pytorch" and conv.model == "stylegan2"
    bundle = _bundle(conv)
    G, D = bundle.modules["G"].eval(), bundle.modules["D"].eval()
    z, c = io["z"], _labels(io)
    for key, sd in (("G", conv.weights["G"]), ("G_ema", conv.ema["G"])):
        load_module_weights(G, sd, what=key)
        with torch.no_grad():
            torch.testing.assert_close(G.mapping(z, c), io[f"{key}_ws"], **TOL)
            torch.testing.assert_close(G.mapping(z, c, truncation_psi=0.7), io[f"{key}_ws_psi07"], **TOL)
            torch.testing.assert_close(G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2),
                                       io[f"{key}_ws_psi05_cut2"], **TOL)
            torch.testing.assert_close(G(z, c, noise_mode="const"), io[f"{key}_img"], **TOL)
            torch.testing.assert_close(G(z, c, truncation_psi=0.7, noise_mode="const"), io[f"{key}_img_psi07"], **TOL)
    assert not torch.allclose(io["G_img"], io["G_ema_img"], atol=1e-2)  # the two copies are told apart
    load_module_weights(D, conv.weights["D"], what="D")
    with torch.no_grad():
        torch.testing.assert_close(D(io["x"], c), io["D_real"][:, 0], **TOL)
        torch.testing.assert_close(D(io["G_ema_img"], c), io["D_fake"][:, 0], **TOL)
    assert not conv.not_found


def test_numbers_come_from_the_file():
    ada = convert(FIX / "ada_uncond.pkl")  # stylegan2-ada-pytorch: nested synthesis_kwargs, resnet D, AugmentPipe
    cfg = ada.model_config
    assert (cfg["resolution"], cfg["c_dim"], cfg["channel_base"], cfg["channel_max"]) == (16, 0, 128, 16)
    assert (cfg["conv_clamp"], cfg["num_fp16_res"]) == (256, 2)
    assert cfg["G"] == dict(z_dim=16, w_dim=16, mapping_layers=2, mapping_lr_mul=0.01, use_noise=True,
                            w_avg_beta=0.995)
    assert cfg["D"] == dict(architecture="resnet", mbstd_group_size=4, mbstd_num_channels=1)
    assert any(f.startswith("augment_pipe") for f in ada.found)
    assert ada.source_info["training_set_kwargs"]["resolution"] == 16
    sg3 = convert(FIX / "sg3_cond.pkl")  # stylegan3's networks_stylegan2: flat kwargs, orig D, label mapping
    cfg = sg3.model_config
    assert (cfg["c_dim"], cfg["num_fp16_res"], cfg["G"]["z_dim"], cfg["G"]["w_dim"]) == (3, 4, 24, 32)
    assert (cfg["G"]["mapping_layers"], cfg["G"]["w_avg_beta"]) == (3, 0.998)
    assert cfg["D"] == dict(architecture="orig", mbstd_group_size=2, mbstd_num_channels=2, mapping_layers=2)


def test_import_writes_a_run_that_samples_like_the_official_ema(tmp_path):
    io = load_file(str(FIX / "sg3_cond_io.safetensors"))
    run = import_checkpoint(str(FIX / "sg3_cond.pkl"), out=str(tmp_path / "run"))
    _, modules, _ = load_generator(run, device="cpu")
    with torch.no_grad():
        out = modules["G"](io["z"], io["c"], noise_mode="const")
    torch.testing.assert_close(out, io["G_ema_img"], **TOL)
    info = OmegaConf.load(run / "config.yaml")["import"]
    assert info["format"] == "nvlabs_pytorch"


# -- security ---------------------------------------------------------------------------------------------------
class _Shell:
    """An object whose unpickling would run a shell command (what a malicious "checkpoint" does)."""

    def __init__(self, func: Any, arg: Any) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("how", ["os.system", "subprocess"])
def test_a_pickle_that_calls_a_shell_is_refused_and_nothing_runs(tmp_path, how):
    import os
    import subprocess

    marker = tmp_path / "pwned"
    cmd = f"touch {marker}"
    evil = _Shell(os.system, cmd) if how == "os.system" else _Shell(subprocess.call, ["touch", str(marker)])
    path = tmp_path / "network-snapshot.pkl"
    # The shell call sits where a network would be, after a genuine-looking training_set_kwargs.
    path.write_bytes(pickle.dumps({"training_set_kwargs": {"resolution": 16}, "G": evil, "G_ema": evil}))
    with pytest.raises(UnsafeFileError, match="system|subprocess"):
        convert(path)
    assert not marker.exists()


def _persistent_reconstruct_stub(meta):  # never called: only pickled by reference
    raise AssertionError("the stub is only pickled by reference")


class _Persistent:
    """Pickles as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, exactly like the official objects."""

    def __init__(self, meta: dict) -> None:
        self.meta = meta

    def __reduce__(self):
        return _persistent_reconstruct_stub, (self.meta,)


def _plain(v: Any) -> Any:
    if isinstance(v, AttrDict | dict) and not isinstance(v, collections.OrderedDict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _rewrap(m: PersistentModule, src: str) -> _Persistent:
    state = {k: _plain(v) for k, v in m.attrs.items()}
    state["_parameters"] = collections.OrderedDict(m.params)
    state["_buffers"] = collections.OrderedDict(m.buffers)
    state["_modules"] = collections.OrderedDict((k, _rewrap(s, src)) for k, s in m.modules.items())
    return _Persistent(dict(type="class", version=6, module_src=src, class_name=m.class_name, state=state))


def test_the_network_source_in_the_pickle_is_never_executed(tmp_path, monkeypatch):
    """Every record carries module_src that would create a marker file when the official loader imports it; the
    file still converts (to the same weights as the genuine one) and the marker is never created."""
    marker = tmp_path / "module_src_ran"
    src = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nclass Generator: pass\n"
    compile(src, "<module_src>", "exec")  # genuine, runnable Python
    pkg, mod = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    mod._reconstruct_persistent_obj = _persistent_reconstruct_stub
    monkeypatch.setattr(_persistent_reconstruct_stub, "__module__", mod.__name__)
    monkeypatch.setattr(_persistent_reconstruct_stub, "__qualname__", "_reconstruct_persistent_obj")
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)
    snap = read_snapshot(FIX / "sg3_cond.pkl")
    evil = {k: _rewrap(v, src) if isinstance(v, PersistentModule) else _plain(v) for k, v in snap.items()}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(evil))
    assert sniff(path) and src.encode() in path.read_bytes()
    conv, ref = convert(path), convert(FIX / "sg3_cond.pkl")
    assert not marker.exists()
    for key in ref.weights["G"]:
        torch.testing.assert_close(conv.ema["G"][key], ref.ema["G"][key], rtol=0, atol=0)
    # A generator pickled on its own is the network to sample from; D is then reported missing.
    path.write_bytes(pickle.dumps(evil["G_ema"]))
    alone = convert(path)
    assert set(alone.weights) == {"G"} and any(n.startswith("D:") for n in alone.not_found)
    torch.testing.assert_close(alone.weights["G"], ref.ema["G"], rtol=0, atol=0)
    # A record of a class that is no StyleGAN2 class is refused by name (and its source not run either).
    evil["G"].meta["class_name"] = "MyNetwork"
    path.write_bytes(pickle.dumps(evil))
    with pytest.raises(CheckpointError, match="MyNetwork"):
        convert(path)
    assert not marker.exists()


def test_truncated_and_wrong_files(tmp_path):
    data = (FIX / "ada_uncond.pkl").read_bytes()
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(data[: len(data) // 2])
    assert sniff(cut)  # it still looks like one
    with pytest.raises(CheckpointError, match="truncated"):
        convert(cut)
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"weights": np.zeros(3, np.float32), "step": 10}))
    assert not sniff(other)
    with pytest.raises(CheckpointError, match="not a StyleGAN2-ADA / stylegan3 network pickle.*G, D, G_ema"):
        convert(other)
    assert not sniff(FIX / "sg3_cond_io.safetensors")
