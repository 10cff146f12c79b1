"""Class-conditional sampling and attention maps: labels reaching the model, per-class grids, BigGAN
truncation in Z and its sweep, class interpolation, and SAGAN-style attention maps (library and CLI)."""

from __future__ import annotations

import copy
import math
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torch import nn

from ganzoo.bundle import sample_gan
from ganzoo.cli import main
from ganzoo.errors import ConfigError
from ganzoo.layers.attention import SelfAttention2d
from ganzoo.sampling import generate as generate_mod
from ganzoo.sampling.attention_maps import attention_layers, capture_attention, render_attention
from ganzoo.sampling.class_interp import class_interpolation, class_path, has_class_embedding
from ganzoo.sampling.conditional import class_grid_shape, class_rows, draw_latents
from ganzoo.sampling.images import to_uint8
from ganzoo.sampling.interpolation import seed_latents
from ganzoo.sampling.truncation import resample_out_of_range, truncated_normal, truncated_normal_std

from .conftest import SMOKE, compose

RES = 32  # dcgan_tiny


# -- truncated normal (BigGAN Sec. 3.1) ---------------------------------------------------------------
@pytest.mark.parametrize("threshold, n", [(2.0, 100_000), (1.0, 100_000), (0.5, 100_000), (0.04, 20_000)])
def test_truncated_normal_bounds_and_distribution(threshold, n):
    # (0.04 keeps 3% of the draws per round: ~300 rounds, so fewer samples keep the test fast)
    z = truncated_normal((n,), threshold, torch.Generator().manual_seed(0)).double()
    assert z.abs().max().item() <= threshold
    std = truncated_normal_std(threshold)
    assert std == pytest.approx(stats.truncnorm(-threshold, threshold).std(), rel=1e-9)  # the analytic formula
    assert abs(z.mean().item()) < 5 * std / math.sqrt(n)
    assert z.std().item() == pytest.approx(std, rel=0.01)
    # The whole shape, not only two moments: Kolmogorov-Smirnov against the truncated-normal CDF.
    ks = stats.kstest(z.numpy(), stats.truncnorm(-threshold, threshold).cdf)
    assert ks.pvalue > 1e-3, ks


def test_truncated_normal_is_seeded_and_starts_from_randn():
    def draw(seed, t):
        return truncated_normal((64, 16), t, torch.Generator().manual_seed(seed))

    assert torch.equal(draw(3, 0.7), draw(3, 0.7))
    assert not torch.equal(draw(3, 0.7), draw(4, 0.7))
    base = torch.randn(64, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(draw(3, None), base)  # no threshold: the plain latents of the seed
    inside = base.abs() <= 0.7
    assert torch.equal(draw(3, 0.7)[inside], base[inside])  # in-range values are kept, only the rest resampled


def test_thresholds_share_their_draws():
    """Every entry takes the first in-range value of one seeded sequence, so a smaller threshold changes
    only the entries that leave its range."""
    z = {t: truncated_normal((4096,), t, torch.Generator().manual_seed(1)) for t in (2.0, 1.0, 0.5, 0.04)}
    for hi, lo in ((2.0, 1.0), (1.0, 0.5), (0.5, 0.04), (2.0, 0.04)):
        keep = z[hi].abs() <= lo
        assert keep.any() and torch.equal(z[lo][keep], z[hi][keep])


def test_truncation_threshold_must_be_positive():
    with pytest.raises(ConfigError, match="must be > 0"):
        resample_out_of_range(torch.randn(3), 0.0)


def test_draw_latents_seeds_match_seed_latents_and_classes_do_not_depend_on_threshold():
    z_ref, c_ref = seed_latents([3, 9, 4], 8, c_dim=5)
    (z, z_half), c = draw_latents(8, seeds=[3, 9, 4], c_dim=5, thresholds=(None, 0.5))
    assert torch.equal(z, z_ref) and torch.equal(c, c_ref)
    assert z_half.abs().max() <= 0.5
    (z_half_again,), c_again = draw_latents(8, seeds=[3, 9, 4], c_dim=5, thresholds=(0.5,))
    assert torch.equal(z_half_again, z_half) and torch.equal(c_again, c)
    (_,), listed = draw_latents(8, n=5, c_dim=10, classes=[3, 5])
    assert listed.tolist() == [3, 5, 3, 5, 3]


# -- class layouts ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, c_dim, shape",
    [(64, 10, (10, 6)), (16, 10, (8, 2)), (20, 10, (10, 2)), (64, 1000, (16, 4)), (64, 9, (9, 7)), (64, 2, (2, 16)),
     (1, 10, (1, 1))],
)
def test_class_grid_shape(n, c_dim, shape):
    rows, cols = class_grid_shape(n, c_dim)
    assert (rows, cols) == shape and rows * cols <= n


