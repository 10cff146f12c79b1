"""Code-conditioned VQ priors (issue 21): condition stages, the prefix layout, training through the trainer with
both tokenizers frozen and pinned, exact resume, and the paper-sized presets' parameter counts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ganzoo.bundle import Batch, StepContext, count_params
from ganzoo.errors import CheckpointError, ConfigError
from ganzoo.models.vq_cond import CoordStage, DownsampleStage, EdgeStage, coordinate_map
from ganzoo.models.vq_frozen import load_stage1, tokenizer_hash
from ganzoo.models.vq_prior import build_prefix, sample_prior
from ganzoo.registry import build_model, build_model_shapes
from ganzoo.runtime import build_bundle
from ganzoo.sampling.generate import load_generator
from ganzoo.training.checkpoint import load_snapshot, save_snapshot
from ganzoo.training.trainer import Trainer

from .conftest import compose

BASE = ["trainer=smoke", "trainer.device=cpu", "trainer.grid=4", "trainer.batch_size=8"]


@pytest.fixture(scope="module")
def cond_run(stage1, tmp_path_factory) -> Path:
    """A second tokenizer for the condition: the first one's snapshot with one weight changed (other codes)."""
    run = tmp_path_factory.mktemp("cond") / "vq"
    _changed_copy(stage1, run, 0.05)
    return run


def _changed_copy(src: Path, dst: Path, delta: float) -> None:
    """``src``'s run folder at ``dst`` with a newer snapshot whose tokenizer has one weight tensor moved by delta."""
    shutil.copytree(src, dst)
    module, cfg, _ = load_stage1(dst)
    with torch.no_grad():
        next(module.parameters()).add_(delta)
    save_snapshot(dst / "checkpoints", modules={"G": module, "D": build_bundle(cfg).modules["D"]}, ema={},
                  state={"images_seen": 10**6, "step": 1}, metadata=load_snapshot(dst).metadata)


def _sr(stage1: Path, run: Path, *extra: str) -> Trainer:
    return Trainer(compose(["model=vqgan_prior_sr_tiny", f"model.stage1={stage1}", *BASE, *extra]), run)


def _rows(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss/prior" in r]


# -- condition stages: the numbers by hand ---------------------------------------------------------------------------
def test_downsample_stage_area_averages_and_quantizes():
    stage = DownsampleStage(size=2, levels=5, image_resolution=4, image_channels=1)
    img = torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, 1.0, -1.0, 0.0], [0.0, 0.0, 0.5, 0.5], [0.0, 1.0, 0.5, 0.5]])
    cond = stage.derive(img.view(1, 1, 4, 4))
    assert cond.flatten().tolist() == [1.0, -0.75, 0.25, 0.5]  # 2x2 area means
    # [0, 1] -> 4 steps: round(4 * (v + 1) / 2): 1 -> 4, -0.75 -> round(0.5) = 0 (half to even), 0.25 -> 2, 0.5 -> 3
    assert stage.encode(cond).tolist() == [[4, 0, 2, 3]]
    assert stage.dequantize(stage.encode(cond)).flatten().tolist() == [1.0, -1.0, 0.0, 0.5]
    assert torch.equal(stage.preview(cond)[0, 0, :2, :2], torch.ones(2, 2))  # nearest: one value per 2x2 block
    # RGB: the channels of a pixel side by side, raster order (y, x, c); one channel: the luma.
    rgb = DownsampleStage(size=1, levels=3, image_resolution=2, image_channels=3)
    assert rgb.token_shape == (1, 3) and rgb.n_tokens == 3
    assert rgb.encode(torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)).tolist() == [[0, 1, 2]]
    grey = DownsampleStage(size=1, levels=3, channels=1, image_resolution=2, image_channels=3)
    assert grey.derive(torch.ones(1, 3, 2, 2)).flatten().tolist() == pytest.approx([1.0])


def test_edge_stage_marks_a_step_only():
    stage = EdgeStage(size=8, threshold=0.5, image_resolution=8, image_channels=1)
    img = -torch.ones(1, 1, 8, 8)
    img[..., 4:] = 1.0  # a vertical step between columns 3 and 4
    tokens = stage.encode(stage.derive(img)).view(8, 8)
    assert tokens[:, 3:5].eq(1).all() and tokens[:, :3].eq(0).all() and tokens[:, 5:].eq(0).all()


