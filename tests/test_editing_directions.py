"""Directions (SeFa, GANSpace PCA, class means) against hand computation; `ganzoo directions` and `ganzoo edit`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.cli import main
from ganzoo.editing import edit_run
from ganzoo.editing.directions import (
    Directions,
    class_mean,
    ganspace,
    load_directions,
    pca_components,
    sample_w,
    save_directions,
    sefa,
)
from ganzoo.editing.latents import Latent, model_hash, save_latent
from ganzoo.editing.walk import Base, apply_direction, region_mask, swap_region
from ganzoo.errors import ConfigError
from ganzoo.registry import build_model

from .test_editing_arithmetic import make_run


def _G(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, **kw).modules["G"].eval()


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _same_up_to_sign(got: torch.Tensor, want: np.ndarray) -> None:
    dots = np.abs(np.sum(got.double().numpy() * want, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-4)


def _eigh_desc(m: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    vals, vecs = np.linalg.eigh(m)
    order = np.argsort(vals)[::-1][:k]
    return vals[order], vecs[:, order].T


def _affine(layer) -> np.ndarray:
    return layer.conv.affine.effective_weight().detach().double().numpy()


def test_sefa_style_matches_numpy_eigh_of_hand_stacked_affines():
    G = _G("stylegan2_tiny", resolution=16, img_channels=3)
    b4, b8, b16 = (G.synthesis.blocks[f"b{r}"] for r in (4, 8, 16))
    # one affine per ws as genforce/sefa: the convs, and the last ToRGB for the last ws (no conv reads it)
    hand = [b4.conv1, b8.conv0, b8.conv1, b16.conv0, b16.conv1, b16.torgb]
    a = _unit_rows(np.concatenate([_affine(x) for x in hand]))
    vals, vecs = _eigh_desc(a.T @ a, 5)
    got = sefa(G, 5)
    assert got.space == "w" and got.directions.shape == (5, G.w_dim)
    _same_up_to_sign(got.directions, vecs)
    np.testing.assert_allclose(got.values.numpy(), vals, rtol=1e-5)
    assert (np.diff(got.values.numpy()) <= 0).all()  # ordered by eigenvalue
    a01 = _unit_rows(np.concatenate([_affine(b4.conv1), _affine(b8.conv0)]))  # --layers 0-1
    _same_up_to_sign(sefa(G, 3, [0, 1]).directions, _eigh_desc(a01.T @ a01, 3)[1])


def test_sefa_first_layer_of_dcgan_matches_numpy():
    G = _G("dcgan_tiny", resolution=32, img_channels=3)
    w = G.net[0].weight.detach().double().numpy()  # [z_dim, C, 4, 4] on a 1x1 input
    a = _unit_rows(w.transpose(1, 2, 3, 0).reshape(-1, w.shape[0]))  # one row per output unit
    vals, vecs = _eigh_desc(a.T @ a, 6)
    got = sefa(G, 6)
    assert got.space == "z"
    _same_up_to_sign(got.directions, vecs)
    np.testing.assert_allclose(got.values.numpy(), vals, rtol=1e-5)


def test_pca_in_w_matches_numpy_and_is_orthonormal_by_variance():
    G = _G("stylegan2_tiny", resolution=16, img_channels=3)
    got = ganspace(G, 6, n=500, seed=3)
    w = sample_w(G, 500, 3).numpy()
    vals, vecs = _eigh_desc(np.cov(w, rowvar=False), 6)
    _same_up_to_sign(got.directions, vecs)
    np.testing.assert_allclose(got.values.numpy(), vals, rtol=1e-4)
    np.testing.assert_allclose(got.scales.numpy(), np.sqrt(vals), rtol=1e-4)  # strengths in sigma
    d = got.directions.double()
    torch.testing.assert_close(d @ d.T, torch.eye(6, dtype=torch.float64), atol=1e-5, rtol=0)
    assert (np.diff(got.values.numpy()) <= 0).all()
    comps, var, _ = pca_components(torch.randn(200, 4) * torch.tensor([3.0, 1.0, 0.5, 2.0]), 4)
    assert comps[0].abs().argmax() == 0 and comps[1].abs().argmax() == 3  # largest spread first


def test_pca_of_a_non_style_gan_is_orthonormal_in_z():
    G = _G("dcgan_tiny", resolution=32, img_channels=3)
    got = ganspace(G, 5, n=400, seed=0)
    d = got.directions.double()
    assert got.space == "z" and d.shape == (5, 32)
    torch.testing.assert_close(d @ d.T, torch.eye(5, dtype=torch.float64), atol=1e-5, rtol=0)
    assert (np.diff(got.values.numpy()) <= 0).all() and (got.scales > 0).all()


def test_class_mean_in_w_and_on_the_class_embedding():
    G = _G("stylegan2_tiny", resolution=16, img_channels=3, c_dim=3)
    got = class_mean(G, [(0, 2)], n=64, seed=1)
    z = torch.randn(64, G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = (G.mapping(z, torch.zeros(64, dtype=torch.long))[:, 0].double().mean(0)
                - G.mapping(z, torch.full((64,), 2))[:, 0].double().mean(0))
    torch.testing.assert_close((got.directions[0] * got.scales[0]).double(), want, atol=1e-5, rtol=1e-5)
    D = _G("dcgan_tiny", resolution=32, img_channels=3, c_dim=4)
    emb = class_mean(D, [(1, 3)])
    want = (D.embed.weight[1] - D.embed.weight[3]).detach()
    assert emb.space == "embedding"
    torch.testing.assert_close(emb.directions[0] * emb.scales[0], want, atol=1e-6, rtol=1e-6)
    with pytest.raises(ConfigError, match="class-conditional"):
        class_mean(_G("dcgan_tiny", resolution=32, img_channels=3), [(0, 1)])


def test_layer_range_edit_moves_only_those_ws_and_zero_is_exact():
    base = Base("w+", torch.randn(2, 6, 8))
    d = torch.randn(8)
    moved = apply_direction(base, d, [-1.0, 0.0, 2.0], ws=[1, 2])
    assert moved.shape == (2, 3, 6, 8) and torch.equal(moved[:, 1], base.value)
    changed = (moved[:, 2] != base.value).any(-1).any(0)  # [6]
    assert changed.tolist() == [False, True, True, False, False, False]
    torch.testing.assert_close(moved[:, 2, 1] - base.value[:, 1], 2 * d.expand(2, -1))


def test_region_swap_is_a_bit_exact_code_copy():
    a, b = torch.randint(0, 500, (1, 4, 6)), torch.randint(0, 500, (1, 4, 6))
    out = swap_region(a, b, region_mask("top", (4, 6)))
    assert torch.equal(out[:, :2], b[:, :2]) and torch.equal(out[:, 2:], a[:, 2:])
    out = swap_region(a, b, region_mask("1,0,3,4", (4, 6)))  # x 1-2, all rows
    assert torch.equal(out[..., 1:3], b[..., 1:3]) and torch.equal(out[..., 3:], a[..., 3:])
    with pytest.raises(ConfigError):
        region_mask("0,0,7,1", (4, 6))


# -- the commands ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dirs")
    return {"dcgan": make_run(root / "dcgan", "dcgan_tiny", resolution=32, img_channels=3),
            "sg2": make_run(root / "sg2", "stylegan2_tiny", resolution=16, img_channels=3)}


def _files(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.exists() else set()


def test_directions_command_writes_file_and_walk(runs):
    run = runs["sg2"]
    assert main(["directions", str(run), "--method", "sefa", "--k", "3", "--layers", "coarse"]) == 0
    found = load_directions(run / "directions" / "sefa_coarse.safetensors")
    assert len(found) == 3 and found.ws == [0, 1, 2, 3] and found.meta["method"] == "sefa"
    walk = Image.open(run / "directions" / "sefa_coarse_walk_seed0.png")
    assert walk.size == (7 * 16, 3 * 16)  # columns = strengths, rows = directions


def test_edit_at_strength_zero_reproduces_the_unedited_image(runs, tmp_path):
    for key, res in (("dcgan", 32), ("sg2", 16)):
        run = runs[key]
        assert main(["directions", str(run), "--method", "pca", "--k", "2", "--n", "300"]) == 0
        assert main(["edit", str(run), "--seeds", "1,2", "--direction", f"{run}/directions/pca_all.safetensors:1",
                     "--strength", "-2,2", "--steps", "3", "--out", str(tmp_path / key)]) == 0
        assert main(["generate", str(run), "--seeds", "1,2", "--nrow", "1", "--out", str(tmp_path / f"{key}_g.png")]) \
            == 0
        grid = np.asarray(Image.open(tmp_path / f"{key}.png")).astype(int)
        plain = np.asarray(Image.open(tmp_path / f"{key}_g.png")).astype(int)
        assert grid.shape[:2] == (2 * res, 3 * res)
        assert np.array_equal(grid[:, res:2 * res], plain)  # the middle column: strength 0
        assert not np.array_equal(grid[:, :res], plain)  # and the direction does change the image
        with Image.open(tmp_path / f"{key}.gif") as gif:
            assert gif.n_frames == 4  # 3 strengths and back


@pytest.mark.parametrize("argv, message", [
    (["edit", "{sg2}", "--latent", "{tmp}/missing.safetensors", "--direction", "{d}:0"], "no such file"),
    (["edit", "{sg2}", "--seeds", "1", "--direction", "{other}:0"], "not from this run's generator"),
    (["edit", "{sg2}", "--seeds", "1", "--direction", "{d}:7"], "index 7 is out of range"),
    (["edit", "{sg2}", "--seeds", "1", "--direction", "{d}:0", "--layers", "fine"], "does not exist in this model"),
    (["edit", "{sg2}", "--seeds", "1", "--swap", "{d}", "--region", "top"], "--swap exchanges regions of VQ code"),
    (["directions", "{sg2}", "--method", "class-mean"], "needs a class-conditional model"),
    (["directions", "{dcgan}", "--method", "sefa", "--layers", "coarse"], "only style generators"),
])
def test_bad_input_exits_2_and_writes_nothing(runs, tmp_path, capsys, argv, message):
    sg2, dcgan = runs["sg2"], runs["dcgan"]
    d = tmp_path / "d.safetensors"
    G = _G("stylegan2_tiny", resolution=16, img_channels=3)
    from ganzoo.sampling.generate import load_generator

    ghash = model_hash(load_generator(sg2, device="cpu")[1]["G"])
    save_directions(d, Directions(torch.eye(2, G.w_dim), torch.ones(2), torch.ones(2), "w", {"model_hash": ghash}))
    save_directions(tmp_path / "other.safetensors", Directions(torch.eye(2, 32), torch.ones(2), torch.ones(2), "z",
                                                               {"model_hash": "f" * 16, "model": "dcgan_tiny"}))
    before = {r: _files(r) for r in (sg2, dcgan)}
    subst = {"sg2": sg2, "dcgan": dcgan, "tmp": tmp_path, "d": d, "other": tmp_path / "other.safetensors"}
    assert main([a.format(**subst) for a in argv]) == 2
    assert message in capsys.readouterr().err
    assert {r: _files(r) for r in (sg2, dcgan)} == before


def test_codes_latents_swap_regions_and_refuse_directions(monkeypatch, tmp_path, capsys):
    torch.manual_seed(0)
    bundle = build_model("vqgan_tiny", resolution=16, img_channels=3)
    tok = bundle.modules["G"].eval()
    monkeypatch.setattr(edit_run, "load_generator", lambda *a, **k: (bundle, {"G": tok}, {}))
    h = model_hash(tok)
    with torch.no_grad():
        shape = tuple(tok.encode(torch.zeros(1, 3, 16, 16)).indices.shape[1:])
    a, b = torch.randint(0, 8, (1, *shape)), torch.randint(0, 8, (1, *shape))
    for name, codes in (("a", a), ("b", b)):
        save_latent(tmp_path / name / "latent.safetensors", Latent("codes", codes, meta={"model_hash": h}))
    assert main(["edit", str(tmp_path), "--latent", str(tmp_path / "a/latent.safetensors"), "--swap",
                 str(tmp_path / "b/latent.safetensors"), "--region", "left", "--out", str(tmp_path / "sw")]) == 0
    from ganzoo.editing.latents import load_latent

    out = load_latent(tmp_path / "sw.safetensors").value
    half = shape[1] // 2
    assert torch.equal(out[..., :half], b[..., :half]) and torch.equal(out[..., half:], a[..., half:])
    assert main(["edit", str(tmp_path), "--latent", str(tmp_path / "a/latent.safetensors"), "--direction",
                 str(tmp_path / "none.safetensors")]) == 2
    assert "directions do not apply to code latents" in capsys.readouterr().err


def test_edit_of_a_projected_latent_uses_its_noise_images(runs, tmp_path, monkeypatch):
    from ganzoo.editing.projector import noise_buffers
    from ganzoo.layers.noise import NoiseInjection
    from ganzoo.sampling.generate import load_generator

    bundle, modules, state = load_generator(runs["sg2"], device="cpu")
    G = modules["G"]
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, NoiseInjection):
                m.strength.fill_(1.0)  # an untrained G ignores its noise (strength 0): make it matter
    monkeypatch.setattr(edit_run, "load_generator", lambda *a, **k: (bundle, modules, state))
    owners = noise_buffers(G)
    gen = torch.Generator().manual_seed(5)
    noise = {name: torch.randn(2, *mod._buffers[key].shape[1:], generator=gen) for name, (mod, key) in owners.items()}
    w = torch.randn(2, G.w_dim, generator=gen)
    h = model_hash(G)
    save_latent(tmp_path / "p" / "latent.safetensors",
                Latent("w", w, extra={f"noise.{k}": v for k, v in noise.items()}, meta={"model_hash": h}))
    save_directions(tmp_path / "d.safetensors",
                    Directions(torch.eye(1, G.w_dim), torch.ones(1), torch.ones(1), "w", {"model_hash": h}))
    rc = main(["edit", str(runs["sg2"]), "--latent", str(tmp_path / "p" / "latent.safetensors"), "--direction",
               f"{tmp_path / 'd.safetensors'}:0", "--strength=-1,1", "--steps", "3", "--out", str(tmp_path / "e")])
    assert rc == 0
    grid = np.asarray(Image.open(tmp_path / "e.png")).astype(int)
    with torch.no_grad():
        plain = G.synthesis(w[:1, None].repeat(1, G.num_ws, 1), noise_mode="const")
    for i in range(2):  # strength 0 = the latent drawn with its own noise images (set here by hand)
        saved = {name: mod._buffers[key] for name, (mod, key) in owners.items()}
        for name, (mod, key) in owners.items():
            mod._buffers[key] = noise[name][i:i + 1]
        with torch.no_grad():
            img = G.synthesis(w[i:i + 1, None].repeat(1, G.num_ws, 1), noise_mode="const")
        for name, (mod, key) in owners.items():
            mod._buffers[key] = saved[name]
        assert i or not torch.equal(img, plain)  # the noise images do change the picture
        want = ((img.clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 0).numpy().astype(int)
        assert np.array_equal(grid[16 * i:16 * (i + 1), 16:32], want)
