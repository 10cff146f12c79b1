"""SAGAN: architecture, conditioning, official parameter counts, training, exact resume, EMA."""

from __future__ import annotations

import json

import pytest
import torch

from ganzoo.bundle import OptimizerSpec, count_params
from ganzoo.errors import ConfigError
from ganzoo.layers import ConditionalBatchNorm2d, SelfAttention2d, SNConv2d, SNEmbedding, SNLinear
from ganzoo.layers.spectral import _SpectralNormMixin
from ganzoo.losses.objectives import AdversarialObjective
from ganzoo.models.sagan import PRESETS, SAGANDiscriminator, SAGANGenerator
from ganzoo.registry import build_model
from ganzoo.training.trainer import Trainer, build_bundle

from .conftest import compose
from .test_trainer import _all_state

# Presets shrunk for speed but keeping their structure (resolution, blocks, attention placement).
SMALL = {
    "sagan_imagenet128": dict(c_dim=5, G={"base_channels": 2}, D={"base_channels": 4}),
    "sagan_cifar": dict(G={"base_channels": 4}, D={"base_channels": 4}),
    "sagan": dict(c_dim=10, G={"base_channels": 4}, D={"base_channels": 8}),
    "sagan_tiny": dict(c_dim=3),
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- shapes and gradients ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shapes_and_gradients(name):
    bundle = build_model(name, **SMALL[name])
    G, D = bundle.modules["G"], bundle.modules["D"]
    res, ch, c_dim = bundle.resolution, bundle.channels, bundle.c_dim
    assert c_dim > 0
    z = torch.randn(4, G.z_dim)
    c = torch.randint(0, c_dim, (4,))
    img = G(z, c)
    assert img.shape == (4, ch, res, res)
    assert img.abs().max() <= 1.0
    logits = D(img, c)
    assert logits.shape == (4,)
    logits.sum().backward()
    for module in (G, D):
        missing = [n for n, p in module.named_parameters() if p.grad is None]
        assert not missing, f"no gradient for {missing}"
    # spectral normalisation on every conv / linear / (D) embedding; G's class tables are plain
    for module in (G, D):
        for n, m in module.named_modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                assert isinstance(m, _SpectralNormMixin), n
    assert isinstance(D.head.embed, SNEmbedding) and isinstance(D.head.linear, SNLinear)


def test_attention_placement_follows_the_official_code():
    # generator_test: attention after g_block3 (32x32, 4 * gf channels); discriminator_test: after
    # d_block2 (32x32 at 128 input, 2 * df channels).
    G = SAGANGenerator(resolution=128, c_dim=2, base_channels=2, attn_resolution=32)
    D = SAGANDiscriminator(resolution=128, c_dim=2, base_channels=8, attn_resolution=32)
    assert G.attn_after == 2 and G.attn.channels == 4 * 2
    assert D.attn_after == 1 and D.attn.channels == 2 * 8
    seen: dict[str, tuple] = {}
    G.attn.register_forward_hook(lambda m, i, o: seen.__setitem__("G", tuple(o.shape)))
    D.attn.register_forward_hook(lambda m, i, o: seen.__setitem__("D", tuple(o.shape)))
    c = torch.tensor([0, 1])
    D(G(torch.randn(2, 128), c), c)
    assert seen == {"G": (2, 8, 32, 32), "D": (2, 16, 32, 32)}
    assert all(isinstance(m, SNConv2d) for m in (G.attn.f, G.attn.g, G.attn.h, G.attn.o))
    # no attention
    assert SAGANGenerator(resolution=16, base_channels=2, channel_mults=[4, 2, 1], attn_resolution=0).attn is None


# -- conditioning ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cbn", ["table", "onehot"])
def test_conditional_bn_responds_to_the_class(cbn):
    G = SAGANGenerator(resolution=16, c_dim=4, base_channels=4, channel_mults=[4, 2, 1], attn_resolution=8, cbn=cbn)
    cbns = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(cbns) == 2 * len(G.blocks)
    if cbn == "table":  # official init: gain 1, bias 0 for every class, so perturb the tables
        with torch.no_grad():
            for m in cbns:
                m.gain.weight.add_(0.5 * torch.randn_like(m.gain.weight))
                m.bias.weight.add_(0.5 * torch.randn_like(m.bias.weight))
    else:
        assert all(isinstance(m.gain, SNLinear) for m in cbns)
    G.eval()  # running statistics: a sample's output depends on its own label only
    z = torch.randn(1, G.z_dim).repeat(4, 1)
    out = G(z, torch.arange(4))
    for a in range(4):
        for b in range(a + 1, 4):
            assert (out[a] - out[b]).abs().max() > 1e-3, (a, b)
    torch.testing.assert_close(G(z[:2], torch.tensor([2, 2]))[0], out[2])
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)


