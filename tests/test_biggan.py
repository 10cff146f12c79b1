"""BigGAN: official parameter counts, hierarchical z, orthogonal regularisation, D:G ratio, EMA start,
accumulation, standing statistics, training in fp32/bf16 and bit-exact resume."""

from __future__ import annotations

import copy
import json
from collections import defaultdict

import pytest
import torch

import ganzoo.models.biggan as biggan_mod
import ganzoo.models.biggan_deep as deep_mod
from ganzoo.bundle import Batch, EMASpec, StepContext, count_params
from ganzoo.errors import ConfigError
from ganzoo.layers import ConditionalBatchNorm2d, SNConv2d, SNEmbedding, SNLinear
from ganzoo.layers.resblocks import BatchNorm2dIgnoringY
from ganzoo.losses import functional as L
from ganzoo.models.biggan import PRESETS, Discriminator, Generator, OrthoReg, ortho_loss
from ganzoo.models.biggan_deep import DeepDBlock, DeepGBlock
from ganzoo.registry import build_model
from ganzoo.sampling.standing_stats import accumulate_standing_stats, batchnorm_layers
from ganzoo.training.trainer import Trainer

from .conftest import compose
from .test_trainer import _all_state

# c_dim given (the yaml says auto) so the Trainer does not load the data twice.
TINY = ["model=biggan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=4", "model.c_dim=10"]

# Counted by instantiating BigGAN-PyTorch's own BigGAN.Generator / BigGAN.Discriminator (commit 9845943)
# on CPU with each launch script's flags and train.py's parser defaults, sum(p.numel()).
OFFICIAL = {
    "biggan_imagenet128": (70_433_988, 87_982_370),
    "biggan_cifar": (4_304_387, 4_207_361),
    "biggan_deep_imagenet128": (50_244_484, 34_590_210),  # BigGANdeep.py, launch_BigGAN_deep.sh
}


def _tiny_g(**kw) -> Generator:
    torch.manual_seed(0)
    args = dict(z_dim=32, ch=4, resolution=32, img_channels=3, c_dim=10, shared_dim=16, attn_res=(16,))
    return Generator(**{**args, **kw})


# -- parameter counts --------------------------------------------------------------------------------
def _meta_build(monkeypatch, name: str, **overrides):
    """Build on the meta device without initialisation: fast, no memory (158M parameters at 128 px)."""
    monkeypatch.setattr(biggan_mod, "biggan_init", lambda module, style: None)
    monkeypatch.setattr(deep_mod, "biggan_init", lambda module, style: None)
    with torch.device("meta"):
        return build_model(name, **overrides)


@pytest.mark.parametrize("name", ["biggan_imagenet128", "biggan_deep_imagenet128"])
def test_official_counts_imagenet128_meta(monkeypatch, name):
    b = _meta_build(monkeypatch, name)
    assert (count_params(b.modules["G"]), count_params(b.modules["D"])) == OFFICIAL[name]


def test_official_counts_cifar():
    b = build_model("biggan_cifar")
    assert (count_params(b.modules["G"]), count_params(b.modules["D"])) == OFFICIAL["biggan_cifar"]
    G = b.modules["G"]
    assert G.shared is None and not G.hier and not G.attention and G.c_dim == 10


@pytest.mark.parametrize(("name", "img_channels", "counts"), [
    ("biggan", 1, (100_354, 71_653)),
    ("biggan", 3, (100_932, 72_293)),  # the count (an RGB CPU preset); 68,450 with attention after block 0 only
    ("biggan_tiny", 3, (22_596, 18_485)),
])
def test_32px_d_attention_follows_the_official_d_attn_rule(name, img_channels, counts):
    """BigGAN-PyTorch's D_attn '16' at 32 px: D_arch[32] labels all four blocks 16, so attention follows each
    block (their outputs are 16, 8, 8, 8 px: ganzoo's attn_res [16, 8], as the biggan_pytorch importer maps it)."""
    b = build_model(name, img_channels=img_channels)
    G, D = b.modules["G"], b.modules["D"]
    assert list(D.attention) == ["0", "1", "2", "3"]
    assert list(G.attention) == ["1"]  # G_arch[32] labels its blocks 8, 16, 32: after the 16x16 block only
    assert (count_params(G), count_params(D)) == counts


