"""`ganzoo reconstruct`, reconstruction scoring in `ganzoo eval`, code images and the usage histogram."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import ganzoo.evaluation as evaluation
from ganzoo.cli import main
from ganzoo.metrics.features import FeatureExtractor
from ganzoo.metrics.reconstruction import psnr
from ganzoo.sampling.reconstruct import code_colors, codes_image, usage_histogram
from ganzoo.training.trainer import Trainer

from .conftest import compose
from .test_evaluation import _TinyFeatures


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    """A vit_vqgan_tiny run of 8 steps (16x16 grey Fashion-MNIST)."""
    run = tmp_path_factory.mktemp("ae") / "run"
    Trainer(compose(["model=vit_vqgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.steps=8",
                     "trainer.grid=4"]), run).fit()
    return run


@pytest.fixture
def tiny_extractor(monkeypatch):
    ext = FeatureExtractor(torch.jit.script(_TinyFeatures()), kind="fid-helper", weights_path="<test>",
                           weights_sha256="cd" * 32, source="explicit")
    monkeypatch.setattr(evaluation, "load_inception", lambda weights=None, *, device=None, allow_download=True: ext)
    return ext


def _no_lpips(monkeypatch, tmp_path):
    """No AlexNet weights anywhere (explicitly), so LPIPS must be reported as skipped."""
    import importlib

    lp = importlib.import_module("ganzoo.metrics.lpips_distance")  # the module, not the function
    monkeypatch.setattr(lp, "hub_checkpoint_dir", lambda: tmp_path / "empty_hub")


def test_code_colours_are_fixed_and_distinct():
    a, b = code_colors(512), code_colors(512)
    assert torch.equal(a, b) and a.shape == (512, 3)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    # Neighbouring indices differ visibly; no two of the first 64 codes share a colour.
    assert float((a[1:] - a[:-1]).abs().sum(1).min()) > 0.05
    assert torch.unique(a[:64], dim=0).shape[0] == 64
    img = codes_image(torch.tensor([[[0, 1], [2, 3]]]), 512, size=4)  # [1, 3, 4, 4]
    assert img.shape == (1, 3, 4, 4)
    torch.testing.assert_close(img[0, :, 0, 0], a[0] * 2 - 1)
    torch.testing.assert_close(img[0, :, 3, 3], a[3] * 2 - 1)  # nearest upscaling: bottom-right code


def test_usage_histogram_draws_counts(tmp_path):
    idx = torch.tensor([0, 0, 0, 5, 5, 9])
    path = usage_histogram(idx, 16, tmp_path / "h.png", title="test")
    with Image.open(path) as im:
        assert im.size[0] > 100 and im.size[1] > 100


def test_reconstruct_command_writes_grid_codes_and_metrics(ae_run, tmp_path, monkeypatch, capsys):
    _no_lpips(monkeypatch, tmp_path)
    out = tmp_path / "out"
    rc = main(["reconstruct", str(ae_run), "--n", "6", "--nrow", "3", "--out", str(out), "--histogram",
               "--device", "cpu"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "psnr:" in printed and "perplexity:" in printed and "lpips: skipped" in printed
    record = json.loads((out / "metrics.json").read_text())
    assert record["num_images"] == 6 and record["n_embed"] == 64 and record["code_shape"] == [4, 4]
    assert record["source"] == {"dataset": "fashion", "split": "train", "seed": 0}
    assert 0 < record["usage"] <= 1 and 1 <= record["perplexity"] <= 64 and -1 <= record["ssim"] <= 1
    assert len(record["checkpoint_sha256"]) == 64 and "lpips_skipped" in record
    # Grid: 2 rows (inputs, reconstructions) per 3 images, 16 px + 1 px padding each.
    with Image.open(out / "reconstruct.png") as im:
        assert im.size == (3 * 17 + 1, 4 * 17 + 1)
        grid = np.asarray(im).astype(np.float64)
    with Image.open(out / "codes.png") as im:
        assert im.size == (3 * 17 + 1, 2 * 17 + 1) and im.mode == "RGB"
    assert (out / "histogram.png").exists()
    # The PSNR in metrics.json is the PSNR of the images drawn in the grid (up to 8-bit rounding).
    tiles = [grid[1 + r * 17 : 1 + r * 17 + 16, 1 + c * 17 : 1 + c * 17 + 16] for r in range(4) for c in range(3)]
    inputs = torch.tensor(np.stack(tiles[0:3] + tiles[6:9]))[:, None] / 127.5 - 1
    recs = torch.tensor(np.stack(tiles[3:6] + tiles[9:12]))[:, None] / 127.5 - 1
    assert float(psnr(inputs, recs)) == pytest.approx(record["psnr"], abs=0.3)
    # Same seed, same images: the same numbers.
    main(["reconstruct", str(ae_run), "--n", "6", "--out", str(tmp_path / "again"), "--device", "cpu"])
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["psnr"] == pytest.approx(record["psnr"]) and again["usage"] == record["usage"]


def test_reconstruct_from_a_folder(ae_run, tmp_path, monkeypatch):
    _no_lpips(monkeypatch, tmp_path)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 20), 60 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    assert main(["reconstruct", str(ae_run), "--images", str(folder), "--out", str(tmp_path / "o"),
                 "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert record["num_images"] == 3 and record["source"]["images"] == str(folder.resolve())


def test_reconstruct_refuses_a_gan(train_run, tmp_path, capsys):
    train_run("trainer.steps=1")
    assert main(["reconstruct", str(tmp_path / "run"), "--device", "cpu"]) == 2
    assert "autoencoder" in capsys.readouterr().err


def test_eval_of_an_autoencoder_scores_reconstructions(ae_run, tmp_path, tiny_extractor, monkeypatch, capsys):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    _no_lpips(monkeypatch, tmp_path)
    rc = main(["eval", str(ae_run), "--metrics", "fid,kid", "--num-fake", "40", "--num-real", "40",
               "--device", "cpu", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "rfid:" in out and "psnr:" in out and "codebook_usage:" in out and "lpips: skipped" in out
    rows = [json.loads(line) for line in (ae_run / "eval.jsonl").read_text().splitlines()]
    by_metric = {r["metric"]: r for r in rows}
    assert {"rfid", "rkid", "psnr", "ssim", "codebook"} <= set(by_metric)
    for r in by_metric.values():
        assert r["num_fake"] == 40 and r["num_real"] == 40 and len(r["checkpoint_sha256"]) == 64
        assert r["extra"]["model"] == "vit_vqgan_tiny" and r["reference_dataset"] == "fashion"
    assert by_metric["rfid"]["weights_sha256"] == "cd" * 32 and by_metric["rfid"]["value"] > 0
    assert 0 < by_metric["codebook"]["value"]["usage"] <= 1


def test_reconstruction_scores_match_direct_computation(ae_run, tmp_path, tiny_extractor):
    """The Evaluator's PSNR / usage equal a direct computation on the first N images of the split, and
    rFID equals the FID of the stand-in features of inputs vs reconstructions."""
    from ganzoo.evaluation import EvalProtocol, Evaluator
    from ganzoo.metrics import codebook_usage, extract_features, fid_from_features
    from ganzoo.sampling.generate import load_generator

    bundle, modules, state = load_generator(ae_run, device="cpu")
    proto = EvalProtocol.from_config({"metrics": ["rfid", "psnr", "codebook"], "num_fake": 24, "num_real": 30,
                                      "batch_size": 10, "cache_dir": str(tmp_path / "c")})
    ev = Evaluator(proto, {"name": "fashion"}, resolution=16, channels=1)
    result = ev(bundle, modules, state)
    x = torch.stack([ev.dataset[i][0] for i in range(24)])
    with torch.no_grad():
        rec, q = modules["G"](x)
    rec = rec.clamp(-1, 1)
    assert result.values["psnr"] == pytest.approx(float(psnr(x, rec, reduction="none").mean()), rel=1e-6)
    usage = codebook_usage(q.indices, 64)
    assert result.values["codebook_usage"] == pytest.approx(usage["usage"])
    assert result.values["codebook_perplexity"] == pytest.approx(usage["perplexity"])
    fr, _ = extract_features(tiny_extractor, [x])
    ff, _ = extract_features(tiny_extractor, [rec])
    assert result.values["rfid"] == pytest.approx(fid_from_features(fr, ff), rel=1e-4)
    assert math.isfinite(result.values["ssim"])
