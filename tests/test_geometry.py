"""Data geometry follows the data: ``model.resolution: auto`` and ``model.img_channels: auto``.

The auto values are resolved from a cheap peek at the data (``ganzoo.data.native_geometry``), written
into the run's config as numbers, and every later reader (checkpoints, generate, eval, resume, list)
sees only those numbers.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from PIL import Image
from torch import nn

import ganzoo.evaluation as evaluation
import ganzoo.registry as registry
from ganzoo.cli import main
from ganzoo.data import build_dataset, native_geometry
from ganzoo.errors import ConfigError, DataError
from ganzoo.metrics.features import FeatureExtractor
from ganzoo.runtime import AUTO_MAX_RESOLUTION, auto_resolution, build_bundle, resolve_geometry
from ganzoo.sampling.generate import load_generator
from ganzoo.training.checkpoint import load_snapshot
from ganzoo.training.trainer import Trainer

from .conftest import compose

# model=dcgan exactly as the README runs it, but narrow so a few steps take well under a second.
NARROW = ["model=dcgan", "model.G.base_channels=8", "model.D.base_channels=8", "trainer=smoke", "trainer.device=cpu"]


class _PooledFeatures(nn.Module):
    """A tiny stand-in for Inception (injected explicitly): the eval plumbing, not the score, is under test."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)  # [N, 12]


@pytest.fixture
def tiny_extractor(monkeypatch):
    ext = FeatureExtractor(torch.jit.script(_PooledFeatures()), kind="fid-helper", weights_path="<test>",
                           weights_sha256="cd" * 32, source="explicit")
    monkeypatch.setattr(evaluation, "load_inception", lambda weights=None, *, device=None, allow_download=True: ext)


@pytest.mark.parametrize(("native", "expected"), [(28, 32), (32, 32), (33, 64), (64, 64), (178, 256), (3, 8)])
def test_auto_resolution_is_the_next_power_of_two(native, expected):
    assert auto_resolution(native) == expected


def test_auto_resolution_is_capped_for_photographs():
    assert auto_resolution(4000) == AUTO_MAX_RESOLUTION
    cfg = compose(["model=dcgan", "data=celeba"])  # 178x218: crop keeps 178 -> 256, no download needed
    note = resolve_geometry(cfg.model, cfg.data)
    assert (cfg.model.resolution, cfg.model.img_channels) == (256, 3) and "178x178 colour" in note


@pytest.mark.parametrize(("data", "expected"), [("fashion", (32, 1)), ("emoji", (32, 3)), ("cifar10", (32, 3)),
                                                ("mnist", (32, 1))])
def test_auto_follows_the_data(data, expected):
    cfg = compose(["model=dcgan", f"data={data}"])
    assert (cfg.model.resolution, cfg.model.img_channels) == ("auto", "auto")  # the preset itself is auto
    resolve_geometry(cfg.model, cfg.data)
    assert (cfg.model.resolution, cfg.model.img_channels) == expected


def test_embedded_datasets_report_native_geometry():
    fashion = build_dataset({"name": "fashion", "max_images": 4}, resolution=8, channels=3)
    emoji = build_dataset({"name": "emoji", "max_images": 4}, resolution=16, channels=1)
    # Native geometry is the source's, not the prepared images' (8 px RGB / 16 px grey here).
    assert (fashion.native_resolution, fashion.native_channels) == (28, 1)
    assert (emoji.native_resolution, emoji.native_channels) == (32, 3)


def test_folder_geometry_from_headers_with_fit(tmp_path):
    Image.new("L", (20, 40), 128).save(tmp_path / "a.png")
    Image.new("L", (30, 30), 50).save(tmp_path / "b.png")
    assert native_geometry({"name": "folder", "root": str(tmp_path)}) == (30, 1)  # crop: the larger centre square
    assert native_geometry({"name": "folder", "root": str(tmp_path), "fit": "pad"}) == (40, 1)  # the whole image
    Image.new("RGBA", (16, 16)).save(tmp_path / "c.png")  # one colour file makes the set colour
    assert native_geometry({"name": "folder", "root": str(tmp_path)})[1] == 3
    ds = build_dataset({"name": "folder", "root": str(tmp_path), "fit": "pad"}, resolution=8, channels=1)
    assert (ds.native_resolution, ds.native_channels) == (40, 3)