def test_edge_patches_pack_blocks_losslessly():
    """patch=2: each 2x2 block is one token, bit i*2+j for pixel (i, j) of the block; decoding gives the map back."""
    stage = EdgeStage(size=4, threshold=0.5, patch=2, image_resolution=4, image_channels=1)
    edges = -torch.ones(1, 1, 4, 4)
    edges[0, 0, 0, 1] = edges[0, 0, 1, 0] = 1  # block (0, 0): pixels (0, 1), (1, 0) -> bits 1, 2 -> token 6
    edges[0, 0, 3, 3] = 1  # block (1, 1): pixel (1, 1) -> bit 3 -> token 8
    assert stage.encode(edges).tolist() == [[6, 0, 0, 8]] and stage.vocab == 16 and stage.n_tokens == 4
    assert torch.equal(stage.edge_map(stage.encode(edges)), edges)
    rand = torch.where(torch.rand(5, 1, 4, 4) > 0.5, 1.0, -1.0)
    assert torch.equal(stage.edge_map(stage.encode(rand)), rand)
    one = EdgeStage(size=4, threshold=0.5, image_resolution=4, image_channels=1)  # patch 1: a token per pixel
    assert torch.equal(one.encode(edges), (edges > 0).long().flatten(1))
    with pytest.raises(ConfigError, match="patch=3 must be 1, 2 or 3 and divide size=4"):
        EdgeStage(size=4, threshold=0.5, patch=3, image_resolution=4, image_channels=1)


def test_a_condition_of_the_wrong_shape_is_refused():
    bundle = build_model("vqgan_prior_sr_tiny")
    stage = bundle.modules["cond_stage"]
    for bad in (torch.zeros(2, 1, 8, 8), torch.zeros(2, 3, 4, 4)):
        with pytest.raises(ConfigError, match=r"\[N, 1, 4, 4\]"):
            bundle.sample(bundle.modules, cond_img=bad)
    with pytest.raises(ConfigError, match="recorded none yet"):  # untrained: no conditions seen yet
        bundle.sample(bundle.modules, 2)
    assert stage.encode(stage.derive(torch.zeros(2, 1, 16, 16))).shape == (2, 16)


# -- the prefix: layout and vocabulary --------------------------------------------------------------------------------
def test_prefix_layout_separate_and_shared():
    torch.manual_seed(0)
    img = torch.rand(2, 1, 16, 16) * 2 - 1
    sep = build_model("vqgan_prior_sr_tiny", c_dim=3)
    stage = sep.modules["cond_stage"]
    cond = stage.derive(img)
    tokens = stage.encode(cond)
    assert stage.token_offset == 32 + 3 and sep.modules["prior"].vocab_size == 32 + 3 + 8
    prefix = build_prefix(sep.modules, 2, c=torch.tensor([1, 2]), cond_img=cond, cond_tokens="separate", n_embed=32)
    assert torch.equal(prefix[:, :16], tokens + 35) and prefix[:, 16].tolist() == [33, 34]  # condition, then class
    assert sep.modules["prior"].block_size == 17 + 16 - 1
    shared = build_model("vqgan_prior_sr_tiny", cond_tokens="shared")
    assert shared.modules["prior"].vocab_size == 32  # max(32 codes, 8 levels): taming's one table
    assert torch.equal(build_prefix(shared.modules, 2, cond_img=cond, cond_tokens="shared", n_embed=32), tokens)
    with pytest.raises(ConfigError, match="use model.cond_tokens=separate"):
        build_model("vqgan_prior_sr_tiny", cond_tokens="shared", c_dim=3)
    with pytest.raises(ConfigError, match="need at least 40 / 31"):
        build_model("vqgan_prior_sr_tiny", prior=dict(n_layer=1, n_head=1, n_embd=8, block_size=20))
    with pytest.raises(ConfigError, match="kind='blur'"):
        build_model("vqgan_prior_sr_tiny", cond_stage=dict(kind="blur"))