@pytest.mark.slow
def test_official_counts_imagenet128_full_build():
    b = build_model("biggan_imagenet128")
    assert (count_params(b.modules["G"]), count_params(b.modules["D"])) == OFFICIAL["biggan_imagenet128"]
    G, D = b.modules["G"], b.modules["D"]
    assert (G.z_dim, G.z_chunk, G.cond_dim) == (120, 20, 128 + 20)
    assert list(G.attention) == ["3"] and G.attention["3"].channels == 2 * 96  # after the 64x64 block
    assert list(D.attention) == ["0"] and D.attention["0"].channels == 96  # after the 128 -> 64 block


# -- architecture ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, overrides",
    [
        ("biggan_tiny", {}),
        ("biggan", {}),
        ("biggan_cifar", {"G": {"ch": 4}, "D": {"ch": 4}}),
        ("biggan_imagenet128", {"G": {"ch": 8}, "D": {"ch": 8}, "c_dim": 5}),
        ("biggan_tiny", {"c_dim": 0}),  # unconditional, hierarchical: BN conditioned on z chunks
        ("biggan_tiny", {"c_dim": 0, "G": {"hier": False}}),  # unconditional, plain BN
        ("biggan_deep_imagenet128", {"G": {"ch": 8}, "D": {"ch": 8}, "c_dim": 5, "resolution": 64}),
        ("biggan_deep_imagenet128", {"G": {"ch": 4, "attn_res": []}, "D": {"ch": 4}, "c_dim": 0, "resolution": 32}),
    ],
)
def test_shapes_and_gradients(name, overrides):
    torch.manual_seed(0)
    b = build_model(name, **overrides)
    G, D = b.modules["G"], b.modules["D"]
    c = torch.tensor([0, 1]) % G.c_dim if G.c_dim else None
    img = G(torch.randn(2, G.z_dim), c)
    assert img.shape == (2, b.channels, b.resolution, b.resolution)
    assert img.abs().max() <= 1
    logits = D(img, c)
    assert logits.shape == (2,)
    logits.sum().backward()
    for module in (G, D):
        missing = [n for n, p in module.named_parameters() if p.grad is None]
        assert not missing, f"{name}: no gradient for {missing[:5]}"
    if G.c_dim == 0:
        assert G.shared is None and D.head.embed is None
    assert b.objective.g_penalty is None or ortho_loss(G, 1e-4) > 0


def test_deep_blocks_skip_paths():
    """BigGAN-deep: G's skip keeps the first out channels (then upsamples), D's concatenates a 1x1 conv."""

    class Zero(torch.nn.Module):  # silences the residual branch's last 1x1 conv
        def __init__(self, channels: int):
            super().__init__()
            self.channels = channels

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            return h.new_zeros(h.shape[0], self.channels, *h.shape[2:])

    torch.manual_seed(0)
    g = DeepGBlock(16, 8, norm=lambda c: BatchNorm2dIgnoringY(c, affine=False), upsample=True)
    g.conv4 = Zero(8)
    x = torch.randn(2, 16, 4, 4)
    assert torch.equal(g(x, None), torch.nn.functional.interpolate(x[:, :8], scale_factor=2, mode="nearest"))
    d = DeepDBlock(8, 24, downsample=True).eval()  # eval: the SN vector stays put between the two calls
    d.conv4 = Zero(24)
    x = torch.randn(2, 8, 8, 8)
    out = d(x)
    pooled = torch.nn.functional.avg_pool2d(x, 2)
    assert out.shape == (2, 24, 4, 4) and torch.equal(out[:, :8], pooled)
    assert torch.allclose(out[:, 8:], d.conv_sc(pooled))


def test_every_layer_spectrally_normalised_but_the_shared_embedding():
    G, D = _tiny_g(), Discriminator(ch=4, resolution=32, c_dim=10, attn_res=(16,))
    for module in (G, D):
        for name, m in module.named_modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                assert isinstance(m, (SNConv2d, SNLinear)), name
    assert type(G.shared) is torch.nn.Embedding and isinstance(D.head.embed, SNEmbedding)
    assert G.linear.sn_eps == 1e-6


