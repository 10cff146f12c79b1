"""AutoencoderObjective (taming's VQLPIPSWithDiscriminator), the perceptual loader and the autoencoder bundle."""

from __future__ import annotations

import pytest
import torch

from ganzoo.bundle import OptimizerSpec, StepContext, autoencoder_bundle
from ganzoo.errors import ConfigError
from ganzoo.layers.patchgan import PatchGANDiscriminator
from ganzoo.losses.autoencoder import AutoencoderObjective, adaptive_weight, hinge_d_loss, vanilla_d_loss
from ganzoo.losses.perceptual import perceptual_loss
from ganzoo.models.vqgan import VQGANAutoencoder

ADAM = OptimizerSpec(lr=1e-4, betas=(0.5, 0.9))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a loaded CPU, the second thread's spin-waits slow these small convs ~10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _modules(seed: int = 0):
    torch.manual_seed(seed)
    G = VQGANAutoencoder(resolution=16, img_channels=1, ch=8, ch_mult=[1, 1, 2], num_res_blocks=1,
                         attn_resolutions=[4], norm_groups=4, z_channels=16, embed_dim=8, n_embed=32)
    D = PatchGANDiscriminator(img_channels=1, ndf=8, n_layers=2, resolution=16)
    return {"G": G, "D": D}


def _ctx(modules, step: int) -> StepContext:
    return StepContext(modules, {}, step, step * 4, torch.device("cpu"))


def _batch(seed: int = 1):
    from ganzoo.bundle import Batch

    g = torch.Generator().manual_seed(seed)
    return Batch(torch.rand(4, 1, 16, 16, generator=g) * 2 - 1)


def test_adaptive_weight_equals_manual_autograd():
    modules = _modules()
    obj = AutoencoderObjective(optim_G=ADAM, optim_D=ADAM, perceptual_weight=0.0, disc_weight=0.8, disc_start=0)
    batch = _batch()
    torch.manual_seed(5)
    loss, logs = obj.ae_step(batch, _ctx(modules, 10))
    # manual: same forward, gradients of the two terms at the decoder's last weight
    G, D = modules["G"], modules["D"]
    torch.manual_seed(5)
    x_rec, q = G(batch.img)
    nll = (batch.img - x_rec).abs().mean()
    g_loss = -D(x_rec).mean()
    (g_nll,) = torch.autograd.grad(nll, G.decoder.conv_out.weight, retain_graph=True)
    (g_adv,) = torch.autograd.grad(g_loss, G.decoder.conv_out.weight, retain_graph=True)
    manual = torch.clamp(g_nll.norm() / (g_adv.norm() + 1e-4), 0, 1e4) * 0.8
    assert logs["adaptive_weight"].item() == pytest.approx(manual.item(), rel=1e-5)
    # the total is taming's nll + d_weight * disc_factor * g_loss + codebook_weight * qloss
    expected = nll + manual * g_loss + q.loss
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["loss/adv"].item() == pytest.approx(g_loss.item(), rel=1e-5)


def test_adaptive_weight_is_clamped_and_detached():
    w = torch.ones(3, requires_grad=True)
    nll = (w * 1e6).sum()
    g = (w * 1e-9).sum()
    out = adaptive_weight(nll, g, w, disc_weight=2.0)
    assert out.item() == pytest.approx(2.0e4) and not out.requires_grad


def test_disc_start_gates_adversarial_terms():
    modules = _modules()
    obj = AutoencoderObjective(optim_G=ADAM, optim_D=ADAM, perceptual_weight=0.0, disc_start=3)
    assert [p.name for p in obj.phases] == ["AE", "D"]
    d_phase = obj.phases[1]
    assert not d_phase.active(_ctx(modules, 2)) and d_phase.active(_ctx(modules, 3))
    batch = _batch()
    loss_before, logs_before = obj.ae_step(batch, _ctx(modules, 2))
    assert "loss/adv" not in logs_before
    # before disc_start the AE loss is exactly nll + codebook (taming's adopt_weight gives factor 0)
    x_rec, q = modules["G"](batch.img)
    assert loss_before.item() == pytest.approx(((batch.img - x_rec).abs().mean() + q.loss).item(), rel=1e-6)
    loss_after, logs_after = obj.ae_step(batch, _ctx(modules, 3))
    assert "loss/adv" in logs_after and loss_after.item() != pytest.approx(loss_before.item())