def test_the_loss_reads_the_condition_and_scores_the_codes_only():
    torch.manual_seed(0)
    bundle = build_model("vqgan_prior_sr_tiny")
    img = torch.rand(4, 1, 16, 16) * 2 - 1
    mods = bundle.modules
    ctx = StepContext(mods, {}, 0, 0, torch.device("cpu"), 0)
    loss, _ = bundle.objective.phases[0].loss(Batch(img), ctx)
    codes = mods["tokenizer"].encode(img).flatten(1)
    cond = mods["cond_stage"].derive(img)
    prefix = mods["cond_stage"].encode(cond) + 32
    logits = mods["prior"](torch.cat([prefix, codes[:, :-1]], 1))[:, 15:]  # [N, 16 codes, vocab]
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits.flatten(0, 1), codes.flatten()))
    assert int(mods["cond_stage"].grid_filled) == 4 and torch.equal(mods["cond_stage"].grid_cond[:4], cond)


def test_coord_stage_is_taming_coordstage_arithmetic():
    """taming's CoordStage on faceshq.py's map (np.arange(h*w)/(h*w)): area mean over down_factor x down_factor,
    clamp to [0, 1], round(n_embed * u); here on the map stored as 2u - 1, by hand in float64."""
    stage = CoordStage(n_embed=32, down_factor=2, image_resolution=4, image_channels=3)
    img = torch.rand(2, 3, 4, 4) * 2 - 1
    cond = stage.derive(img)
    u = torch.arange(16, dtype=torch.float64).view(4, 4) / 16
    assert cond.shape == (2, 1, 4, 4) and torch.allclose(cond[1, 0].double(), 2 * u - 1, atol=1e-7)
    means = [u[:2, :2].mean(), u[:2, 2:].mean(), u[2:, :2].mean(), u[2:, 2:].mean()]  # 2.5/16, 4.5/16, ...
    want = [int(torch.round(32 * m)) for m in means]
    assert want == [5, 9, 21, 25] and stage.encode(cond).tolist() == [want, want]
    assert stage.vocab == 32 and stage.n_tokens == 4 and stage.token_shape == (2, 2)
    # One past the vocabulary (u within half a level of 1) is clamped; values outside [-1, 1] are refused.
    assert stage.encode(torch.ones(1, 1, 4, 4)).tolist() == [[31] * 4]
    with pytest.raises(ConfigError, match="coordinate condition"):
        stage.encode(torch.full((1, 1, 4, 4), 1.5))
    # Sampling needs no recorded condition: the frame's map.
    assert torch.equal(stage.recorded(3), coordinate_map(3, 4))
    with pytest.raises(ConfigError, match="down_factor=3"):
        CoordStage(n_embed=32, down_factor=3, image_resolution=4, image_channels=3)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_coordinate_prior_trains_and_samples_without_a_condition_image(stage1, tmp_path, precision):
    run = tmp_path / "coord"
    trainer = Trainer(compose(["model=vqgan_prior_tiny", f"model.stage1={stage1}", *BASE, "trainer.steps=30",
                               f"trainer.precision={precision}",
                               "trainer.log_every=5", "model.optim.lr=3e-3", "data.max_images=16",
                               "model.cond_tokens=shared", "model.c_dim=0",
                               "+model.cond_stage={kind: coord, n_embed: 32, down_factor: 4}"]), run)
    assert trainer.bundle.info["cond_stage"] == {"kind": "coord", "resolution": 16, "channels": 1, "n_tokens": 16}
    trainer.fit()
    rows = _rows(run)
    assert rows[-1]["loss/prior"] < 0.7 * rows[0]["loss/prior"]
    bundle, modules, _ = load_generator(run, device="cpu")
    g = torch.Generator
    plain = bundle.sample(modules, 2, generator=g().manual_seed(3))
    frame = coordinate_map(2, 16)
    assert torch.equal(plain, bundle.sample(modules, cond_img=frame, generator=g().manual_seed(3)))