def test_class_rows_layout():
    z = torch.randn(3, 4)
    z_all, c_all = class_rows(z, [7, 2])
    assert c_all.tolist() == [7, 7, 7, 2, 2, 2]
    assert torch.equal(z_all[:3], z) and torch.equal(z_all[3:], z)  # the same z down every column


# -- labels reach conditional models (model.c_dim=auto) ----------------------------------------------------
def _record_labels(trainer) -> list:
    seen: list = []
    for phase in trainer.phases:
        loss = phase.loss

        def wrapped(batch, ctx, _loss=loss):
            seen.append(batch.label)
            return _loss(batch, ctx)

        phase.loss = wrapped
    return seen


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory) -> SimpleNamespace:
    """dcgan_tiny with model.c_dim=auto on the embedded Fashion-MNIST, two real training steps with the labels
    the objective receives recorded. Afterwards the generator gets larger class embeddings and output weights
    and a second checkpoint is written: two steps leave DCGAN's N(0, 0.02) weights near zero (flat grey
    images), and the `ganzoo generate` tests below need every class and latent to look different."""
    from ganzoo.training.trainer import Trainer

    run = tmp_path_factory.mktemp("conditional") / "run"
    trainer = Trainer(compose(SMOKE + ["data=fashion", "model.c_dim=auto", "trainer.steps=2", "trainer.grid=20"]), run)
    seen = _record_labels(trainer)
    trainer.fit()
    out = SimpleNamespace(trainer=trainer, run=run, seen=seen, ema=copy.deepcopy(trainer.ema["G"]).eval(),
                          grid=np.asarray(Image.open(sorted((run / "samples").glob("fakes_*.png"))[-1])))
    with torch.no_grad():
        for G in (trainer.modules["G"], trainer.ema["G"]):
            G.embed.weight.mul_(5)
            G.net[-2].weight.mul_(300)
    trainer.save_checkpoint()
    return out


def test_c_dim_auto_on_fashion_end_to_end(fashion_run):
    """G gets Fashion's 10 classes, the objective sees the labels, the training grid has class k in row k, and
    the checkpoint rebuilds the conditional G."""
    from ganzoo.sampling.generate import load_generator

    trainer = fashion_run.trainer
    assert trainer.modules["G"].c_dim == 10 and trainer.modules["D"].c_dim == 10
    labels = [lab for lab in fashion_run.seen if lab is not None]
    assert labels and all(lab.dtype == torch.int64 and 0 <= lab.min() and lab.max() < 10 for lab in labels)
    assert len(torch.cat(labels).unique()) > 1
    # Fixed latents: 20 images of 10 classes -> 10 rows x 2 columns, the same z across a column.
    latents = trainer._fixed_latents()
    assert latents["nrow"] == 2 and latents["c"].tolist() == [k for k in range(10) for _ in range(2)]
    assert torch.equal(latents["z"][0], latents["z"][6]) and not torch.equal(latents["z"][0], latents["z"][1])
    grid = fashion_run.grid
    assert grid.shape == (10 * RES, 2 * RES, 3)
    row3 = to_uint8(fashion_run.ema(latents["z"][6:8], torch.tensor([3, 3])))  # [2, H, W, C]
    assert np.abs(grid[3 * RES : 4 * RES].astype(int) - np.concatenate(list(row3), 1).astype(int)).max() <= 1
    # The saved model config holds the resolved number, so the checkpoint rebuilds the same G.
    bundle, modules, _ = load_generator(str(fashion_run.run), device="cpu")
    assert bundle.c_dim == 10 and modules["G"].embed.num_embeddings == 10


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 12), (value, value, value)).save(path)


