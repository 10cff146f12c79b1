"""Autoregressive sampling of VQ codes with a GPT prior (Esser et al. 2021, Sec. 3.2).

Draws are made with a CPU ``torch.Generator``: one uniform per sequence and step, turned into a token
by the inverse CDF of the (filtered) distribution computed on the CPU in float64. The token chosen
for a seed therefore depends only on the logits, not on the device, nor on whether the logits came
from a cached or an uncached forward (up to the floating-point differences of those forwards).

Forced tokens (image completion, taming's ``scripts/sample_conditional.py``): ``forced [N, L]`` with
``forced_mask [N, L]`` fixes some positions to given codes. They are fed to the model as they are and never
drawn, but the generator still advances by one uniform per row at each of them, exactly as if the token had
been drawn. So the uniform used at position ``t`` depends only on ``t`` and the seed, not on the mask: forcing
the codes a free draw produced reproduces that draw bit for bit, and a sampled cell keeps its randomness when the
region around it changes. A position is only visible to the positions after it in raster order (the prior is
causal), so codes kept *after* a sampled cell do not influence it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ganzoo.errors import ConfigError
from ganzoo.layers.gpt import GPT


def _check_options(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be >= 1 (or null for no top-k), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigError(f"top_p must lie in (0, 1] (or null for no nucleus), got {top_p}")


def filter_logits(logits: torch.Tensor, *, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set disallowed entries of ``logits [N, V]`` to ``-inf`` (a new tensor, same shape).

    ``top_k`` keeps the ``k`` largest logits (all of a tie at the k-th value, as taming's
    ``top_k_logits``). ``top_p`` (nucleus sampling, Holtzman et al. 2020) keeps the smallest set of
    most likely tokens whose softmax mass reaches ``top_p``, always at least the argmax: a token is
    dropped only when the more likely tokens before it hold *more than* ``top_p``, so a token after
    exactly ``top_p`` is kept. That is the rule of transformers' ``top_k_top_p_filtering`` /
    ``TopPLogitsWarper`` of the 4.3 line that taming's ``sample_with_past`` calls (taming pins
    transformers 4.3.1): descending cumulative mass ``> top_p``, shifted right by one. With both,
    top-k is applied first and the nucleus is taken of what remains.
    """
    _check_options(1.0, top_k, top_p)
    out = logits.clone()
    if top_k is not None and top_k < out.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]  # [N, 1]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        # Stable sort so that ties are broken by index, the same way on every run.
        sorted_logits, order = torch.sort(out, dim=-1, descending=True, stable=True)
        # At least float32 for the running mass (half-precision sums drift).
        probs = sorted_logits.to(torch.promote_types(sorted_logits.dtype, torch.float32)).softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # mass of the more likely tokens
        # Token r is kept while the tokens before it hold at most top_p (transformers: cumsum > top_p, shifted right
        # by one); rank 0 always is.
        drop_sorted = mass_before > top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    allowed: int | None = None,
) -> torch.Tensor:
    """Draw one token per row of ``logits [N, V]`` -> ``[N]`` int64 on ``logits.device``.

    ``allowed``: only tokens ``< allowed`` may be drawn (the vocabulary also holds class/SOS tokens).
    Order as in taming's ``sample_with_past``: divide by ``temperature``, filter (top-k then top-p),
    softmax. The draw is an inverse CDF of one CPU uniform per row, so it uses ``generator`` (a CPU
    generator, or torch's default CPU one when ``None``) identically on every device.
    """
    _check_options(temperature, top_k, top_p)
    if generator is not None and generator.device.type != "cpu":
        raise ConfigError("sample_next needs a CPU torch.Generator (draws are made on the CPU)")
    n, v = logits.shape
    x = logits.detach().to("cpu", torch.float64)
    if allowed is not None:
        if not 0 < allowed <= v:
            raise ConfigError(f"allowed must lie in [1, {v}] for a vocabulary of {v}, got {allowed}")
        x = x[:, :allowed]  # the other tokens get probability 0
    x = filter_logits(x / temperature, top_k=top_k, top_p=top_p)
    probs = F.softmax(x, dim=-1)  # [N, V'], float64
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(n, 1, generator=generator, dtype=torch.float64)
    # First index whose CDF exceeds u * total; zero-probability tokens are flat steps and never chosen.
    token = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)[:, 0]
    # Rounding may push u * total onto the last step: fall back to the last token with mass.
    last = probs.shape[1] - 1 - (probs.flip(-1) > 0).to(torch.int64).argmax(-1)
    token = torch.minimum(token, last)
    return token.to(logits.device)


