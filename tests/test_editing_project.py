"""`ganzoo project`: GAN inversion (StyleGAN2-ADA's projector, W+, Z), VQ encoding, latent files, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.cli import main
from ganzoo.editing.distance import build_distance, ssim_l1_distance
from ganzoo.editing.latents import Latent, load_latent, model_hash, save_latent
from ganzoo.editing.projector import (
    ProjectConfig,
    latent_noise_scale,
    learning_rate,
    noise_buffers,
    noise_regularization,
    project,
)
from ganzoo.errors import ConfigError
from ganzoo.registry import build_model
from ganzoo.training.trainer import Trainer

from .conftest import compose

BASE = ["trainer=smoke", "trainer.device=cpu", "trainer.grid=4", "trainer.batch_size=8"]
FAST = ProjectConfig(steps=40, avg_samples=500)


def _generator(name: str, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(seed)
    bundle = build_model(name)
    return bundle.modules["G"].eval().requires_grad_(False), bundle.info


def _style_target(G: torch.nn.Module, seed: int = 7) -> torch.Tensor:
    with torch.no_grad():
        z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(seed))
        return G(z, noise_mode="const")  # [2, 3, 16, 16]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These 16-32 px models run several times faster on one thread than on two of a shared, busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny runs of a few steps: a StyleGAN2, a VQ tokenizer and a code prior on it."""
    root = tmp_path_factory.mktemp("proj")
    out = {"sg2": root / "sg2", "vq": root / "vq", "prior": root / "prior"}
    Trainer(compose(["model=stylegan2_tiny", *BASE, "trainer.steps=1"]), out["sg2"]).fit()
    Trainer(compose(["model=vqgan_tiny", *BASE, "trainer.steps=2"]), out["vq"]).fit()
    Trainer(compose(["model=vqgan_prior_tiny", f"model.stage1={out['vq']}", *BASE, "trainer.steps=1"]),
            out["prior"]).fit()
    return out


@pytest.fixture(autouse=True)
def _no_lpips_weights(monkeypatch, tmp_path):
    """No VGG16 weights anywhere, so `auto` must fall back (and say so) without touching the network."""
    import importlib

    lp = importlib.import_module("ganzoo.metrics.lpips_distance")
    monkeypatch.setattr(lp, "hub_checkpoint_dir", lambda: tmp_path / "empty_hub")


# -- the schedule and the regulariser, by hand ---------------------------------------------------------
def test_schedule_matches_the_official_formulas():
    cfg = ProjectConfig(steps=1000)
    assert learning_rate(0, cfg) == 0.0
    assert learning_rate(25, cfg) == pytest.approx(0.1 * 0.5)  # half-way up the 5 % ramp
    assert learning_rate(500, cfg) == pytest.approx(0.1)
    assert learning_rate(900, cfg) == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(math.pi * 0.4)))
    assert latent_noise_scale(0, cfg, 2.0) == pytest.approx(2.0 * 0.05)
    assert latent_noise_scale(375, cfg, 2.0) == pytest.approx(2.0 * 0.05 * 0.25)
    assert latent_noise_scale(800, cfg, 2.0) == 0.0


def test_noise_regularizer_by_hand():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 1, 16, 16, generator=g)
    want = torch.zeros(2)
    for i in range(2):
        x = a[i, 0]
        for _ in range(2):  # 16x16, then 8x8
            want[i] += (x * torch.roll(x, 1, dims=1)).mean() ** 2 + (x * torch.roll(x, 1, dims=0)).mean() ** 2
            x = torch.nn.functional.avg_pool2d(x[None, None], 2)[0, 0]
    torch.testing.assert_close(noise_regularization([a]), want)


