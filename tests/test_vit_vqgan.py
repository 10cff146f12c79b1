"""ViT-VQGAN (Yu et al. 2022): ViT autoencoder, factorized l2 codes, positions, sizes, training, resume."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from ganzoo.bundle import count_params
from ganzoo.errors import ConfigError
from ganzoo.losses.functional import logit_laplace_nll
from ganzoo.models.stylegan2 import Discriminator
from ganzoo.models.vit_vqgan import PRESETS, PositionEmbedding, ViTDecoder, ViTVQAutoencoder, sincos_2d
from ganzoo.registry import build_model
from ganzoo.runtime import build_bundle
from ganzoo.training.trainer import Trainer

from .conftest import compose
from .test_trainer import _all_state


def _tiny_G(**kw) -> ViTVQAutoencoder:
    torch.manual_seed(0)
    p = PRESETS["vit_vqgan_tiny"]
    return ViTVQAutoencoder(resolution=p["resolution"], img_channels=p["img_channels"], **{**p["G"], **kw})


# -- modules -------------------------------------------------------------------------------------
def test_shapes_and_gradients_reach_every_part():
    G = _tiny_G()
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    rec, q = G(x)
    assert rec.shape == x.shape and G.code_shape == (4, 4)
    assert q.indices.shape == (3, 4, 4) and q.indices.dtype == torch.int64
    assert q.z_q.shape == (3, G.embed_dim, 4, 4)
    # Decoding the indices gives the same image as decoding the straight-through codes.
    torch.testing.assert_close(G.decode_indices(q.indices), rec, rtol=1e-5, atol=1e-5)
    (F.mse_loss(rec, x) + q.loss).backward()
    # Straight-through: the encoder gets a gradient from the reconstruction; the codebook from its loss.
    for name, part in (("encoder", G.encoder), ("decoder", G.decoder), ("quantizer", G.quantizer)):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    assert G.last_layer is G.decoder.head[-1].weight and G.last_layer.grad is not None


def test_factorized_l2_codes_have_unit_norm_and_are_the_nearest_by_cosine():
    G = _tiny_G()
    G.eval()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    q = G.encode(x)
    book = G.quantizer.codebook()  # [K, lookup_dim], what the lookup compares against
    assert book.shape == (64, 8)
    torch.testing.assert_close(book.norm(dim=1), torch.ones(64))
    # The encoder vectors, projected to the 8-d lookup space and normalised, pick the code of highest
    # cosine similarity (brute force over all codes).
    z = G.encoder(x).permute(0, 2, 3, 1).reshape(-1, G.embed_dim)  # [M, D]
    u = F.normalize(G.quantizer.proj_in(z), dim=1)  # [M, 8]
    cos = u @ F.normalize(G.quantizer.weight, dim=1).t()  # [M, K]
    assert torch.equal(cos.argmax(1), q.indices.flatten())
    # z_q is the projection of a unit-norm code back to the embedding space.
    torch.testing.assert_close(q.z_q, G.quantizer.lookup(q.indices), rtol=1e-5, atol=1e-6)
    unit = book[q.indices]  # [N, h, w, 8]
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(q.indices.shape))


def test_codes_are_initialised_from_a_normal_distribution():
    G = ViTVQAutoencoder(resolution=32, img_channels=1, patch_size=4, n_embed=4096, lookup_dim=32,
                         encoder={"dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64},
                         decoder={"dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64})
    w = G.quantizer.weight.detach()
    assert abs(float(w.mean())) < 0.02 and abs(float(w.std()) - 1.0) < 0.02


def test_sincos_positions_follow_the_formula():
    dim, h, w = 16, 3, 5
    emb = sincos_2d(dim, h, w)
    assert emb.shape == (h * w, dim)
    for row in range(h):
        for col in range(w):
            expected = []
            for pos in (col, row):  # first half: column, second half: row (MAE's layout)
                freqs = [1.0 / 10000 ** (i / (dim // 4)) for i in range(dim // 4)]
                expected += [math.sin(pos * f) for f in freqs] + [math.cos(pos * f) for f in freqs]
            torch.testing.assert_close(emb[row * w + col], torch.tensor(expected), rtol=0, atol=1e-6)
    # Fixed positions are rebuilt, not stored; learned ones are parameters in the state dict.
    assert "weight" not in PositionEmbedding("sincos", dim, 4).state_dict()
    learned = PositionEmbedding("learned", dim, 4)
    assert learned.weight.requires_grad and learned.state_dict()["weight"].shape == (1, 16, dim)
    with pytest.raises(ConfigError, match="divisible by 4"):
        sincos_2d(10, 2, 2)


def test_decoder_puts_each_token_into_its_patch():
    """Token t = (row, col) of the g x g grid fills pixels [row*p:(row+1)*p, col*p:(col+1)*p], read
    from its p*p*C outputs in (pixel row, pixel col, channel) order."""
    g, p, c = 2, 3, 2
    dec = ViTDecoder(resolution=g * p, img_channels=c, patch_size=p, in_dim=8, dim=8, depth=1, heads=2, mlp_dim=8)
    values = torch.arange(g * g * p * p * c, dtype=torch.float32).reshape(1, g * g, p * p * c)
    dec.head = _Const(values)
    img = dec(torch.zeros(1, 8, g, g))
    for t in range(g * g):
        row, col = divmod(t, g)
        for py in range(p):
            for px in range(p):
                for ch in range(c):
                    assert img[0, ch, row * p + py, col * p + px] == values[0, t, (py * p + px) * c + ch]


class _Const(torch.nn.Module):
    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(x.shape[0], -1, -1)


def test_config_errors():
    with pytest.raises(ConfigError, match="must divide"):
        build_model("vit_vqgan_tiny", G={"patch_size": 3})
    with pytest.raises(ConfigError, match="multiple of heads"):
        build_model("vit_vqgan_tiny", G={"encoder": {"heads": 3}})
    with pytest.raises(ConfigError, match="no option"):
        build_model("vit_vqgan_tiny", G={"encoder": {"width": 3}})
    with pytest.raises(ConfigError, match="pos_embed"):
        build_model("vit_vqgan_tiny", G={"pos_embed": "rope"})


# -- sizes ---------------------------------------------------------------------------------------
# Measured with this code (encoder, decoder, quantizer, G total, StyleGAN2 D at 256x256, channel_base
# 32768, channel_max 512). The paper (Table 1) reports about 32M (Small) and 91M (Base) per transformer;
# see docs/models/vit_vqgan.md for the comparison.
COUNTS = {
    "vit_vqgan_small": (27_418_624, 26_664_128, 295_456, 54_378_208, 28_864_129),
    "vit_vqgan_base": (89_926_656, 88_008_384, 312_096, 178_247_136, 28_864_129),
}
# enhancing-transformers' ViTEncoder.transformer (blocks + final LayerNorm, qkv without bias), counted
# by instantiating it on CPU: Small 25,207,808, Base 85,028,352.
REIMPL_TRANSFORMER = {"vit_vqgan_small": 25_207_808, "vit_vqgan_base": 85_028_352}


@pytest.mark.parametrize("name", ["vit_vqgan_small", pytest.param("vit_vqgan_base", marks=pytest.mark.slow)])
def test_parameter_counts(name):
    p = PRESETS[name]
    G = ViTVQAutoencoder(resolution=p["resolution"], img_channels=p["img_channels"], **p["G"])
    D = Discriminator(img_resolution=256, img_channels=3, **p["D"])
    counts = (count_params(G.encoder), count_params(G.decoder), count_params(G.quantizer), count_params(G),
              count_params(D))
    assert counts == COUNTS[name]
    enc = p["G"]["encoder"]
    # Same transformer as the re-implementation apart from the qkv bias (3 * dim per block).
    ours = count_params(G.encoder.blocks) + count_params(G.encoder.norm)
    assert ours - enc["depth"] * 3 * enc["dim"] == REIMPL_TRANSFORMER[name]
    # Codebook 8192 x 32 plus the factorization's two linear maps.
    d = G.embed_dim
    assert count_params(G.quantizer) == 8192 * 32 + (d * 32 + 32) + (32 * d + d)


def test_yaml_matches_registry_preset():
    for name in ("vit_vqgan", "vit_vqgan_tiny", "vit_vqgan_small"):
        auto = ["model.img_channels=1"] if name == "vit_vqgan" else []  # the yaml follows the data's channels
        from_yaml = build_bundle(compose([f"model={name}", *auto]).model)
        from_registry = build_model(name)
        for key in ("G", "D"):
            assert repr(from_yaml.modules[key]) == repr(from_registry.modules[key]), (name, key)
        a, b = from_yaml.objective, from_registry.objective
        assert a.optimizers == b.optimizers
        for attr in ("rec_loss", "perceptual_weight", "disc_weight", "use_adaptive_weight", "disc_start",
                     "d_loss_name", "logit_laplace_weight", "codebook_weight"):
            assert getattr(a, attr) == getattr(b, attr), (name, attr)


def test_paper_loss_weights_and_missing_vgg_fails_at_start(tmp_path, monkeypatch):
    bundle = build_model("vit_vqgan_small")
    obj = bundle.objective
    assert (obj.rec_loss, obj.rec_weight, obj.perceptual_weight, obj.disc_weight) == ("l2", 1.0, 0.1, 0.1)
    assert obj.use_adaptive_weight is False and obj.codebook_weight == 1.0
    assert bundle.info["kind"] == "autoencoder" and bundle.info["n_embed"] == 8192
    assert bundle.info["code_shape"] == (32, 32)
    # Building works without the VGG weights; moving the objective to a device (the trainer's first
    # step) loads them, and a missing file is a ConfigError that names the ways out.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="perceptual_weight=0"):
        build_model("vit_vqgan_tiny", loss={"perceptual_weight": 0.1, "lpips_download": False}).objective.to(
            torch.device("cpu"))


# -- logit-Laplace -------------------------------------------------------------------------------
def test_logit_laplace_matches_the_density_and_integrates_to_one():
    t = torch.tensor([-0.9, 0.0, 0.5, 1.0])
    r = torch.tensor([-1.0, 0.2, 0.5, 3.0])  # 3.0 is clamped to 1
    eps, log_b = 0.1, math.log(0.7)
    got = logit_laplace_nll(t, r, log_scale=log_b, eps=eps, reduction="none")

    def phi(v: float) -> float:
        return (1 - 2 * eps) * (v + 1) / 2 + eps

    def logit(v: float) -> float:
        return math.log(v / (1 - v))

    b = math.exp(log_b)
    for i in range(4):
        x, mu = phi(float(t[i])), logit(phi(min(float(r[i]), 1.0)))
        assert float(got[i]) == pytest.approx(math.log(2 * b * x * (1 - x)) + abs(logit(x) - mu) / b, rel=1e-5)
    assert float(logit_laplace_nll(t, r, log_scale=log_b, eps=eps)) == pytest.approx(float(got.mean()))
    # exp(-nll) is a density over x = phi(target): with a tiny eps, phi covers (0, 1) and the
    # integral over x is 1 (the Jacobian 1 / (x (1 - x)) of the logit is part of the formula).
    tiny = 1e-7
    grid = torch.linspace(-1, 1, 400_001, dtype=torch.float64)[1:-1]
    rec = torch.full_like(grid, 2 * (torch.sigmoid(torch.tensor(0.3)).item() - tiny) / (1 - 2 * tiny) - 1)
    dens = torch.exp(-logit_laplace_nll(grid, rec, log_scale=math.log(0.8), eps=tiny, reduction="none").double())
    dx = (1 - 2 * tiny) / 2 * (grid[1] - grid[0])
    assert float(dens.sum() * dx) == pytest.approx(1.0, abs=2e-3)


def test_logit_laplace_is_smallest_at_the_target():
    t = torch.full((1,), 0.3)
    values = [float(logit_laplace_nll(t, torch.full((1,), v))) for v in torch.linspace(-1, 1, 41).tolist()]
    best = torch.linspace(-1, 1, 41)[int(torch.tensor(values).argmin())]
    assert float(best) == pytest.approx(0.3, abs=1e-6)


# -- training ------------------------------------------------------------------------------------
def _rec_losses(run_dir) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss/rec"] for r in rows if "loss/rec" in r]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_lowers_the_reconstruction_loss(tmp_path, precision):
    cfg = compose(["model=vit_vqgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.steps=30",
                   "trainer.log_every=3", "trainer.grid=4", "trainer.sample_every_kimg=100",
                   "trainer.checkpoint_every_kimg=100", f"trainer.precision={precision}"])
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.fit()
    losses = _rec_losses(tmp_path / "run")
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.6 * losses[0], losses
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/D", "loss/adv", "vq/usage", "vq/perplexity", "loss/codebook"} <= set().union(*rows)


def test_resume_is_bit_exact(tmp_path):
    base = ["model=vit_vqgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=4"]
    straight = Trainer(compose(base + ["trainer.steps=8"]), tmp_path / "straight")
    straight.fit()
    half = Trainer(compose(base + ["trainer.steps=4"]), tmp_path / "half")
    half.fit()
    resumed = Trainer(compose(base + ["trainer.steps=8", f"trainer.resume={tmp_path / 'half'}"]), tmp_path / "resumed")
    resumed.fit()
    a, b = _all_state(straight), _all_state(resumed)
    assert a.keys() == b.keys() and any(k.startswith("opt.D") for k in a)
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, f"resume diverged in {mismatched[:5]}"
    assert not torch.equal(_all_state(half)["G.quantizer.embedding.weight"], a["G.quantizer.embedding.weight"])