def check_forced(forced: torch.Tensor | None, forced_mask: torch.Tensor | None, n: int, length: int, *,
                 limit: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Validate ``forced [N, L]`` / ``forced_mask [N, L]`` (bool) -> both on ``device``, or ``None`` without them.

    Forced values at masked positions must be tokens the sampler could draw (``0 <= token < limit``)."""
    if forced is None and forced_mask is None:
        return None
    if forced is None or forced_mask is None:
        raise ConfigError("forced and forced_mask go together: the codes to keep and where to keep them")
    if forced_mask.dtype != torch.bool:
        raise ConfigError(f"forced_mask must be a bool tensor (True = keep the forced code), got {forced_mask.dtype}")
    forced, forced_mask = forced.reshape(forced.shape[0], -1), forced_mask.reshape(forced_mask.shape[0], -1)
    if tuple(forced.shape) != (n, length) or tuple(forced_mask.shape) != (n, length):
        raise ConfigError(f"forced and forced_mask must have shape [N, L] = [{n}, {length}], got "
                          f"{tuple(forced.shape)} and {tuple(forced_mask.shape)}")
    kept = forced[forced_mask]
    if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= limit):
        raise ConfigError(f"forced codes must lie in [0, {limit}) (the codes this prior draws), got "
                          f"[{int(kept.min())}, {int(kept.max())}]")
    return forced.to(device=device, dtype=torch.int64), forced_mask.to(device)


def advance(generator: torch.Generator | None, n: int) -> None:
    """Consume the ``n`` uniforms :func:`sample_next` would draw, so a forced position uses up its randomness."""
    if generator is not None and generator.device.type != "cpu":
        raise ConfigError("sampling needs a CPU torch.Generator (draws are made on the CPU)")
    torch.rand(n, 1, generator=generator, dtype=torch.float64)


@torch.no_grad()
def sample_tokens(
    model: GPT,
    prefix: torch.Tensor,
    steps: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    allowed: int | None = None,
    forced: torch.Tensor | None = None,
    forced_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Continue ``prefix [N, P]`` (e.g. the class or SOS token) by ``steps`` tokens -> ``[N, steps]``.

    With ``use_cache`` each step runs the model on the new tokens only (keys/values of earlier tokens
    come from a :class:`~ganzoo.layers.gpt.KVCache`); without, on the whole sequence so far. Both
    draw the same tokens for the same generator state. ``forced``/``forced_mask [N, steps]`` keep given
    tokens (see the module docstring); a step forced in every row runs no forward pass of its own.
    """
    if prefix.dim() != 2 or prefix.shape[1] < 1:
        raise ConfigError(f"prefix must have shape [N, P] with P >= 1 (e.g. the SOS token), got {tuple(prefix.shape)}")
    if prefix.shape[1] + steps - 1 > model.block_size:
        raise ConfigError(
            f"{prefix.shape[1]} prefix + {steps} sampled tokens need a context of "
            f"{prefix.shape[1] + steps - 1} > block_size={model.block_size}; use sample_sliding_window for "
            "grids larger than the training grid"
        )
    n, p = prefix.shape
    kept = check_forced(forced, forced_mask, n, steps, limit=allowed or model.vocab_size, device=prefix.device)
    was_training = model.training
    model.eval()
    opts = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator, allowed=allowed)
    seq = torch.cat((prefix, prefix.new_zeros(n, steps)), dim=1)  # [N, P + steps], filled in as we go
    cache = model.new_cache() if use_cache else None
    fed = 0  # positions of seq already in the cache
    try:
        for t in range(steps):
            if kept is not None and bool(kept[1][:, t].all()):  # forced in every row: no logits needed
                advance(generator, n)
                seq[:, p + t] = kept[0][:, t]
                continue
            if use_cache:
                logits = model(seq[:, fed : p + t], cache=cache)[:, -1]  # [N, V]
                fed = p + t
            else:
                logits = model(seq[:, : p + t])[:, -1]
            token = sample_next(logits, **opts)  # [N]
            if kept is not None:
                token = torch.where(kept[1][:, t], kept[0][:, t], token)
            seq[:, p + t] = token
    finally:
        model.train(was_training)
    return seq[:, p:]  # [N, steps]


_window_progress: list[Callable[[int], None]] = []  # callbacks told of every forward pass of a sliding window


@contextmanager
def window_progress(callback: Callable[[int], None]) -> Iterator[None]:
    """Within the block, :func:`sample_sliding_window` calls ``callback(1)`` after each forward pass (a progress
    bar for large grids: ``ganzoo generate --grid``)."""
    _window_progress.append(callback)
    try:
        yield
    finally:
        _window_progress.remove(callback)


