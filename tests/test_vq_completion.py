"""Image completion with a code prior: forced tokens in the samplers, kept regions, input checks, and
`ganzoo generate --mode complete / condition` end to end on tiny runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.cli import main
from ganzoo.errors import ConfigError
from ganzoo.layers.gpt import GPT
from ganzoo.sampling.autoregressive import sample_sliding_window, sample_tokens
from ganzoo.sampling.completion import complete_images, keep_region, load_image, mask_from_image

from .conftest import compose

V, BLOCK = 13, 16
BASE = ["trainer=smoke", "trainer.device=cpu", "trainer.grid=4", "trainer.batch_size=8", "data.max_images=64"]
_RUNS: dict[str, Path] = {}


def runs(tmp_path_factory) -> dict[str, Path]:
    """A vqgan_tiny tokenizer (16x16 grey, 4x4 codes), a class-conditional prior and a super-resolution prior (4x4
    thumbnail) on it, and a GAN run, trained once per test session (test_vq_cond_eval.py uses them too)."""
    from ganzoo.training.trainer import Trainer

    if not _RUNS:
        root = tmp_path_factory.mktemp("vq_completion")
        Trainer(compose(["model=vqgan_tiny", *BASE, "trainer.steps=1"]), root / "vq").fit()
        Trainer(compose(["model=vqgan_prior_tiny", f"model.stage1={root / 'vq'}", "model.c_dim=auto", *BASE,
                         "trainer.steps=1"]), root / "prior").fit()
        Trainer(compose(["model=vqgan_prior_sr_tiny", f"model.stage1={root / 'vq'}", *BASE, "trainer.steps=1"]),
                root / "sr").fit()
        Trainer(compose(["model=dcgan_tiny", *BASE, "trainer.steps=1"]), root / "gan").fit()
        _RUNS.update(vq=root / "vq", prior=root / "prior", sr=root / "sr", gan=root / "gan", root=root)
    return _RUNS


@pytest.fixture
def tiny(tmp_path_factory) -> dict[str, Path]:
    return runs(tmp_path_factory)


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(vocab_size=V, block_size=BLOCK, n_layer=2, n_head=2, n_embd=16)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Counter(torch.nn.Module):
    def __init__(self, model: GPT):
        super().__init__()
        self.model, self.block_size, self.vocab_size, self.calls = model, model.block_size, model.vocab_size, 0
        self.seen: list[torch.Tensor] = []

    def new_cache(self):
        return self.model.new_cache()

    def forward(self, idx, **kw):
        self.calls += 1
        self.seen.append(idx.clone())
        return self.model(idx, **kw)


# ------------------------------------------------------------------------------------------- samplers
def test_forced_tokens_are_kept_and_cached_equals_uncached():
    model, prefix = tiny_gpt(1), torch.tensor([[11], [12], [11]])
    forced = torch.randint(0, 11, (3, 12), generator=gen(5))
    mask = torch.rand(3, 12, generator=gen(6)) < 0.5
    mask[:, :3] = True  # a kept top row in every sequence
    for seed, opts in ((0, {}), (1, {"top_k": 3}), (2, {"top_p": 0.7, "temperature": 1.4})):
        a = sample_tokens(model, prefix, 12, generator=gen(seed), allowed=11, forced=forced, forced_mask=mask, **opts)
        b = sample_tokens(model, prefix, 12, generator=gen(seed), allowed=11, forced=forced, forced_mask=mask,
                          use_cache=False, **opts)
        again = sample_tokens(model, prefix, 12, generator=gen(seed), allowed=11, forced=forced, forced_mask=mask,
                              **opts)
        assert torch.equal(a, b) and torch.equal(a, again)  # cached == uncached; a seed repeats
        assert torch.equal(a[mask], forced[mask])  # kept codes bit-exact
        assert a.max() < 11
    other = sample_tokens(model, prefix, 12, generator=gen(99), allowed=11, forced=forced, forced_mask=mask)
    assert not torch.equal(other[~mask], a[~mask])  # the seed drives the sampled positions


def test_kept_tokens_win_even_against_the_likeliest_code():
    model = tiny_gpt(2)
    forward = model.forward

    def peaked(idx, **kw):  # code 7 is always by far the likeliest
        logits = forward(idx, **kw)
        logits[..., 7] += 100.0
        return logits

    model.forward = peaked
    forced = torch.full((2, 8), 3)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, ::2] = True
    out = sample_tokens(model, torch.tensor([[11], [11]]), 8, generator=gen(0), allowed=11, forced=forced,
                        forced_mask=mask)
    assert (out[:, ::2] == 3).all() and (out[:, 1::2] == 7).all()


def test_generator_advances_at_forced_positions():
    """Forcing exactly the codes a free draw produced reproduces that draw: every position uses its own uniform,
    forced or not, so the randomness of a sampled cell does not depend on the mask."""
    model, prefix = tiny_gpt(3), torch.tensor([[11], [12]])
    free = sample_tokens(model, prefix, 12, generator=gen(4), allowed=11)
    for mask in (torch.arange(12).expand(2, 12) < 6, torch.arange(12).expand(2, 12) % 3 == 0):
        again = sample_tokens(model, prefix, 12, generator=gen(4), allowed=11, forced=free, forced_mask=mask)
        assert torch.equal(again, free)
        window = sample_sliding_window(model, prefix, (3, 4), (3, 4), generator=gen(4), allowed=11, forced=free,
                                       forced_mask=mask)
        assert torch.equal(window.flatten(1), free)


def test_fully_forced_steps_run_no_forward_pass():
    counter = Counter(tiny_gpt(4))
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, :8] = True
    forced = torch.randint(0, 11, (2, 12), generator=gen(0))
    sample_tokens(counter, torch.tensor([[11], [11]]), 12, generator=gen(0), allowed=11, forced=forced,
                  forced_mask=mask, use_cache=False)
    assert counter.calls == 4
    counter.calls = 0
    codes = sample_sliding_window(counter, torch.tensor([[11], [11]]), (4, 5), (3, 4), generator=gen(0), allowed=11,
                                  forced=torch.zeros(2, 20, dtype=torch.long),
                                  forced_mask=torch.arange(20).expand(2, 20) < 15)
    assert counter.calls == 5 and (codes.flatten(1)[:, :15] == 0).all()


def test_sliding_window_keeps_forced_codes_on_a_larger_grid():
    model, prefix = tiny_gpt(5), torch.tensor([[11], [12]])
    forced = torch.randint(0, 11, (2, 5, 6), generator=gen(1))
    mask = torch.zeros(2, 5, 6, dtype=torch.bool)
    mask[:, :, :2] = True  # keep the left columns
    a = sample_sliding_window(model, prefix, (5, 6), (3, 4), generator=gen(2), allowed=11, forced=forced,
                              forced_mask=mask)
    b = sample_sliding_window(model, prefix, (5, 6), (3, 4), generator=gen(2), allowed=11, forced=forced,
                              forced_mask=mask)
    assert torch.equal(a, b) and torch.equal(a[mask], forced[mask])


def test_window_prefix_follows_the_window():
    """A spatial condition's tokens follow the sliding window: each cell is predicted after its window's prefix."""
    from ganzoo.sampling.autoregressive import window_origin

    counter = Counter(tiny_gpt(6))
    codes = sample_sliding_window(counter, torch.tensor([[0], [0]]), (5, 6), (3, 4), generator=gen(0), allowed=11,
                                  window_prefix=lambda top, left: torch.tensor([[top], [left]]))
    assert codes.shape == (2, 5, 6) and len(counter.seen) == 30
    cells = [(i, j) for i in range(5) for j in range(6)]
    assert all(counter.seen[k][:, 0].tolist() == list(window_origin(i, j, (5, 6), (3, 4)))
               for k, (i, j) in enumerate(cells))
    with pytest.raises(ConfigError, match="every window needs"):
        sample_sliding_window(counter, torch.tensor([[0]]), (5, 6), (3, 4), window_prefix=lambda t, q: torch.zeros(
            1, 2, dtype=torch.long))


def test_bad_forced_arguments():
    model, prefix = tiny_gpt(), torch.tensor([[11]])
    with pytest.raises(ConfigError, match="go together"):
        sample_tokens(model, prefix, 4, forced=torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="shape"):
        sample_tokens(model, prefix, 4, forced=torch.zeros(1, 3, dtype=torch.long),
                      forced_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ConfigError, match=r"\[0, 11\)"):  # a class token is not a code
        sample_tokens(model, prefix, 4, allowed=11, forced=torch.full((1, 4), 12),
                      forced_mask=torch.ones(1, 4, dtype=torch.bool))


# ------------------------------------------------------------------------------------------- regions and inputs
def test_keep_regions_by_hand():
    assert keep_region("top", (4, 6)).tolist() == [[True] * 6] * 2 + [[False] * 6] * 2
    assert keep_region("bottom:0.25", (4, 6)).tolist() == [[False] * 6] * 3 + [[True] * 6]
    assert keep_region("left", (4, 6)).tolist() == [[True] * 3 + [False] * 3] * 4
    assert keep_region("right:0.34", (4, 6)).tolist() == [[False] * 4 + [True] * 2] * 4  # round(2.04) = 2 columns
    for bad in ("top:1", "top:0", "top:x", "middle"):
        with pytest.raises(ConfigError):
            keep_region(bad, (4, 4))
    assert keep_region("top", (5, 2)).sum() == 4 and keep_region("top:0.5", (5, 2)).sum() == 6  # 2 rows; 2.5 -> 3
    with pytest.raises(ConfigError, match="keeps no code"):
        keep_region("top:0.1", (4, 4))  # 0.4 rounds to 0 rows
    with pytest.raises(ConfigError, match="keeps every code"):
        keep_region("top:0.9", (4, 4))


def test_mask_image_majority_rule(tmp_path):
    m = np.zeros((8, 8), dtype=np.uint8)  # a 2x2 code grid: cells of 4x4 pixels
    m[:4, :4] = 255  # cell (0, 0): all white -> kept
    m[:4, 4:] = 0
    m[:4, 4:7] = 255  # cell (0, 1): 12 of 16 white -> kept
    m[4:, :2] = 255  # cell (1, 0): 8 of 16 white, not more than half -> dropped
    Image.fromarray(m).save(tmp_path / "mask.png")
    assert mask_from_image(tmp_path / "mask.png", (2, 2)).tolist() == [[True, True], [False, False]]
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "none.png")
    with pytest.raises(ConfigError, match="keeps no code"):
        keep_region(str(tmp_path / "none.png"), (2, 2))


def test_load_image_checks_size_and_channels(tmp_path):
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "g16.png")
    Image.fromarray(np.zeros((20, 12), np.uint8)).save(tmp_path / "g20.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(np.full((16, 16, 4), 255, np.uint8)).save(tmp_path / "opaque.png")
    x = load_image(tmp_path / "g16.png", resolution=16, channels=1)
    assert x.shape == (1, 1, 16, 16) and float(x.min()) == 1.0
    with pytest.raises(ConfigError, match=r"12x20.*16x16 grey.*--resize"):
        load_image(tmp_path / "g20.png", resolution=16, channels=1)
    assert load_image(tmp_path / "g20.png", resolution=16, channels=1, resize=True).shape == (1, 1, 16, 16)
    with pytest.raises(ConfigError, match="RGB .*16x16 grey"):
        load_image(tmp_path / "rgb.png", resolution=16, channels=1)
    assert load_image(tmp_path / "opaque.png", resolution=16, channels=3).shape == (1, 3, 16, 16)
    assert load_image(tmp_path / "g16.png", resolution=32, channels=3, also=(16, 1)).shape == (1, 1, 16, 16)


# ------------------------------------------------------------------------------------------- tiny runs
def test_completion_of_a_class_prior_keeps_the_region_bit_exact(tiny):
    from ganzoo.sampling.generate import load_generator

    bundle, modules, _ = load_generator(tiny["prior"], device="cpu")
    assert bundle.c_dim == 10
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    keep = keep_region("top", modules["tokenizer"].code_shape)
    c = torch.tensor([1, 4, 7])
    out, codes, source = complete_images(modules, images, keep, n=2, c=c, generator=gen(0), top_k=20)
    assert out.shape == (6, 1, 16, 16) and codes.shape == (6, 4, 4)
    kept = source.repeat_interleave(2, 0)
    assert torch.equal(codes[:, keep], kept[:, keep])  # the kept codes, bit for bit
    again, codes2, _ = complete_images(modules, images, keep, n=2, c=c, generator=gen(0), top_k=20)
    assert torch.equal(codes, codes2) and torch.equal(out, again)
    nocache, codes3, _ = complete_images(modules, images, keep, n=2, c=c, generator=gen(0), top_k=20,
                                         use_cache=False)
    assert torch.equal(codes, codes3)


def _png_count(root: Path) -> int:
    return len(list(root.rglob("*.png")))


def test_generate_complete_writes_rows(tiny, tmp_path):
    out = tmp_path / "c.png"
    rc = main(["generate", str(tiny["prior"]), "--mode", "complete", "--from-data", "train", "--n-images", "2",
               "--n", "3", "--keep", "top", "--seed", "1", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    with Image.open(out) as im:
        assert im.size == (16 * (3 + 2), 16 * 2)  # input | 3 completions | original, one row per image
    img = tmp_path / "in.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(img)
    rc = main(["generate", str(tiny["prior"]), "--mode", "complete", "--image", str(img), "--class", "2",
               "--keep", "left", "--n", "2", "--grid", "6x6", "--resize", "--device", "cpu", "--out",
               str(tmp_path / "big.png")])
    assert rc == 0
    with Image.open(tmp_path / "big.png") as im:
        assert im.size == (24 * 4, 24)  # a 6x6 code grid: 24x24 pixels, the sliding window


def test_bad_inputs_exit_2_and_write_nothing(tiny, tmp_path, capsys):
    run = str(tiny["prior"])
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "ok.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "black.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "white.png")
    before = {p: _png_count(p) for p in (tiny["prior"], tiny["gan"])}
    out = tmp_path / "out"
    cases = [
        (["--mode", "complete", "--image", str(tmp_path / "big.png"), "--class", "1"], "20x20.*16x16 grey"),
        (["--mode", "complete", "--image", str(tmp_path / "rgb.png"), "--class", "1"], "RGB"),
        (["--mode", "complete", "--image", str(tmp_path / "ok.png"), "--class", "1", "--keep",
          str(tmp_path / "black.png")], "keeps no code"),
        (["--mode", "complete", "--image", str(tmp_path / "ok.png"), "--class", "1", "--keep",
          str(tmp_path / "white.png")], "keeps every code"),
        (["--mode", "complete", "--image", str(tmp_path / "ok.png")], "pass --class K"),
        (["--mode", "complete"], "--image FILE"),
        (["--mode", "condition", "--image", str(tmp_path / "ok.png")], "code-conditioned prior"),
    ]
    for argv, message in cases:
        assert main(["generate", run, *argv, "--device", "cpu", "--out", str(out / "x.png")]) == 2, argv
        err = capsys.readouterr().err
        assert __import__("re").search(message, err), (argv, err)
    assert main(["generate", str(tiny["gan"]), "--mode", "complete", "--image", str(tmp_path / "ok.png"),
                 "--device", "cpu"]) == 2
    assert "needs a code prior" in capsys.readouterr().err
    assert not out.exists()
    assert {p: _png_count(p) for p in before} == before


def test_generate_condition_rows(tiny, tmp_path):
    small, full = tmp_path / "small.png", tmp_path / "full.png"
    Image.fromarray((np.arange(16).reshape(4, 4) * 16).astype(np.uint8)).save(small)  # a 4x4 condition
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(full)  # a full image: its condition is derived
    out = tmp_path / "sr.png"
    assert main(["generate", str(tiny["sr"]), "--mode", "condition", "--image", str(small), "--image", str(full),
                 "--n", "2", "--seed", "3", "--device", "cpu", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.size == (16 * (1 + 2 + 1), 16 * 2)  # preview | 2 samples | original (blank for the small one)
        grid = np.asarray(im)
    assert (grid[:16, 48:] == 255).all() and (grid[16:, 48:] == 0).all()  # no original / the black original
    # The preview shows the condition as the prior sees it: 4x4 pixels in 8 grey levels (240 -> level 7 = white).
    assert (grid[:4, :4] == 0).all() and (grid[12:16, 12:16] == 255).all()
    from ganzoo.sampling.generate import load_generator

    bundle, modules, _ = load_generator(tiny["sr"], device="cpu")
    cond = modules["cond_stage"].derive(torch.rand(2, 1, 16, 16) * 2 - 1)
    # Condition tokens are never sampled, even when the prior puts almost all its mass on them.
    drawn = []
    tok, gpt = modules["tokenizer"], modules["prior"]
    assert gpt.vocab_size > tok.n_embed
    forward = gpt.forward

    def boosted(idx, **kw):
        logits = forward(idx, **kw)
        return torch.cat([logits[..., : tok.n_embed], logits[..., tok.n_embed :] + 100.0], dim=-1)

    gpt.forward = boosted
    decode = tok.decode
    tok.decode = lambda idx: (drawn.append(idx), decode(idx))[1]
    a = bundle.sample(modules, 2, cond_img=cond, generator=gen(0))
    b = bundle.sample(modules, 2, cond_img=cond, generator=gen(0))
    assert torch.equal(a, b) and int(drawn[0].max()) < tok.n_embed
    big = tmp_path / "big.png"  # --grid 6x6: a 24x24 image, its condition following the sliding window
    Image.fromarray(np.tile(np.arange(24, dtype=np.uint8) * 10, (24, 1))).save(big)
    assert main(["generate", str(tiny["sr"]), "--mode", "condition", "--image", str(big), "--grid", "6x6", "--n", "2",
                 "--device", "cpu", "--out", str(tmp_path / "g.png")]) == 0
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (24 * 4, 24)
        preview = np.asarray(im)[:, :24]
    assert (np.diff(preview.astype(int), axis=1) >= 0).all() and preview[0, 0] < preview[0, -1]  # the whole ramp
    assert main(["generate", str(tiny["sr"]), "--mode", "condition", "--image", str(small), "--grid", "6x6",
                 "--out", str(tmp_path / "no.png")]) == 2  # a 4x4 condition is not one of a 6x6 grid (6x6 pixels)
    # Completion with a code-conditioned prior on the larger grid: the image's own condition follows the window.
    assert main(["generate", str(tiny["sr"]), "--mode", "complete", "--image", str(big), "--grid", "6x6", "--n", "2",
                 "--keep", "left", "--device", "cpu", "--out", str(tmp_path / "c.png")]) == 0
    with Image.open(tmp_path / "c.png") as im:
        assert im.size == (24 * 4, 24)
    bad = tmp_path / "bad.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad)
    assert main(["generate", str(tiny["sr"]), "--mode", "condition", "--image", str(bad), "--out",
                 str(tmp_path / "no.png")]) == 2  # neither 16x16 (the image) nor 4x4 (the condition)
    assert not (tmp_path / "no.png").exists()