def _fake_mnist(root: Path, n: int = 20) -> None:
    """The four raw MNIST files (idx format, what torchvision reads with download=false)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    for prefix in ("train", "t10k"):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


@pytest.mark.parametrize("data, expected", [("emoji", 9), ("folder", 3), ("mnist", 10), ("folder_flat", 0)])
def test_c_dim_auto_takes_the_datasets_classes(tmp_path, data, expected):
    from ganzoo.training.trainer import Trainer

    overrides = [f"data={data}"]
    if data == "folder":
        for k, name in enumerate(["ants", "bees", "cats"]):
            for i in range(2):
                _png(tmp_path / "imgs" / name / f"{i}.png", 40 * k + i)
        overrides += [f"data.root={tmp_path / 'imgs'}"]
    if data == "folder_flat":  # no class subfolders: unlabelled, so auto means unconditional
        for i in range(4):
            _png(tmp_path / "flat" / f"{i}.png", 30 * i)
        overrides = ["data=folder", f"data.root={tmp_path / 'flat'}"]
    if data == "mnist":
        _fake_mnist(tmp_path / "mnist")
        overrides += [f"data.root={tmp_path / 'mnist'}", "data.download=false"]
    cfg = compose(SMOKE + overrides + ["model.c_dim=auto", "trainer.steps=1", "trainer.batch_size=4",
                                       "trainer.grid=0"])
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.bundle.c_dim == expected and trainer.modules["G"].c_dim == expected
    assert cfg.model.c_dim == expected  # what config.yaml and the checkpoints record
    seen = _record_labels(trainer)
    trainer.fit()
    if expected:
        assert all(lab is not None and lab.max() < expected for lab in seen)
    else:
        assert all(lab is None for lab in seen)


def test_conditional_model_on_unlabelled_data_is_a_clear_error(tmp_path):
    from ganzoo.training.trainer import Trainer

    for i in range(4):
        _png(tmp_path / "flat" / f"{i}.png", 30 * i)
    cfg = compose(SMOKE + ["data=folder", f"data.root={tmp_path / 'flat'}", "model.c_dim=10"])
    with pytest.raises(ConfigError, match=r"class-conditional \(c_dim=10\) but dataset 'folder' has no labels"):
        Trainer(cfg, tmp_path / "run")


# -- the class-embedding protocol (DCGAN as the reference) ---------------------------------------------------
def _conditional_dcgan() -> nn.Module:
    from ganzoo.models.dcgan import DCGANGenerator

    torch.manual_seed(0)
    return DCGANGenerator(z_dim=8, base_channels=4, resolution=8, c_dim=4).eval()


def test_dcgan_class_embedding_protocol():
    G = _conditional_dcgan()
    assert has_class_embedding(G)
    z, c = torch.randn(3, 8), torch.tensor([0, 2, 3])
    assert torch.equal(G(z, embedding=G.class_embedding(c)), G(z, c))
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)


def test_class_interpolation_endpoints_and_midpoint():
    G = _conditional_dcgan()
    z = torch.randn(2, 8)
    imgs = class_interpolation(G, z, [1, 3], steps=4, batch=3)  # [2 * 5, C, H, W]
    assert imgs.shape == (10, 3, 8, 8)
    assert torch.allclose(imgs[0], G(z[:1], torch.tensor([1]))[0], atol=1e-6)
    assert torch.allclose(imgs[4], G(z[:1], torch.tensor([3]))[0], atol=1e-6)
    assert torch.allclose(imgs[9], G(z[1:], torch.tensor([3]))[0], atol=1e-6)
    e = G.class_embedding(torch.tensor([1, 3]))
    assert torch.allclose(imgs[7], G(z[1:], embedding=(e[:1] + e[1:]) / 2)[0], atol=1e-6)
    path = class_path(torch.eye(3), 2)  # three classes: keyframes exact, midpoints halfway
    assert path.shape == (5, 3) and torch.equal(path[::2], torch.eye(3))
    assert torch.allclose(path[1], torch.tensor([0.5, 0.5, 0.0]))


def test_class_interpolation_needs_the_protocol():
    class NoEmbedG(nn.Module):
        z_dim, c_dim = 4, 3

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, z, c=None):
            return self.lin(z)

    with pytest.raises(ConfigError, match=r"G.class_embedding\(c\) and G\(z, embedding=e\)"):
        class_interpolation(NoEmbedG(), torch.randn(1, 4), [0, 1], steps=2)


# -- attention maps (SAGAN Fig. 1) -------------------------------------------------------------------------
class AttnToyG(nn.Module):
    """A fixed 8x8 feature map whose first two channels are the row and column coordinates in [-1, 1], and
    a SelfAttention2d whose query/key convolutions read only those channels with a large gain, so that the
    logits are ``s (u_j u_i + v_j v_i)``: every query attends to the corner of its own quadrant. A second
    attention layer runs at 16x16 after an upsampling; the image is 32x32."""

    def __init__(self, *, pool: bool = True, channels: int = 16):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 4, 0, 32, 3
        u = torch.linspace(-1, 1, 8)
        base = torch.zeros(1, channels, 8, 8)
        base[0, 0] = u[:, None].expand(8, 8)  # row coordinate
        base[0, 1] = u[None, :].expand(8, 8)  # column coordinate
        self.register_buffer("base", base)
        self.attn = SelfAttention2d(channels, pool=pool)
        self.attn2 = SelfAttention2d(channels, pool=pool)
        with torch.no_grad():
            for conv, gain in ((self.attn.f, 400.0), (self.attn.g, 1.0)):
                conv.weight.zero_()
                conv.weight[0, 0] = gain
                conv.weight[1, 1] = gain
            self.attn.gamma.fill_(0.5)
        self.to_rgb = nn.Conv2d(channels, 3, 1)
        self.lift = nn.Linear(4, channels)

    def forward(self, z, c=None):
        x = self.base + 0.01 * self.lift(z)[:, :, None, None]  # [N, C, 8, 8]
        x = self.attn(x)
        x = self.attn2(nn.functional.interpolate(x, scale_factor=2))  # [N, C, 16, 16]
        return torch.tanh(nn.functional.interpolate(self.to_rgb(x), scale_factor=2))  # [N, 3, 32, 32]


QUADRANT_QUERIES = [((2, 3), (0, 0)), ((29, 2), (0, 1)), ((5, 30), (1, 0)), ((20, 17), (1, 1))]  # (x, y), corner


@pytest.mark.parametrize("pool", [True, False])
def test_attention_map_peaks_where_the_weights_force_it(pool):
    torch.manual_seed(0)
    G = AttnToyG(pool=pool).eval()
    z = torch.randn(2, 4)
    cap = capture_attention(G, z)
    assert torch.equal(cap.images, G(z))  # the hook only watches
    assert cap.grid == (8, 8) and cap.key_grid == ((4, 4) if pool else (8, 8)) and cap.layer == "attn"
    assert torch.allclose(cap.weights.sum(-1), torch.ones(2, 64), atol=1e-5)
    maps = cap.maps([q for q, _ in QUADRANT_QUERIES])  # [N, Q, 32, 32]
    assert maps.shape == (2, 4, 32, 32)
    cell = 32 // cap.key_grid[0]  # pixels per key cell
    for q, (_, (cy, cx)) in enumerate(QUADRANT_QUERIES):
        ys = slice(0, cell) if cy == 0 else slice(32 - cell, 32)
        xs = slice(0, cell) if cx == 0 else slice(32 - cell, 32)
        m = maps[:, q]
        assert (m[:, ys, xs] > 0.9).all()  # nearly all of the weight on the quadrant's corner cell
        assert torch.allclose(m[:, ys, xs].amin((1, 2)), m.flatten(1).amax(1))


def test_attention_layer_choice_and_errors():
    torch.manual_seed(0)
    G = AttnToyG().eval()
    assert [name for name, _ in attention_layers(G)] == ["attn", "attn2"]
    z = torch.randn(3, 4)
    cap = capture_attention(G, z, layer=1)
    assert cap.grid == (16, 16) and cap.key_grid == (8, 8) and cap.layer == "attn2"
    chunked = capture_attention(G, z, layer=1, batch=2)  # two forward passes, one capture
    assert torch.allclose(chunked.weights, cap.weights, atol=1e-6)
    assert torch.allclose(chunked.images, cap.images, atol=1e-6)
    with pytest.raises(ConfigError, match="0: attn, 1: attn2"):
        capture_attention(G, torch.randn(1, 4), layer=2)
    with pytest.raises(ConfigError, match="outside the 32x32 image"):
        cap.maps([(32, 0)])
    with pytest.raises(ConfigError, match="no self-attention layer"):
        capture_attention(_conditional_dcgan(), torch.randn(1, 8), torch.tensor([0]))


def test_render_attention_panels():
    G = AttnToyG().eval()
    cap = capture_attention(G, torch.randn(2, 4))
    queries = [(2, 3), (29, 2)]
    panels = render_attention(cap, queries, scale=4)
    assert panels.shape == (2 * 3, 3, 128, 128) and panels.min() >= -1 and panels.max() <= 1
    img0 = nn.functional.interpolate(cap.images[:1], scale_factor=4)[0]
    assert torch.allclose(panels[0], img0, atol=1e-6)  # first panel of a row: the plain image
    x, y = queries[1]
    dot = panels[2, :, y * 4 + 1, x * 4 + 1]  # the query's pixel in its own panel: the green dot
    assert dot[1] > 0.9 and dot[0] < -0.7 and dot[2] < -0.7


# -- ganzoo generate on a conditional DCGAN checkpoint ---------------------------------------------------------
@pytest.fixture(scope="module")
def cond_run(fashion_run) -> Path:
    return fashion_run.run


def _img(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.abs(a - b).max() <= 1  # one grey level: float rounding across batch sizes


def test_generate_class_and_class_list(cond_run, tmp_path):
    assert main(["generate", str(cond_run), "--seeds", "0-3", "--class", "3,5", "--out", str(tmp_path / "a.png")]) == 0
    assert main(["generate", str(cond_run), "--seeds", "1", "--class", "5", "--out", str(tmp_path / "b.png")]) == 0
    assert main(["generate", str(cond_run), "--seeds", "1", "--class", "3", "--out", str(tmp_path / "c.png")]) == 0
    a, b, c = _img(tmp_path / "a.png"), _img(tmp_path / "b.png"), _img(tmp_path / "c.png")
    assert a.shape == (2 * RES, 2 * RES, 3)
    assert _close(a[:RES, RES:], b)  # the second image took the second class
    assert np.abs(b - c).mean() > 10  # and the class shows


def test_generate_classes_mode(cond_run, tmp_path):
    assert main(["generate", str(cond_run), "--mode", "classes", "--n", "3", "--truncation", "1.5"]) == 0
    grid = _img(cond_run / "generated" / "classes_n3_seed0_trunc1.5.png")
    assert grid.shape == (10 * RES, 3 * RES, 3)  # one row per class, one column per z
    for k in (0, 7):
        out = tmp_path / f"k{k}.png"
        assert main(["generate", str(cond_run), "--n", "3", "--class", str(k), "--truncation", "1.5", "--nrow", "3",
                     "--out", str(out)]) == 0
        assert _close(grid[k * RES : (k + 1) * RES], _img(out))
    assert np.abs(grid[:RES] - grid[7 * RES : 8 * RES]).mean() > 10  # rows differ by class
    assert np.abs(grid[:, :RES] - grid[:, RES : 2 * RES]).mean() > 3  # columns differ by z
    assert main(["generate", str(cond_run), "--mode", "classes", "--class", "2,4", "--seeds", "5,6",
                 "--out", str(tmp_path / "sub.png")]) == 0
    assert _img(tmp_path / "sub.png").shape == (2 * RES, 2 * RES, 3)


def test_generate_truncation_sweep(cond_run, tmp_path):
    rc = main(["generate", str(cond_run), "--mode", "truncation-sweep", "--thresholds", "2,1,0.5,0.04",
               "--seeds", "1,2", "--class", "4"])
    assert rc == 0
    sweep = _img(cond_run / "generated" / "truncation_sweep_seeds1_2_T2_1_0.5_0.04_class4.png")
    assert sweep.shape == (2 * RES, 4 * RES, 3)  # rows = latents, columns = thresholds
    out = tmp_path / "half.png"
    assert main(["generate", str(cond_run), "--seeds", "1,2", "--class", "4", "--truncation", "0.5", "--nrow", "1",
                 "--out", str(out)]) == 0
    assert _close(sweep[:, 2 * RES : 3 * RES], _img(out))  # column 2 = threshold 0.5, the same latents
    assert np.abs(sweep[:, :RES] - sweep[:, 3 * RES :]).mean() > 3  # threshold 2 vs 0.04 (rounding is <= 1)


def test_generate_class_interp(cond_run, tmp_path):
    rc = main(["generate", str(cond_run), "--mode", "class-interp", "--classes", "3,5", "--steps", "4", "--n", "2",
               "--out", str(tmp_path / "ci.png")])
    assert rc == 0
    ci = _img(tmp_path / "ci.png")
    assert ci.shape == (2 * RES, 5 * RES, 3)  # rows = latents, columns = 5 points from class 3 to class 5
    for k, col in ((3, 0), (5, 4)):
        out = tmp_path / f"end{k}.png"
        assert main(["generate", str(cond_run), "--n", "2", "--class", str(k), "--nrow", "1", "--out", str(out)]) == 0
        assert _close(ci[:, col * RES : (col + 1) * RES], _img(out))
    assert np.abs(ci[:, :RES] - ci[:, 4 * RES :]).mean() > 10


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mode", "truncation-sweep"], "needs --thresholds"),
        (["--mode", "truncation-sweep", "--thresholds", "1,-2"], "positive numbers"),
        (["--thresholds", "1,2"], "--thresholds only applies to --mode truncation-sweep"),
        (["--mode", "class-interp", "--classes", "3"], "at least two classes"),
        (["--mode", "class-interp", "--classes", "3,12"], "--classes 12 is out of range"),
        (["--mode", "class-interp", "--classes", "3,4", "--class", "1"], "not --class"),
        (["--class", "10"], "--class 10 is out of range: this model has 10 classes"),
        (["--class", "a"], "--class expects class indices"),
        (["--truncation", "0"], "--truncation must be > 0"),
        (["--mode", "interp", "--seeds", "1,2", "--truncation", "1"], "--truncation only applies"),
        (["--mode", "attention"], "needs a generator with self-attention layers"),
        (["--mode", "classes", "--nrow", "4"], "its layout is fixed"),
        (["--mode", "interp", "--seeds", "1,2", "--class", "1,2"], "one --class K"),
        (["--query", "3,3"], "--query only applies to --mode attention"),
    ],
)
def test_generate_conditional_invalid(cond_run, capsys, extra, message):
    assert main(["generate", str(cond_run), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


# -- ganzoo generate --mode attention (toy generator behind load_generator) -------------------------------------
def _fake_checkpoint(monkeypatch, tmp_path, G) -> Path:
    bundle = SimpleNamespace(info={"name": "toy", "z_dim": G.z_dim}, family="attention", c_dim=G.c_dim,
                             resolution=G.img_resolution, sample=sample_gan, sample_opts=None)
    monkeypatch.setattr(generate_mod, "load_generator", lambda *a, **k: (bundle, {"G": G}, {}))
    return tmp_path


def test_generate_attention_mode(monkeypatch, tmp_path):
    run = _fake_checkpoint(monkeypatch, tmp_path, AttnToyG().eval())
    assert main(["generate", str(run), "--mode", "attention", "--seeds", "0,1", "--query", "2,3", "--query",
                 "29,2"]) == 0
    panels = _img(run / "generated" / "attention_seeds0_1_layer0_query2-3_29-2.png")
    assert panels.shape == (2 * 128, 3 * 128, 3)  # 32x32 images enlarged 4x; image + one panel per query
    assert main(["generate", str(run), "--mode", "attention", "--n", "1", "--layer", "1"]) == 0
    assert _img(run / "generated" / "attention_n1_seed0_layer1.png").shape == (128, 5 * 128, 3)  # 4 default queries


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mode", "attention", "--layer", "3"], "--layer 3 does not exist"),
        (["--mode", "attention", "--query", "40,1"], "outside the 32x32 image"),
        (["--mode", "attention", "--query", "4"], "--query expects a pixel X,Y"),
        (["--class", "1"], "is unconditional"),
        (["--mode", "classes"], "needs a class-conditional model"),
    ],
)
def test_generate_attention_invalid(monkeypatch, tmp_path, capsys, extra, message):
    run = _fake_checkpoint(monkeypatch, tmp_path, AttnToyG().eval())
    assert main(["generate", str(run), *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("name", ["sagan_tiny", "biggan_tiny"])
def test_attention_family_implements_the_class_embedding_protocol(name):
    """SAGAN and BigGAN take class weights: a one-hot row equals the label, and the midpoint of two
    rows is what the generator draws half-way along a class interpolation."""
    from ganzoo.registry import build_model
    from ganzoo.sampling.class_interp import has_class_embedding

    G = build_model(name, c_dim=4).modules["G"].eval()
    torch.manual_seed(0)
    with torch.no_grad():  # SAGAN's class tables start at gain 1 / bias 0 for every class: make them differ
        for m in G.modules():
            if isinstance(m, torch.nn.Embedding):
                m.weight.normal_()
    assert has_class_embedding(G)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    c = torch.tensor([1, 3])
    e = G.class_embedding(c)
    torch.testing.assert_close(G(z, None, embedding=e), G(z, c))
    mid = G(z, None, embedding=0.5 * G.class_embedding(torch.tensor([0, 0])) + 0.5 * e)
    assert not torch.allclose(mid, G(z, c)) and not torch.allclose(mid, G(z, torch.tensor([0, 0])))
