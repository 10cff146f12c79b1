"""Stage 2 of the vector-quantized family: an autoregressive transformer prior over the codes of a frozen
stage-1 tokenizer (VQ-GAN, Esser et al. 2021, Sec. 3.2; ViT-VQGAN's VIM, Yu et al. 2022, Sec. 4).

Training (taming's ``Net2NetTransformer``): an image is encoded by the frozen tokenizer into an ``h x w``
grid of code indices, read in raster order; the sequence is the conditioning prefix (a class token, or a
start token 0 when unconditional) followed by the codes, and the GPT (``ganzoo.layers.gpt``) is trained
with cross-entropy to predict each code from the ones before it. ``cond_tokens="shared"`` puts the class
index in the code vocabulary itself (taming's ``Labelator``/``SOSProvider``: class ``c`` is token ``c``,
the start token is 0); ``"separate"`` gives the prefix its own tokens after the codes (``n_embed + c``),
which never collide with codes, and sampling only draws codes. ``pkeep < 1`` replaces input codes by
random tokens of the GPT's whole vocabulary with probability ``1 - pkeep`` (taming's ``pkeep``).

Sampling draws the codes with a key/value cache (temperature, top-k, top-p) and decodes them with the
tokenizer; with ``grid=(H, W)`` larger than the training grid each code attends only to a training-sized
window around it (Sec. 3.2, Fig. 3), so a convolutional decoder renders images larger than the
training resolution.

The tokenizer is a module of the bundle (``modules["tokenizer"]``) that is never trained: it is loaded
from the stage-1 checkpoint (``model.stage1=<run folder or snapshot>``), kept in eval mode, and saved
inside the prior's checkpoints, so a prior run is self-contained. Its weights are identified by a
content hash (:func:`tokenizer_hash`) that the prior's config records (``stage1_hash``); a tokenizer whose
weights differ from the recorded ones (another run, a later snapshot) is refused with a clear message
(loading and pinning live in ``ganzoo.models.vq_frozen``).

Conditioned synthesis (Sec. 3.2, "Conditioned Synthesis"; taming's ``cond_stage_model``): with
``model.cond_stage`` the prefix is a condition's token sequence instead (``ganzoo.models.vq_cond``: a second
frozen VQ tokenizer, pinned the same way as ``cond_stage_hash``, or a parameter-free down-sampling or edge
provider), followed by the class token when the prior is also class-conditional; see :func:`build_prefix`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..bundle import Batch, Bundle, Objective, OptimizerSpec, Phase, StepContext
from ..errors import ConfigError
from ..layers.gpt import GPT
from ..registry import construct, register_model
from ..sampling.autoregressive import sample_sliding_window, sample_tokens
from ..training import distributed as dist
from .vq_cond import CondStage, make_cond_stage
from .vq_frozen import FrozenTokenizer, load_stage1, pinned_tokenizer, tokenizer_hash

__all__ = ["FrozenTokenizer", "PriorObjective", "tokenizer_hash", "load_stage1", "build_prefix", "sample_prior",
           "vq_prior"]


class PriorObjective(Objective):
    """Cross-entropy of the codes given the prefix and the codes before them (one ``prior`` phase).

    The prefix is :func:`build_prefix`'s: a class or start token, or a condition's tokens (derived from the
    batch's images by ``modules["cond_stage"]``) and the class token. The loss covers the image codes only
    (taming's ``logits[:, c_len - 1:]``)."""

    def __init__(self, *, optim: OptimizerSpec, cond_tokens: str, n_embed: int, pkeep: float = 1.0):
        self.cond_tokens, self.n_embed, self.pkeep = cond_tokens, int(n_embed), float(pkeep)
        super().__init__([Phase("prior", "prior", self.prior_loss)], {"prior": optim})

    def prior_loss(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        tokenizer: FrozenTokenizer = ctx.modules["tokenizer"]
        gpt: GPT = ctx.modules["prior"]
        codes = tokenizer.encode(batch.img).flatten(1)  # [N, h * w], raster order
        inputs = codes
        if self.pkeep < 1.0:
            keep = torch.bernoulli(torch.full_like(codes, self.pkeep, dtype=torch.float)).bool()
            # taming's Net2NetTransformer.forward: torch.randint_like(z_indices, transformer.config.vocab_size), the
            # whole vocabulary (class tokens included), not only the codes.
            inputs = torch.where(keep, codes, torch.randint_like(codes, gpt.vocab_size))
        cond: CondStage | None = ctx.modules.get("cond_stage")
        cond_img = None
        if cond is not None:
            with torch.autocast(device_type=batch.img.device.type, enabled=False):  # tokens must not follow precision
                cond_img = cond.derive(batch.img)  # [N, Cc, r, r]: no paired maps, the condition comes from the image
            cond.record(cond_img)  # the sample grids' conditions (the first training images')
        prefix = build_prefix(ctx.modules, len(batch), c=batch.label, cond_img=cond_img, cond_tokens=self.cond_tokens,
                              n_embed=self.n_embed)  # [N, P]
        logits = gpt(torch.cat([prefix, inputs[:, :-1]], dim=1))[:, prefix.shape[1] - 1 :]  # [N, h * w, vocab]
        loss = F.cross_entropy(logits.float().flatten(0, 1), codes.flatten())
        acc = (logits.detach().argmax(-1) == codes).float().mean()
        return loss, {"loss/prior": loss.detach(), "prior/bits_per_code": loss.detach() / 0.6931471805599453,
                      "prior/accuracy": acc}


def prefix_tokens(c: torch.Tensor | None, n: int, *, cond_tokens: str, n_embed: int,
                  device: torch.device | None = None) -> torch.Tensor:
    """The one-token prefix [N, 1]: the class (shared: token c; separate: n_embed + c) or the start token."""
    if c is None:
        start = 0 if cond_tokens == "shared" else n_embed
        return torch.full((n, 1), start, dtype=torch.long, device=device)
    c = c.to(device=device, dtype=torch.long).view(n, 1)
    return c if cond_tokens == "shared" else c + n_embed


def build_prefix(modules: Mapping[str, nn.Module], n: int, *, c: torch.Tensor | None = None,
                 cond_img: torch.Tensor | None = None, cond_tokens: str = "separate", n_embed: int) -> torch.Tensor:
    """Everything the GPT reads before the first image code -> ``[N, P]`` (int64, on the prior's device).

    Without a condition stage: one token (:func:`prefix_tokens`: the class, or the start token), as before.
    With one (``modules["cond_stage"]``): the condition's L tokens shifted by ``cond_stage.token_offset``,
    then the class token when the prior is also class-conditional (``c`` given): ``[cond_1 .. cond_L, class]``.
    No start token follows the condition (taming's ``cat(c_indices, z_indices)``): the last condition token
    predicts the first code. ``cond_img`` ``[N, Cc, r, r]`` is required then (a wrong shape is refused)."""
    device = next(modules["prior"].parameters()).device
    cond: CondStage | None = modules.get("cond_stage")
    if cond is None:
        return prefix_tokens(c, n, cond_tokens=cond_tokens, n_embed=n_embed, device=device)
    if cond_img is None:
        raise ConfigError(f"this prior is conditioned on a {cond.kind} condition: pass the condition image "
                          f"(cond_img, [N, {cond.cond_channels}, {cond.cond_resolution}, {cond.cond_resolution}])")
    if cond_img.shape[0] != n:
        raise ConfigError(f"{cond_img.shape[0]} condition images for {n} samples: give one per sample")
    tokens = cond.encode(cond_img.to(device)) + cond.token_offset  # [N, L]
    if c is None:
        return tokens
    return torch.cat([tokens, prefix_tokens(c, n, cond_tokens=cond_tokens, n_embed=n_embed, device=device)], dim=1)


def sample_prior(
    modules: Mapping[str, nn.Module],
    n: int | None = None,
    *,
    c: torch.Tensor | None = None,
    cond_img: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    grid: tuple[int, int] | list[int] | int | None = None,
    use_cache: bool = True,
    cond_tokens: str = "shared",
    c_dim: int = 0,
    **_: Any,
) -> torch.Tensor:
    """Draw ``n`` images: codes from the prior (prefix from ``c`` and ``cond_img``), then the tokenizer's decoder.

    ``generator`` (a CPU generator) drives every draw, so a seed gives the same images on every device;
    without one a fixed seed (0) is used, so training grids stay comparable. ``grid=(H, W)`` larger than
    the training code grid samples with a sliding window. A code-conditioned prior draws under ``cond_img``
    (one condition image per sample), or without it under the conditions it recorded from its first training
    images (cycled). Only codes are ever drawn. GAN options (``z``) are ignored."""
    gpt, tokenizer = modules["prior"], modules["tokenizer"]
    cond: CondStage | None = modules.get("cond_stage")
    if c is not None:
        n = int(c.shape[0])
    elif cond_img is not None:
        n = int(cond_img.shape[0])
    if n is None:
        raise ValueError("sample_prior needs n, c or cond_img")
    if c is None and c_dim > 0:
        c = torch.randint(0, c_dim, (n,), generator=generator)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    if cond is not None and cond_img is None:
        cond_img = cond.recorded(n)
    prefix = build_prefix(modules, n, c=c, cond_img=cond_img, cond_tokens=cond_tokens, n_embed=tokenizer.n_embed)
    allowed = tokenizer.n_embed if (cond_tokens == "separate" or cond is not None
                                    or gpt.vocab_size > tokenizer.n_embed) else None
    h, w = tokenizer.code_shape
    opts = dict(temperature=float(temperature), top_k=top_k, top_p=top_p, generator=generator, allowed=allowed)
    size = _grid(grid, (h, w))
    if size == (h, w):
        codes = sample_tokens(gpt, prefix, h * w, use_cache=use_cache, **opts).view(n, h, w)
    else:
        if not getattr(tokenizer.ae, "decodes_any_size", False):
            raise ConfigError(f"grid={list(size)}: this tokenizer's decoder only renders its training grid {h}x{w} "
                              "(a ViT decoder has fixed position embeddings); sliding-window sampling needs a "
                              "convolutional decoder such as VQ-GAN's")
        if cond is not None:
            raise ConfigError(f"grid={list(size)}: a {cond.kind}-conditioned prior samples its training grid "
                              f"{h}x{w}: its condition covers that image only")
        codes = sample_sliding_window(gpt, prefix, size, (h, w), **opts)  # [N, H, W]
    return tokenizer.decode(codes)


def _grid(grid: Any, default: tuple[int, int]) -> tuple[int, int]:
    if grid is None:
        return default
    if isinstance(grid, int):
        grid = (grid, grid)
    size = tuple(int(g) for g in grid)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"grid={grid!r}: give the code grid as H,W (e.g. [16, 16])")
    if size[0] < default[0] or size[1] < default[1]:
        raise ConfigError(f"grid={list(size)} is smaller than the training code grid {default[0]}x{default[1]}")
    return size


def _optimizer(optim: Mapping[str, Any]) -> OptimizerSpec:
    """taming's ``configure_optimizers``: AdamW (0.9, 0.95), weight decay 0.01 on Linear weights only, and
    ``main.py``'s ``lr = base_learning_rate * images per optimizer step``."""
    allowed = {"base_learning_rate", "batch_size", "betas", "weight_decay", "lr"}
    unknown = set(optim) - allowed
    if unknown:
        raise ConfigError(f"model.optim has no option(s) {sorted(unknown)}. Allowed: {sorted(allowed)}.")
    lr = optim.get("lr")
    if lr is None:
        lr = float(optim.get("base_learning_rate", 4.5e-6)) * int(optim.get("batch_size", 64)) * dist.world_size()
    decay = float(optim.get("weight_decay", 0.01))
    return OptimizerSpec(lr=float(lr), betas=tuple(float(b) for b in optim.get("betas", (0.9, 0.95))),
                         weight_decay=decay, kind="adamw",
                         param_groups=lambda module: module.configure_optimizer_groups(decay))


def vq_prior(
    *,
    stage1: str | None = None,
    stage1_hash: str | None = None,
    stage1_model: dict[str, Any] | None = None,
    tokenizer: str | None = None,
    c_dim: int = 0,
    cond_tokens: str = "separate",
    cond_stage: str | dict[str, Any] | None = None,
    cond_stage_hash: str | None = None,
    cond_stage_model: dict[str, Any] | None = None,
    cond_tokenizer: str | dict[str, Any] | None = None,
    cond_input: str = "image",
    prior: dict[str, Any] | None = None,
    pkeep: float = 1.0,
    sample: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
) -> Bundle:
    """Build a code prior (VQ stage 2) for the tokenizer of ``stage1`` (a stage-1 run folder or snapshot).

    ``prior``: GPT sizes (``n_layer``, ``n_head``, ``n_embd``, dropouts; ``vocab_size``/``block_size``
    default to what the tokenizer and the conditioning need). ``sample``: default ``temperature``,
    ``top_k``, ``top_p`` of grids and evaluation. ``tokenizer`` names the registered stage-1 preset the prior
    is sized for: without ``stage1`` that preset is built untrained (parameter counts, ``ganzoo list``,
    shape tests), and such a bundle refuses to train. ``stage1_hash`` and ``stage1_model`` are written by
    ``ganzoo train`` into the run's config: they rebuild the run's tokenizer when the stage-1 files are gone,
    and refuse a different one.

    ``cond_stage`` conditions the prior on codes (``ganzoo.models.vq_cond``): another VQ run (pinned as
    ``cond_stage_hash`` / ``cond_stage_model``, exactly like ``stage1``), or ``{kind: downsample, size, levels}``
    / ``{kind: edges, size, threshold}`` / ``{kind: coord, n_embed, down_factor}``; ``cond_tokenizer`` sizes an
    untrained condition tokenizer for presets; ``cond_input=labels`` reads the condition tokenizer's input as
    one-hot label maps (taming's segmentation stages).
    Vocabulary: ``cond_tokens="separate"`` lays it out as ``[codes | classes | condition tokens]`` (condition
    token t is ``n_embed + c_dim + t``); ``"shared"`` gives condition token t the id t, as taming, whose
    condition and image codes share one embedding table (``vocab = max(n_embed, condition vocab)``).
    """
    if cond_tokens not in ("shared", "separate"):
        raise ConfigError(f"model.cond_tokens={cond_tokens!r}; use shared (taming) or separate")
    tok, resolved = pinned_tokenizer(stage1, stage1_hash, stage1_model, key="stage1")
    if tok is not None and resolved:
        _check_family(tok, tokenizer, stage1, resolved["stage1_model"])
    missing = None
    if tok is None:
        if tokenizer is None:
            raise ConfigError("model.stage1 is not set: point it at a trained tokenizer, e.g. "
                              "`ganzoo train model=vqgan_prior model.stage1=runs/<a vqgan run>`")
        from ..registry import build_model

        tok = FrozenTokenizer(build_model(tokenizer).modules["G"])
        missing = (f"model.stage1 is not set (the prior would learn the codes of an untrained {tokenizer}): train a "
                   f"tokenizer first (`ganzoo train model={tokenizer}`), then `ganzoo train model=<prior> "
                   "model.stage1=<its run folder>`")
    n_embed, (h, w) = tok.n_embed, tok.code_shape
    cond, cond_resolved, cond_missing = make_cond_stage(cond_stage, cond_stage_hash, cond_stage_model, cond_tokenizer,
                                                        resolution=tok.img_resolution, channels=tok.img_channels,
                                                        cond_input=cond_input)
    resolved.update(cond_resolved)
    missing = missing or cond_missing
    if cond_tokens == "shared" and c_dim > n_embed:
        raise ConfigError(f"cond_tokens=shared puts the {c_dim} classes in the {n_embed}-code vocabulary; "
                          "use model.cond_tokens=separate")
    if cond is None:
        need, n_prefix = (n_embed if cond_tokens == "shared" else n_embed + max(c_dim, 1)), 1
    elif cond_tokens == "shared":
        if c_dim > 0:
            raise ConfigError("a class label and a condition in one shared vocabulary would collide with the codes: "
                              "use model.cond_tokens=separate (condition, then class token) or model.c_dim=0")
        need, n_prefix = max(n_embed, cond.vocab), cond.n_tokens
    else:
        cond.token_offset = n_embed + c_dim
        need, n_prefix = n_embed + c_dim + cond.vocab, cond.n_tokens + (1 if c_dim > 0 else 0)
    p = dict(prior or {})
    p.setdefault("vocab_size", need)
    p.setdefault("block_size", n_prefix + h * w - 1)  # the GPT reads the prefix and every code but the last
    if int(p["vocab_size"]) < need or int(p["block_size"]) < n_prefix + h * w - 1:
        what = f"{n_embed} codes" + (f" + {c_dim} classes" if c_dim else "") + (
            f" + a {cond.vocab}-token condition" if cond is not None else "")
        raise ConfigError(f"model.prior.vocab_size={p['vocab_size']} / block_size={p['block_size']} are too small for "
                          f"{what} and {n_prefix} prefix + {h * w} code positions: need at least {need} / "
                          f"{n_prefix + h * w - 1}")
    gpt = construct(GPT, p, where="model.prior")
    objective = PriorObjective(optim=_optimizer(optim or {}), cond_tokens=cond_tokens, n_embed=n_embed, pkeep=pkeep)
    s = dict(sample or {})
    unknown = set(s) - {"temperature", "top_k", "top_p"}
    if unknown:
        raise ConfigError(f"model.sample has no option(s) {sorted(unknown)}; allowed: temperature, top_k, top_p")
    info: dict[str, Any] = {"kind": "prior", "c_dim": int(c_dim), "z_dim": 0, "n_embed": n_embed, "code_shape": (h, w),
                            "resolution": tok.img_resolution, "channels": tok.img_channels, "resolved": resolved}
    modules: dict[str, nn.Module] = {"prior": gpt, "tokenizer": tok}
    if cond is not None:
        info["cond_stage"] = cond.info()
        modules["cond_stage"] = cond
    if missing:
        info["missing"] = missing

    def draw(modules: Mapping[str, nn.Module], n: int | None = None, **opts: Any) -> torch.Tensor:
        return sample_prior(modules, n, **{**s, **opts, "cond_tokens": cond_tokens, "c_dim": int(c_dim)})

    return Bundle(modules=modules, objective=objective, sample=draw, ema=None, info=info)


def _check_family(tok: FrozenTokenizer, tokenizer: Any, stage1: str | None, stage1_cfg: Mapping[str, Any]) -> None:
    """A prior sized for one tokenizer family (``model.tokenizer``, e.g. vit_vqgan_tiny) refuses a stage-1 run of
    the other (a vqgan_tiny run): its config would name one tokenizer and hold another."""
    from ..registry import build_model_shapes, list_models

    if not isinstance(tokenizer, str) or tokenizer not in list_models():
        return
    expected = type(build_model_shapes(tokenizer).modules["G"])
    got = type(tok.ae)
    if got is expected:
        return
    name = stage1_cfg.get("name", "?")
    fit = prior_for(name, got)
    raise ConfigError(
        f"model.stage1={stage1!r} is a {name} run (a {got.__name__} tokenizer), but this prior is set up for "
        f"model.tokenizer={tokenizer} (a {expected.__name__}). Use the prior of that tokenizer's family"
        + (f" (e.g. model={fit})" if fit else "")
        + f", or keep this prior's sizes and name the tokenizer truly with model.tokenizer={name}")


def prior_for(tokenizer_name: str, tokenizer_type: type) -> str | None:
    """The registered code prior for a tokenizer: the one sized for that preset, else one of its family."""
    from ..registry import build_model_shapes, list_models

    priors = {m: _prior_tokenizer(m) for m in list_models()}
    fits = [m for m, t in priors.items() if t == tokenizer_name] or [
        m for m, t in priors.items() if t is not None and type(build_model_shapes(t).modules["G"]) is tokenizer_type]
    return fits[0] if fits else None


def _prior_tokenizer(name: str) -> str | None:
    from ..registry import get_entry

    entry = get_entry(name)
    if entry.builder is not vq_prior or entry.presets.get("cond_stage") or entry.presets.get("cond_tokenizer"):
        return None  # a code-conditioned prior is no general suggestion: it needs a condition to sample
    tok = entry.presets.get("tokenizer")
    return tok if isinstance(tok, str) else None


# -- presets ------------------------------------------------------------------------------------------------------
def _register(name: str, description: str, **presets: Any) -> None:
    register_model(name, family="vector-quantized", builder=vq_prior, description=description, **presets)


# CPU default for the `vqgan` tokenizer (32x32 grey, 8x8 codes of 256): class-conditional (the yaml: c_dim auto,
# the data's classes), 4 layers of width 128 (0.87M parameters).
_register("vqgan_prior", "VQ-GAN stage 2: a class-conditional GPT over a tokenizer's codes (CPU size)",
          tokenizer="vqgan", c_dim=10, cond_tokens="separate",
          prior=dict(n_layer=4, n_head=4, n_embd=128, embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0),
          optim=dict(base_learning_rate=4.5e-6, batch_size=64))
_register("vqgan_prior_tiny", "VQ-GAN stage 2 with a 2-layer GPT of width 32 (tests)",
          tokenizer="vqgan_tiny", c_dim=0, cond_tokens="separate", prior=dict(n_layer=2, n_head=2, n_embd=32),
          optim=dict(base_learning_rate=4.5e-6, batch_size=16))

# taming's class-conditional ImageNet transformer (README: "1.4B transformer", 2021-04-03T19-39-50_cin_transformer):
# minGPT with vocabulary 16384 shared by codes and the 1000 class tokens, 256 positions, 48 layers of width 1536 in 24
# heads, on the f16 16384-code VQ-GAN; sampled with top-k 600, top-p 0.92, temperature 1.0 (README, sample_fast.py).
_register("vqgan_prior_imagenet_cin", "taming's 1.4B class-conditional ImageNet transformer (256x256, 16x16 codes)",
          tokenizer="vqgan_imagenet_f16_16384", c_dim=1000, cond_tokens="shared",
          prior=dict(vocab_size=16384, block_size=256, n_layer=48, n_head=24, n_embd=1536),
          sample=dict(temperature=1.0, top_k=600, top_p=0.92), optim=dict(base_learning_rate=4.5e-6, batch_size=12))

# ViT-VQGAN stage 2 (VIM, Yu et al. 2022, Sec. 4) on the CPU-size `vit_vqgan` tokenizer (32x32 grey, 8x8 codes of 512).
_register("vit_vqgan_prior", "ViT-VQGAN stage 2 (VIM): a class-conditional GPT over ViT-VQGAN codes (CPU size)",
          tokenizer="vit_vqgan", c_dim=10, cond_tokens="separate", prior=dict(n_layer=4, n_head=4, n_embd=128),
          optim=dict(base_learning_rate=4.5e-6, batch_size=64))
_register("vit_vqgan_prior_tiny", "ViT-VQGAN stage 2 with a 2-layer GPT of width 32 (tests)",
          tokenizer="vit_vqgan_tiny", c_dim=0, cond_tokens="separate", prior=dict(n_layer=2, n_head=2, n_embd=32),
          optim=dict(base_learning_rate=4.5e-6, batch_size=16))

# -- code-conditioned priors (ganzoo.models.vq_cond) ---------------------------------------------------------------
# Super-resolution on the CPU: the `vqgan` tokenizer's 32x32 grey images conditioned on their 8x8 area average in
# 16 grey levels (64 condition tokens offset after the 256 codes: vocabulary 272, 64 + 64 - 1 positions); the GPT
# of vqgan_prior (4 layers of width 128).
_SR_CPU = dict(kind="downsample", size=8, levels=16)
_register("vqgan_prior_sr", "VQ-GAN stage 2 conditioned on an 8x8, 16-level thumbnail: super-resolution (CPU size)",
          tokenizer="vqgan", c_dim=0, cond_tokens="separate", cond_stage=_SR_CPU,
          prior=dict(n_layer=4, n_head=4, n_embd=128, embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0),
          optim=dict(base_learning_rate=4.5e-6, batch_size=64))
# Map-to-image on the CPU: the `vqgan` tokenizer's images conditioned on their 16x16 Sobel edge map (threshold 1.0
# on [0, 1] intensities), 2x2 blocks packed into 64 tokens of 16 values (offset after the 256 codes: vocabulary
# 272, 64 + 64 - 1 positions, the GPT of vqgan_prior: the cost of vqgan_prior_sr).
_register("vqgan_prior_edges", "VQ-GAN stage 2 conditioned on a 16x16 edge map (2x2 blocks per token): map-to-image "
          "(CPU size)", tokenizer="vqgan", c_dim=0, cond_tokens="separate",
          cond_stage=dict(kind="edges", size=16, threshold=1.0, patch=2),
          prior=dict(n_layer=4, n_head=4, n_embd=128, embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0),
          optim=dict(base_learning_rate=4.5e-6, batch_size=64))
_register("vqgan_prior_sr_tiny", "super-resolution prior for vqgan_tiny (4x4, 8 levels -> 16x16; tests)",
          tokenizer="vqgan_tiny", c_dim=0, cond_tokens="separate", cond_stage=dict(kind="downsample", size=4, levels=8),
          prior=dict(n_layer=2, n_head=2, n_embd=32), optim=dict(base_learning_rate=4.5e-6, batch_size=16))

# taming's configs/drin_transformer.yaml (depth-to-image on RIN): minGPT with vocabulary 1024 shared by the image
# codes and the depth codes, 512 positions (256 depth + 256 image tokens), 24 layers of width 1024 in 16 heads; the
# image tokenizer is the f16 1024-code ImageNet VQ-GAN, the condition's is the same network on one channel
# (configs/imagenetdepth_vqgan.yaml); data batch 2.
_PAPER_GPT = dict(vocab_size=1024, block_size=512, n_layer=24, n_head=16, n_embd=1024)
_register("vqgan_prior_drin", "taming's D-RIN depth-to-image transformer (256x256; 16x16 depth + 16x16 image codes)",
          tokenizer="vqgan_imagenet_f16_1024", c_dim=0, cond_tokens="shared",
          cond_tokenizer=dict(name="vqgan_imagenet_f16_1024", img_channels=1), prior=dict(_PAPER_GPT),
          optim=dict(base_learning_rate=4.5e-6, batch_size=2))
# taming's configs/faceshq_transformer.yaml: the same GPT, on a CoordStage condition (n_embed 1024, down_factor
# 16: the crop's coordinate map as 16x16 tokens of 1024 levels; FacesHQ crops the whole 256 px frame); data batch 2.
_register("vqgan_prior_faceshq", "taming's FacesHQ transformer: 16x16 coordinate tokens (CoordStage) + image codes",
          tokenizer="vqgan_imagenet_f16_1024", c_dim=0, cond_tokens="shared",
          cond_stage=dict(kind="coord", n_embed=1024, down_factor=16), prior=dict(_PAPER_GPT),
          optim=dict(base_learning_rate=4.5e-6, batch_size=2))
