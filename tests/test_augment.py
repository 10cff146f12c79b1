"""DiffAugment and ADA: differentiable, identity when off, the adaptive p, resume, every GAN family."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from ganzoo.augment import AdaptiveAugment, ada_pipeline, attach_augment, diff_augment, pipeline_spec
from ganzoo.augment.ada import _resample, _rotate2d, _scale2d
from ganzoo.augment.diffaugment import cutout, translation
from ganzoo.bundle import Batch, StepContext
from ganzoo.errors import ConfigError
from ganzoo.registry import build_model

from .conftest import compose


def _images(n: int = 6, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


def _ctx(step: int) -> SimpleNamespace:
    return SimpleNamespace(step=step)


# -- differentiability ----------------------------------------------------------------------------


AUGMENTS = {
    "color": lambda x: diff_augment(x, "color"),
    "translation": lambda x: diff_augment(x, "translation"),
    "cutout": lambda x: diff_augment(x, "cutout"),
    "ada_bgc": lambda x: ada_pipeline(x, 1.0, "bgc"),
    "ada_geom": lambda x: ada_pipeline(x, 1.0, "geom"),
    "ada_color": lambda x: ada_pipeline(x, 1.0, "color"),
}


@pytest.mark.parametrize("name", sorted(AUGMENTS))
@pytest.mark.parametrize("channels", [1, 3])
def test_gradient_reaches_the_input(name, channels):
    torch.manual_seed(1)
    x = _images(c=channels).requires_grad_(True)
    w = torch.randn(x.shape)
    (AUGMENTS[name](x) * w).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_resampling_gradients_are_exact():
    """The bilinear resampling (first and second order: R1 through ADA) against finite differences."""
    g_inv = _rotate2d(torch.tensor([0.3, -1.1], dtype=torch.float64)) @ _scale2d(
        torch.tensor([0.8, 1.2], dtype=torch.float64), torch.tensor([1.1, 0.9], dtype=torch.float64))
    x = torch.rand(2, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _resample(t, g_inv), (x,))
    assert torch.autograd.gradgradcheck(lambda t: _resample(t, g_inv).square(), (x,))


def test_r1_through_ada_reaches_d():
    """R1 is taken w.r.t. the non-augmented reals; its double backward reaches D's weights."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 1, 3)
    x = _images().requires_grad_(True)
    logits = conv(ada_pipeline(x, 1.0)).mean(dim=(1, 2, 3))
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0


# -- identity when off ----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_ada_at_p0_is_exactly_the_identity(channels):
    x = _images(c=channels)
    torch.manual_seed(0)
    assert torch.equal(ada_pipeline(x, 0.0, "bgc"), x)
    aug = AdaptiveAugment()
    assert torch.equal(aug(x, _ctx(0)), x)
    # ...and at p = 1 it is not (the test above is not vacuous)
    assert not torch.equal(ada_pipeline(x, 1.0, "bgc"), x)


def _dcgan_losses(objective, seed: int = 0) -> list[torch.Tensor]:
    bundle = build_model("dcgan_tiny")
    torch.manual_seed(seed)
    for m in bundle.modules.values():  # same weights every time
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.05)
    ctx = StepContext(bundle.modules, {}, 0, 0, torch.device("cpu"))
    batch = Batch(_images(8, 3, 32))
    torch.manual_seed(seed)
    return [objective.g_main(batch, ctx)[0].detach(), objective.d_main(batch, ctx)[0].detach()]


def test_kind_none_leaves_the_objective_unchanged():
    plain = build_model("dcgan_tiny").objective
    before = _dcgan_losses(plain)
    attach_augment(plain, {"kind": "none"})
    attach_augment(plain, None)
    assert plain.augment is None and plain.state_dict() == {}
    assert all(torch.equal(a, b) for a, b in zip(before, _dcgan_losses(plain)))
    aug = build_model("dcgan_tiny").objective
    attach_augment(aug, {"kind": "diffaugment"})
    assert not all(torch.equal(a, b) for a, b in zip(before, _dcgan_losses(aug)))


# -- DiffAugment ----------------------------------------------------------------------------------


def test_diffaugment_shape_and_range():
    torch.manual_seed(0)
    x = _images(32, 3, 16)
    y = diff_augment(x)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    # colour: brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5] of [-1, 1] images
    assert y.abs().max() < 6
    assert not torch.equal(y, x)


def test_translation_moves_pixels_by_whole_shifts():
    torch.manual_seed(3)
    x = _images(16, 1, 16)
    y = translation(x, 0.125)  # shifts in [-2, 2]
    moved = 0
    for i in range(x.shape[0]):
        found = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = torch.zeros_like(x[i])
                src = x[i][:, max(-dy, 0): 16 - max(dy, 0), max(-dx, 0): 16 - max(dx, 0)]
                ref[:, max(dy, 0): 16 - max(-dy, 0), max(dx, 0): 16 - max(-dx, 0)] = src
                if torch.equal(ref, y[i]):
                    found.append((dy, dx))
        assert len(found) == 1, f"sample {i} is no zero-filled shift within 2 pixels"
        moved += found[0] != (0, 0)
    assert moved >= 10  # 24 of the 25 shifts move something


