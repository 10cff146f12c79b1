"""fp16 mixed precision (issue 10): StyleGAN2-ADA's float16 blocks, gradient scaling, exact resume.

Everything runs on the CPU (this torch has float16 convolutions, autocast and GradScaler there).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ganzoo.errors import ConfigError
from ganzoo.layers import ModulatedConv2d
from ganzoo.models.stylegan2 import Discriminator, Generator
from ganzoo.registry import build_model
from ganzoo.training.checkpoint import find_checkpoint
from ganzoo.training.precision import Precision
from ganzoo.training.restore import _dict_diff
from ganzoo.training.trainer import Trainer

from .conftest import compose
from .test_trainer import _all_state


def _official_fp16_resolutions(img_resolution: int, num_fp16_res: int, resolutions: list[int]) -> set[int]:
    """stylegan2-ada-pytorch networks.py: fp16_resolution = max(2 ** (log2(R) + 1 - num_fp16_res), 8)."""
    first = max(2 ** (int(math.log2(img_resolution)) + 1 - num_fp16_res), 8)
    return {r for r in resolutions if r >= first}


def _nets(num_fp16_res: int, conv_clamp: float | None = 256) -> tuple[Generator, Discriminator]:
    kw = dict(img_resolution=32, img_channels=3, channel_base=256, channel_max=16, conv_clamp=conv_clamp,
              num_fp16_res=num_fp16_res)
    return (Generator(z_dim=16, w_dim=16, mapping_layers=2, **kw),
            Discriminator(mbstd_group_size=4, **kw))


@pytest.mark.parametrize("num_fp16_res", [0, 1, 2, 4, 9])
def test_fp16_blocks_follow_the_official_rule(num_fp16_res):
    """After set_fp16(True) exactly the official blocks compute in float16 (seen by hooks), channels-last;
    before it, and after set_fp16(False), every block is float32."""
    torch.manual_seed(0)
    G, D = _nets(num_fp16_res)
    seen: dict[str, torch.dtype] = {}

    def record(name):
        def hook(module, args):
            x = args[0]
            seen[name] = x.dtype
            if x.dtype == torch.float16:
                assert x.is_contiguous(memory_format=torch.channels_last), name
        return hook

    for res, block in zip(G.synthesis.block_resolutions, G.synthesis.blocks.values()):
        block.conv1.register_forward_pre_hook(record(f"G{res}"))
        block.torgb.conv.register_forward_pre_hook(record(f"G{res}.torgb"))
    for res, block in zip(D.block_resolutions, D.blocks.values()):
        block.conv0.register_forward_pre_hook(record(f"D{res}"))
    D.epilogue.register_forward_pre_hook(record("D.epilogue"))

    def run() -> dict[str, torch.dtype]:
        seen.clear()
        img = G(torch.randn(4, 16))
        assert img.dtype == torch.float32
        assert D(img).dtype == torch.float32
        return dict(seen)

    assert set(run().values()) == {torch.float32}
    want_g = _official_fp16_resolutions(32, num_fp16_res, G.synthesis.block_resolutions)
    want_d = _official_fp16_resolutions(32, num_fp16_res, D.block_resolutions)
    assert G.set_fp16(True) == len(want_g) and D.set_fp16(True) == len(want_d)
    dtypes = run()
    assert {r for r in G.synthesis.block_resolutions if dtypes[f"G{r}"] == torch.float16} == want_g
    assert {r for r in G.synthesis.block_resolutions if dtypes[f"G{r}.torgb"] == torch.float16} == want_g
    assert {r for r in D.block_resolutions if dtypes[f"D{r}"] == torch.float16} == want_d
    assert dtypes["D.epilogue"] == torch.float32 and dtypes["G4"] == torch.float32  # never below 8x8
    G.set_fp16(False)
    D.set_fp16(False)
    assert set(run().values()) == {torch.float32}


def test_fp16_outputs_and_gradients_close_to_fp32():
    """The same weights in float16 blocks: images and logits within 1% of the output range of float32
    (float16 has an 11-bit mantissa, ~5e-4 relative per op), and the same gradient direction."""
    torch.manual_seed(0)
    G, D = _nets(num_fp16_res=2)
    G16, D16 = copy.deepcopy(G), copy.deepcopy(D)
    assert G16.set_fp16(True) == 2 and D16.set_fp16(True) == 2
    z = torch.randn(8, 16)
    for training in (True, False):  # the unfused (training) and grouped (eval, one sample) modulated convs
        G.train(training)
        G16.train(training)
        zz = z if training else z[:1]
        a, b = G(zz, noise_mode="const"), G16(zz, noise_mode="const")
        err = (a - b).abs().max().item()
        assert 0 < err <= 1e-2 * a.abs().max().item(), (training, err)
    img = torch.randn(8, 3, 32, 32)
    a, b = D(img), D16(img)
    assert 0 < (a - b).abs().max().item() <= 1e-2 * a.abs().max().item()

    G.train()
    G16.train()
    target = torch.randn(8, 3, 32, 32)
    grads = []
    for g in (G, G16):
        g.zero_grad()
        (g(z, noise_mode="const") * target).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in g.parameters() if p.grad is not None]))
    assert all(p.dtype == torch.float32 for p in G16.parameters())  # weights are cast at use, not stored in fp16
    assert torch.isfinite(grads[1]).all()
    assert (grads[0] - grads[1]).norm() <= 2e-2 * grads[0].norm()


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("up", [1, 2])
def test_fp16_modconv_prenormalisation_prevents_overflow(fused, up):
    """Large styles and activations overflow float16 in the modulated product ``x * s``; the official
    pre-normalisation keeps the float16 path equal to the float64 result (within 1%)."""
    torch.manual_seed(0)
    m = ModulatedConv2d(32, 8, 3, style_dim=4, up=up).double()
    with torch.no_grad():
        m.affine.bias.fill_(3000.0)  # styles ~ 3000
    w = torch.randn(2, 4, dtype=torch.float64)
    x = torch.randn(2, 32, 8, 8, dtype=torch.float64) * 40  # |x * s| up to ~ 5e5 > 65504
    styles = m.affine(w)
    naive = x.half() * styles.half()[:, :, None, None]
    assert not torch.isfinite(naive).all()  # what the float16 path would meet without pre-normalisation
    ref = m(x, w, fused=fused)
    got = m.float()(x.half(), w.float(), fused=fused)
    assert got.dtype == torch.float16 and torch.isfinite(got).all()
    assert (got.double() - ref).abs().max() <= 1e-2 * ref.abs().max()
    if up == 1:  # in float32 the pre-normalised layer equals the plain one: demodulation undoes both scales
        pw, ps = m.prenormalize(m.weight * m.weight_gain, styles.float())
        assert pw.abs().amax() <= 1 and ps.abs().amax() <= 1
        y = F.conv2d(x.float() * ps[:, :, None, None], pw, padding=1)
        y = y * torch.rsqrt(ps.square() @ pw.square().sum(dim=(2, 3)).t() + m.eps)[:, :, None, None]
        assert torch.allclose(y, ref.float(), rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def _fit(tmp_path: Path, name: str, overrides: list[str]) -> Trainer:
    trainer = Trainer(compose(overrides), tmp_path / name)
    trainer.fit()
    return trainer


@pytest.mark.parametrize("model", ["stylegan2_tiny", "dcgan_tiny"])
def test_fp16_training_steps_run_finite(tmp_path, model):
    """Two steps (step 0 runs every phase, lazy regularisers included) at precision=fp16."""
    extra = ["model.conv_clamp=256"] if model.startswith("stylegan2") else []
    cfg = compose([f"model={model}", "trainer=smoke", "trainer.device=cpu", "trainer.steps=2", "trainer.grid=0",
                   "trainer.batch_size=8", "trainer.log_every=1", "trainer.precision=fp16", *extra])
    trainer = Trainer(cfg, tmp_path / "run")
    before = {k: copy.deepcopy(m.state_dict()) for k, m in trainer.modules.items()}
    if model.startswith("stylegan2"):  # self-managed: float16 blocks in G and D, no autocast, EMA in float32
        assert trainer.precision.fp16_parts == {"D": 2, "G": 2}
        assert not isinstance(trainer.autocast, torch.autocast)
        assert not any(b.fp16_enabled for b in trainer.ema["G"].synthesis.blocks.values())
    else:
        assert isinstance(trainer.autocast, torch.autocast) and trainer.autocast.fast_dtype == torch.float16
    trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [v for r in rows for k, v in r.items() if k.startswith("loss/")]
    assert len(rows) == 2 and losses and all(math.isfinite(v) for v in losses)
    for k, m in trainer.modules.items():
        assert all(torch.isfinite(v).all() for v in m.state_dict().values() if v.is_floating_point())
        assert any(not torch.equal(v, before[k][n]) for n, v in m.state_dict().items()), f"{k} never stepped"
    state = torch.load(_state_path(tmp_path / "run"), weights_only=True)
    assert set(state["scalers"]) == {"G", "D"}


def _state_path(run: Path) -> Path:
    weights = find_checkpoint(run)
    return weights.with_name(weights.name.replace(".safetensors", ".state.pt"))


def test_fp16_resume_equals_uninterrupted(tmp_path):
    """4 steps straight == 2, stop, resume, 2 at fp16: weights, EMA, Adam moments and the loss scales."""
    base = ["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=0", "trainer.precision=fp16",
            "trainer.batch_size=8"]
    straight = _fit(tmp_path, "straight", base + ["trainer.steps=4"])
    half = _fit(tmp_path, "half", base + ["trainer.steps=2"])
    # Non-vacuous: the scales moved off their start (skipped steps), so restoring them matters.
    assert any(s.get_scale() != 2.0**16 for s in half.precision.scalers.values())
    resumed = Trainer(compose(base + ["trainer.steps=4", f"trainer.resume={tmp_path / 'half'}"]), tmp_path / "resumed")
    assert {k: s.state_dict() for k, s in resumed.precision.scalers.items()} == \
        {k: s.state_dict() for k, s in half.precision.scalers.items()}
    resumed.fit()
    a, b = _all_state(straight), _all_state(resumed)
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert a.keys() == b.keys() and not mismatched, f"resume diverged in {mismatched[:5]}"
    assert {k: s.state_dict() for k, s in resumed.precision.scalers.items()} == \
        {k: s.state_dict() for k, s in straight.precision.scalers.items()}

    # A checkpoint without scaler states (written before fp16 existed) still resumes, from fresh scales.
    path = _state_path(tmp_path / "half")
    state = torch.load(path, weights_only=True)
    del state["scalers"]
    torch.save(state, path)
    # ... and, like every file of that time, without checksums (sidecar, hashes in latest.json)
    path.with_name(path.name.replace(".state.pt", ".sha256.json")).unlink()
    pointer = path.parent / "latest.json"
    pointer.write_text(json.dumps({k: v for k, v in json.loads(pointer.read_text()).items() if k != "sha256"}))
    old = Trainer(compose(base + ["trainer.steps=4", f"trainer.resume={tmp_path / 'half'}"]), tmp_path / "old")
    assert old.step == 2 and all(s.state_dict()["scale"] == 2.0**16 for s in old.precision.scalers.values())


def test_precision_object_contract():
    """fp32 and bf16 save no scaler state; set_fp16 is called only at fp16; a bundle without the hook autocasts."""
    bundle = build_model("stylegan2_tiny", conv_clamp=256)
    cpu = torch.device("cpu")
    for name in ("fp32", "bf16"):
        p = Precision(name, cpu, bundle.modules)
        assert p.state_dict() == {} and not p.scaling and p.fp16_parts == {}
    assert not any(b.fp16_enabled for b in bundle.modules["G"].synthesis.blocks.values())
    p = Precision("fp16", cpu, bundle.modules)
    assert p.self_managed == ["D", "G"] and set(p.state_dict()) == {"D", "G"}
    with pytest.raises(ConfigError, match="fp32, bf16, fp16"):
        Precision("fp17", cpu, bundle.modules)


def test_fp16_without_float16_blocks_warns(tmp_path, capsys):
    cfg = compose(["model=stylegan2_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.precision=fp16",
                   "model.num_fp16_res=0"])
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.precision.fp16_parts == {"D": 0, "G": 0}
    assert "runs nothing in float16" in capsys.readouterr().err


def test_fp16_without_conv_clamp_warns():
    G, _ = _nets(num_fp16_res=2, conv_clamp=None)
    with pytest.warns(UserWarning, match="conv_clamp=256"):
        G.set_fp16(True)


def test_bad_precision_and_num_fp16_res_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer\.precision='fp17'.*fp16"):
        Trainer(compose(["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.precision=fp17"]),
                tmp_path / "run")
    with pytest.raises(ConfigError, match="num_fp16_res must be an integer >= 0"):
        build_model("stylegan2_tiny", num_fp16_res=-1)


def test_model_settings_added_since_a_checkpoint_do_not_block_resume():
    """A key missing from the saved model config (e.g. num_fp16_res, added later) is not a difference."""
    assert _dict_diff({"a": 1, "G": {"x": 2}}, {"a": 1, "G": {"x": 2, "new": 3}, "num_fp16_res": 4}) == ""
    assert _dict_diff({"a": 1, "G": {"x": 2}}, {"a": 1, "G": {"x": 5}}) == "model.G.x: checkpoint 2 vs now 5"