def window_origin(i: int, j: int, grid: tuple[int, int], window: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of the ``window`` (h, w) used to sample cell ``(i, j)`` of ``grid`` (H, W).

    The window is centred on ``(i, j)`` (the cell sits at row ``h // 2``, column ``w // 2`` of it) and
    clamped so it stays inside the grid: this is taming's ``scripts/sample_conditional.py`` rule
    (``local_i = i`` near the top, ``h - (H - i)`` near the bottom, ``h // 2`` inside).
    """
    (gh, gw), (h, w) = grid, window
    top = min(max(i - h // 2, 0), gh - h)
    left = min(max(j - w // 2, 0), gw - w)
    return top, left


@torch.no_grad()
def sample_sliding_window(
    model: GPT,
    prefix: torch.Tensor,
    grid: tuple[int, int],
    window: tuple[int, int],
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    allowed: int | None = None,
    forced: torch.Tensor | None = None,
    forced_mask: torch.Tensor | None = None,
    window_prefix: Callable[[int, int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Codes for a ``grid`` (H, W) larger than the training ``window`` (h, w) -> ``[N, H, W]``.

    Taming Sec. 3.2 / Fig. 3: cells are drawn in raster order; cell ``(i, j)`` is predicted from the
    prefix followed by the tokens of its window (:func:`window_origin`) in raster order up to, not
    including, ``(i, j)``, at positions ``0 .. P + h*w - 1`` as in training. Tokens of the window that
    come after ``(i, j)`` are not fed (taming feeds them but the causal mask hides them). One forward
    per cell; with ``grid == window`` this is exactly ``sample_tokens(use_cache=False)``, forced tokens
    (``[N, H * W]`` in raster order, or ``[N, H, W]``) included; a cell forced in every row costs no pass.

    ``window_prefix(top, left) -> [N, P]``: a prefix per window instead of ``prefix`` (same length P), for a
    spatial condition whose tokens follow the window (taming's ``sample_conditional.py`` crops the condition's
    codes with the same window as the image's).
    """
    (gh, gw), (h, w) = grid, window
    if not (1 <= h <= gh and 1 <= w <= gw):
        raise ConfigError(f"window {window} must fit inside grid {grid} (window = the training code grid)")
    if prefix.dim() != 2 or prefix.shape[1] < 1:
        raise ConfigError(f"prefix must have shape [N, P] with P >= 1 (e.g. the SOS token), got {tuple(prefix.shape)}")
    if prefix.shape[1] + h * w - 1 > model.block_size:
        raise ConfigError(
            f"a {h}x{w} window after {prefix.shape[1]} prefix tokens needs a context of "
            f"{prefix.shape[1] + h * w - 1} > block_size={model.block_size}; the window must be the "
            "training code grid"
        )
    was_training = model.training
    model.eval()
    n = prefix.shape[0]
    kept = check_forced(forced, forced_mask, n, gh * gw, limit=allowed or model.vocab_size, device=prefix.device)
    codes = torch.zeros(n, gh, gw, dtype=torch.int64, device=prefix.device)
    if kept is not None:  # forced codes are in place before any draw (only earlier cells are ever fed)
        codes = torch.where(kept[1], kept[0], codes.flatten(1)).view(n, gh, gw)
    opts = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator, allowed=allowed)
    try:
        for i in range(gh):
            for j in range(gw):
                if kept is not None and bool(kept[1][:, i * gw + j].all()):
                    advance(generator, n)
                    continue
                top, left = window_origin(i, j, grid, window)
                li, lj = i - top, j - left  # the cell inside its window
                patch = codes[:, top : top + h, left : left + w].reshape(n, h * w)  # [N, h*w]
                pre = prefix if window_prefix is None else window_prefix(top, left)  # [N, P]
                if pre.shape != prefix.shape:
                    raise ConfigError(f"window_prefix gave a prefix of shape {tuple(pre.shape)} at window ({top}, "
                                      f"{left}); every window needs {tuple(prefix.shape)}")
                context = torch.cat((pre, patch[:, : li * w + lj]), dim=1)  # [N, P + li*w + lj]
                logits = model(context)[:, -1]  # [N, V]
                token = sample_next(logits, **opts)  # [N]
                if kept is not None:
                    token = torch.where(kept[1][:, i * gw + j], kept[0][:, i * gw + j], token)
                codes[:, i, j] = token
                for callback in _window_progress:
                    callback(1)
    finally:
        model.train(was_training)
    return codes