def test_each_block_receives_its_own_z_chunk():
    """Perturbing chunk k + 1 changes only block k's BN conditioning; chunk 0 feeds only the linear."""
    G = _tiny_g().eval()
    seen: dict[int, torch.Tensor] = {}
    for i, block in enumerate(G.blocks):
        for norm in (block.norm1, block.norm2):
            assert isinstance(norm, ConditionalBatchNorm2d)
        block.norm1.register_forward_hook(lambda m, inp, out, i=i: seen.__setitem__(i, inp[1].clone()))
    linear_in: list[torch.Tensor] = []
    G.linear.register_forward_hook(lambda m, inp, out: linear_in.append(inp[0].clone()))
    z, c = torch.randn(3, G.z_dim), torch.tensor([1, 4, 7])
    G(z, c)
    base, base_lin = dict(seen), linear_in[-1]
    k = G.z_chunk
    assert G.num_blocks == 3 and k == 8
    for i in range(G.num_blocks):  # block i: cat(shared(c), z chunk i + 1)
        assert torch.equal(base[i], torch.cat([G.shared(c), z[:, (i + 1) * k : (i + 2) * k]], dim=1))
    for chunk in range(G.num_blocks + 1):
        z2 = z.clone()
        z2[:, chunk * k : (chunk + 1) * k] += 1.0
        G(z2, c)
        changed = [i for i in range(G.num_blocks) if not torch.equal(seen[i], base[i])]
        assert changed == ([] if chunk == 0 else [chunk - 1])
        assert torch.equal(linear_in[-1], base_lin) == (chunk != 0)


def test_soft_labels_interpolate_the_shared_embedding():
    G = _tiny_g().eval()
    z, c = torch.randn(2, G.z_dim), torch.tensor([2, 5])
    onehot = torch.nn.functional.one_hot(c, 10).float()
    assert torch.allclose(G(z, onehot), G(z, c), atol=1e-6)
    mix = 0.5 * onehot[0] + 0.5 * onehot[1]
    assert torch.allclose(G.class_vector(mix[None], 1), 0.5 * (G.shared.weight[2] + G.shared.weight[5]))
    assert not torch.allclose(G(z, c), G(z, c.flip(0)))  # the class matters


def test_config_errors():
    with pytest.raises(ConfigError, match="resolutions"):
        Generator(resolution=48)
    with pytest.raises(ConfigError, match="multiple of 4"):
        _tiny_g(z_dim=30)
    with pytest.raises(ConfigError, match="shared"):
        _tiny_g(shared=False)
    with pytest.raises(ConfigError, match="unknown BigGAN init"):
        _tiny_g(init="kaiming")
    with pytest.raises(ConfigError, match="no option"):
        build_model("biggan_tiny", loss={"d_steps": 2})


# -- orthogonal regularisation -----------------------------------------------------------------------
def test_orthogonal_regularization_matches_brute_force():
    torch.manual_seed(0)
    Ws = [torch.randn(5, 3, 3, 3), torch.randn(4, 7), torch.randn(6)]
    expected = 0.0
    for W in Ws[:2]:
        rows = W.reshape(W.shape[0], -1)
        for i in range(rows.shape[0]):
            for j in range(rows.shape[0]):
                if i != j:
                    expected += float(rows[i] @ rows[j]) ** 2
    assert L.orthogonal_regularization(Ws, strength=0.3).item() == pytest.approx(0.3 * expected, rel=1e-5)
    assert L.orthogonal_regularization(Ws, strength=0.3, blacklist=[Ws[0]]).item() < 0.3 * expected
    with torch.autocast("cpu", dtype=torch.bfloat16):  # computed in fp32 under autocast
        assert L.orthogonal_regularization(Ws, strength=0.3).dtype == torch.float32


