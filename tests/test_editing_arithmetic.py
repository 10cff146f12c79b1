"""Latent arithmetic (DCGAN Sec. 6.3): means and expressions against numpy, the figure, the CLI, refusals."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.cli import main
from ganzoo.editing.arithmetic import evaluate, figure_layout, group_means, neighbours, parse_expr
from ganzoo.editing.latents import Latent, load_latent, model_hash, save_latent
from ganzoo.errors import ConfigError
from ganzoo.sampling import generate as generate_mod
from ganzoo.sampling.generate import load_generator
from ganzoo.sampling.interpolation import seed_latents


def make_run(folder: Path, name: str, **cfg) -> Path:
    """A run folder holding one snapshot of a freshly built (untrained, seeded) model: what `generate` and the
    editing commands read, without the cost of training."""
    from omegaconf import OmegaConf

    from ganzoo.runtime import build_bundle
    from ganzoo.training.checkpoint import save_snapshot

    model_cfg = OmegaConf.create({"name": name, **cfg})
    torch.manual_seed(0)
    bundle = build_bundle(model_cfg)
    (folder / "checkpoints").mkdir(parents=True)
    save_snapshot(folder / "checkpoints", modules=bundle.modules, ema={}, state={"images_seen": 0, "step": 0},
                  metadata={"model_config": OmegaConf.to_yaml(model_cfg), "images_seen": "0", "model": name})
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("arith")
    return {"dcgan_tiny": make_run(root / "dcgan", "dcgan_tiny", resolution=32, img_channels=3),
            "stylegan2_tiny": make_run(root / "sg2", "stylegan2_tiny", resolution=16, img_channels=3)}


def test_expression_on_group_means_matches_numpy():
    rng = np.random.default_rng(0)
    groups = [rng.normal(size=(3, 5)), rng.normal(size=(2, 5)), rng.normal(size=(4, 5))]
    means = group_means([torch.from_numpy(g) for g in groups])
    np.testing.assert_allclose(means.numpy(), np.stack([g.mean(0) for g in groups]), rtol=0, atol=1e-12)
    names = ["A", "B", "C"]
    got = evaluate(parse_expr("A - B + C", names), means, names).numpy()
    np.testing.assert_allclose(got, groups[0].mean(0) - groups[1].mean(0) + groups[2].mean(0), atol=1e-12)
    got = evaluate(parse_expr("0.5*A+0.5*C", names), means, names).numpy()
    np.testing.assert_allclose(got, 0.5 * groups[0].mean(0) + 0.5 * groups[2].mean(0), atol=1e-12)
    for bad in ("A-", "A**B", "2A", "A-D", ""):
        with pytest.raises(ConfigError):
            parse_expr(bad, names)


def test_neighbours_are_seeded_uniform_within_quarter():
    y = torch.randn(16)
    a, b, c = neighbours(y, seed=1), neighbours(y, seed=1), neighbours(y, seed=2)
    assert a.shape == (8, 16) and torch.equal(a, b) and not torch.equal(a, c)
    d = (a - y).abs()
    assert d.max() <= 0.25 and d.max() > 0.2  # the paper's +-0.25 scale, actually used


def test_figure_layout_rows_are_groups_then_result():
    cols, cells = figure_layout([3, 3, 3], 8)
    assert cols == 9 and len(cells) == 4 * 9
    assert cells[:4] == [0, 1, 2, 9] and cells[4:9] == [None] * 5  # group A: samples, then its mean
    assert cells[27:] == list(range(12, 21))  # the result, then its 8 neighbours


def _files(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.exists() else set()


def test_generate_arithmetic_in_z(runs, tmp_path):
    run = runs["dcgan_tiny"]
    assert main(["generate", str(run), "--mode", "arithmetic", "--groups", "1,2,3;4,5,6;7,8,9", "--expr", "A-B+C",
                 "--seed", "3", "--out", str(tmp_path / "fig.png")]) == 0
    assert Image.open(tmp_path / "fig.png").size == (9 * 32, 4 * 32)  # 3 group rows + the result row
    lat = load_latent(tmp_path / "fig.safetensors")
    z = [seed_latents(s, 32)[0].double().numpy() for s in ([1, 2, 3], [4, 5, 6], [7, 8, 9])]
    want = z[0].mean(0) - z[1].mean(0) + z[2].mean(0)
    assert lat.space == "z" and lat.value.shape == (4, 32)
    np.testing.assert_allclose(lat.value[0].double().numpy(), want, atol=1e-5)
    np.testing.assert_allclose(lat.value[2].double().numpy(), z[1].mean(0), atol=1e-6)
    # the default name says what was drawn
    assert main(["generate", str(run), "--mode", "arithmetic", "--groups", "1;2", "--expr", "A-B"]) == 0
    assert (run / "generated" / "arithmetic_z_AminusB_1__2_seed0.png").exists()


def test_generate_arithmetic_in_w_with_a_latent_group(runs, tmp_path):
    run = runs["stylegan2_tiny"]
    bundle, modules, _ = load_generator(run, device="cpu")
    G = modules["G"]
    w_file = torch.randn(2, G.w_dim)
    save_latent(tmp_path / "a.safetensors", Latent("w", w_file, meta={"model_hash": model_hash(G)}))
    assert main(["generate", str(run), "--mode", "arithmetic", "--groups", f"{tmp_path / 'a.safetensors'};4,5",
                 "--expr", "A-B", "--out", str(tmp_path / "w.png")]) == 0
    lat = load_latent(tmp_path / "w.safetensors")
    with torch.no_grad():
        wb = G.mapping(seed_latents([4, 5], G.z_dim)[0], None)[:, 0].double()
    assert lat.space == "w"
    np.testing.assert_allclose(lat.value[0].double().numpy(), (w_file.double().mean(0) - wb.mean(0)).numpy(),
                               atol=1e-5)


@pytest.mark.parametrize("extra, message", [
    (["--groups", "1,2;3", "--expr", "A-B", "--space", "w"], "needs a style-based generator"),
    (["--groups", "1,2;3", "--expr", "A-Q"], "names group(s) Q"),
    (["--groups", "1,2", "--expr", "A"], "at least two groups"),
    (["--groups", "1,2;missing.safetensors", "--expr", "A-B"], "no such file"),
    (["--groups", "1;2"], "needs --groups and --expr"),
    (["--groups", "1;2", "--expr", "A-B", "--nrow", "3"], "--nrow does not apply"),
])
def test_generate_arithmetic_refusals_write_nothing(runs, capsys, extra, message):
    run = runs["dcgan_tiny"]
    before = _files(run / "generated")
    assert main(["generate", str(run), "--mode", "arithmetic", *extra]) == 2
    assert message in capsys.readouterr().err
    assert _files(run / "generated") == before


def test_arithmetic_latent_of_another_model_is_refused(runs, tmp_path, capsys):
    save_latent(tmp_path / "other.safetensors", Latent("z", torch.randn(2, 32), meta={"model_hash": "0" * 16}))
    assert main(["generate", str(runs["dcgan_tiny"]), "--mode", "arithmetic", "--groups",
                 f"1,2;{tmp_path / 'other.safetensors'}", "--expr", "A-B", "--out", str(tmp_path / "x.png")]) == 2
    assert "belongs to" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_arithmetic_on_a_vq_prior_is_refused(monkeypatch, tmp_path, capsys):
    bundle = SimpleNamespace(info={"name": "vqgan_prior_tiny", "kind": "prior", "z_dim": 0}, family="vector-quantized",
                             c_dim=0, sample=None, sample_opts=None)
    monkeypatch.setattr(generate_mod, "load_generator", lambda *a, **k: (bundle, {"prior": torch.nn.Linear(1, 1)}, {}))
    assert main(["generate", str(tmp_path), "--mode", "arithmetic", "--groups", "1;2", "--expr", "A-B"]) == 2
    assert "needs a GAN generator G" in capsys.readouterr().err
    assert not (tmp_path / "generated").exists()
