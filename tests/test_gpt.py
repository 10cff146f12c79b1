"""Stage-2 GPT prior: causal mask, KV cache, samplers (top-k / nucleus / allowed), sliding window,
parameter counts of taming's official transformer configs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.layers.gpt import GPT, KVCache
from ganzoo.sampling.autoregressive import (
    filter_logits,
    sample_next,
    sample_sliding_window,
    sample_tokens,
    window_origin,
)

V, BLOCK = 13, 16


def tiny_gpt(seed: int = 0, **kw) -> GPT:
    """A tiny GPT whose weights are perturbed so that positions matter and distributions are peaky."""
    torch.manual_seed(seed)
    args = dict(vocab_size=V, block_size=BLOCK, n_layer=2, n_head=2, n_embd=16)
    args.update(kw)
    model = GPT(**args)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        model.head.weight.mul_(4.0)
    return model.eval()


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------- network


def test_causal_mask_exact():
    model = tiny_gpt()
    idx = torch.randint(0, V, (2, 12), generator=gen(1))
    t = 7
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % V
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert a.shape == (2, 12, V)
    assert torch.equal(a[:, :t], b[:, :t])  # the past never sees the future, bit for bit
    assert (a[:, t:] - b[:, t:]).abs().amax(-1).min() > 1e-4  # every later position does see it


def test_kv_cache_matches_full_forward():
    model = tiny_gpt(1)
    idx = torch.randint(0, V, (3, 11), generator=gen(2))
    with torch.no_grad():
        full = model(idx)
        cache = model.new_cache()
        assert isinstance(cache, KVCache) and cache.length == 0
        parts = [model(idx[:, :3], cache=cache)]  # a prefix in one call (causal mask path)
        for t in range(3, 6):  # single tokens (no mask)
            parts.append(model(idx[:, t : t + 1], cache=cache))
        parts.append(model(idx[:, 6:9], cache=cache))  # several new tokens after a cache (explicit mask)
        parts.append(model(idx[:, 9:], cache=cache))
    assert cache.length == 11
    assert cache.keys[0].shape == (3, 2, 11, 8)
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    cache.reset()
    assert cache.length == 0


def test_positions_override_selects_position_embeddings():
    model = tiny_gpt(2)
    shifted = tiny_gpt(2)
    with torch.no_grad():
        shifted.pos_emb[:, :4] = model.pos_emb[:, 5:9]
        idx = torch.randint(0, V, (2, 4), generator=gen(3))
        a = model(idx, positions=torch.arange(5, 9))
        b = shifted(idx)
        c = model(idx)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)  # positions really matter in this model
    with pytest.raises(ValueError, match="positions"):
        model(idx, positions=torch.arange(14, 18))


def test_block_size_error():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.zeros(1, 10, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="10 cached \\+ 7 new"):
        model(torch.zeros(1, 7, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        sample_tokens(model, torch.zeros(1, 1, dtype=torch.long), 17)


def test_dropout_only_in_training():
    dropped = tiny_gpt(3, embd_pdrop=0.5, resid_pdrop=0.5, attn_pdrop=0.5)
    plain = tiny_gpt(3)
    plain.load_state_dict(dropped.state_dict())
    idx = torch.randint(0, V, (2, 9), generator=gen(4))
    with torch.no_grad():
        dropped.eval()
        assert torch.equal(dropped(idx), dropped(idx))
        assert torch.allclose(dropped(idx), plain(idx), atol=1e-6)
        dropped.train()
        assert not torch.allclose(dropped(idx), dropped(idx))


def test_init_follows_mingpt():
    torch.manual_seed(0)
    model = GPT(vocab_size=300, block_size=64, n_layer=3, n_head=4, n_embd=64)
    assert torch.count_nonzero(model.pos_emb) == 0
    w = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))])
    assert abs(w.std().item() - 0.02) < 5e-4 and abs(w.mean().item()) < 5e-4
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, nn.LayerNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.count_nonzero(m.bias) == 0
    assert model.head.bias is None


def test_optimizer_groups_split_like_mingpt():
    model = tiny_gpt(n_layer=3)
    decay, no_decay = model.configure_optimizer_groups(0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    assert {id(p) for p in decay["params"]} == linear_weights
    assert len(decay["params"]) == 6 * 3 + 1  # key, query, value, proj, 2 MLP per block + head
    all_ids = {id(p) for p in model.parameters()}
    no_ids = {id(p) for p in no_decay["params"]}
    assert no_ids == all_ids - linear_weights and len(no_ids) + len(linear_weights) == len(all_ids)
    assert id(model.pos_emb) in no_ids and id(model.tok_emb.weight) in no_ids
    torch.optim.AdamW(model.configure_optimizer_groups(0.01), lr=1e-3, betas=(0.9, 0.95))  # usable as is


def mingpt_param_count(vocab_size: int, block_size: int, n_layer: int, n_embd: int) -> int:
    """By hand from taming's mingpt.py: tok_emb V*C + pos_emb B*C + ln_f 2C + head V*C (no bias) +
    per block: ln1, ln2 (2C each) + key/query/value/proj (C*C + C each) + MLP (C*4C + 4C, 4C*C + C)
    = 12 C^2 + 13 C."""
    c = n_embd
    return 2 * vocab_size * c + block_size * c + 2 * c + n_layer * (12 * c * c + 13 * c)


# Transformer configs of the official models: (vocab_size, block_size, n_layer, n_head, n_embd).
TAMING_CONFIGS = {
    # The class-conditional ImageNet model (README "1.4B transformer", logs/2021-04-03T19-39-50_cin_transformer).
    "cin": (16384, 256, 48, 24, 1536),
    # configs/faceshq_transformer.yaml and configs/drin_transformer.yaml (same shape; so is S-FLCKR).
    "faceshq": (1024, 512, 24, 16, 1024),
    "coco_scene_images": (8192, 348, 40, 16, 1408),
    "open_images_scene_images": (8192, 348, 36, 16, 1536),
}


@pytest.mark.parametrize("name", sorted(TAMING_CONFIGS))
def test_parameter_count_of_taming_configs(name):
    v, b, n_layer, n_head, c = TAMING_CONFIGS[name]
    with torch.device("meta"):
        model = GPT(vocab_size=v, block_size=b, n_layer=n_layer, n_head=n_head, n_embd=c)
    assert sum(p.numel() for p in model.parameters()) == mingpt_param_count(v, b, n_layer, c)


def test_cin_parameter_count_golden():
    # 48 * (12 * 1536^2 + 13 * 1536) + 2 * 16384 * 1536 + 256 * 1536 + 2 * 1536
    # = 1_359_912_960 + 50_331_648 + 393_216 + 3_072
    with torch.device("meta"):
        model = GPT(vocab_size=16384, block_size=256, n_layer=48, n_head=24, n_embd=1536)
    assert sum(p.numel() for p in model.parameters()) == 1_410_640_896


# ----------------------------------------------------------------------------------------- filters


def test_top_k_keeps_k_entries():
    logits = torch.randn(6, 40, generator=gen(5))
    for k in (1, 3, 17, 40, 100):
        out = filter_logits(logits, top_k=k)
        assert out.shape == logits.shape
        assert (torch.isfinite(out).sum(-1) == min(k, 40)).all()
        kept = torch.isfinite(out)
        # every kept logit is >= every dropped one, and kept values are untouched
        lowest_kept = logits.masked_fill(~kept, float("inf")).amin(-1)
        assert (lowest_kept >= logits.masked_fill(kept, -float("inf")).amax(-1)).all()
        assert torch.equal(out[kept], logits[kept])


def test_top_p_keeps_minimal_nucleus():
    probs = torch.tensor([0.05, 0.2, 0.5, 0.1, 0.15])  # sorted: 0.5 (2), 0.2 (1), 0.15 (4), 0.1 (3), 0.05 (0)
    logits = probs.log()[None]
    expected = {0.01: {2}, 0.45: {2}, 0.6: {2, 1}, 0.75: {2, 1, 4}, 0.9: {2, 1, 4, 3}, 0.99: {0, 1, 2, 3, 4}}
    for p, keep in expected.items():
        kept = set(torch.isfinite(filter_logits(logits, top_p=p))[0].nonzero().flatten().tolist())
        assert kept == keep, p
    # top-k first, then the nucleus of what is left (renormalised: 0.5/0.7, 0.2/0.7)
    kept = torch.isfinite(filter_logits(logits, top_k=2, top_p=0.75))[0].nonzero().flatten().tolist()
    assert kept == [1, 2]


def test_sampling_respects_filters_and_distribution():
    logits = torch.randn(1, 30, generator=gen(6)) * 2
    many = logits.repeat(20000, 1)
    draws = sample_next(many, top_k=5, generator=gen(7))
    allowed = set(torch.topk(logits[0], 5).indices.tolist())
    assert set(draws.tolist()) <= allowed
    # the inverse CDF draws from the right distribution
    probs = filter_logits(logits, top_k=5).softmax(-1)[0]
    freq = torch.bincount(draws, minlength=30).double() / len(draws)
    assert (freq - probs.double()).abs().max() < 0.015
    draws = sample_next(many, top_p=0.6, temperature=0.7, generator=gen(8))
    nucleus = torch.isfinite(filter_logits(logits / 0.7, top_p=0.6))[0]
    assert nucleus[draws].all()


def test_allowed_tokens_only():
    logits = torch.randn(5000, 20, generator=gen(9))
    logits[:, 12:] += 50.0  # class/SOS tokens would win by far if allowed
    draws = sample_next(logits, allowed=12, generator=gen(10))
    assert draws.max() < 12 and draws.dtype == torch.int64 and draws.shape == (5000,)
    assert len(set(draws.tolist())) == 12


def test_bad_sampling_options():
    logits = torch.zeros(2, 5)
    for kw in ({"temperature": 0.0}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}, {"allowed": 6}):
        with pytest.raises(ConfigError):
            sample_next(logits, **kw)


# ----------------------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("opts", [{}, {"top_k": 4}, {"top_p": 0.8}, {"top_k": 6, "top_p": 0.9, "temperature": 1.3}])
def test_cache_and_no_cache_draw_the_same_tokens(opts):
    model = tiny_gpt(4)
    prefix = torch.tensor([[11], [12], [11]])
    for seed in range(4):
        a = sample_tokens(model, prefix, 12, generator=gen(seed), use_cache=True, allowed=11, **opts)
        b = sample_tokens(model, prefix, 12, generator=gen(seed), use_cache=False, allowed=11, **opts)
        assert a.shape == (3, 12) and a.dtype == torch.int64
        assert torch.equal(a, b)
        assert a.max() < 11
    c = sample_tokens(model, prefix, 12, generator=gen(99), allowed=11)
    assert not torch.equal(a, c)  # the seed matters


def test_sample_tokens_with_longer_prefix_and_restores_mode():
    model = tiny_gpt(5).train()
    prefix = torch.tensor([[12, 3, 4]])
    a = sample_tokens(model, prefix, 8, generator=gen(0))
    b = sample_tokens(model, prefix, 8, generator=gen(0), use_cache=False)
    assert torch.equal(a, b) and a.shape == (1, 8)
    assert model.training


def taming_local(i: int, size: int) -> int:
    """taming's scripts/sample_conditional.py rule for a 16x16 window: position of i inside its window."""
    if i <= 8:
        return i
    if size - i < 8:
        return 16 - (size - i)
    return 8


