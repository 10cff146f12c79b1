"""ProGAN (Karras et al. 2018): blocks, growing and fade-in, official sizes, schedule, training and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ganzoo.bundle import StepContext, count_params
from ganzoo.errors import ConfigError
from ganzoo.layers import avg_downsample, nearest_upsample
from ganzoo.layers.resample_conv import DownConv2d, UpConv2d
from ganzoo.losses.objectives import AdversarialObjective
from ganzoo.models.progan import (
    PROGAN_EMA_HALF_LIFE_KIMG,
    DDownBlock,
    DOutputBlock,
    FromRGB,
    GInputBlock,
    GUpBlock,
    ProGANDiscriminator,
    ProGANGenerator,
)
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


TINY = dict(resolution=16, fmap_base=128, fmap_max=32)
LEVELS = (0, 1, 2)
ALPHAS = (0.0, 0.5, 1.0)


def _tiny(**kw) -> tuple[ProGANGenerator, ProGANDiscriminator]:
    torch.manual_seed(0)
    return ProGANGenerator(**TINY, **kw), ProGANDiscriminator(**TINY, mbstd_group_size=4, **kw)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# -- resampling convolutions (ganzoo/layers/resample_conv.py) -------------------------------------
@pytest.mark.parametrize("k", [1, 3])
def test_fused_up_and_down_convs_equal_separate_ops(k):
    torch.manual_seed(0)
    up = UpConv2d(4, 6, k, gain=math.sqrt(2), fused=False)
    x = torch.randn(2, 4, 5, 5)
    ref = up(x)
    assert ref.shape == (2, 6, 10, 10)
    assert torch.allclose(ref, torch.nn.functional.conv2d(nearest_upsample(x), up.effective_weight(),
                                                          up.effective_bias(), padding=k // 2), atol=1e-6)
    up.fused = True
    assert torch.allclose(up(x), ref, atol=1e-5)

    down = DownConv2d(4, 6, k, fused=False)
    x = torch.randn(2, 4, 8, 8)
    ref = down(x)
    assert ref.shape == (2, 6, 4, 4)
    assert torch.allclose(ref, avg_downsample(torch.nn.functional.conv2d(x, down.effective_weight(),
                                                                         down.effective_bias(), padding=k // 2)),
                          atol=1e-6)
    down.fused = True
    assert torch.allclose(down(x), ref, atol=1e-5)


def test_resample_convs_have_conv_parameters_and_second_order_grads():
    up, down = UpConv2d(3, 5, 3, fused=True), DownConv2d(5, 3, 3, fused=True)
    assert [p.shape for p in up.parameters()] == [(5, 3, 3, 3), (5,)]  # as a plain 3x3 conv
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = down(up(x)).square().sum()
    (g,) = torch.autograd.grad(y, x, create_graph=True)
    g.square().sum().backward()  # R1 / WGAN-GP differentiate twice
    assert up.weight.grad is not None and torch.isfinite(up.weight.grad).all()
    with pytest.raises(ValueError, match="odd kernel"):
        UpConv2d(3, 3, 2)


# -- blocks ---------------------------------------------------------------------------------------
def test_generator_blocks_normalise_pixels():
    torch.manual_seed(0)
    block = GInputBlock(8, 16)
    out = block(torch.randn(5, 8) * 7)
    assert out.shape == (5, 16, 4, 4)
    # Pixel norm (Sec. 4.2) after the last activation: unit mean square over channels at every pixel.
    assert torch.allclose(out.square().mean(1), torch.ones(5, 4, 4), atol=1e-4)
    assert block.bias.shape == (16,)  # one bias per channel after the reshape, as official
    up = GUpBlock(16, 8)
    out = up(out)
    assert out.shape == (5, 8, 8, 8)
    assert torch.allclose(out.square().mean(1), torch.ones(5, 8, 8), atol=1e-4)
    # Input latent is pixel-normalised: scaling z changes nothing.
    z = torch.randn(3, 8)
    assert torch.allclose(block(z), block(z * 5), atol=1e-5)


def test_discriminator_blocks_shapes_and_mbstd():
    torch.manual_seed(0)
    assert FromRGB(3, 16)(torch.randn(2, 3, 8, 8)).shape == (2, 16, 8, 8)
    assert DDownBlock(16, 32)(torch.randn(2, 16, 8, 8)).shape == (2, 32, 4, 4)
    out_block = DOutputBlock(32, 64, 1, mbstd_group_size=4)
    assert out_block.conv.in_channels == 33  # + 1 minibatch-stddev map (Sec. 3)
    x = torch.randn(8, 32, 4, 4)
    assert out_block(x).shape == (8, 1)
    # The stddev feature couples the samples of a group (strided: 0, 2, 4, 6 for N=8, G=4):
    # changing sample 2 changes sample 0's score.
    y = x.clone()
    y[2] += torch.randn_like(y[2])
    assert not torch.allclose(out_block(x)[0], out_block(y)[0])
    assert DOutputBlock(32, 64, 1, mbstd_group_size=0).conv.in_channels == 32


# -- growing and fade-in ---------------------------------------------------------------------------
def _used(prefix_rgb: str, level: int, alpha: float) -> tuple[set[str], set[str]]:
    """(parameters in the graph, those with weight > 0 in the output) at ``level``, ``alpha``."""
    new = {f"blocks.{level}.", f"{prefix_rgb}.{level}."}
    old = {f"blocks.{i}." for i in range(level)}
    if level > 0 and alpha < 1:
        old.add(f"{prefix_rgb}.{level - 1}.")
    in_graph = new | old
    return in_graph, (in_graph if alpha > 0 or level == 0 else old)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("alpha", ALPHAS)
def test_shapes_and_gradients_through_every_stage(level, alpha):
    G, D = _tiny()
    z = torch.randn(8, G.z_dim)
    img = G(z, level=level, alpha=alpha)
    res = 4 * 2**level
    assert img.shape == (8, 3, res, res)
    logits = D(img, level=level, alpha=alpha)
    assert logits.shape == (8,)
    logits.sum().backward()
    for net, rgb in ((G, "to_rgb"), (D, "from_rgb")):
        in_graph, weighted = _used(rgb, level, alpha)
        for name, p in net.named_parameters():
            if not any(name.startswith(a) for a in in_graph):
                assert p.grad is None, f"{name} should not be used at level {level}, alpha {alpha}"
                continue
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            if any(name.startswith(a) for a in weighted):
                assert p.grad.abs().sum() > 0, name
            else:  # alpha = 0: the new layers are in the graph with weight 0 (Fig. 2b)
                assert p.grad.abs().sum() == 0, name


@pytest.mark.parametrize("level", [1, 2])
def test_generator_fade_in_starts_from_previous_stage(level):
    G, _ = _tiny()
    z = torch.randn(4, G.z_dim)
    with torch.no_grad():
        start = G(z, level=level, alpha=0.0)
        prev = G(z, level=level - 1, alpha=1.0)
        half = G(z, level=level, alpha=0.5)
        full = G(z, level=level, alpha=1.0)
    assert torch.allclose(start, nearest_upsample(prev), atol=1e-6)
    assert torch.allclose(half, 0.5 * (start + full), atol=1e-5)  # a linear blend (Fig. 2b)
    assert not torch.allclose(start, full)


@pytest.mark.parametrize("level", [1, 2])
def test_discriminator_fade_in_starts_from_previous_stage(level):
    _, D = _tiny()
    res = 4 * 2**level
    x = torch.randn(8, 3, res, res)
    with torch.no_grad():
        start = D(x, level=level, alpha=0.0)
        prev = D(avg_downsample(x), level=level - 1, alpha=1.0)
        full = D(x, level=level, alpha=1.0)
    assert torch.allclose(start, prev, atol=1e-5)
    assert not torch.allclose(start, full)


def test_level_none_is_full_resolution_and_bad_inputs_fail():
    G, D = _tiny()
    z = torch.randn(4, G.z_dim)
    img = G(z)
    assert img.shape == (4, 3, 16, 16) and torch.equal(img, G(z, level=2))
    assert D(img).shape == (4,)
    with pytest.raises(ValueError, match=r"level must be in \[0, 2\]"):
        G(z, level=3)
    with pytest.raises(ValueError, match="alpha"):
        G(z, level=1, alpha=1.5)
    with pytest.raises(ValueError, match=r"expects images \[N, C, 8, 8\]"):
        D(img, level=1)


def test_fused_scale_is_the_same_function():
    G1, D1 = _tiny()
    G0 = ProGANGenerator(**TINY, fused_scale=False)
    D0 = ProGANDiscriminator(**TINY, fused_scale=False, mbstd_group_size=4)
    G0.load_state_dict(G1.state_dict())
    D0.load_state_dict(D1.state_dict())
    z = torch.randn(4, G1.z_dim)
    with torch.no_grad():
        assert torch.allclose(G0(z), G1(z), atol=1e-4)
        x = torch.randn(4, 3, 16, 16)
        assert torch.allclose(D0(x), D1(x), atol=1e-4)
    auto = ProGANGenerator(resolution=256, fmap_base=256, fmap_max=8, fused_scale="auto")
    assert [b.conv0.fused for b in auto.blocks[1:]] == [False, False, False, False, True, True]
    with pytest.raises(ConfigError, match="fused_scale"):
        ProGANGenerator(**TINY, fused_scale="maybe")


def test_class_conditioning():
    G, D = _tiny(c_dim=3)
    assert G.blocks[0].dense.in_features == G.z_dim + 3  # one-hot label concatenated to z
    z = torch.randn(4, G.z_dim)
    c = torch.tensor([0, 1, 2, 0])
    img = G(z, c, level=1)
    assert not torch.allclose(img[0], G(z, torch.tensor([1, 1, 2, 0]), level=1)[0])
    scores = D(img, c, level=1)
    assert scores.shape == (4,)
    all_scores = D.blocks[0](D.blocks[1](D.from_rgb[1](img)))  # [N, 3]: one score per class
    assert torch.allclose(scores, all_scores.gather(1, c[:, None])[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)


# -- official configuration ------------------------------------------------------------------------
def test_official_parameter_counts():
    """CelebA-HQ 1024: 23.1M each (paper App. A.1, Table 2); exact counts of the official networks.py."""
    bundle = build_model("progan")
    G, D = bundle.modules["G"], bundle.modules["D"]
    n_g, n_d = count_params(G), count_params(D)
    assert (n_g, n_d) == (23_079_115, 23_087_249)
    # Table 2 shows only the last toRGB / fromRGB; the others (needed while growing) add 7,608 / 10,112.
    extra_g = sum(count_params(m) for m in G.to_rgb[:-1])
    extra_d = sum(count_params(m) for m in D.from_rgb[:-1])
    assert (n_g - extra_g, n_d - extra_d) == (23_071_507, 23_077_137)
    assert round(n_g / 1e6, 1) == round(n_d / 1e6, 1) == 23.1
    assert G.z_dim == 512 and G.channels == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert D.blocks[0].mbstd.group_size == 16  # the paper's 1-GPU preset: the whole minibatch


def test_official_training_setup():
    bundle = build_model("progan")
    obj = bundle.objective
    assert isinstance(obj, AdversarialObjective)
    assert (obj.loss_name, obj.gp_lambda, obj.drift) == ("wgan", 10.0, 0.001)
    for spec in obj.optimizers.values():
        assert (spec.lr, tuple(spec.betas), spec.eps) == (1e-3, (0.0, 0.99), 1e-8)
    # Gs beta 0.999 per minibatch of 16, expressed as a half-life.
    assert bundle.ema.beta(16, 10**7) == pytest.approx(0.999)
    assert PROGAN_EMA_HALF_LIFE_KIMG == pytest.approx(11.085, abs=1e-3)
    sched = bundle.schedule
    assert (sched.fade_kimg, sched.stab_kimg, sched.start_level, sched.max_level) == (800, 800, 0, 8)
    batch = {sched.state(int(k * 1000))["resolution"]: sched.state(int(k * 1000))["batch_size"]
             for k in (0, 1000, 2600, 4200, 5800, 7400, 9000, 10600, 12200)}
    assert batch == {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3}
    assert bundle.info == {"resolution": 1024, "channels": 3, "c_dim": 0, "z_dim": 512, "name": "progan"}


def test_config_errors():
    with pytest.raises(ConfigError, match="cannot produce resolution 48: must be a power of two >= 8"):
        build_model("progan_tiny", resolution=48)
    with pytest.raises(ConfigError, match="cannot produce resolution 4"):
        build_model("progan_tiny", resolution=4)
    with pytest.raises(ConfigError, match=r"model.G \(progan\) has no option\(s\) \['fmaps'\]"):
        build_model("progan_tiny", G={"fmaps": 3})
    with pytest.raises(ConfigError, match=r"model.schedule \(progan\) has no option"):
        build_model("progan_tiny", schedule={"fade": 3})
    with pytest.raises(ConfigError, match="fmap_base=4 is too small"):
        build_model("progan_tiny", G={"fmap_base": 4})


def test_objective_hooks_pass_level_alpha_and_blend_reals():
    bundle = build_model("progan_tiny")
    state = bundle.schedule.state(100)  # level 1 fading in: 64 stab + 36 of 64 fade images
    assert state["level"] == 1 and state["alpha"] == pytest.approx(36 / 64)
    ctx = StepContext(bundle.modules, state, 0, 100, torch.device("cpu"))
    assert bundle.objective.g_kwargs(ctx) == {"level": 1, "alpha": pytest.approx(36 / 64)}
    reals = bundle.objective.prepare_reals(torch.randn(4, 3, 16, 16), ctx)
    assert reals.shape == (4, 3, 8, 8)
    assert bundle.sample_opts(state) == {"level": 1, "alpha": pytest.approx(36 / 64)}
    assert bundle.sample(bundle.modules, 2, **bundle.sample_opts(state)).shape == (2, 3, 8, 8)


# -- training -------------------------------------------------------------------------------------
BASE = ["model=progan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=4"]


def test_training_passes_through_every_stage(tmp_path):
    run = tmp_path / "run"
    summary = Trainer(compose(BASE + ["trainer.kimg=0.32"]), run).fit()
    # 4x4: 4 steps of 16, 8x8: 8 steps of 16, 16x16: 16 steps of 8 (the per-resolution batch size).
    assert summary["step"] == 28 and summary["images_seen"] == 320
    rows = _metrics(run)
    assert {r["schedule/resolution"] for r in rows} == {4.0, 8.0, 16.0}
    fading = {r["schedule/resolution"] for r in rows if 0.0 < r["schedule/alpha"] < 1.0}
    assert fading == {8.0, 16.0}
    assert all(math.isfinite(r["loss/G"]) and math.isfinite(r["loss/gp"]) for r in rows)
    assert {"loss/drift", "D/real", "D/fake"} <= set(rows[-1])
    assert (run / "samples" / "fakes_0000000320.png").exists()  # one grid per write, named by images seen


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
    """Stop while 16x16 fades in (batch size already switched to 8), resume, compare with a straight run."""
    straight = Trainer(compose(BASE + ["trainer.steps=18"]), tmp_path / "straight")
    straight.fit()
    half = Trainer(compose(BASE + ["trainer.steps=15"]), tmp_path / "half")
    half.fit()
    state = half.bundle.schedule.state(half.images_seen)
    assert state["level"] == 2 and 0 < state["alpha"] < 1  # really mid-fade
    resumed = Trainer(compose(BASE + ["trainer.steps=18", f"trainer.resume={tmp_path / 'half'}"]), tmp_path / "res")
    assert resumed.step == 15 and resumed.images_seen == half.images_seen
    resumed.fit()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    assert not [k for k in a if not torch.equal(a[k], b[k])]
    assert straight.images_seen == resumed.images_seen == 12 * 16 + 6 * 8