def test_folder_geometry_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="data.root"):
        native_geometry({"name": "folder"})
    with pytest.raises(DataError, match="does not exist"):
        native_geometry({"name": "folder", "root": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="unknown dataset"):
        native_geometry({"name": "fashon"})


def test_explicit_numbers_win_and_mix_with_auto():
    cfg = compose(["model=dcgan", "model.resolution=64", "model.img_channels=3"])
    assert resolve_geometry(cfg.model, cfg.data) is None
    assert (cfg.model.resolution, cfg.model.img_channels) == (64, 3)
    cfg = compose(["model=dcgan", "data=emoji", "model.img_channels=1"])
    resolve_geometry(cfg.model, cfg.data)
    assert (cfg.model.resolution, cfg.model.img_channels) == (32, 1)
    paper = compose(["experiment=dcgan_paper"])  # the paper's 64x64 RGB DCGAN stays available
    assert (paper.model.resolution, paper.model.img_channels) == (64, 3)


@pytest.mark.parametrize(("override", "message"), [
    ("model.resolution=big", "model.resolution='big' must be auto"),
    ("model.resolution=2", "model.resolution=2 must be auto"),
    ("model.img_channels=2", "model.img_channels=2 must be auto"),
    ("model.img_channels=rgb", "model.img_channels='rgb' must be auto"),
])
def test_bad_geometry_values_are_config_errors(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        Trainer(compose([*NARROW, override]), tmp_path / "run")


def test_an_unresolved_auto_cannot_be_built():
    with pytest.raises(ConfigError, match="resolve_geometry"):
        build_bundle(compose(["model=dcgan"]).model)


def test_run_saves_numbers_and_generate_eval_resume_load_it(tmp_path, tiny_extractor, monkeypatch):
    run = tmp_path / "run"
    Trainer(compose([*NARROW, "trainer.steps=2"]), run).fit()
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert (saved["resolution"], saved["img_channels"]) == (32, 1)  # numbers, not auto
    snap = load_snapshot(run)
    model_cfg = yaml.safe_load(snap.metadata["model_config"])
    assert (model_cfg["resolution"], model_cfg["img_channels"]) == (32, 1)

    bundle, modules, _ = load_generator(run, device="cpu")
    assert (bundle.resolution, bundle.channels) == (32, 1)
    assert main(["generate", str(run), "--n", "4", "--seed", "1", "--out", str(tmp_path / "g.png"),
                 "--device", "cpu"]) == 0
    assert (tmp_path / "g.png").exists()

    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    assert main(["eval", str(run), "--metrics", "fid", "--num-fake", "20", "--num-real", "20",
                 "--device", "cpu"]) == 0
    record = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert record["metric"] == "fid" and record["value"] == record["value"]  # a number, not NaN

    # Resuming with the preset (still `auto`) resolves to the same numbers, so the model configs match.
    resumed = Trainer(compose([*NARROW, "trainer.steps=3", f"trainer.resume={run}"]), run)
    assert resumed.images_seen == 32 and resumed.fit()["step"] == 3


def test_list_marks_auto_presets_at_the_default_data(monkeypatch, capsys):
    monkeypatch.setattr(registry, "list_models", lambda: ["dcgan", "dcgan_tiny"])
    assert main(["list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "64px G 3.58M, D 2.77M" in rows["dcgan"]  # the registry preset: the paper's numbers
    assert "auto=32px/1ch" in rows["dcgan"]  # the yaml: follows the data, shown at data=fashion
    assert "auto" not in rows["dcgan_tiny"]


def test_auto_geometry_builds_every_cpu_preset_on_grey_and_colour():
    """Each preset that follows the data builds at 32 px grey (fashion) and 32 px RGB (emoji)."""
    for name in ("dcgan", "progan", "stylegan", "stylegan2", "sagan", "biggan", "vqgan", "vit_vqgan"):
        for data, channels in (("fashion", 1), ("emoji", 3)):
            cfg = compose([f"model={name}", f"data={data}"])
            resolve_geometry(cfg.model, cfg.data)
            with torch.device("meta"):
                bundle = build_bundle(cfg.model, num_classes=10)
            assert (bundle.resolution, bundle.channels) == (32, channels), (name, data)