def test_window_origin_matches_taming_rule():
    grid = (20, 27)
    for i in range(grid[0]):
        for j in range(grid[1]):
            top, left = window_origin(i, j, grid, (16, 16))
            assert (i - top, j - left) == (taming_local(i, grid[0]), taming_local(j, grid[1]))


def test_window_origin_clamps_and_centres():
    grid, window = (9, 11), (4, 5)
    assert window_origin(0, 0, grid, window) == (0, 0)
    assert window_origin(8, 10, grid, window) == (5, 6)  # bottom-right corner
    for i in range(9):
        for j in range(11):
            top, left = window_origin(i, j, grid, window)
            assert 0 <= top <= 5 and 0 <= left <= 6  # inside the grid
            assert top <= i < top + 4 and left <= j < left + 5  # contains (i, j)
            if 2 <= i <= 6:
                assert i - top == 2  # centred where the grid allows
            if 2 <= j <= 8:
                assert j - left == 2


class Recorder(nn.Module):
    """Wraps a GPT and records every token sequence it is called with."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model
        self.block_size, self.vocab_size = model.block_size, model.vocab_size
        self.calls: list[torch.Tensor] = []

    def forward(self, idx: torch.Tensor, **kw) -> torch.Tensor:
        self.calls.append(idx.clone())
        return self.model(idx, **kw)


def test_sliding_window_feeds_only_the_window():
    grid, window = (5, 7), (3, 4)
    rec = Recorder(tiny_gpt(6))
    prefix = torch.tensor([[11], [12]])
    codes = sample_sliding_window(rec, prefix, grid, window, generator=gen(1), allowed=11, top_k=8)
    assert codes.shape == (2, 5, 7) and codes.dtype == torch.int64 and codes.max() < 11
    assert len(rec.calls) == 35
    k = 0
    for i in range(5):
        for j in range(7):
            top, left = window_origin(i, j, grid, window)
            patch = codes[:, top : top + 3, left : left + 4].reshape(2, 12)
            expected = torch.cat((prefix, patch[:, : (i - top) * 4 + (j - left)]), dim=1)
            assert torch.equal(rec.calls[k], expected), (i, j)
            k += 1


def test_sliding_window_equals_plain_sampling_when_grid_is_window():
    model = tiny_gpt(7)
    prefix = torch.tensor([[12], [11], [12]])
    for seed, opts in ((0, {}), (1, {"top_k": 5}), (2, {"top_p": 0.85, "temperature": 0.9})):
        codes = sample_sliding_window(model, prefix, (3, 5), (3, 5), generator=gen(seed), allowed=11, **opts)
        flat = sample_tokens(model, prefix, 15, generator=gen(seed), use_cache=False, allowed=11, **opts)
        assert torch.equal(codes, flat.reshape(3, 3, 5))


def test_sliding_window_rejects_bad_windows():
    model = tiny_gpt()
    prefix = torch.tensor([[12]])
    with pytest.raises(ConfigError):
        sample_sliding_window(model, prefix, (3, 3), (4, 4))
    with pytest.raises(ConfigError, match="block_size"):
        sample_sliding_window(model, prefix, (8, 8), (5, 5))