# -- projection on tiny generators -----------------------------------------------------------------------
def test_w_projection_falls_and_beats_the_mean_latent_with_noise_normalised():
    G, _ = _generator("stylegan2_tiny")
    target = _style_target(G)
    stats = []

    def check(step: int, d: float) -> None:
        for module, key in noise_buffers(G).values():
            buf = module._buffers[key]  # the projection's buffers, swapped in while it runs
            stats.append((buf.mean(dim=(1, 2, 3)).abs().max().item(), (buf.std(dim=(1, 2, 3), unbiased=False)
                                                                         - 1).abs().max().item()))

    p = project(G, target, ssim_l1_distance, space="w", cfg=FAST, progress=check)
    assert len(stats) == FAST.steps * len(noise_buffers(G))
    assert max(m for m, _ in stats) < 1e-5 and max(s for _, s in stats) < 1e-4
    first, last = p.history[:5].mean(), p.history[-5:].mean()
    assert last < 0.5 * first
    assert (p.distance < p.start_distance).all()
    mse = lambda x: (x.clamp(-1, 1) - target).square().flatten(1).mean(1)  # noqa: E731
    assert (mse(p.images) < mse(p.start_images)).all()
    assert p.latent.shape == (2, G.w_dim) and set(p.noise) == set(noise_buffers(G))
    for module, key in noise_buffers(G).values():  # the model's own buffers are back in place
        assert module._buffers[key].shape[0] == 1


def test_w_plus_reaches_a_lower_loss_than_w():
    G, _ = _generator("stylegan2_tiny")
    with torch.no_grad():  # a target outside W: a different w at every layer
        z = torch.randn(2 * G.num_ws, G.z_dim, generator=torch.Generator().manual_seed(3))
        ws = G.mapping(z)[:, 0].reshape(2, G.num_ws, G.w_dim)
        target = G.synthesis(ws, noise_mode="const")
    cfg = ProjectConfig(steps=80, avg_samples=500)
    w = project(G, target, ssim_l1_distance, space="w", cfg=cfg)
    wp = project(G, target, ssim_l1_distance, space="w+", cfg=cfg)
    assert wp.latent.shape == (2, G.num_ws, G.w_dim)
    assert wp.distance.mean() < w.distance.mean()


def test_seeded_projection_is_repeatable_bit_for_bit():
    G, _ = _generator("stylegan2_tiny")
    target = _style_target(G)
    cfg = ProjectConfig(steps=10, avg_samples=200, seed=5)
    a = project(G, target, ssim_l1_distance, space="w+", cfg=cfg)
    b = project(G, target, ssim_l1_distance, space="w+", cfg=cfg)
    assert torch.equal(a.latent, b.latent) and torch.equal(a.history, b.history)
    assert all(torch.equal(a.noise[k], b.noise[k]) for k in a.noise)
    c = project(G, target, ssim_l1_distance, space="w+", cfg=ProjectConfig(steps=10, avg_samples=200, seed=6))
    assert not torch.equal(a.latent, c.latent)


def test_each_image_starts_at_the_mean_w_of_its_own_class():
    """Mixed labels on a conditional style G: image 1 of classes [0, 1] starts where it does among [1, 1] (same
    noise images), not at class 0's mean w."""
    torch.manual_seed(0)
    G = build_model("stylegan2_tiny", c_dim=3).modules["G"].eval()
    target = torch.rand(2, G.img_channels, G.img_resolution, G.img_resolution) * 2 - 1
    cfg = ProjectConfig(steps=1, avg_samples=100)
    mixed = project(G, target, ssim_l1_distance, space="w", c=torch.tensor([0, 1]), cfg=cfg).start_images
    same = project(G, target, ssim_l1_distance, space="w", c=torch.tensor([1, 1]), cfg=cfg).start_images
    zero = project(G, target, ssim_l1_distance, space="w", c=torch.tensor([0, 0]), cfg=cfg).start_images
    assert torch.equal(mixed[1], same[1]) and torch.equal(mixed[0], zero[0])
    assert not torch.equal(mixed[1], zero[1])


@pytest.mark.parametrize("name", ["dcgan_tiny", "biggan_tiny"])
def test_z_projection_lowers_the_distance(name):
    G, info = _generator(name)
    c = torch.tensor([1, 2]) if info.get("c_dim") else None
    with torch.no_grad():
        target = G(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1)), c)
    p = project(G, target, ssim_l1_distance, space="z", c=c, cfg=FAST, optimize_class=c is not None)
    assert (p.distance < 0.5 * p.start_distance).all()
    assert p.latent.shape == (2, G.z_dim)
    if c is not None:  # the class embedding moved from its starting point
        assert p.embedding is not None and not torch.equal(p.embedding, G.class_embedding(c))