def test_cutout_zeroes_one_square():
    torch.manual_seed(4)
    x = torch.ones(32, 1, 16, 16)
    y = cutout(x, 0.5)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    for i in range(32):
        zero = (y[i, 0] == 0).nonzero()
        assert 0 < len(zero) <= 64  # an 8x8 square, possibly clipped by the border
        rows, cols = zero[:, 0], zero[:, 1]
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert len(zero) == h * w and h <= 8 and w <= 8  # a filled rectangle
    assert (y == 0).sum(dim=(1, 2, 3)).eq(64).any()  # some squares are whole


def test_diffaugment_rejects_an_unknown_policy():
    with pytest.raises(ConfigError, match="unknown DiffAugment policy"):
        attach_augment(build_model("dcgan_tiny").objective, {"kind": "diffaugment", "policy": "color,blur"})


# -- ADA's transforms -----------------------------------------------------------------------------


def test_ada_blit_transforms_are_exact_pixel_moves():
    torch.manual_seed(0)
    x = _images(16, 3, 8)
    y = ada_pipeline(x, 1.0, pipeline_spec("blit", xint=0))  # x-flips and quarter turns only
    for i in range(16):
        cands = [x[i].rot90(k, (1, 2)) for k in range(4)] + [x[i].flip(-1).rot90(k, (1, 2)) for k in range(4)]
        assert min(float((y[i] - c).abs().max()) for c in cands) < 1e-5


def test_ada_grey_luma_flip_negates():
    torch.manual_seed(0)
    x = _images(64, 1, 4)
    y = ada_pipeline(x, 1.0, pipeline_spec("color", brightness=0, contrast=0))  # lumaflip only on grey
    flipped = [torch.allclose(y[i], -x[i], atol=1e-6) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept)) and 15 < sum(flipped) < 49


def test_ada_bgc_statistics_at_p_half():
    """Each transform is drawn with probability p: at p = 0.5 about half the samples keep their geometry
    under a single-transform pipeline."""
    torch.manual_seed(0)
    x = _images(400, 1, 8)
    y = ada_pipeline(x, 0.5, pipeline_spec("geom", rotate=0, aniso=0, xfrac=0))  # isotropic scaling only
    unchanged = sum(torch.equal(y[i], x[i]) for i in range(400))
    assert 160 < unchanged < 240


# -- the adaptive p -------------------------------------------------------------------------------


def _feed(aug: AdaptiveAugment, steps: range, sign: float, n: int = 16) -> list[float]:
    ps = []
    for s in steps:
        aug(torch.zeros(n, 1, 4, 4), _ctx(s))  # G phase: may adjust p
        aug.observe_real(torch.full((n,), sign), _ctx(s))  # D phase
        ps.append(float(aug.p))
    return ps


def test_p_rises_when_d_overfits_and_falls_back():
    aug = AdaptiveAugment(interval=4, speed_kimg=1.0)  # each adjustment: 4 * 16 / 1000 = 0.064
    ps = _feed(aug, range(12), +1.0)  # r_t = 1 > 0.6
    # adjusted at the first call of steps 4 and 8 (after 4 complete D steps), as in StyleGAN2-ADA's loop
    assert ps[:4] == [0.0] * 4 and ps[4:8] == [pytest.approx(0.064)] * 4
    assert ps[8:] == [pytest.approx(0.128)] * 4
    ps = _feed(aug, range(12, 40), -1.0)  # r_t = -1 < 0.6
    assert ps[0] == pytest.approx(0.192)  # the last window of positive logits still counts
    assert min(ps) == 0.0 and all(p >= 0 for p in ps) and ps[-1] == 0.0


def test_fixed_p_does_not_adapt():
    aug = AdaptiveAugment(fixed_p=0.3, speed_kimg=1.0)
    assert _feed(aug, range(20), +1.0) == [pytest.approx(0.3)] * 20


def test_state_dict_round_trip():
    a = AdaptiveAugment(interval=4, speed_kimg=1.0)
    _feed(a, range(10), +1.0)  # mid-window: 2 D steps pending
    b = AdaptiveAugment(interval=4, speed_kimg=1.0)
    b.load_state_dict(a.state_dict())
    assert _feed(a, range(10, 30), +1.0) == _feed(b, range(10, 30), +1.0)
    obj = build_model("stylegan2_tiny").objective  # merges with the path-length mean
    attach_augment(obj, {"kind": "ada"})
    state = obj.state_dict()
    assert {"pl_mean", "augment.p", "augment.counters"} <= set(state)
    obj.load_state_dict(state)


def test_attach_errors():
    with pytest.raises(ConfigError, match="applies to the GAN families"):
        attach_augment(build_model("vqgan_tiny").objective, {"kind": "ada"})
    attach_augment(build_model("vqgan_tiny").objective, {"kind": "none"})  # the default works for every family
    with pytest.raises(ConfigError, match="choose none, diffaugment or ada"):
        attach_augment(build_model("dcgan_tiny").objective, {"kind": "mixup"})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['policy'\]"):
        attach_augment(build_model("dcgan_tiny").objective, {"kind": "ada", "policy": "color"})
    with pytest.raises(ConfigError, match="pipeline='bgcfnc' must be one of"):
        attach_augment(build_model("dcgan_tiny").objective, {"kind": "ada", "pipeline": "bgcfnc"})


