"""VQ-GAN: taming's architecture and counts, the autoencoder convention, training through the Trainer, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganzoo.bundle import count_params
from ganzoo.errors import ConfigError
from ganzoo.models.vqgan import Downsample, VQGANAutoencoder
from ganzoo.registry import build_model
from ganzoo.training.checkpoint import load_snapshot
from ganzoo.training.trainer import Trainer

from .conftest import compose
from .test_trainer import _all_state

TINY = ["model=vqgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=4"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a loaded CPU, the second thread's spin-waits slow these small convs ~10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny_g(**kw) -> VQGANAutoencoder:
    torch.manual_seed(0)
    args = dict(resolution=16, img_channels=1, ch=8, ch_mult=[1, 1, 2], num_res_blocks=1, attn_resolutions=[4],
                norm_groups=4, z_channels=16, embed_dim=8, n_embed=32)
    return VQGANAutoencoder(**{**args, **kw})


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_official_parameter_counts():
    """taming configs/imagenet_vqgan.yaml, counted by instantiating taming's Encoder, Decoder,
    NLayerDiscriminator (commit 3ba01b2) on CPU: see docs/models/vqgan.md."""
    b = build_model("vqgan_imagenet_f16_1024", loss={"perceptual_weight": 0.0})
    G, D = b.modules["G"], b.modules["D"]
    assert count_params(G.encoder) == 29_298_176
    assert count_params(G.decoder) == 42_449_795
    assert count_params(G.quant_conv) == 65_792 and count_params(G.post_quant_conv) == 65_792
    assert count_params(G.quantize) == 262_144  # 1024 x 256 codebook
    assert count_params(D) == 2_765_633
    assert count_params(G) == 72_141_699
    assert b.info["code_shape"] == (16, 16) and b.info["n_embed"] == 1024
    # taming's module names: the attention sits at resolution 16 only, three blocks per decoder level
    assert len(G.encoder.down[4].attn) == 2 and all(len(G.encoder.down[i].attn) == 0 for i in range(4))
    assert len(G.decoder.up[4].block) == 3 and len(G.decoder.up[4].attn) == 3
    assert G.last_layer is G.decoder.conv_out.weight
    # taming's lr: base_learning_rate * batch (12 per GPU in its config), Adam betas (0.5, 0.9)
    assert b.objective.optimizers["G"].lr == pytest.approx(4.5e-6 * 12)
    assert b.objective.optimizers["D"].betas == (0.5, 0.9)
    assert b.objective.disc_start == 250001 and b.objective.disc_weight == 0.8


def test_shapes_codes_and_gradients():
    G = _tiny_g()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    rec, q = G(x)
    assert rec.shape == x.shape and q.z_q.shape == (2, 8, 4, 4) and q.indices.shape == (2, 4, 4)
    assert G.code_shape == (4, 4) and len(G.encoder.down[2].attn) == 1 and len(G.decoder.up[2].attn) == 2
    # decoding the indices reproduces the reconstruction (stage 2 decodes codes this way)
    torch.testing.assert_close(G.decode_indices(q.indices), rec)
    torch.testing.assert_close(G.decode(G.encode(x).z_q), rec)
    # the reconstruction loss reaches the encoder through the straight-through quantizer
    (rec - x).abs().mean().backward()
    assert G.encoder.conv_in.weight.grad.abs().sum() > 0
    assert G.quant_conv.weight.grad.abs().sum() > 0


def test_downsample_pads_right_and_bottom_only():
    d = Downsample(8)
    x = torch.randn(1, 8, 8, 8)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 1, 0, 1)), d.conv.weight, d.conv.bias, stride=2)
    torch.testing.assert_close(d(x), ref)
    assert d(x).shape == (1, 8, 4, 4)


def test_bad_config_messages():
    with pytest.raises(ConfigError, match="multiple of model.G.norm_groups=32"):
        _tiny_g(ch=16, norm_groups=32)
    with pytest.raises(ConfigError, match="not divisible"):
        _tiny_g(resolution=20, ch_mult=[1, 1, 1, 1])
    with pytest.raises(ConfigError, match="model.G.quantizer has no option"):
        _tiny_g(quantizer={"emma": True})


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_lowers_reconstruction_loss(tmp_path, precision):
    cfg = compose(TINY + ["trainer.steps=36", "trainer.log_every=4", f"trainer.precision={precision}",
                          "model.optim.base_learning_rate=1e-4", "model.loss.disc_start=28"])
    Trainer(cfg, tmp_path / "run").fit()
    rows = _rows(tmp_path / "run")
    first, last = rows[0]["loss/rec"], rows[-1]["loss/rec"]
    assert last < 0.8 * first, (first, last)
    assert "loss/D" in rows[-1] and "adaptive_weight" in rows[-1]  # the discriminator joined at step 28
    assert "loss/D" not in rows[0]
    assert all(0 < r["vq/usage"] <= 1 for r in rows)
    assert (tmp_path / "run" / "samples" / "reals.png").exists()


@pytest.mark.parametrize("quantizer", [[], ["model.G.quantizer.ema=true", "model.G.quantizer.restart_dead=true"]])
def test_resume_is_bit_exact(tmp_path, quantizer):
    """8 steps straight == 4 steps, stop, resume, 4 steps; D joins at step 4 (model.loss.disc_start)."""
    base = TINY + quantizer
    straight = Trainer(compose(base + ["trainer.steps=8"]), tmp_path / "straight")
    straight.fit()
    half = Trainer(compose(base + ["trainer.steps=4"]), tmp_path / "half")
    half.fit()
    resumed = Trainer(compose(base + ["trainer.steps=8", f"trainer.resume={tmp_path / 'half'}"]), tmp_path / "resumed")
    resumed.fit()
    a, b = _all_state(straight), _all_state(resumed)
    assert a.keys() == b.keys()
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, f"resume diverged in {mismatched[:5]}"
    assert any(k.startswith("opt.D.") for k in a)  # D trained after the resume point
    if quantizer:
        # the EMA codebook lives in buffers, saved with G's weights
        weights = load_snapshot(tmp_path / "half").weights["G"]
        assert {"quantize.embed", "quantize.embed_avg", "quantize.cluster_size"} <= set(weights)
        assert torch.equal(weights["quantize.cluster_size"], _all_state(half)["G.quantize.cluster_size"])
        assert not torch.equal(a["G.quantize.embed"], _all_state(half)["G.quantize.embed"])


def test_sample_grid_shows_reals_beside_reconstructions(tmp_path):
    trainer = Trainer(compose(TINY + ["trainer.steps=1"]), tmp_path / "run")
    path = trainer.save_samples({})
    from PIL import Image

    img = Image.open(path)
    # 4 reals + 4 reconstructions, in pairs: nrow = 2 * ceil(sqrt(4 / 2)) = 4 columns, 2 rows of 16 px
    assert img.size == (4 * 16, 2 * 16)
