"""VQ stage 2: the code prior trained through the generic trainer on a frozen tokenizer."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import torch

from ganzoo.errors import CheckpointError, ConfigError
from ganzoo.models.vq_prior import FrozenTokenizer, load_stage1, prefix_tokens, tokenizer_hash
from ganzoo.registry import build_model
from ganzoo.runtime import build_bundle
from ganzoo.sampling.generate import add_generate_args, load_generator, run_generate
from ganzoo.training.checkpoint import load_snapshot, save_snapshot
from ganzoo.training.trainer import Trainer

from .conftest import compose

BASE = ["trainer=smoke", "trainer.device=cpu", "trainer.grid=4", "trainer.batch_size=8"]


def _prior(stage1: Path, run: Path, *extra: str) -> Trainer:
    return Trainer(compose(["model=vqgan_prior_tiny", f"model.stage1={stage1}", *BASE, *extra]), run)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.modules["prior"].state_dict().items()}


def test_training_lowers_the_loss_and_keeps_the_tokenizer_frozen(stage1, tmp_path):
    trainer = _prior(stage1, tmp_path / "p", "trainer.steps=30", "trainer.log_every=5",
                     "model.optim.lr=3e-3", "data.max_images=16")
    tok_before = tokenizer_hash(trainer.modules["tokenizer"].ae)
    trainer.fit()
    rows = [r for r in _read(tmp_path / "p") if "loss/prior" in r]
    assert rows[-1]["loss/prior"] < 0.7 * rows[0]["loss/prior"]  # 16 images: the codes are learnt quickly
    assert tokenizer_hash(trainer.modules["tokenizer"].ae) == tok_before
    assert not any(p.requires_grad for p in trainer.modules["tokenizer"].parameters())
    assert not trainer.modules["tokenizer"].ae.training  # eval mode: no dead-code restarts, no EMA updates


def _read(run: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_config_pins_the_tokenizer(stage1, tmp_path):
    trainer = _prior(stage1, tmp_path / "p", "trainer.steps=1")
    trainer.fit()
    ae, _, snap_path = load_stage1(stage1)
    cfg = trainer.cfg.model
    assert cfg.stage1 == str(snap_path) and cfg.stage1_hash == tokenizer_hash(ae)
    assert cfg.stage1_model.name == "vqgan_tiny"
    snap = load_snapshot(tmp_path / "p")
    assert set(snap.weights) == {"prior", "tokenizer"}  # self-contained: the tokenizer travels with the prior


def test_resume_is_bit_exact(stage1, tmp_path):
    straight = _prior(stage1, tmp_path / "a", "trainer.steps=6")
    straight.fit()
    half = _prior(stage1, tmp_path / "b", "trainer.steps=3")
    half.fit()
    resumed = _prior(stage1, tmp_path / "b", "trainer.steps=6", f"trainer.resume={tmp_path / 'b'}")
    resumed.fit()
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a, opt_b = straight.optimizers["prior"].state_dict(), resumed.optimizers["prior"].state_dict()
    assert all(torch.equal(opt_a["state"][i]["exp_avg"], opt_b["state"][i]["exp_avg"]) for i in opt_a["state"])


def test_mismatched_tokenizer_fails_clearly(stage1, tmp_path):
    trainer = _prior(stage1, tmp_path / "p", "trainer.steps=1")
    trainer.fit()
    pinned = trainer.cfg.model.stage1_hash
    # Another tokenizer (the stage-1 run trained further) under a config that pins the first one.
    other = tmp_path / "other"
    shutil.copytree(stage1, other)
    snap = load_snapshot(other)
    module, cfg, _ = load_stage1(other)
    with torch.no_grad():
        next(module.parameters()).add_(0.01)
    save_snapshot(other / "checkpoints", modules={"G": module, "D": build_bundle(cfg).modules["D"]}, ema={},
                  state={"images_seen": 10**6, "step": 1}, metadata=snap.metadata)
    with pytest.raises(CheckpointError, match=f"trained on hash {pinned}"):
        _prior(other, tmp_path / "q", f"model.stage1_hash={pinned}", "trainer.steps=1")
    # A GAN run is not a tokenizer.
    gan = tmp_path / "gan"
    Trainer(compose(["model=dcgan_tiny", *BASE, "trainer.steps=1"]), gan).fit()
    with pytest.raises(ConfigError, match="not a vector-quantized tokenizer"):
        _prior(gan, tmp_path / "r", "trainer.steps=1")
    with pytest.raises(ConfigError, match="cannot train: model.stage1 is not set"):
        Trainer(compose(["model=vqgan_prior_tiny", *BASE, "trainer.steps=1"]), tmp_path / "s")


def test_tampered_tokenizer_in_a_prior_checkpoint_is_refused(stage1, tmp_path):
    trainer = _prior(stage1, tmp_path / "p", "trainer.steps=1")
    trainer.fit()
    bundle, modules, _ = load_generator(tmp_path / "p", device="cpu")
    tok: FrozenTokenizer = modules["tokenizer"]
    tok.verify()  # the saved weights are the pinned ones
    with torch.no_grad():
        next(tok.ae.parameters()).add_(1.0)
    tok.load_state_dict(tok.state_dict())  # weights changed: checked again before the next use
    with pytest.raises(CheckpointError, match="not those this prior was built for"):
        bundle.sample(modules, 2)


def _generate(run: Path, *argv: str) -> list[Path]:
    parser = argparse.ArgumentParser()
    add_generate_args(parser)
    return run_generate(parser.parse_args([str(run), "--device", "cpu", *argv]))


def test_generate_works_without_the_stage1_files(stage1, tmp_path):
    copy = tmp_path / "stage1_copy"
    shutil.copytree(stage1, copy)
    run = tmp_path / "p"
    _prior(copy, run, "trainer.steps=2", "model.c_dim=auto").fit()
    shutil.rmtree(copy)  # the tokenizer is rebuilt from the pinned config and the prior's checkpoint
    paths = _generate(run, "--n", "4", "--seed", "1", "--top-k", "5")
    assert paths[0].exists() and "_k5" in paths[0].name
    a = _generate(run, "--n", "4", "--seed", "1", "--top-k", "5", "--out", str(tmp_path / "again.png"))[0]
    assert a.read_bytes() == paths[0].read_bytes()  # a seed gives the same images
    rows = _generate(run, "--mode", "classes", "--n", "2", "--class", "0,3")[0]
    assert rows.exists()
    big = _generate(run, "--n", "2", "--grid", "6x6")[0]  # 4x4 codes -> 6x6 with a sliding window
    from PIL import Image

    with Image.open(big) as im:
        assert im.size[0] > 2 * 16
    with pytest.raises(ConfigError, match="only apply to code priors"):
        _generate(stage1, "--n", "2", "--top-k", "5")


def test_prefix_tokens_shared_and_separate():
    c = torch.tensor([0, 3])
    assert prefix_tokens(c, 2, cond_tokens="shared", n_embed=16).flatten().tolist() == [0, 3]
    assert prefix_tokens(c, 2, cond_tokens="separate", n_embed=16).flatten().tolist() == [16, 19]
    assert prefix_tokens(None, 2, cond_tokens="separate", n_embed=16).flatten().tolist() == [16, 16]
    assert prefix_tokens(None, 1, cond_tokens="shared", n_embed=16).item() == 0  # taming's SOS token


def test_separate_class_tokens_are_never_sampled():
    torch.manual_seed(0)
    bundle = build_model("vqgan_prior_tiny", c_dim=3)
    gpt = bundle.modules["prior"]
    assert gpt.vocab_size == 32 + 3
    forward = gpt.forward

    def boosted(idx, **kw):  # class tokens by far the likeliest: sampling must still draw codes only
        logits = forward(idx, **kw)
        return torch.cat([logits[..., :32], logits[..., 32:] + 100.0], dim=-1)

    gpt.forward = boosted
    codes = []
    tok = bundle.modules["tokenizer"]
    orig = tok.decode
    tok.decode = lambda idx: (codes.append(idx), orig(idx))[1]
    bundle.sample(bundle.modules, c=torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0))
    assert codes and int(codes[0].max()) < 32


def test_official_parameter_counts():
    """taming's cin transformer: 2VC + BC + 2C + L(12C^2 + 13C) with V 16384, B 256, C 1536, L 48 (minGPT)."""
    from ganzoo.bundle import count_params
    from ganzoo.registry import build_model_shapes

    cin = build_model_shapes("vqgan_prior_imagenet_cin")
    V, B, C, L = 16384, 256, 1536, 48
    assert count_params(cin.modules["prior"]) == 2 * V * C + B * C + 2 * C + L * (12 * C * C + 13 * C) == 1_410_640_896
    # Its tokenizer: the f16 VQ-GAN (72,141,699 with 1024 codes) with 16384 codes of 256 dims.
    assert count_params(cin.modules["tokenizer"]) == 72_141_699 + (16384 - 1024) * 256 == 76_073_859
    assert cin.info["code_shape"] == (16, 16) and cin.modules["prior"].vocab_size == 16384


@pytest.mark.parametrize("name", ["vqgan_prior", "vqgan_prior_tiny", "vit_vqgan_prior", "vit_vqgan_prior_tiny",
                                  "vqgan_prior_imagenet_cin"])
def test_yaml_matches_registry_preset(name):
    from ganzoo.registry import build_model_shapes
    from ganzoo.runtime import model_kwargs

    cfg = compose([f"model={name}"]).model
    _, kwargs = model_kwargs(cfg)
    if kwargs["c_dim"] == "auto":
        kwargs["c_dim"] = 10  # the embedded Fashion-MNIST's classes
    from_yaml = build_model_shapes(name, **kwargs)
    from_registry = build_model_shapes(name)
    assert repr(from_yaml.modules["prior"]) == repr(from_registry.modules["prior"])
    assert from_yaml.info == from_registry.info
    spec_a, spec_b = from_yaml.objective.optimizers["prior"], from_registry.objective.optimizers["prior"]
    assert (spec_a.betas, spec_a.weight_decay, spec_a.kind) == (spec_b.betas, spec_b.weight_decay, spec_b.kind)