def test_w_space_is_refused_for_a_generator_without_one():
    G, _ = _generator("dcgan_tiny")
    with pytest.raises(ConfigError, match="--space z"):
        project(G, torch.zeros(1, 3, 32, 32), ssim_l1_distance, space="w", cfg=FAST)


# -- distance choice ------------------------------------------------------------------------------------
def test_lpips_missing_falls_back_with_a_reason_or_fails_when_asked_for():
    d = build_distance("auto", allow_download=False)
    assert d.name == "ssim-l1" and "fallback" in d.reason and "vgg16" in d.reason
    with pytest.raises(ConfigError, match="--distance lpips"):
        build_distance("lpips", allow_download=False)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(ssim_l1_distance(x, x), torch.zeros(2), atol=1e-6)


# -- latent files ---------------------------------------------------------------------------------------
def test_latent_round_trip_and_wrong_model_refusal(tmp_path):
    lat = Latent("w+", torch.randn(2, 4, 8), torch.tensor([1, 0]), {"noise.a": torch.randn(2, 1, 4, 4)},
                 {"model": "stylegan2_tiny", "model_hash": "abc"})
    path = save_latent(tmp_path / "l.safetensors", lat)
    back = load_latent(path, expected_hash="abc")
    assert back.space == "w+" and torch.equal(back.value, lat.value) and torch.equal(back.c, lat.c)
    assert torch.equal(back.extra["noise.a"], lat.extra["noise.a"]) and back.meta == lat.meta
    with pytest.raises(ConfigError, match="stylegan2_tiny.*abc.*other_model.*zzz"):
        load_latent(path, expected_hash="zzz", expected_model="other_model")
    with pytest.raises(ConfigError, match="no such file"):
        load_latent(tmp_path / "missing.safetensors")
    (tmp_path / "junk").write_bytes(b"not a latent")
    with pytest.raises(ConfigError, match="not a ganzoo latent"):
        load_latent(tmp_path / "junk")
    G, _ = _generator("biggan_tiny")  # 0-d buffers (spectral norm's sigma) hash too
    assert model_hash(G) == model_hash(G) and len(model_hash(G)) == 16


# -- the command ----------------------------------------------------------------------------------------
def _png(path: Path, size: int, channels: int, value: int = 90) -> Path:
    shape = (size, size) if channels == 1 else (size, size, 3)
    Image.fromarray(np.full(shape, value, dtype=np.uint8)).save(path)
    return path


def test_project_command_writes_everything(runs, tmp_path, capsys):
    img = _png(tmp_path / "shirt.png", 16, 3)
    assert main(["project", str(runs["sg2"]), str(img), "--steps", "12", "--device", "cpu", "--gif-frames", "4"]) == 0
    err = capsys.readouterr().err
    assert "distance: ssim-l1 (fallback" in err and "the mean latent" in err
    out = runs["sg2"] / "projected" / "shirt_w_ssim-l1"
    for f in ("latent.safetensors", "target_vs_projection.png", "mean_latent.png", "optimization.gif",
              "metrics.json"):
        assert (out / f).is_file(), f
    record = json.loads((out / "metrics.json").read_text())
    assert record["distance"] == "ssim-l1" and record["steps"] == 12 and record["space"] == "w"
    assert record["per_image"][0]["target"]["path"] == str(img.resolve())
    assert set(record["final"]) == {"distance", "psnr", "ssim"} and set(record["mean_latent"]) == set(record["final"])
    from ganzoo.sampling.generate import load_generator

    _, modules, _ = load_generator(runs["sg2"], device="cpu")
    lat = load_latent(out / "latent.safetensors", expected_hash=model_hash(modules["G"]))
    assert lat.value.shape == (1, 32) and any(k.startswith("noise.") for k in lat.extra)
    assert Image.open(out / "optimization.gif").n_frames >= 4