def test_projection_discriminator_and_unconditional_models():
    D = SAGANDiscriminator(resolution=16, c_dim=3, base_channels=8, channel_mults=[1, 2, 4], attn_resolution=8).eval()
    x = torch.randn(1, 3, 16, 16).repeat(3, 1, 1, 1)
    logits = D(x, torch.arange(3))
    assert len(set(logits.tolist())) == 3
    U = build_model("sagan_tiny", c_dim=0)
    G, Du = U.modules["G"], U.modules["D"]
    assert Du.head.embed is None and not any(isinstance(m, ConditionalBatchNorm2d) for m in G.modules())
    assert Du(G(torch.randn(2, G.z_dim))).shape == (2,)


# -- official parameter counts ---------------------------------------------------------------------
# sagan_imagenet128: every trainable tf.get_variable of the official TF code (generator_test /
# discriminator_test with train_imagenet.py's defaults gf = df = 64, z = 128, 1000 classes) summed
# by hand (see docs/models/sagan.md for the per-block sums). sagan_cifar: StudioGAN's
# models/resnet.py Generator / Discriminator instantiated on CPU with CIFAR10/SAGAN.yaml and the
# config defaults, summing p.numel() over parameters().
OFFICIAL_COUNTS = {
    ("sagan_imagenet128", None): (42_078_852, 39_463_618),
    ("sagan_cifar", None): (4_386_308, 1_075_586),
    ("sagan_cifar", 0): (4_358_660, 1_074_306),
}


@pytest.mark.parametrize(("name", "c_dim"), sorted(OFFICIAL_COUNTS, key=str))
def test_official_parameter_counts(name, c_dim):
    kwargs = {} if c_dim is None else {"c_dim": c_dim}
    bundle = build_model(name, **kwargs)
    counts = (count_params(bundle.modules["G"]), count_params(bundle.modules["D"]))
    assert counts == OFFICIAL_COUNTS[(name, c_dim)]


def test_official_objectives():
    paper = build_model("sagan_tiny").objective
    assert paper.loss_name == "hinge"
    assert [(p.name, p.repeats) for p in paper.phases] == [("Gmain", 1), ("Dmain", 1)]
    g, d = paper.optimizers["G"], paper.optimizers["D"]
    assert (g.lr, g.betas, d.lr, d.betas) == (1e-4, (0.0, 0.9), 4e-4, (0.0, 0.9))
    studio = build_model("sagan_cifar", G={"base_channels": 4}, D={"base_channels": 4}).objective
    # StudioGAN: OPTIMIZATION.d_first (D's 5 steps, then G's), Adam eps 1e-6 (config.define_optimizer)
    assert [(p.name, p.repeats) for p in studio.phases] == [("Dmain", 5), ("Gmain", 1)]
    for name in ("G", "D"):
        spec = studio.optimizers[name]
        assert (spec.lr, spec.betas, spec.eps) == (2e-4, (0.5, 0.999), 1e-6), name


