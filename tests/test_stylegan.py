"""StyleGAN (Karras et al. 2019): mapping, styles, noise, truncation, mixing, growing, sizes, training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ganzoo.bundle import StepContext, count_params
from ganzoo.errors import ConfigError
from ganzoo.layers import avg_downsample, nearest_upsample
from ganzoo.layers.resample_conv import UpConv2d
from ganzoo.losses.objectives import StyleObjective
from ganzoo.models.progan import ProGANDiscriminator
from ganzoo.models.stylegan import MappingNetwork, StyleGANGenerator, StyleLayer, SynthesisNetwork
from ganzoo.registry import build_model
from ganzoo.training.trainer import Trainer

from .conftest import compose


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tiny models gain nothing from intra-op threads, and on a busy 2-core machine two threads per
    process oversubscribe it badly (tens of times slower); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY_G = dict(resolution=16, z_dim=32, w_dim=32, mapping_fmaps=32, fmap_base=128, fmap_max=32)


def _tiny_g(**kw) -> StyleGANGenerator:
    torch.manual_seed(0)
    return StyleGANGenerator(**{**TINY_G, **kw})


def _with_noise(G: StyleGANGenerator) -> StyleGANGenerator:
    """Non-zero noise strengths (they start at 0, which hides the noise inputs)."""
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.strength"):
                p.fill_(0.5)
    return G


# -- blocks ---------------------------------------------------------------------------------------
def test_mapping_network():
    torch.manual_seed(0)
    m = MappingNetwork(z_dim=16, w_dim=24, num_layers=8, hidden=32, lr_mul=0.01)
    z = torch.randn(5, 16)
    w = m(z)
    assert w.shape == (5, 24) and len(m.layers) == 8
    assert torch.allclose(m(3 * z), w, atol=1e-5)  # z is pixel-normalised first
    layer = m.layers[0]
    # lr multiplier 0.01 (App. C): weights stored 100x larger and scaled down at run time.
    assert float(layer.weight.detach().std()) == pytest.approx(100, rel=0.1)
    assert layer.weight_gain == pytest.approx(math.sqrt(2) * 0.01 / 4)


def test_style_layer_sets_instance_statistics_from_w():
    """AdaIN (eq. 1): each output channel's mean / std are the style's bias / scale for that sample."""
    torch.manual_seed(0)
    layer = StyleLayer(6, 8, 4)
    with torch.no_grad():
        layer.adain.affine.weight.normal_()
    x, w = torch.randn(3, 6, 4, 4), torch.randn(3, 8)
    out = layer(x, w, noise_mode="none")
    ys, yb = layer.adain.style(w)  # [N, C, 1, 1] each
    assert torch.allclose(out.mean((2, 3)), yb[:, :, 0, 0], atol=1e-4)
    assert torch.allclose(out.std((2, 3), unbiased=False), ys[:, :, 0, 0].abs(), atol=1e-3)
    assert layer.noise.strength.shape == (6,)  # per-channel noise scaling (Sec. 2)


def test_noise_modes():
    G = _tiny_g()
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        base = G(z, noise_mode="none")
        # Noise strengths start at 0: every mode gives the same image.
        assert torch.equal(G(z, noise_mode="random"), base) and torch.equal(G(z, noise_mode="const"), base)
        _with_noise(G)
        assert not torch.allclose(G(z, noise_mode="random"), G(z, noise_mode="random"))
        assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))
        assert not torch.allclose(G(z, noise_mode="const"), G(z, noise_mode="none"))
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, noise_mode="loud")


def test_synthesis_block_structure():
    s = SynthesisNetwork(w_dim=8, resolution=256, fmap_base=256, fmap_max=16)
    assert s.num_ws == 14
    assert torch.equal(s.blocks[0].const, torch.ones(1, 16, 4, 4))  # learned constant, init ones
    assert s.blocks[0].conv.bias is None  # the bias comes after the noise, in the StyleLayer
    fused = [isinstance(b.conv0, UpConv2d) and b.conv0.fused for b in s.blocks[1:]]
    assert fused == [False, False, False, False, True, True]  # "auto": fused from 128x128 on
    assert [type(b.blur).__name__ for b in s.blocks[1:]] == ["Blur"] * 6


# -- generator interface, truncation, w_avg, mixing ------------------------------------------------
def test_generator_interface():
    G = _tiny_g()
    assert (G.z_dim, G.w_dim, G.c_dim, G.num_ws, G.img_resolution, G.img_channels) == (32, 32, 0, 6, 16, 3)
    assert "w_avg" in dict(G.named_buffers()) and G.w_avg.shape == (32,)
    z = torch.randn(4, 32)
    ws = G.mapping(z)
    assert ws.shape == (4, 6, 32)
    assert torch.equal(ws[:, 0], ws[:, 5])  # one w broadcast to every layer
    with torch.no_grad():
        assert torch.equal(G.synthesis(ws, noise_mode="const"), G(z, noise_mode="const"))
    assert G(z, level=1).shape == (4, 3, 8, 8)
    big = StyleGANGenerator(resolution=1024, fmap_base=512, fmap_max=4, z_dim=8, w_dim=8, mapping_fmaps=8)
    assert big.num_ws == 18  # 2 * log2(1024) - 2


def test_truncation():
    G = _tiny_g()
    with torch.no_grad():
        G.w_avg.normal_()
    z = torch.randn(4, G.z_dim)
    ws = G.mapping(z)
    zero = G.mapping(z, truncation_psi=0.0)
    assert torch.allclose(zero, G.w_avg.expand_as(zero))  # psi 0 = the mean image
    cut = G.mapping(z, truncation_psi=0.0, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], G.w_avg.expand(4, 2, -1)) and torch.equal(cut[:, 2:], ws[:, 2:])
    half = G.mapping(z, truncation_psi=0.5)
    assert torch.allclose(half, G.w_avg + 0.5 * (ws - G.w_avg), atol=1e-6)
    assert torch.equal(G.mapping(z, truncation_psi=1.0), ws)
    with torch.no_grad():
        assert torch.allclose(G(z, truncation_psi=0.0, noise_mode="const")[0],
                              G(torch.randn(4, G.z_dim), truncation_psi=0.0, noise_mode="const")[3], atol=1e-5)


def test_w_avg_tracks_the_mean_of_w():
    G = _tiny_g()
    z = torch.randn(16, G.z_dim)
    G.mapping(z)
    assert torch.equal(G.w_avg, torch.zeros(G.w_dim))  # no update unless asked
    w = G.mapping_network(z).detach()
    G.mapping(z, update_w_avg=True)
    assert torch.allclose(G.w_avg, 0.005 * w.mean(0), atol=1e-6)  # lerp(mean, w_avg, beta 0.995)
    for _ in range(2000):
        G.mapping(z, update_w_avg=True)
    assert torch.allclose(G.w_avg, w.mean(0), atol=1e-3)


def _ctx(bundle, level: int) -> StepContext:
    state = {"level": level, "alpha": 1.0, "resolution": 4 * 2**level}
    return StepContext(bundle.modules, state, 0, 0, torch.device("cpu"))


def test_style_mixing_mixes_two_latents_below_the_active_layers():
    bundle = build_model("stylegan_tiny", loss={"style_mixing_prob": 1.0})
    G, obj = bundle.modules["G"], bundle.objective
    assert isinstance(obj, StyleObjective)
    cutoffs = set()
    for seed in range(12):
        for level in (1, 2):
            torch.manual_seed(seed)
            z = torch.randn(3, G.z_dim)
            ws = obj.mapping(_ctx(bundle, level), z, None, update_w_avg=False)
            w1 = G.mapping(z)[:, 0]
            same = [torch.allclose(ws[:, i], w1) for i in range(G.num_ws)]
            cutoff = same.index(False)
            active = 2 * (level + 1)
            assert 1 <= cutoff < active  # mixing point among the layers used at this level
            assert all(same[:cutoff]) and not any(same[cutoff:])
            assert all(torch.equal(ws[:, i], ws[:, cutoff]) for i in range(cutoff, G.num_ws))  # one 2nd latent
            cutoffs.add((level, cutoff))
    assert {c for lv, c in cutoffs if lv == 2} == {1, 2, 3, 4, 5}
    # Without mixing the ws are a plain broadcast.
    plain = build_model("stylegan_tiny", loss={"style_mixing_prob": 0.0})
    z = torch.randn(3, G.z_dim)
    ws = plain.objective.mapping(_ctx(plain, 2), z, None, update_w_avg=False)
    assert all(torch.equal(ws[:, i], ws[:, 0]) for i in range(6))


def test_each_layer_reads_its_own_style():
    G = _tiny_g()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if "affine.weight" in name:
                p.normal_()
        ws = G.mapping(torch.randn(2, G.z_dim)).clone()
        base = G.synthesis(ws, level=1, noise_mode="const")
        changed = ws.clone()
        changed[:, 4:] = torch.randn(2, 2, G.w_dim)  # layers of level 2, unused at level 1
        assert torch.equal(G.synthesis(changed, level=1, noise_mode="const"), base)
        changed[:, 3] = torch.randn(2, G.w_dim)
        assert not torch.allclose(G.synthesis(changed, level=1, noise_mode="const"), base)
        with pytest.raises(ValueError, match=r"needs ws \[N, >= 6, 32\]"):
            G.synthesis(ws[:, :4])
        assert G.synthesis(ws[:, :4], level=1).shape == (2, 3, 8, 8)  # fewer ws suffice at low levels


# -- growing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_shapes_and_gradients_through_every_stage(level, alpha):
    bundle = build_model("stylegan_tiny")
    G, D = bundle.modules["G"], bundle.modules["D"]
    _with_noise(G)
    img = G(torch.randn(4, G.z_dim), level=level, alpha=alpha)
    res = 4 * 2**level
    assert img.shape == (4, 3, res, res)
    out = D(img, level=level, alpha=alpha)
    assert out.shape == (4,)
    out.sum().backward()
    weighted = {f"synthesis.blocks.{i}." for i in range(level + 1)} | {"mapping_network."}
    if alpha > 0 or level == 0:
        weighted.add(f"synthesis.to_rgb.{level}.")
    else:  # alpha 0: the new block is in the graph with weight 0
        weighted -= {f"synthesis.blocks.{level}."}
    if alpha < 1 and level > 0:
        weighted.add(f"synthesis.to_rgb.{level - 1}.")
    for name, p in G.named_parameters():
        if any(name.startswith(w) for w in weighted):
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
        elif p.grad is not None:
            assert p.grad.abs().sum() == 0, name
    for name, p in D.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name
    assert D.from_rgb[level].conv.weight.grad is not None


@pytest.mark.parametrize("level", [1, 2])
def test_fade_in_starts_from_previous_stage(level):
    bundle = build_model("stylegan_tiny")
    G, D = bundle.modules["G"], bundle.modules["D"]
    _with_noise(G)
    ws = G.mapping(torch.randn(8, G.z_dim))
    with torch.no_grad():
        start = G.synthesis(ws, level=level, alpha=0.0, noise_mode="const")
        prev = G.synthesis(ws, level=level - 1, alpha=1.0, noise_mode="const")
        full = G.synthesis(ws, level=level, alpha=1.0, noise_mode="const")
        assert torch.allclose(start, nearest_upsample(prev), atol=1e-5)
        assert not torch.allclose(start, full)
        x = torch.randn(8, 3, 4 * 2**level, 4 * 2**level)
        assert torch.allclose(D(x, level=level, alpha=0.0), D(avg_downsample(x), level=level - 1), atol=1e-5)


# -- official configuration ------------------------------------------------------------------------
def test_official_parameter_counts():
    """FFHQ 1024: G 26,219,627 (paper Sec. 2: "26.2M"), D 23,087,249 (ProGAN's D; blur has no weights)."""
    bundle = build_model("stylegan")
    G, D = bundle.modules["G"], bundle.modules["D"]
    assert isinstance(D, ProGANDiscriminator) and D.blocks[-1].blur.__class__.__name__ == "Blur"
    assert (count_params(G), count_params(D)) == (26_219_627, 23_087_249)
    assert count_params(G.mapping_network) == 8 * (512 * 512 + 512)
    assert G.num_ws == 18 and G.synthesis.channels == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    # The official code's own print_layers for a 16x16 single-channel model: G 17,065,475, D 16,002,049.
    small = build_model("stylegan", resolution=16, img_channels=1)
    assert (count_params(small.modules["G"]), count_params(small.modules["D"])) == (17_065_475, 16_002_049)


def test_official_training_setup():
    bundle = build_model("stylegan")
    obj = bundle.objective
    assert isinstance(obj, StyleObjective)
    assert (obj.loss_name, obj.r1_gamma, obj.r1_interval, obj.style_mixing_prob, obj.pl_weight) == (
        "nonsat", 10.0, 1, 0.9, 0.0)
    assert [p.name for p in obj.phases] == ["Gmain", "Dmain"]
    for spec in obj.optimizers.values():
        assert (spec.lr, tuple(spec.betas), spec.eps) == (1e-3, (0.0, 0.99), 1e-8)
    assert bundle.ema.half_life_kimg == 10 and bundle.ema.rampup is None
    sched = bundle.schedule
    assert (sched.start_level, sched.fade_kimg, sched.stab_kimg) == (1, 600, 600)  # lod_initial_resolution 8
    first = sched.state(0)
    assert (first["resolution"], first["batch_size"]) == (8, 256)
    assert sched.state(10**8)["batch_size"] == 32
    assert bundle.modules["G"].w_avg_beta == 0.995


def test_config_errors_and_conditioning():
    with pytest.raises(ConfigError, match="StyleGAN cannot produce resolution 100"):
        build_model("stylegan_tiny", resolution=100)
    with pytest.raises(ConfigError, match=r"model.loss \(stylegan\) has no option\(s\) \['gamma'\]"):
        build_model("stylegan_tiny", loss={"gamma": 1})
    with pytest.raises(ConfigError, match=r"model.G \(stylegan\) has no option"):
        build_model("stylegan_tiny", G={"mapping": 3})
    bundle = build_model("stylegan_tiny", c_dim=4)
    G, D = bundle.modules["G"], bundle.modules["D"]
    z, c = torch.randn(2, G.z_dim), torch.tensor([0, 3])
    assert G.mapping_network.embed.weight.shape == (4, G.z_dim)  # learned label embedding concatenated to z
    ws = G.mapping(z, c)
    assert not torch.allclose(ws, G.mapping(z, torch.tensor([1, 2])))
    assert D(G(z, c), c).shape == (2,)
    with pytest.raises(ValueError, match="class-conditional"):
        G.mapping(z)


# -- training -------------------------------------------------------------------------------------
BASE = ["model=stylegan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=4"]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_passes_through_every_stage(tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(compose(BASE + ["trainer.kimg=0.192"]), run)
    summary = trainer.fit()
    assert summary["step"] == 20  # 8x8: 4 steps of 16; 16x16: 16 steps of 8
    rows = _metrics(run)
    assert {r["schedule/resolution"] for r in rows} == {8.0, 16.0}  # starts at 8x8, as official
    assert any(0.0 < r["schedule/alpha"] < 1.0 for r in rows if r["schedule/resolution"] == 16.0)
    assert all(math.isfinite(r["loss/G"]) and math.isfinite(r["loss/r1"]) for r in rows)
    G, G_ema = trainer.modules["G"], trainer.ema["G"]
    assert G.w_avg.abs().sum() > 0 and torch.equal(G.w_avg, G_ema.w_avg)  # tracked and copied to the EMA


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in {**trainer.modules, **{f"ema.{k}": v for k, v in trainer.ema.items()}}.items():
        out.update({f"{name}.{k}": v.detach().clone() for k, v in m.state_dict().items()})
    for name, opt in trainer.optimizers.items():
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                out[f"opt.{name}.{i}.{k}"] = torch.as_tensor(v).clone()
    return out


def test_resume_mid_fade_equals_uninterrupted(tmp_path):
    """Noise, style mixing and the w_avg update all draw random numbers: resume must restore them."""
    straight = Trainer(compose(BASE + ["trainer.steps=10"]), tmp_path / "straight")
    straight.fit()
    half = Trainer(compose(BASE + ["trainer.steps=7"]), tmp_path / "half")
    half.fit()
    state = half.bundle.schedule.state(half.images_seen)
    assert state["level"] == 2 and 0 < state["alpha"] < 1
    resumed = Trainer(compose(BASE + ["trainer.steps=10", f"trainer.resume={tmp_path / 'half'}"]), tmp_path / "res")
    resumed.fit()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    assert not [k for k in a if not torch.equal(a[k], b[k])]


def test_no_lazy_adam_correction_without_lazy_regularisation():
    """StyleGAN (1) has no lazy regulariser: Adam keeps lr 0.001 and betas (0, 0.99) exactly."""
    b = build_model("stylegan_tiny")
    for name in ("G", "D"):
        spec = b.objective.optimizers[name]
        assert spec.lr == pytest.approx(1e-3) and spec.betas == pytest.approx((0.0, 0.99))