@pytest.mark.parametrize("mode", ["separate", "shared"])
def test_condition_tokens_are_never_sampled(mode):
    torch.manual_seed(0)
    # shared with 64 levels: the vocabulary (64) is larger than the 32 codes; separate: 32 codes + 64 levels.
    bundle = build_model("vqgan_prior_sr_tiny", cond_tokens=mode, cond_stage=dict(kind="downsample", size=4, levels=64))
    gpt = bundle.modules["prior"]
    assert gpt.vocab_size == (96 if mode == "separate" else 64)
    forward = gpt.forward

    def boosted(idx, **kw):  # every non-code token by far the likeliest: sampling must still draw codes only
        logits = forward(idx, **kw)
        return torch.cat([logits[..., :32], logits[..., 32:] + 100.0], dim=-1)

    gpt.forward = boosted
    seen = []
    tok = bundle.modules["tokenizer"]
    decode = tok.decode
    tok.decode = lambda idx: (seen.append(idx), decode(idx))[1]
    cond = bundle.modules["cond_stage"].derive(torch.rand(3, 1, 16, 16) * 2 - 1)
    bundle.sample(bundle.modules, cond_img=cond, generator=torch.Generator().manual_seed(0))
    assert seen and int(seen[0].max()) < 32


def test_cached_and_uncached_sampling_agree():
    torch.manual_seed(0)
    bundle = build_model("vqgan_prior_sr_tiny", c_dim=2)
    cond = bundle.modules["cond_stage"].derive(torch.rand(3, 1, 16, 16) * 2 - 1)
    c = torch.tensor([0, 1, 1])
    a, b = (sample_prior(bundle.modules, c=c, cond_img=cond, generator=torch.Generator().manual_seed(5),
                         use_cache=cache, cond_tokens="separate", c_dim=2) for cache in (True, False))
    assert torch.equal(a, b)