def test_losses_finite_and_d_step_hinge():
    modules = _modules()
    obj = AutoencoderObjective(optim_G=ADAM, optim_D=ADAM, perceptual_weight=0.0, disc_start=0)
    batch = _batch()
    for step in (obj.ae_step, obj.d_step):
        loss, logs = step(batch, _ctx(modules, 0))
        assert torch.isfinite(loss) and all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())
    loss, logs = obj.d_step(batch, _ctx(modules, 0))
    assert {"loss/D", "D/real", "D/fake"} <= set(logs)
    assert modules["G"].training  # the D step's eval-mode reconstruction restores train mode
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.5))
    sp = torch.nn.functional.softplus
    assert vanilla_d_loss(real, fake).item() == pytest.approx(0.5 * (sp(-real).mean() + sp(fake).mean()).item())


def test_d_step_loss_decreases_with_training():
    """Real D learning through the phase: a few Adam steps lower the hinge loss on a fixed batch."""
    modules = _modules()
    obj = AutoencoderObjective(optim_G=ADAM, optim_D=ADAM, perceptual_weight=0.0, disc_start=0)
    modules["G"].requires_grad_(False)
    opt = torch.optim.Adam(modules["D"].parameters(), lr=2e-3, betas=(0.5, 0.9))
    batch = _batch()
    losses = []
    for _ in range(15):
        loss, _ = obj.d_step(batch, _ctx(modules, 0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_perceptual_term_with_explicit_random_backbone():
    lp = perceptual_loss("vgg", random_backbone=True)
    modules = _modules()
    obj = AutoencoderObjective(optim_G=ADAM, optim_D=ADAM, perceptual_weight=1.0, perceptual=lp, disc_start=10)
    batch = _batch()
    loss, logs = obj.ae_step(batch, _ctx(modules, 0))
    assert logs["loss/perceptual"].item() > 0
    x_rec, q = modules["G"](batch.img)
    expected = (batch.img - x_rec).abs().mean() + lp(batch.img, x_rec).mean() + q.loss
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert modules["G"].decoder.conv_out.weight.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in lp.model.parameters())


def test_missing_lpips_weights_is_config_error_naming_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(ConfigError) as err:
        perceptual_loss("vgg", allow_download=False)
    msg = str(err.value)
    assert "hub" in msg and "model.loss.lpips_weights" in msg and "perceptual_weight=0" in msg
    assert "internet" in msg
    with pytest.raises(ConfigError, match="not a file"):
        perceptual_loss("vgg", tmp_path / "missing.pth")
    # the bundle still builds offline (counts, tools); training fails at start, before any step
    from ganzoo.registry import build_model

    bundle = build_model("vqgan_tiny", loss={"perceptual_weight": 1.0, "lpips_download": False})
    with pytest.raises(ConfigError, match="lpips_weights"):
        bundle.objective.to(torch.device("cpu"))
    from ganzoo.training.trainer import Trainer

    from .conftest import compose

    cfg = compose(["model=vqgan_tiny", "trainer=smoke", "trainer.device=cpu", "model.loss.perceptual_weight=1.0",
                   "model.loss.lpips_download=false"])
    with pytest.raises(ConfigError, match="perceptual_weight=0"):
        Trainer(cfg, tmp_path / "run")


def test_perceptual_weight_without_distance_is_rejected():
    with pytest.raises(ValueError, match="perceptual"):
        AutoencoderObjective(optim_G=ADAM, optim_D=ADAM, perceptual_weight=1.0)


def test_autoencoder_bundle_info_and_sample():
    modules = _modules()
    obj = AutoencoderObjective(optim_G=ADAM, optim_D=ADAM, perceptual_weight=0.0)
    bundle = autoencoder_bundle(modules["G"], modules["D"], obj)
    assert bundle.info["kind"] == "autoencoder" and bundle.info["code_shape"] == (4, 4)
    assert bundle.info["n_embed"] == 32 and bundle.resolution == 16 and bundle.channels == 1 and bundle.c_dim == 0
    reals = _batch().img
    rec = bundle.sample(bundle.modules, 4, reals=reals)
    assert torch.equal(rec, modules["G"](reals)[0])
    # without reals: n images decoded from uniformly drawn codes (no prior in a stage-1 bundle)
    imgs = bundle.sample(bundle.modules, 3, generator=torch.Generator().manual_seed(0))
    idx = torch.randint(0, 32, (3, 4, 4), generator=torch.Generator().manual_seed(0))
    assert torch.equal(imgs, modules["G"].decode_indices(idx))
    with pytest.raises(ValueError, match="reals"):
        bundle.sample(bundle.modules)