def test_sagan_cifar_discriminator_is_studiogans():
    """StudioGAN's DiscBlock keeps ``x0 = x`` and then runs an in-place ReLU: its shortcut sees relu(x). Eval-mode
    spectral norm takes a power step (StudioGAN's sampler runs its SN layers in training mode); the full
    comparison with StudioGAN's own networks is tests/test_sagan_official.py."""
    bundle = build_model("sagan_cifar", G={"base_channels": 4}, D={"base_channels": 4})
    G, D = bundle.modules["G"].eval(), bundle.modules["D"].eval()
    assert [b.activated_shortcut for b in D.blocks] == [False, True, True, True]  # block 0 has no pre-activation
    assert {m.sn_eval for net in (G, D) for m in net.modules() if isinstance(m, _SpectralNormMixin)} == {"power_step"}
    block = D.blocks[2]  # 8 -> 8 channels, no pooling: the identity shortcut
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        body = block.conv2(torch.relu(block.conv1(torch.relu(x))))
        torch.testing.assert_close(block(x), body + torch.relu(x))
    default = build_model("sagan_cifar", G={"base_channels": 4}, D={"base_channels": 4, "activated_shortcut": False})
    assert not any(b.activated_shortcut for b in default.modules["D"].blocks)


def test_d_first_puts_the_d_phases_first():
    first = build_model("sagan_tiny", loss={"d_first": True}).objective
    assert [p.name for p in first.phases] == ["Dmain", "Gmain"]
    specs = dict(optim_G=OptimizerSpec(lr=1e-3), optim_D=OptimizerSpec(lr=1e-3), r1_gamma=1.0, r1_interval=16)
    assert [p.name for p in AdversarialObjective(**specs).phases] == ["Gmain", "Dmain", "Dreg"]
    assert [p.name for p in AdversarialObjective(**specs, d_first=True).phases] == ["Dmain", "Dreg", "Gmain"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_yaml_matches_registry_preset(name):
    """``model=<name>`` (the yaml) builds the same networks and objective as the registry preset."""
    overrides = ["model.c_dim=10"] if name in ("sagan", "sagan_tiny") else []
    overrides += ["model.resolution=32", "model.img_channels=1"] if name == "sagan" else []  # yaml: auto geometry
    kwargs: dict = {"c_dim": 10} if overrides else {}
    if name == "sagan_imagenet128":  # keep construction cheap: the same config with narrow layers
        overrides += ["model.G.base_channels=2", "model.D.base_channels=8"]
        kwargs.update(G={"base_channels": 2}, D={"base_channels": 8})
    torch.manual_seed(0)
    from_yaml = build_bundle(compose([f"model={name}", *overrides]).model)
    torch.manual_seed(0)
    from_registry = build_model(name, **kwargs)
    for key in ("G", "D"):
        a, b = from_yaml.modules[key], from_registry.modules[key]
        assert repr(a) == repr(b)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
        bn = [(m.eps, m.momentum) for m in a.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert bn == [(m.eps, m.momentum) for m in b.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        sn = [(m.sn_eps, m.sn_eval) for m in a.modules() if isinstance(m, _SpectralNormMixin)]
        assert sn == [(m.sn_eps, m.sn_eval) for m in b.modules() if isinstance(m, _SpectralNormMixin)]
        shortcut = [getattr(m, "activated_shortcut", None) for m in a.modules()]
        assert shortcut == [getattr(m, "activated_shortcut", None) for m in b.modules()]
    oa, ob = from_yaml.objective, from_registry.objective
    assert oa.optimizers == ob.optimizers and oa.loss_name == ob.loss_name
    assert [(p.name, p.repeats) for p in oa.phases] == [(p.name, p.repeats) for p in ob.phases]
    assert from_yaml.ema == from_registry.ema


def test_config_errors():
    with pytest.raises(ConfigError, match="attn_resolution"):
        build_model("sagan_tiny", G={"attn_resolution": 12})
    with pytest.raises(ConfigError, match="attn_resolution"):
        build_model("sagan_tiny", D={"attn_resolution": 16})
    with pytest.raises(ConfigError, match="channel_mults needs 3"):
        build_model("sagan_tiny", G={"channel_mults": [4, 2]})
    with pytest.raises(ConfigError, match="downsample"):
        build_model("sagan_tiny", D={"downsample": [True, False]})
    with pytest.raises(ConfigError, match="cbn"):
        build_model("sagan_tiny", G={"cbn": "film"})
    with pytest.raises(ConfigError, match="power of two"):
        build_model("sagan_tiny", resolution=24)
    with pytest.raises(ConfigError, match="needs >= 8 channels"):
        build_model("sagan_tiny", D={"base_channels": 4})
    with pytest.raises(ConfigError, match="no option"):
        build_model("sagan_tiny", G={"ch": 4})


# -- training through the Trainer ------------------------------------------------------------------
TINY_RUN = ["model=sagan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=4"]


def _rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_discriminator_hinge_loss_falls(tmp_path):
    """G frozen (lr 0): D separates reals from G's fakes and its hinge loss falls from about 2."""
    cfg = compose(TINY_RUN + ["model.optim.G.lr=0", "model.optim.D.lr=1e-3", "trainer.steps=30", "trainer.log_every=5"])
    Trainer(cfg, tmp_path / "run").fit()
    rows = _rows(tmp_path / "run")
    first, last = rows[0]["loss/D"], rows[-1]["loss/D"]
    assert first > 1.2
    assert last < 0.6 * first


def test_bf16_training_runs(tmp_path):
    trainer = Trainer(compose(TINY_RUN + ["trainer.precision=bf16", "trainer.steps=3", "trainer.log_every=1"]),
                      tmp_path / "run")
    summary = trainer.fit()
    assert summary["step"] == 3
    rows = _rows(tmp_path / "run")
    assert all(torch.isfinite(torch.tensor([r["loss/D"], r["loss/G"]])).all() for r in rows)
    for m in trainer.modules.values():  # the power-iteration state stays fp32
        for name, buf in m.named_buffers():
            if name.endswith(("weight_u", "weight_sigma")):
                assert buf.dtype == torch.float32 and torch.isfinite(buf).all()


def test_resume_equals_uninterrupted_with_sn_vectors(tmp_path):
    """N steps straight == N/2 steps, stop, resume, N/2 steps, SN u-vectors of G, D and EMA included."""
    straight = Trainer(compose(TINY_RUN + ["trainer.steps=6"]), tmp_path / "straight")
    u_init = {k: v.clone() for k, v in straight.modules["D"].state_dict().items() if k.endswith("weight_u")}
    straight.fit()
    half = Trainer(compose(TINY_RUN + ["trainer.steps=3"]), tmp_path / "half")
    half.fit()
    resume = f"trainer.resume={tmp_path / 'half'}"
    resumed = Trainer(compose(TINY_RUN + ["trainer.steps=6", resume]), tmp_path / "resumed")
    assert resumed.step == 3
    resumed.fit()
    a, b = _all_state(straight), _all_state(resumed)
    assert a.keys() == b.keys()
    sn_keys = [k for k in a if k.endswith("weight_u")]
    assert any(k.startswith("G.") for k in sn_keys) and any(k.startswith("D.") for k in sn_keys)
    assert any(k.startswith("ema.G.") for k in sn_keys)
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, f"resume diverged in {mismatched[:5]}"
    # the SN vectors really moved during training (the comparison above is not vacuous)
    assert not all(torch.equal(u_init[k], a[f"D.{k}"]) for k in u_init)
    assert not torch.equal(_all_state(half)["D.head.embed.weight_u"], a["D.head.embed.weight_u"])


def test_ema_copy_holds_the_sn_vectors(tmp_path):
    trainer = Trainer(compose(TINY_RUN + ["trainer.steps=4"]), tmp_path / "run")
    trainer.fit()
    G, G_ema = trainer.modules["G"], trainer.ema["G"]
    ema_buffers = dict(G_ema.named_buffers())
    sn_names = [n for n, _ in G.named_buffers() if n.endswith("weight_u")]
    assert sn_names
    for name, buf in G.named_buffers():
        assert torch.equal(ema_buffers[name], buf), name  # update_ema copies buffers
    assert any(not torch.equal(p, q) for p, q in zip(G.parameters(), G_ema.parameters()))
    # sampling with the EMA copy (eval mode) leaves its SN state alone
    before = {n: b.clone() for n, b in G_ema.named_buffers()}
    with torch.no_grad():
        G_ema(torch.randn(2, G_ema.z_dim), torch.tensor([0, 1]))
    assert all(torch.equal(before[n], b) for n, b in G_ema.named_buffers())
    assert isinstance(G_ema.attn, SelfAttention2d)