def test_vq_project_encodes_to_the_tokenizers_codes(runs, tmp_path):
    from ganzoo.sampling.generate import load_generator
    from ganzoo.sampling.reconstruct import dataset_images

    out = tmp_path / "vqout"
    assert main(["project", str(runs["vq"]), "--from-data", "train", "--n", "3", "--seed", "2", "--out", str(out),
                 "--device", "cpu"]) == 0
    lat = load_latent(out / "latent.safetensors")
    bundle, modules, _ = load_generator(runs["vq"], device="cpu")
    G = modules["G"]
    images = dataset_images({"name": "fashion", "split": "train"}, 3, seed=2,
                            resolution=bundle.resolution, channels=bundle.channels)
    with torch.no_grad():
        want = G.encode(images).indices
    assert lat.space == "codes" and torch.equal(lat.value, want.long())
    record = json.loads((out / "metrics.json").read_text())
    assert record["space"] == "codes" and record["final"]["psnr"] > 0


@pytest.mark.parametrize("case", ["missing", "size", "channels", "prior", "w_on_vq", "optimize_class"])
def test_bad_input_exits_2_and_writes_nothing(runs, tmp_path, capsys, case):
    out = tmp_path / "out"
    run, extra = runs["sg2"], []
    if case == "missing":
        images, expect = [str(tmp_path / "nope.png")], "does not exist"
    elif case == "size":
        images, expect = [str(_png(tmp_path / "big.png", 20, 3))], "20x20 RGB; this model takes 16x16 RGB"
    elif case == "channels":
        images, expect = [str(_png(tmp_path / "grey.png", 16, 1))], "--resize"
    elif case == "prior":
        run, images, expect = runs["prior"], [str(_png(tmp_path / "a.png", 16, 1))], "tokenizer run"
    elif case == "w_on_vq":
        run, images, extra, expect = runs["vq"], [str(_png(tmp_path / "a.png", 16, 1))], ["--space", "w"], "encoding"
    else:
        images, extra, expect = [str(_png(tmp_path / "a.png", 16, 3))], ["--optimize-class"], "unconditional"
    before = sorted(p.name for p in run.iterdir())
    assert main(["project", str(run), *images, *extra, "--steps", "2", "--out", str(out), "--device", "cpu"]) == 2
    assert expect in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in run.iterdir()) == before


def test_resize_accepts_an_image_of_another_size(runs, tmp_path):
    img = _png(tmp_path / "big.png", 24, 1)
    out = tmp_path / "o"
    assert main(["project", str(runs["sg2"]), str(img), "--resize", "--steps", "3", "--out", str(out),
                 "--device", "cpu", "--distance", "ssim-l1"]) == 0
    assert load_latent(out / "latent.safetensors").value.shape == (1, 32)


def test_classes_come_from_class_or_the_dataset_labels():
    from ganzoo.editing.project_run import _classes
    from ganzoo.editing.targets import Targets

    labelled = Targets(torch.zeros(3, 1, 8, 8), "t", labels=torch.tensor([4, 0, 9]))
    assert _classes(None, 0, labelled, "m") is None
    assert _classes(2, 10, labelled, "m").tolist() == [2, 2, 2]
    assert _classes(None, 10, labelled, "m").tolist() == [4, 0, 9]
    img = torch.zeros(1, 1, 8, 8)
    for bad in (Targets(img, "t"), Targets(img, "t", labels=torch.tensor([-1]))):
        with pytest.raises(ConfigError, match="--class K"):
            _classes(None, 10, bad, "m")


def test_lpips_is_taken_when_its_backbone_loads(monkeypatch):
    import ganzoo.metrics as metrics

    real = metrics.lpips_distance
    # a random trunk stands in for the VGG16 weights this machine does not have (the code path is the same)
    monkeypatch.setattr(metrics, "lpips_distance", lambda net, weights, **kw: real(net, random_backbone=True,
                                                                                    device=kw.get("device")))
    d = build_distance("auto")
    assert d.name == "lpips" and "VGG16" in d.reason
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert torch.allclose(d(x, x), torch.zeros(2), atol=1e-6) and (d(x, -x) > 0).all()