@pytest.mark.parametrize("shared", [True, False])
def test_ortho_gradient_equals_official_update(shared):
    """d(ortho_loss)/dW == BigGAN-PyTorch utils.ortho's 2 beta (W W^T * (1 - I)) W, shared embedding blacklisted."""
    G = _tiny_g(shared=shared, hier=shared, init="N02")
    beta = 1e-4
    ortho_loss(G, beta).backward()
    for name, p in G.named_parameters():
        if name.startswith("shared."):
            assert p.grad is None
            continue
        if p.ndim < 2:
            assert p.grad is None or not p.grad.any(), name
            continue
        table = not shared and (".gain." in name or ".bias." in name)
        W = (p.t() if table else p).detach().reshape(p.shape[1] if table else p.shape[0], -1)
        gram = W @ W.t()
        official = 2 * beta * (gram * (1 - torch.eye(gram.shape[0]))) @ W
        if table:
            official = official.t()
        assert torch.allclose(p.grad, official.reshape(p.shape), rtol=1e-4, atol=1e-12), name


def test_ortho_hook_enters_g_phase():
    b = build_model("biggan_tiny")
    assert isinstance(b.objective.g_penalty, OrthoReg) and b.objective.g_penalty.beta == 1e-4
    ctx = StepContext(b.modules, {}, 0, 0, torch.device("cpu"), c_dim=10)
    _, logs = b.objective.g_main(Batch(torch.zeros(4, 3, 32, 32)), ctx)
    assert logs["loss/ortho"] == ortho_loss(b.modules["G"], 1e-4).detach()
    launch = PRESETS["biggan_imagenet128"]
    assert biggan_mod._objective(launch["loss"], launch["optim"]).g_penalty is None  # --G_ortho 0.0


# -- EMA ---------------------------------------------------------------------------------------------
def test_ema_spec_start_and_decay():
    spec = EMASpec(decay=0.9999, start_kimg=2.0, rampup=None)
    assert spec.beta(64, 0) == 0.0 and spec.beta(64, 1999) == 0.0  # copy before the start
    assert spec.beta(64, 2000) == 0.9999 and spec.beta(7, 10**9) == 0.9999  # fixed per-step decay
    assert EMASpec(half_life_kimg=10, rampup=None, start_kimg=1.0).beta(32, 500) == 0.0
    assert EMASpec(half_life_kimg=10, rampup=None, start_kimg=1.0).beta(32, 10**6) == pytest.approx(0.5 ** (32 / 1e4))


def test_ema_copies_before_start_then_averages(tmp_path):
    # 16 images per batch x 2 D steps = 32 images per step: 32 after 1 step (copy), 64 after 2 (average).
    trainer = Trainer(compose(TINY + ["trainer.steps=1", "model.ema.start_kimg=0.05", "model.ema.decay=0.5"]),
                      tmp_path / "a")
    trainer.fit()
    G, G_ema = trainer.modules["G"], trainer.ema["G"]
    assert all(torch.equal(p, q) for p, q in zip(G.parameters(), G_ema.parameters()))  # pegged to G
    before = [p.detach().clone() for p in G_ema.parameters()]
    trainer.tcfg.steps = 2
    trainer.fit()
    assert trainer.images_seen == 64
    for p, q, old in zip(G.parameters(), G_ema.parameters(), before):
        assert torch.allclose(q, 0.5 * old + 0.5 * p)


# -- training ----------------------------------------------------------------------------------------
def test_two_d_steps_per_g_step(tmp_path, monkeypatch):
    """Count the optimizer steps a real (fp32) Trainer run takes: 2 of D for every one of G."""
    trainer = Trainer(compose(TINY + ["trainer.steps=2"]), tmp_path / "r")
    counts = {"G": 0, "D": 0}
    for name, opt in trainer.optimizers.items():
        original = opt.step

        def counted(*a, name=name, original=original, **k):
            counts[name] += 1
            return original(*a, **k)

        monkeypatch.setattr(opt, "step", counted)
    trainer.fit()
    assert counts == {"G": 2, "D": 4}
    assert trainer.images_seen == 2 * 2 * 16  # each D step draws a fresh real batch
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/G", "loss/D", "loss/ortho"} <= set(rows[-1])
    assert len(list((tmp_path / "r" / "samples").glob("fakes_*.png"))) >= 1


