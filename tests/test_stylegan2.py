"""StyleGAN2: architecture, truncation, noise, conditioning, lazy regularisation, counts, training."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganzoo.bundle import Batch, StepContext, count_params
from ganzoo.errors import ConfigError
from ganzoo.layers import setup_filter, upfirdn2d
from ganzoo.models.stylegan2 import PRESETS, Discriminator, DiscriminatorBlock, Generator
from ganzoo.registry import build_model
from ganzoo.training.trainer import Trainer, build_bundle

from .conftest import compose

TINY = dict(z_dim=16, w_dim=16, img_resolution=16, img_channels=3, channel_base=128, channel_max=16, mapping_layers=2)


def _tiny_g(**kw) -> Generator:
    torch.manual_seed(0)
    return Generator(**{**TINY, **kw})


def _tiny_d(**kw) -> Discriminator:
    torch.manual_seed(1)
    args = dict(img_resolution=16, img_channels=3, channel_base=128, channel_max=16, mbstd_group_size=2)
    return Discriminator(**{**args, **kw})


def _set_noise_strength(G: Generator, value: float) -> None:
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.strength"):
                p.fill_(value)


# -- shapes and gradients --------------------------------------------------------------------------
def test_tiny_shapes_and_gradients():
    bundle = build_model("stylegan2_tiny")
    G, D = bundle.modules["G"], bundle.modules["D"]
    assert (G.z_dim, G.w_dim, G.c_dim, G.img_resolution, G.img_channels) == (32, 32, 0, 16, 3)
    assert G.num_ws == 2 * int(math.log2(16)) - 2 == 6
    assert G.w_avg.shape == (32,)
    z = torch.randn(4, G.z_dim)
    ws = G.mapping(z)
    assert ws.shape == (4, G.num_ws, G.w_dim)
    img = G.synthesis(ws)
    assert img.shape == (4, 3, 16, 16)
    logits = D(img)
    assert logits.shape == (4,)
    logits.sum().backward()
    for module in (G, D):
        missing = [n for n, p in module.named_parameters() if p.grad is None]
        assert not missing, f"no gradient for {missing}"
    expected_info = {"resolution": 16, "channels": 3, "c_dim": 0, "z_dim": 32, "w_dim": 32, "num_ws": 6}
    assert expected_info.items() <= bundle.info.items()


def test_num_ws_rule_and_channel_schedule():
    G = Generator(z_dim=8, w_dim=8, img_resolution=64, channel_base=512, channel_max=32, mapping_layers=1)
    assert G.num_ws == 2 * 6 - 2
    assert G.synthesis.channels == {4: 32, 8: 32, 16: 32, 32: 16, 64: 8}
    with pytest.raises(ConfigError, match="power of two"):
        Generator(img_resolution=48)


# -- skip generator / residual discriminator ---------------------------------------------------------
def test_skip_generator_sums_upsampled_torgb_outputs():
    G = _tiny_g().eval()
    rgb: dict[int, torch.Tensor] = {}
    for res, block in zip(G.synthesis.block_resolutions, G.synthesis.blocks.values()):
        block.torgb.register_forward_hook(lambda m, i, o, res=res: rgb.__setitem__(res, o))
    img = G(torch.randn(3, G.z_dim), noise_mode="const")
    assert sorted(rgb) == [4, 8, 16]
    f = setup_filter([1, 3, 3, 1])
    expected = rgb[4]
    for res in (8, 16):
        # FIR upsampling by 2: zero insertion, pad (2, 1), filter with gain 4 (official upsample2d).
        expected = upfirdn2d(expected, f, up=2, padding=(2, 1, 2, 1), gain=4) + rgb[res]
    torch.testing.assert_close(img, expected)


def test_resnet_d_block_skip_scaled_by_sqrt_half():
    torch.manual_seed(0)
    block = DiscriminatorBlock(8, 8, 16, img_channels=3, architecture="resnet")
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1)  # non-zero biases
    assert block.skip.conv.bias is None and block.skip.activation is None
    x = torch.randn(2, 8, 8, 8)
    out = block(x, None)
    unscaled = block.skip(x) + block.conv1(block.conv0(x))
    torch.testing.assert_close(out, math.sqrt(0.5) * unscaled)
    orig = DiscriminatorBlock(8, 8, 16, img_channels=3, architecture="orig")
    assert orig.skip is None


# -- mapping network -----------------------------------------------------------------------------
def test_truncation_psi_zero_gives_w_avg_and_psi_one_is_identity():
    G = _tiny_g()
    with torch.no_grad():
        G.w_avg.normal_()
    z = torch.randn(5, G.z_dim)
    ws = G.mapping(z)
    torch.testing.assert_close(G.mapping(z, truncation_psi=1.0), ws)
    ws0 = G.mapping(z, truncation_psi=0.0)
    torch.testing.assert_close(ws0, G.w_avg.expand_as(ws0))
    ws_half = G.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(ws_half[:, :2], G.w_avg + 0.5 * (ws[:, :2] - G.w_avg))
    torch.testing.assert_close(ws_half[:, 2:], ws[:, 2:])


def test_w_avg_moves_toward_mapped_ws():
    G = _tiny_g()
    z = torch.randn(64, G.z_dim)
    w_mean = G.mapping(z)[:, 0].mean(0)
    assert torch.count_nonzero(G.w_avg) == 0
    G.mapping(z)  # no update unless asked for
    assert torch.count_nonzero(G.w_avg) == 0
    G.mapping(z, update_w_avg=True)
    torch.testing.assert_close(G.w_avg, 0.005 * w_mean)  # beta 0.995
    w_mean = w_mean.detach()
    dist = [float((G.w_avg - w_mean).norm())]
    for _ in range(200):
        G.mapping(z, update_w_avg=True)
    dist.append(float((G.w_avg - w_mean).norm()))
    assert dist[1] < 0.5 * dist[0]


def test_conditional_mapping_depends_on_c():
    G = _tiny_g(c_dim=3)
    z = torch.randn(1, G.z_dim).repeat(8, 1)  # one z for every label
    c = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    ws = G.mapping(z, c)
    assert not torch.allclose(ws[0], ws[1])
    torch.testing.assert_close(ws[0], ws[3])  # same class
    torch.testing.assert_close(G.mapping(z, torch.nn.functional.one_hot(c, 3).float()), ws)
    with pytest.raises(ValueError, match="class-conditional"):
        G.mapping(z)
    D = _tiny_d(c_dim=3)
    img = torch.randn(8, 3, 16, 16)
    assert not torch.allclose(D(img, torch.zeros(8, dtype=torch.long)), D(img, torch.ones(8, dtype=torch.long)))


# -- noise -------------------------------------------------------------------------------------
def test_noise_modes():
    G = _tiny_g().eval()
    _set_noise_strength(G, 1.0)
    z = torch.randn(2, G.z_dim)
    const_a, const_b = G(z, noise_mode="const"), G(z, noise_mode="const")
    torch.testing.assert_close(const_a, const_b)
    assert not torch.allclose(G(z, noise_mode="random"), G(z, noise_mode="random"))
    none = G(z, noise_mode="none")
    _set_noise_strength(G, 0.0)
    torch.testing.assert_close(none, G(z, noise_mode="random"))
    assert not torch.allclose(none, const_a)
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, noise_mode="fresh")


def test_fused_and_unfused_modconv_agree():
    G = _tiny_g()
    _set_noise_strength(G, 0.5)
    ws = G.mapping(torch.randn(3, G.z_dim))
    torch.testing.assert_close(
        G.synthesis(ws, noise_mode="const", fused_modconv=True),
        G.synthesis(ws, noise_mode="const", fused_modconv=False),
        rtol=1e-4,
        atol=1e-5,
    )


# -- objective -----------------------------------------------------------------------------------
def test_lazy_regularisation_phases_and_adam_correction():
    bundle = build_model("stylegan2_tiny")
    phases = [(p.name, p.module, p.interval) for p in bundle.objective.phases]
    assert phases == [("Gmain", "G", 1), ("Greg", "G", 4), ("Dmain", "D", 1), ("Dreg", "D", 16)]
    g, d = bundle.objective.optimizers["G"], bundle.objective.optimizers["D"]
    assert g.lr == pytest.approx(0.0025 * 4 / 5) and d.lr == pytest.approx(0.0025 * 16 / 17)
    assert g.betas == pytest.approx((0.0, 0.99 ** (4 / 5))) and d.betas == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert g.eps == d.eps == 1e-8
    f = build_model("stylegan2_f", resolution=32)  # config F's optimizer, at a small resolution
    assert f.objective.optimizers["G"].lr == pytest.approx(0.002 * 0.8)
    cifar = build_model("stylegan2_cifar", resolution=8, channel_base=64, channel_max=8)
    assert [p.name for p in cifar.objective.phases] == ["Gmain", "Dmain", "Dreg"]
    assert cifar.objective.style_mixing_prob == 0.0 and cifar.modules["D"].architecture == "orig"


def _ctx(bundle) -> StepContext:
    return StepContext(bundle.modules, {}, step=0, images_seen=0, device=torch.device("cpu"))


def test_r1_term_equals_independent_autograd():
    bundle = build_model("stylegan2_tiny", loss={"r1_gamma": 3.0})
    D = bundle.modules["D"]
    reals = torch.randn(4, 3, 16, 16)
    loss, logs = bundle.objective.d_reg(Batch(reals), _ctx(bundle))
    x = reals.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    r1 = grad.square().sum(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(logs["loss/r1"], r1.detach())
    torch.testing.assert_close(loss, 1.5 * r1)
    # Same parameter gradients (the penalty is differentiated once more).
    g_obj = torch.autograd.grad(loss, list(D.parameters()), allow_unused=True)
    g_ref = torch.autograd.grad(1.5 * r1, list(D.parameters()), allow_unused=True)
    for a, b, p in zip(g_obj, g_ref, D.parameters()):
        # The objective's "+ 0 * logits" gives zeros where the penalty alone gives None.
        torch.testing.assert_close(torch.zeros_like(p) if a is None else a, torch.zeros_like(p) if b is None else b)


def test_path_length_term_equals_independent_autograd():
    bundle = build_model("stylegan2_tiny", loss={"pl_weight": 2.0, "style_mixing_prob": 0.9})
    G, obj = bundle.modules["G"], bundle.objective
    _set_noise_strength(G, 0.3)
    obj.pl_mean = torch.tensor(0.7)
    batch = Batch(torch.zeros(8, 3, 16, 16))
    torch.manual_seed(123)
    loss, logs = obj.g_reg(batch, _ctx(bundle))
    new_mean = obj.pl_mean.clone()

    # Replay the same random draws: z, style-mixing cutoff and coin, second z, noise, pl noise.
    torch.manual_seed(123)
    n = 8 // 2  # pl_batch_shrink
    z = torch.randn(n, G.z_dim)
    ws = G.mapping(z)
    cutoff = int(torch.randint(1, G.num_ws, ()))
    if float(torch.rand(())) < 0.9:
        ws = torch.cat([ws[:, :cutoff], G.mapping(torch.randn_like(z))[:, cutoff:]], dim=1)
    img = G.synthesis(ws)
    y = torch.randn_like(img) / math.sqrt(16 * 16)
    (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    mean = 0.7 + 0.01 * (lengths.mean() - 0.7)
    penalty = (lengths - mean).square().mean()

    torch.testing.assert_close(logs["pl/length"], lengths.mean().detach())
    torch.testing.assert_close(logs["loss/pl"], penalty.detach())
    torch.testing.assert_close(loss, 2.0 * penalty)
    torch.testing.assert_close(new_mean, mean.detach())
    params = [p for p in G.parameters()]
    g_obj = torch.autograd.grad(loss, params, allow_unused=True)
    g_ref = torch.autograd.grad(2.0 * penalty, params, allow_unused=True)
    for a, b, p in zip(g_obj, g_ref, params):
        a = torch.zeros_like(p) if a is None else a
        b = torch.zeros_like(p) if b is None else b
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_w_avg_updated_in_every_training_phase():
    """StyleGAN2-ADA: every training-mode mapping of the main latents moves w_avg (Gmain, Greg, Dmain)."""
    bundle = build_model("stylegan2_tiny")
    G = bundle.modules["G"]
    ctx = _ctx(bundle)
    bundle.objective.generate(ctx, 8)  # the generator phases' fakes
    first = G.w_avg.clone()
    assert torch.count_nonzero(first) > 0
    bundle.objective.fakes_for_d(ctx, 8)  # D's fakes
    assert not torch.equal(G.w_avg, first)


def test_cifar_keeps_lazy_adam_correction_without_path_length():
    """ADA's cfg 'cifar' turns path length off but still corrects G's Adam for an interval of 4."""
    b = build_model("stylegan2_cifar")
    assert "Greg" not in [p.name for p in b.objective.phases]
    g = b.objective.optimizers["G"]
    assert g.lr == pytest.approx(0.0025 * 4 / 5) and g.betas == pytest.approx((0.0, 0.99 ** (4 / 5)))


# -- presets and parameter counts ------------------------------------------------------------------
OFFICIAL_COUNTS = {
    # model (overrides): (G, D). Config F: StyleGAN2-ADA training log (print_module_summary, 1024x1024,
    # fmaps 1): D 29,012,513; G 28,794,124 with 2 mapping layers + 6 x 262,656 = 30,370,060 with 8.
    "stylegan2_f": (30_370_060, 29_012_513),
    # paper256: official TF StyleGAN2-ADA print_layers at 256 with fmaps 0.5 and 2 mapping layers,
    # G 23,191,522 + 6 x 262,656; D from the reconstructed official networks.py.
    "stylegan2_paper256": (24_767_458, 24_001_089),
    # cifar: reconstructed official networks.py (cfg 'cifar': map 2, orig D), unconditional.
    "stylegan2_cifar": (19_947_539, 20_720_641),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_COUNTS))
def test_official_parameter_counts(name):
    torch.manual_seed(0)
    bundle = build_model(name)
    G, D = bundle.modules["G"], bundle.modules["D"]
    assert (count_params(G), count_params(D)) == OFFICIAL_COUNTS[name]


def test_conditional_cifar_counts():
    bundle = build_model("stylegan2_cifar", c_dim=10)
    assert (count_params(bundle.modules["G"]), count_params(bundle.modules["D"])) == (20_215_315, 23_089_664)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_yaml_matches_registry_preset(name):
    """``model=<name>`` (the yaml) builds the same model and objective as the registry preset."""
    if name in ("stylegan2_f", "stylegan2_paper256"):
        overrides = ["model.resolution=32"]  # keep construction cheap: the same config at 32x32
        kwargs = {"resolution": 32}
    else:  # the stylegan2 yaml follows the data (auto geometry); its registry preset is 32x32 RGB
        overrides, kwargs = ["model.resolution=32", "model.img_channels=3"] if name == "stylegan2" else [], {}
    from_yaml = build_bundle(compose([f"model={name}", *overrides]).model)
    from_registry = build_model(name, **kwargs)
    for key in ("G", "D"):
        assert count_params(from_yaml.modules[key]) == count_params(from_registry.modules[key])
        assert repr(from_yaml.modules[key]) == repr(from_registry.modules[key])
    a, b = from_yaml.objective, from_registry.objective
    assert [(p.name, p.interval) for p in a.phases] == [(p.name, p.interval) for p in b.phases]
    assert a.optimizers == b.optimizers
    for attr in ("r1_gamma", "r1_interval", "pl_weight", "pl_interval", "pl_batch_shrink", "style_mixing_prob"):
        assert getattr(a, attr) == getattr(b, attr), attr
    assert from_yaml.ema == from_registry.ema
    assert from_yaml.modules["D"].epilogue.mbstd.group_size == from_registry.modules["D"].epilogue.mbstd.group_size


def test_config_errors():
    with pytest.raises(ConfigError, match="no option"):
        build_model("stylegan2_tiny", loss={"r1_gama": 1.0})
    with pytest.raises(ConfigError, match="no option"):
        build_model("stylegan2_tiny", G={"mapping_fmaps": 8})
    with pytest.raises(ConfigError, match="power of two"):
        build_model("stylegan2_tiny", resolution=24)


# -- training --------------------------------------------------------------------------------------
def test_short_training_runs_all_four_phases(tmp_path):
    cfg = compose(["model=stylegan2_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.steps=5", "trainer.grid=4"])
    trainer = Trainer(cfg, tmp_path / "run")
    calls: dict[str, int] = {}
    for phase in trainer.phases:
        original = phase.loss

        def counted(batch, ctx, original=original, name=phase.name):
            calls[name] = calls.get(name, 0) + 1
            return original(batch, ctx)

        phase.loss = counted
    summary = trainer.fit()
    assert summary["step"] == 5
    assert calls == {"Gmain": 5, "Greg": 2, "Dmain": 5, "Dreg": 1}
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    assert {"loss/G", "loss/D", "loss/pl", "loss/r1", "pl/length"} <= keys
    assert all(math.isfinite(v) for row in rows for k, v in row.items() if k.startswith("loss/"))
    assert torch.count_nonzero(trainer.modules["G"].w_avg) > 0
    assert torch.count_nonzero(trainer.ema["G"].w_avg) > 0  # buffers copied into the EMA generator
    assert float(trainer.objective.pl_mean) > 0
    assert list((tmp_path / "run" / "samples").glob("fakes_*.png"))


def test_preset_batch_size_is_the_default_batch_and_never_a_builder_argument():
    """``batch_size:`` in a model yaml sets ``trainer.batch_size`` unless that is given; 64 otherwise."""
    from ganzoo.runtime import model_kwargs

    assert compose(["model=stylegan2"]).trainer.batch_size == 32  # the CPU preset's tuned batch
    assert compose(["model=stylegan2", "trainer.batch_size=8"]).trainer.batch_size == 8  # the user wins
    assert compose(["model=stylegan2_paper256"]).trainer.batch_size == 64
    assert compose(["model=dcgan"]).trainer.batch_size == 64  # no preset batch: the trainer default
    name, kwargs = model_kwargs(compose(["model=stylegan2"]).model)
    assert name == "stylegan2" and "batch_size" not in kwargs
