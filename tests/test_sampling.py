"""Sampling tools: slerp/lerp, truncation, interpolation, style mixing and ``ganzoo generate``."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganzoo.bundle import sample_gan
from ganzoo.cli import main
from ganzoo.errors import ConfigError
from ganzoo.sampling import generate as generate_mod
from ganzoo.sampling.interpolation import interpolate, lerp, seed_latents, slerp
from ganzoo.sampling.style_mixing import crossover_layers, style_mixing_grid
from ganzoo.sampling.truncation import is_style_generator, truncate

from .conftest import SMOKE, compose


# -- toy generators ------------------------------------------------------------------------------
class ToyStyleG(nn.Module):
    """The style-generator interface in miniature: linear mapping, linear synthesis reading every w."""

    def __init__(self, *, z_dim: int = 8, w_dim: int = 6, num_ws: int = 10, res: int = 8, channels: int = 3):
        super().__init__()
        self.z_dim, self.w_dim, self.c_dim, self.num_ws = z_dim, w_dim, 0, num_ws
        self.img_resolution, self.img_channels = res, channels
        self.map = nn.Linear(z_dim, w_dim)
        self.synth = nn.Linear(num_ws * w_dim, channels * res * res)
        self.register_buffer("w_avg", torch.randn(w_dim))

    def mapping(self, z, c=None, *, truncation_psi=1.0, truncation_cutoff=None, update_w_avg=False):
        ws = self.map(z)[:, None].repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)

    def synthesis(self, ws, *, noise_mode="random", **opts):
        x = self.synth(ws.flatten(1))
        if noise_mode == "random":
            x = x + 0.1 * torch.randn_like(x)
        return torch.tanh(x).view(-1, self.img_channels, self.img_resolution, self.img_resolution)

    def forward(self, z, c=None, *, truncation_psi=1.0, truncation_cutoff=None, noise_mode="random", **opts):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **opts)


class ToyG(nn.Module):
    """A non-style generator: ``G(z, c) -> img``."""

    def __init__(self, z_dim: int = 8, res: int = 8):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, 0, res, 3
        self.net = nn.Linear(z_dim, 3 * res * res)

    def forward(self, z, c=None):
        return torch.tanh(self.net(z)).view(-1, 3, self.img_resolution, self.img_resolution)


def _z(seed: int, z_dim: int = 8) -> torch.Tensor:
    return torch.randn(1, z_dim, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def G() -> ToyStyleG:
    torch.manual_seed(0)
    return ToyStyleG().eval()


# -- slerp / lerp --------------------------------------------------------------------------------
def test_slerp_endpoints_exact():
    a, b = torch.randn(4, 16), torch.randn(4, 16)
    assert torch.equal(slerp(a, b, 0.0), a)
    assert torch.equal(slerp(a, b, 1.0), b)
    assert torch.equal(lerp(a, b, 0.0), a) and torch.equal(lerp(a, b, 1.0), b)


def test_slerp_preserves_norm_of_equal_norm_inputs():
    a, b = torch.randn(1, 32), torch.randn(1, 32)
    a, b = 3 * a / a.norm(), 3 * b / b.norm()
    t = torch.linspace(0, 1, 11)[:, None]  # [T, 1]
    out = slerp(a, b, t)  # [T, 32]
    assert out.shape == (11, 32)
    assert torch.allclose(out.norm(dim=-1), torch.full((11,), 3.0), atol=1e-5)
    assert (lerp(a, b, t).norm(dim=-1)[5] < 2.9).item()  # the straight line cuts inside the sphere


def test_slerp_midpoint_of_orthogonal_unit_vectors():
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    assert torch.allclose(slerp(a, b, 0.5), (a + b) / math.sqrt(2), atol=1e-6)
    assert torch.allclose(slerp(a, b, 1 / 3), torch.tensor([math.cos(math.pi / 6), math.sin(math.pi / 6), 0.0]))


@pytest.mark.parametrize("scale", [1.0, 2.0, -1.0])
def test_slerp_near_parallel_falls_back_to_lerp(scale):
    a = torch.randn(2, 8)
    b = scale * a + 1e-9
    t = torch.tensor([[0.0], [0.3], [1.0]])[:, None]  # [3, 1, 1] -> [3, 2, 8]
    out = slerp(a, b, t)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.lerp(a, b, t), atol=1e-6)


# -- truncation ----------------------------------------------------------------------------------
def test_truncation_psi():
    ws, w_avg = torch.randn(3, 10, 6), torch.randn(6)
    assert torch.allclose(truncate(ws, w_avg, 0.0), w_avg.expand(3, 10, 6))
    assert torch.equal(truncate(ws, w_avg, 1.0), ws)
    assert torch.allclose(truncate(ws, w_avg, 0.7), w_avg + 0.7 * (ws - w_avg), atol=1e-6)


def test_truncation_cutoff_only_first_layers():
    ws, w_avg = torch.randn(3, 10, 6), torch.randn(6)
    out = truncate(ws, w_avg, 0.0, cutoff=4)
    assert torch.allclose(out[:, :4], w_avg.expand(3, 4, 6))
    assert torch.equal(out[:, 4:], ws[:, 4:])
    assert torch.equal(truncate(ws, w_avg, 0.5, cutoff=0), ws)


def test_is_style_generator(G):
    assert is_style_generator(G)
    assert not is_style_generator(ToyG())


# -- style mixing --------------------------------------------------------------------------------
def test_crossover_ranges():
    assert crossover_layers("coarse", 18) == [0, 1, 2, 3]
    assert crossover_layers("middle", 18) == [4, 5, 6, 7]
    assert crossover_layers("fine", 18) == list(range(8, 18))
    assert crossover_layers("fine", 10) == [8, 9]
    assert crossover_layers("middle", 6) == [4, 5]  # clipped to num_ws (16x16 model)
    assert crossover_layers("2-5", 10) == [2, 3, 4, 5]
    assert crossover_layers(range(1, 3), 10) == [1, 2]
    with pytest.raises(ConfigError, match="only 8 ws"):
        crossover_layers("fine", 8)  # a 32x32 model has no 64x64+ layers
    with pytest.raises(ConfigError, match="outside"):
        crossover_layers("7-12", 10)
    with pytest.raises(ConfigError, match="unknown crossover"):
        crossover_layers("coarsest", 10)


def test_style_mixing_grid_layout(G):
    rows, cols = [1, 2], [3, 4, 5]
    grid = style_mixing_grid(G, row_seeds=rows, col_seeds=cols, crossover="middle")
    assert grid.shape == ((len(rows) + 1) * (len(cols) + 1), 3, 8, 8)
    ncol = len(cols) + 1
    assert torch.equal(grid[0], torch.ones(3, 8, 8))  # blank, white
    for j, s in enumerate(cols):
        assert torch.allclose(grid[1 + j], G(_z(s), noise_mode="const")[0], atol=1e-6)
    for i, s in enumerate(rows):
        assert torch.allclose(grid[(i + 1) * ncol], G(_z(s), noise_mode="const")[0], atol=1e-6)
    # Cell (i, j): A_i's ws with B_j's ws in layers 4..7.
    i, j = 1, 2
    w_a, w_b = G.mapping(_z(rows[i])), G.mapping(_z(cols[j]))
    mixed = w_a.clone()
    mixed[:, 4:8] = w_b[:, 4:8]
    expected = G.synthesis(mixed, noise_mode="const")[0]
    assert torch.allclose(grid[(i + 1) * ncol + 1 + j], expected, atol=1e-6)
    assert not torch.allclose(expected, G.synthesis(w_a, noise_mode="const")[0])


@pytest.mark.parametrize(
    "crossover, layers", [("coarse", range(0, 4)), ("middle", range(4, 8)), ("fine", range(8, 10))]
)
def test_style_mixing_crossover_selects_layers(G, crossover, layers):
    grid = style_mixing_grid(G, row_seeds=[7], col_seeds=[8], crossover=crossover, truncation_psi=0.5)
    w_a = G.mapping(_z(7), truncation_psi=0.5)
    w_b = G.mapping(_z(8), truncation_psi=0.5)
    mixed = w_a.clone()
    mixed[:, list(layers)] = w_b[:, list(layers)]
    assert torch.allclose(grid[3], G.synthesis(mixed, noise_mode="const")[0], atol=1e-6)


def test_style_mixing_rejects_non_style_generator():
    with pytest.raises(ConfigError, match=r"style mixing needs a style-based generator \(stylegan, stylegan2\)"):
        style_mixing_grid(ToyG(), row_seeds=[1], col_seeds=[2])


# -- interpolation -------------------------------------------------------------------------------
def test_interpolate_w_frames_are_lerped_ws(G):
    frames = interpolate(G, seeds=[1, 2, 3], steps=4, space="w", truncation_psi=0.8)
    assert frames.shape == (2 * 4 + 1, 3, 8, 8)
    ws = [G.mapping(_z(s), truncation_psi=0.8) for s in (1, 2, 3)]
    assert torch.allclose(frames[0], G.synthesis(ws[0], noise_mode="const")[0], atol=1e-6)
    assert torch.allclose(frames[4], G.synthesis(ws[1], noise_mode="const")[0], atol=1e-6)
    assert torch.allclose(frames[-1], G.synthesis(ws[2], noise_mode="const")[0], atol=1e-6)
    mid = G.synthesis(torch.lerp(ws[1], ws[2], 0.25), noise_mode="const")[0]
    assert torch.allclose(frames[5], mid, atol=1e-6)


def test_interpolate_z_slerps_for_any_gan():
    torch.manual_seed(0)
    g = ToyG().eval()
    frames = interpolate(g, seeds=[4, 5], steps=4, space="z")
    assert frames.shape == (5, 3, 8, 8)
    z0, z1 = _z(4), _z(5)
    assert torch.allclose(frames[0], g(z0)[0], atol=1e-6)
    assert torch.allclose(frames[-1], g(z1)[0], atol=1e-6)
    assert torch.allclose(frames[2], g(slerp(z0, z1, 0.5))[0], atol=1e-6)
    with pytest.raises(ConfigError, match="--space z|space='w'"):
        interpolate(g, seeds=[4, 5], steps=4, space="w")
    with pytest.raises(ConfigError, match="style-based"):
        interpolate(g, seeds=[4, 5], steps=4, space="z", truncation_psi=0.7)


def test_interpolate_psi_zero_gives_mean_image(G):
    frames = interpolate(G, seeds=[1, 2], steps=3, space="z", truncation_psi=0.0)
    assert torch.allclose(frames, frames[:1].expand_as(frames), atol=1e-6)


def test_seed_latents_are_per_seed():
    z, c = seed_latents([3, 9], 8, c_dim=5)
    assert torch.equal(z[1:], _z(9)) and c is not None and c.shape == (2,)
    z2, _ = seed_latents([9], 8)
    assert torch.equal(z2, _z(9))


# -- ganzoo generate on a real DCGAN checkpoint ------------------------------------------------------
@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory) -> Path:
    from ganzoo.training.trainer import Trainer

    run = tmp_path_factory.mktemp("sampling") / "run"
    Trainer(compose(SMOKE + ["trainer.steps=2", "trainer.grid=4"]), run).fit()
    return run


def _gif_frames(path: Path) -> int:
    with Image.open(path) as im:
        return im.n_frames


def test_generate_interp_strip_and_gif(dcgan_run, capsys):
    rc = main(["generate", str(dcgan_run), "--mode", "interp", "--seeds", "1,2", "--steps", "4", "--space", "z",
               "--gif"])
    assert rc == 0
    png, gif = (dcgan_run / "generated" / f"interp_z_seeds1_2_steps4.{ext}" for ext in ("png", "gif"))
    assert png.exists() and gif.exists()
    assert str(png) in capsys.readouterr().out
    assert Image.open(png).size == (5 * 32, 32)  # one row of 5 frames
    assert _gif_frames(gif) == 5


def test_generate_interp_pingpong_and_out(dcgan_run, tmp_path):
    rc = main(["generate", str(dcgan_run), "--mode", "interp", "--seeds", "0-2", "--steps", "3", "--gif",
               "--pingpong", "--out", str(tmp_path / "walk.png")])
    assert rc == 0
    assert (tmp_path / "walk.png").exists()
    assert _gif_frames(tmp_path / "walk.gif") == 7 + 5  # forward, then back without the turning points


def test_generate_grid_is_reproducible(dcgan_run, tmp_path):
    outs = [tmp_path / f"{name}.png" for name in "abc"]
    for out, seed in zip(outs, ["3", "3", "4"]):
        assert main(["generate", str(dcgan_run), "--n", "8", "--seed", seed, "--out", str(out)]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].read_bytes() != outs[2].read_bytes()


def test_generate_seeds_grid_one_image_per_seed(dcgan_run, tmp_path):
    assert main(["generate", str(dcgan_run), "--seeds", "4-6", "--nrow", "3", "--out", str(tmp_path / "a.png")]) == 0
    assert main(["generate", str(dcgan_run), "--seeds", "5", "--out", str(tmp_path / "b.png")]) == 0
    a, b = np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png"))
    assert a.shape == (32, 96, 3)
    assert np.array_equal(a[:, 32:64], b)  # seed 5's image does not depend on its neighbours


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--psi", "0.7"], "--psi (truncation) needs a style-based generator"),
        (["--noise", "const"], "needs a style-based generator"),
        (["--mode", "mix", "--rows", "1", "--cols", "2"], "style mixing needs a style-based generator (stylegan"),
        (["--mode", "interp", "--seeds", "1,2", "--space", "w"], "Use --space z"),
        (["--mode", "interp", "--seeds", "1"], "at least two keyframe seeds"),
        (["--mode", "interp", "--seeds", "1,2", "--pingpong"], "add --gif"),
        (["--steps", "4"], "--steps only applies to --mode interp"),
        (["--mode", "interp", "--seeds", "1,2", "--n", "4"], "--n only applies to --mode grid"),
        (["--mode", "mix", "--rows", "1"], "needs --rows and --cols"),
        (["--seeds", "1,2", "--n", "4"], "either --seeds"),
        (["--seeds", "5-2"], "is empty"),
        (["--seeds", "a,b"], "comma-separated"),
        (["--cutoff", "4"], "give --psi too"),
        (["--opt", "truncation_psi=0.5"], "use --psi"),
    ],
)
def test_generate_invalid_combinations(dcgan_run, capsys, extra, message):
    assert main(["generate", str(dcgan_run), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


# -- ganzoo generate with a style generator (toy model behind load_generator) -------------------------
@pytest.fixture
def toy_checkpoint(G, monkeypatch, tmp_path) -> Path:
    bundle = SimpleNamespace(info={"name": "toy_style", "z_dim": G.z_dim}, family="style", c_dim=0,
                             sample=sample_gan, sample_opts=None)
    monkeypatch.setattr(generate_mod, "load_generator", lambda *a, **k: (bundle, {"G": G}, {}))
    return tmp_path


def test_generate_style_modes(toy_checkpoint):
    run = toy_checkpoint
    assert main(["generate", str(run), "--mode", "mix", "--rows", "1,2", "--cols", "3-5", "--crossover", "middle",
                 "--psi", "0.7"]) == 0
    mix = np.asarray(Image.open(run / "generated" / "mix_middle_rows1_2_cols3-5_psi0.7.png"))
    assert mix.shape == (3 * 8, 4 * 8, 3) and (mix[:8, :8] == 255).all()
    assert main(["generate", str(run), "--mode", "interp", "--seeds", "1,2", "--steps", "2", "--gif"]) == 0
    assert _gif_frames(run / "generated" / "interp_w_seeds1_2_steps2.gif") == 3  # W by default for style generators
    assert main(["generate", str(run), "--seeds", "0-3", "--psi", "0", "--out", str(run / "mean.png")]) == 0
    mean = np.asarray(Image.open(run / "mean.png"))  # psi 0: every image is the mean image
    assert (mean == np.tile(mean[:8, :8], (2, 2, 1))).all()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--psi", "0.5", "--cutoff", "11"], "beyond this generator's 10 ws"),
        (["--mode", "mix", "--rows", "1", "--cols", "2", "--crossover", "12-14"], "outside"),
        (["--mode", "interp", "--seeds", "1,2", "--steps", "0"], "--steps must be at least 1"),
    ],
)
def test_generate_style_invalid(toy_checkpoint, capsys, extra, message):
    assert main(["generate", str(toy_checkpoint), *extra]) == 2
    assert message in capsys.readouterr().err