# -- every GAN family goes through discriminate() ---------------------------------------------------


class _Counter:
    kind = "counter"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, img, ctx=None):
        self.calls += 1
        return img

    def observe_real(self, logits, ctx=None):
        return {}

    def state_dict(self):
        return {}


@pytest.mark.parametrize("name", ["dcgan_tiny", "progan_tiny", "stylegan_tiny", "stylegan2_tiny", "sagan_tiny",
                                  "biggan_tiny"])
def test_every_gan_family_augments_what_d_sees(name):
    bundle = build_model(name)
    counter = _Counter()
    bundle.objective.augment = counter
    state = bundle.schedule.state(0) if bundle.schedule else {}
    c_dim = bundle.c_dim
    ctx = StepContext(bundle.modules, state, 0, 0, torch.device("cpu"), c_dim)
    res = bundle.modules["D"].img_resolution if hasattr(bundle.modules["D"], "img_resolution") else bundle.resolution
    label = torch.zeros(2, dtype=torch.long) if c_dim > 0 else None
    batch = Batch(torch.zeros(2, bundle.channels, res, res), label)
    for phase in bundle.objective.phases:
        before = counter.calls
        phase.loss(batch, ctx)
        if phase.name in ("Gmain", "Dmain"):
            assert counter.calls - before >= (1 if phase.name == "Gmain" else 2), phase.name
    # and the real augmentations fit each family's D input (ProGAN/StyleGAN: 4x4 at the first level)
    for cfg in ({"kind": "ada", "fixed_p": 1.0}, {"kind": "diffaugment"}):
        bundle.objective.augment = None
        attach_augment(bundle.objective, cfg)
        loss, logs = next(p for p in bundle.objective.phases if p.name == "Dmain").loss(batch, ctx)
        assert torch.isfinite(loss)


# -- through the trainer --------------------------------------------------------------------------


def _all_state(trainer) -> dict[str, torch.Tensor]:
    out = {f"objective.{k}": v for k, v in trainer.objective.state_dict().items()}
    for name, m in {**trainer.modules, **{f"ema.{k}": v for k, v in trainer.ema.items()}}.items():
        out.update({f"{name}.{k}": v.detach().clone() for k, v in m.state_dict().items()})
    for name, opt in trainer.optimizers.items():
        for i, st in opt.state_dict()["state"].items():
            out.update({f"opt.{name}.{i}.{k}": torch.as_tensor(v).clone() for k, v in st.items()})
    return out


@pytest.mark.parametrize("augment", [["augment=ada", "augment.speed_kimg=0.05", "augment.interval=2"],
                                     pytest.param(["augment=diffaugment"], marks=pytest.mark.slow)])
def test_training_logs_and_resumes_exactly(tmp_path, augment):
    """A tiny DCGAN trains with each augmentation, logs p, and 4 steps straight == 2, stop, resume, 2.

    The stop falls after a complete ADA window whose adjustment is still pending: the resumed run must
    apply it from the checkpointed statistic."""
    from ganzoo.training.trainer import Trainer

    base = ["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=4", *augment]
    straight = Trainer(compose(base + ["trainer.steps=4"]), tmp_path / "straight")
    assert straight.objective.augment is not None, "the trainer must call attach_augment"
    straight.fit()
    half = Trainer(compose(base + ["trainer.steps=2"]), tmp_path / "half")
    half.fit()
    resumed = Trainer(compose(base + ["trainer.steps=4", f"trainer.resume={tmp_path / 'half'}"]), tmp_path / "resumed")
    resumed.fit()
    a, b = _all_state(straight), _all_state(resumed)
    assert a.keys() == b.keys()
    assert not [k for k in a if not torch.equal(a[k], b[k])]
    rows = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    if straight.objective.augment.kind == "ada":
        # log_every = interval = 2: each row's mean aug/rt is one window's r_t, and p moves after it by
        # sign(r_t - 0.6) * 2 * 16 / 50 (never below 0)
        assert len(rows) == 2 and all({"aug/p", "aug/rt"} <= set(r) for r in rows)
        p = 0.0
        for row in rows:
            assert row["aug/p"] == pytest.approx(p, abs=1e-6)
            p = max(0.0, p + (0.64 if row["aug/rt"] > 0.6 else -0.64))
        assert float(a["objective.augment.p"]) == pytest.approx(rows[-1]["aug/p"], abs=1e-6)  # last window pending
    # A resume with another augment setting is not exact: refused without trainer.resume_force
    with pytest.raises(ConfigError, match="augment"):
        Trainer(compose(base[:-len(augment)] + ["augment=none", "trainer.steps=4",
                                                f"trainer.resume={tmp_path / 'half'}"]), tmp_path / "other")