# -- training through the trainer ----------------------------------------------------------------------------------
def test_sr_prior_trains_resumes_exactly_and_samples_its_recorded_conditions(stage1, tmp_path):
    straight = _sr(stage1, tmp_path / "a", "trainer.steps=6")
    before = tokenizer_hash(straight.modules["tokenizer"].ae)
    straight.fit()
    _sr(stage1, tmp_path / "b", "trainer.steps=3").fit()
    resumed = _sr(stage1, tmp_path / "b", "trainer.steps=6", f"trainer.resume={tmp_path / 'b'}")
    resumed.fit()
    for name in ("prior", "cond_stage"):  # the weights, and the recorded grid conditions
        a, b = straight.modules[name].state_dict(), resumed.modules[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    opt_a, opt_b = straight.optimizers["prior"].state_dict(), resumed.optimizers["prior"].state_dict()
    assert all(torch.equal(opt_a["state"][i]["exp_avg"], opt_b["state"][i]["exp_avg"]) for i in opt_a["state"])
    assert tokenizer_hash(straight.modules["tokenizer"].ae) == before
    stage = straight.modules["cond_stage"]
    assert int(stage.grid_filled) == 16  # the first 16 training conditions (two batches of 8), for the grids
    assert len(list((tmp_path / "a" / "samples").glob("fakes_*.png"))) >= 1
    bundle, modules, _ = load_generator(tmp_path / "a", device="cpu")
    assert bundle.info["cond_stage"] == {"kind": "downsample", "resolution": 4, "channels": 1, "n_tokens": 16}
    assert torch.equal(modules["cond_stage"].grid_cond, stage.grid_cond)
    g = torch.Generator
    plain = bundle.sample(modules, 3, generator=g().manual_seed(1))  # under the recorded conditions 0, 1, 2
    assert torch.equal(plain, bundle.sample(modules, cond_img=stage.grid_cond[:3], generator=g().manual_seed(1)))


def test_a_tokenizer_condition_is_frozen_pinned_and_refused_when_changed(stage1, cond_run, tmp_path):
    copy = tmp_path / "cond_copy"
    shutil.copytree(cond_run, copy)
    run = tmp_path / "p"
    trainer = Trainer(compose(["model=vqgan_prior_tiny", f"model.stage1={stage1}", f"model.cond_stage={copy}",
                               *BASE, "trainer.steps=30", "trainer.log_every=5", "model.optim.lr=3e-3",
                               "data.max_images=16"]), run)
    stage = trainer.modules["cond_stage"]
    hashes = (tokenizer_hash(trainer.modules["tokenizer"].ae), tokenizer_hash(stage.tokenizer.ae))
    assert stage.kind == "tokenizer" and stage.n_tokens == 16 and stage.token_offset == 32
    trainer.fit()
    rows = _rows(run)
    assert rows[-1]["loss/prior"] < 0.7 * rows[0]["loss/prior"]  # 16 images: learnt quickly
    # Both tokenizers frozen: bit-identical after training, no gradients, eval mode.
    assert (tokenizer_hash(trainer.modules["tokenizer"].ae), tokenizer_hash(stage.tokenizer.ae)) == hashes
    assert not any(p.requires_grad for p in stage.parameters()) and not stage.tokenizer.ae.training
    cfg = trainer.cfg.model
    _, _, snap_path = load_stage1(copy)
    assert cfg.cond_stage == str(snap_path) and cfg.cond_stage_hash == hashes[1] != hashes[0]
    assert cfg.cond_stage_model.name == "vqgan_tiny" and cfg.stage1_hash == hashes[0]
    assert set(load_snapshot(run).weights) == {"prior", "tokenizer", "cond_stage"}

    # The condition tokenizer's files are gone: rebuilt from the pinned config and the prior's own checkpoint.
    shutil.rmtree(copy)
    bundle, modules, _ = load_generator(run, device="cpu")
    cond = modules["cond_stage"].derive(torch.zeros(2, 1, 16, 16))
    assert bundle.sample(modules, cond_img=cond).shape == (2, 1, 16, 16)
    assert modules["cond_stage"].preview(cond).shape == (2, 1, 16, 16)

    # Another condition tokenizer under a config that pins this one is refused, like a changed image tokenizer.
    other = tmp_path / "other"
    _changed_copy(cond_run, other, 0.01)
    with pytest.raises(CheckpointError, match=f"model.cond_stage=.* trained on hash {hashes[1]}"):
        Trainer(compose(["model=vqgan_prior_tiny", f"model.stage1={stage1}", f"model.cond_stage={other}",
                         f"model.cond_stage_hash={hashes[1]}", *BASE, "trainer.steps=1"]), tmp_path / "q")
    # A tampered condition tokenizer inside the prior's checkpoint is refused before use.
    with torch.no_grad():
        next(modules["cond_stage"].tokenizer.ae.parameters()).add_(1.0)
    modules["cond_stage"].load_state_dict(modules["cond_stage"].state_dict())
    with pytest.raises(CheckpointError, match="point model.cond_stage at that snapshot"):
        bundle.sample(modules, cond_img=cond)
    # A GAN run and a prior run are no condition tokenizers; nothing is written for a refused run.
    gan = tmp_path / "gan"
    Trainer(compose(["model=dcgan_tiny", *BASE, "trainer.steps=1"]), gan).fit()
    for source, match in ((gan, "dcgan_tiny run, not a vector-quantized tokenizer"), (run, "a code prior")):
        with pytest.raises(ConfigError, match=match):
            Trainer(compose(["model=vqgan_prior_tiny", f"model.stage1={stage1}", f"model.cond_stage={source}",
                             *BASE, "trainer.steps=1"]), tmp_path / "r")
        assert not (tmp_path / "r").exists()


def test_a_condition_tokenizer_preset_cannot_train_untrained(stage1, tmp_path):
    with pytest.raises(ConfigError, match="cannot train: model.cond_stage is not set"):
        Trainer(compose(["model=vqgan_prior_tiny", f"model.stage1={stage1}", "+model.cond_tokenizer=vqgan_tiny",
                         *BASE, "trainer.steps=1"]), tmp_path / "s")


# -- paper-sized presets ------------------------------------------------------------------------------------------
def _gpt_params(V: int, B: int, C: int, L: int) -> int:
    """minGPT: token embedding and head 2VC, positions BC, final LayerNorm 2C, per block 12C^2 + 13C."""
    return 2 * V * C + B * C + 2 * C + L * (12 * C * C + 13 * C)


def test_paper_presets_have_the_official_sizes():
    # configs/drin_transformer.yaml: GPT vocab 1024, block 512, 24 layers x 1024; first stage the f16 1024-code
    # VQ-GAN (72,141,699); cond stage the same network on one channel: conv_in and conv_out lose 2 x 128 x 9
    # weights each and conv_out 2 biases.
    drin = build_model_shapes("vqgan_prior_drin")
    assert count_params(drin.modules["prior"]) == _gpt_params(1024, 512, 1024, 24) == 304_932_864
    assert count_params(drin.modules["tokenizer"]) == 72_141_699
    assert count_params(drin.modules["cond_stage"]) == 72_141_699 - 2 * (2 * 128 * 9) - 2 == 72_137_089
    assert drin.info["cond_stage"] == {"kind": "tokenizer", "resolution": 256, "channels": 1, "n_tokens": 256}
    assert "model.stage1 is not set" in drin.info["missing"]
    # configs/faceshq_transformer.yaml: the same GPT on CoordStage(n_embed 1024, down_factor 16) at 256 px.
    faces = build_model_shapes("vqgan_prior_faceshq")
    assert count_params(faces.modules["prior"]) == 304_932_864
    assert faces.info["cond_stage"] == {"kind": "coord", "resolution": 256, "channels": 1, "n_tokens": 256}
    assert faces.modules["cond_stage"].vocab == 1024 and count_params(faces.modules["cond_stage"]) == 0
    # CPU preset: the vqgan_prior GPT with 272 tokens (256 codes + 16 levels) and 127 positions.
    sr = build_model_shapes("vqgan_prior_sr")
    assert (sr.modules["prior"].vocab_size, sr.modules["prior"].block_size) == (272, 127)
    assert count_params(sr.modules["prior"]) == _gpt_params(272, 127, 128, 4) == 879_232
    # Edges: 16x16 map in 2x2 blocks = 64 tokens of 16 values, the same vocabulary and length as the SR preset.
    edges = build_model_shapes("vqgan_prior_edges")
    assert edges.info["cond_stage"] == {"kind": "edges", "resolution": 16, "channels": 1, "n_tokens": 64}
    assert (edges.modules["prior"].vocab_size, edges.modules["prior"].block_size) == (272, 127)


def test_label_maps_are_read_one_hot_and_never_derived(tmp_path):
    """A label-map prior's condition: palette and grey PNGs give the same one-hot map, --resize takes the nearest
    label (never a blend), and the stage refuses to derive a map from an image or to record one."""
    from PIL import Image

    from ganzoo.models.vq_cond import LabelMapStage, label_colours, one_hot
    from ganzoo.models.vq_frozen import FrozenTokenizer
    from ganzoo.sampling.completion import load_label_map

    labels = np.repeat(np.repeat(np.array([[0, 1], [2, 4]], dtype=np.uint8), 8, 0), 8, 1)  # 16x16, four blocks
    Image.fromarray(labels, mode="L").save(tmp_path / "grey.png")
    pal = Image.fromarray(labels, mode="P")
    pal.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 13 % 256, i * 29 % 256)])
    pal.save(tmp_path / "palette.png")
    want = one_hot(torch.from_numpy(labels.astype(np.int64))[None], 5)
    assert want.shape == (1, 5, 16, 16) and torch.equal(want.sum(1), torch.ones(1, 16, 16))
    for name in ("grey.png", "palette.png"):
        assert torch.equal(load_label_map(tmp_path / name, n_labels=5, resolution=16), want)
    small = load_label_map(tmp_path / "grey.png", n_labels=5, resolution=4, resize=True)
    assert small.argmax(1)[0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 4, 4], [2, 2, 4, 4]]
    with pytest.raises(ConfigError, match="add --resize"):
        load_label_map(tmp_path / "grey.png", n_labels=5, resolution=8)
    stage = LabelMapStage(FrozenTokenizer(build_model("vqgan_tiny", img_channels=5).modules["G"]),
                          image_resolution=16, image_channels=3)
    assert stage.kind == "labels" and stage.n_labels == 5 and stage.grid_cond.shape == (0, 5, 16, 16)
    for call in (lambda: stage.derive(torch.zeros(1, 3, 16, 16)), lambda: stage.recorded(2)):
        with pytest.raises(ConfigError, match="cannot be derived"):
            call()
    assert stage.preview(want).shape == (1, 3, 16, 16)
    colours = label_colours(5)
    assert colours.shape == (5, 3) and len({tuple(c) for c in colours.tolist()}) == 5
    with pytest.raises(ConfigError, match="one-hot label maps"):
        LabelMapStage(FrozenTokenizer(build_model("vqgan_tiny", img_channels=1).modules["G"]), image_resolution=16,
                      image_channels=3)