def test_accumulate_gives_the_same_d_gradient(tmp_path):
    """trainer.accumulate=2 == one batch for D (no BatchNorm in D; fakes fixed so G's BN plays no part).

    G's gradient differs: its BatchNorm normalises each micro-batch with its own statistics, as in
    BigGAN-PyTorch's gradient accumulation.
    """
    torch.manual_seed(0)
    pool_img, pool_c = torch.rand(16, 3, 32, 32) * 2 - 1, torch.randint(0, 10, (16,))
    reals = Batch(torch.rand(16, 3, 32, 32) * 2 - 1, torch.randint(0, 10, (16,)))
    grads = []
    for parts in (1, 2):
        t = Trainer(compose(TINY + [f"trainer.accumulate={parts}"]), tmp_path / f"acc{parts}")
        used = [0]

        def fixed_fakes(ctx, n, used=used):
            i = used[0]
            used[0] += n
            return pool_img[i : i + n], pool_c[i : i + n]

        t.objective.fakes_for_d = fixed_fakes
        phase = next(p for p in t.phases if p.module == "D")
        ctx = StepContext(t.modules, {}, 0, 0, t.device, t.c_dim)
        t._run_phase(phase, reals, ctx, defaultdict(list))
        assert used[0] == 16
        grads.append({n: p.grad.clone() for n, p in t.modules["D"].named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:  # equal up to float summation order
        scale = grads[0][n].abs().max().clamp_min(1e-12)
        assert (grads[0][n] - grads[1][n]).abs().max() <= 1e-4 * scale, n
    assert any(g.abs().sum() > 0 for g in grads[0].values())


def test_bf16_training_step(tmp_path):
    trainer = Trainer(compose(TINY + ["trainer.steps=1", "trainer.precision=bf16"]), tmp_path / "bf16")
    assert trainer.fit()["step"] == 1
    rows = [json.loads(line) for line in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/G", "loss/D", "loss/ortho"} <= set(rows[-1])
    for module in trainer.modules.values():
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.slow
def test_discriminator_learns_when_generator_frozen(tmp_path):
    """With G's lr at 0 the hinge loss of D falls well below its starting value."""
    run = tmp_path / "frozen"
    Trainer(compose(TINY + ["trainer.steps=15", "trainer.log_every=1", "model.optim.G.lr=0"]), run).fit()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss/D"] < 0.5 * rows[0]["loss/D"]


def test_resume_is_bit_exact(tmp_path):
    """2 steps straight == 1 step, stop, resume, 1 step: weights, SN vectors, BN stats, EMA, Adam.

    The EMA starts at 0.03 kimg, so the resumed step averages (beta 0.999) rather than copies."""
    straight = Trainer(compose(TINY + ["trainer.steps=2", "model.ema.start_kimg=0.03"]), tmp_path / "straight")
    straight.fit()
    Trainer(compose(TINY + ["trainer.steps=1", "model.ema.start_kimg=0.03"]), tmp_path / "half").fit()
    resumed = Trainer(compose(TINY + ["trainer.steps=2", "model.ema.start_kimg=0.03",
                                      f"trainer.resume={tmp_path / 'half'}"]), tmp_path / "res")
    assert resumed.step == 1
    resumed.fit()
    a, b = _all_state(straight), _all_state(resumed)
    assert a.keys() == b.keys()
    assert any(k.endswith("weight_u") for k in a) and any(k.endswith("running_mean") for k in a)
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, f"resume diverged in {mismatched[:5]}"


def test_generator_without_shared_embedding_runs_in_float64():
    """The per-BN class tables of the CIFAR layout take the one-hot label in G's dtype (it was cast to float32)."""
    torch.manual_seed(0)
    G = Generator(z_dim=16, ch=4, resolution=32, c_dim=10, shared=False, hier=False, attn_res=(), sn_eps=1e-8)
    G64 = copy.deepcopy(G).double().eval()
    G.eval()
    z, c = torch.randn(3, 16), torch.tensor([0, 4, 9])
    img = G64(z.double(), c)
    assert img.dtype == torch.float64
    torch.testing.assert_close(img.float(), G(z, c), rtol=1e-4, atol=1e-5)
    soft = torch.nn.functional.one_hot(c, 10).float()  # soft labels (float32) follow G's dtype too
    torch.testing.assert_close(G64(z.double(), soft), img)


def test_eval_bn_batch_samples_with_batch_statistics():
    """``eval_bn="batch"``: eval mode normalises with each batch's statistics, as BigGAN-PyTorch samples a G left in
    training mode (launch_cifar_ema.sh), without touching the running statistics; the default uses them."""
    torch.manual_seed(0)
    kw = dict(z_dim=16, ch=4, resolution=32, c_dim=10, shared=False, hier=False, attn_res=())
    batch = Generator(**kw, eval_bn="batch")
    running = copy.deepcopy(batch)
    running.eval_bn = "running"
    with torch.no_grad():
        for bn in batchnorm_layers(batch):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    running.load_state_dict(batch.state_dict())
    z, c = torch.randn(6, 16), torch.arange(6)
    train_mode = copy.deepcopy(batch).train()
    stats = {k: v.clone() for k, v in batch.state_dict().items()}
    with torch.no_grad():
        out = batch.eval()(z, c)
        torch.testing.assert_close(out, train_mode(z, c))  # the same function as a G in training mode
        assert all(torch.equal(v, stats[k]) for k, v in batch.state_dict().items())  # nothing stored
        assert all(not bn.training and bn.track_running_stats for bn in batchnorm_layers(batch))
        assert not torch.allclose(batch(z[:3], c[:3]), out[:3])  # each image depends on its batch
        ref = running.eval()(z, c)
        assert not torch.allclose(ref, out)
        torch.testing.assert_close(running(z[:3], c[:3]), ref[:3])
    # standing statistics still accumulate (their BatchNorms are in training mode), and G ends in eval mode
    first = batchnorm_layers(batch)[0]
    before = first.running_mean.clone()
    assert accumulate_standing_stats(batch, num_accumulations=2, batch_size=4) == len(batchnorm_layers(batch))
    assert not torch.equal(first.running_mean, before) and not batch.training
    with pytest.raises(ConfigError, match="eval_bn"):
        Generator(**kw, eval_bn="train")


# -- standing statistics -----------------------------------------------------------------------------
def test_standing_stats_are_the_mean_over_passes():
    G = _tiny_g()
    G.train()
    G(torch.randn(8, G.z_dim), torch.randint(0, 10, (8,)))  # some running statistics to replace
    layers = batchnorm_layers(G)
    inputs: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(layers))}
    for i, bn in enumerate(layers):
        bn.register_forward_hook(lambda m, inp, out, i=i: inputs[i].append(inp[0].detach().clone()))
    u_before = [m.weight_u.clone() for m in G.modules() if hasattr(m, "weight_u")]
    n = accumulate_standing_stats(G, num_accumulations=5, batch_size=6, generator=torch.Generator().manual_seed(1))
    assert n == len(layers) == 2 * 3 + 1  # two CBNs per block + the output BN
    assert not G.training and all(bn.momentum == 0.1 and not bn.training for bn in layers)
    for i, bn in enumerate(layers):
        xs = inputs[i]
        assert len(xs) == 5
        mean = torch.stack([x.mean(dim=(0, 2, 3)) for x in xs]).mean(0)
        var = torch.stack([x.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for x in xs]).mean(0)
        assert torch.allclose(bn.running_mean, mean, atol=1e-5)
        assert torch.allclose(bn.running_var, var, rtol=1e-4, atol=1e-5)
    u_after = [m.weight_u for m in G.modules() if hasattr(m, "weight_u")]
    assert all(torch.equal(a, b) for a, b in zip(u_before, u_after))  # SN state untouched


@pytest.mark.parametrize(
    "experiment, model, batch, accumulate, d_repeats",
    [
        ("biggan_imagenet128", "biggan_imagenet128", 2048, 8, 1),
        ("biggan_imagenet128_paper", "biggan_imagenet128", 2048, 8, 2),
        ("biggan_cifar", "biggan_cifar", 50, 1, 4),
    ],
)
def test_experiments_compose(experiment, model, batch, accumulate, d_repeats):
    cfg = compose([f"experiment={experiment}"])
    assert cfg.model.name == model
    assert (cfg.trainer.batch_size, cfg.trainer.accumulate) == (batch, accumulate)
    assert cfg.model.loss.d_repeats == d_repeats
