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
weights differ from the recorded ones (another run, a later snapshot) is refused with a clear message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..bundle import Batch, Bundle, Objective, OptimizerSpec, Phase, StepContext
from ..errors import CheckpointError, ConfigError
from ..layers.gpt import GPT
from ..registry import construct, register_model
from ..sampling.autoregressive import sample_sliding_window, sample_tokens
from ..training import distributed as dist

__all__ = ["FrozenTokenizer", "PriorObjective", "tokenizer_hash", "load_stage1", "sample_prior", "vq_prior"]


def tokenizer_hash(module: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of a module's state dict: names, dtypes, shapes and values.

    A content hash rather than a file hash: the same weights saved twice (a stage-1 snapshot, or a copy
    inside a prior's checkpoint) hash the same, and any changed weight changes it."""
    h = hashlib.sha256()
    for key, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


class FrozenTokenizer(nn.Module):
    """A stage-1 autoencoder used only to encode images to codes and decode codes to images.

    It never trains: parameters do not require gradients and ``train()`` leaves the autoencoder in eval
    mode, so its quantizer's training-time behaviour (EMA codebook updates, dead-code restarts) never
    runs. ``expected_hash`` is checked once, the first time codes are used, which catches a tokenizer
    whose weights were loaded from somewhere else than the run the prior belongs to.
    """

    def __init__(self, autoencoder: nn.Module, *, expected_hash: str | None = None):
        super().__init__()
        self.ae = autoencoder.eval().requires_grad_(False)
        self.expected_hash = expected_hash
        self._verified = expected_hash is None
        self.n_embed = int(autoencoder.n_embed)
        self.code_shape = tuple(int(s) for s in autoencoder.code_shape)
        self.img_resolution, self.img_channels = int(autoencoder.img_resolution), int(autoencoder.img_channels)

    def train(self, mode: bool = True) -> FrozenTokenizer:
        super().train(mode)
        self.ae.eval()
        return self

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._verified = self.expected_hash is None  # new weights: check them again before use

    def verify(self) -> None:
        if self._verified:
            return
        got = tokenizer_hash(self.ae)
        if got != self.expected_hash:
            raise CheckpointError(
                f"the tokenizer's weights (hash {got}) are not those this prior was built for (hash "
                f"{self.expected_hash}). A prior only works with the exact stage-1 weights it was trained on: "
                "point model.stage1 at that stage-1 snapshot, or train a new prior for this tokenizer."
            )
        self._verified = True

    @torch.no_grad()
    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """Images [N, C, R, R] in [-1, 1] -> code indices [N, h, w]."""
        self.verify()
        with torch.autocast(device_type=img.device.type, enabled=False):  # codes must not depend on precision
            return self.ae.encode(img.float()).indices

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices [N, h, w] -> images [N, C, h * f, w * f], clamped to [-1, 1]."""
        self.verify()
        return self.ae.decode_indices(indices).clamp(-1, 1)


def load_stage1(path: str | Path) -> tuple[nn.Module, dict[str, Any], Path]:
    """Build a stage-1 autoencoder from a run folder or snapshot and load its weights (EMA if kept).

    Returns ``(autoencoder, its model config, the snapshot file)``."""
    from omegaconf import OmegaConf

    from ..runtime import build_bundle
    from ..training.checkpoint import load_module_weights, load_snapshot

    snap = load_snapshot(path, with_state=False)
    yaml = snap.metadata.get("model_config")
    if not yaml:
        raise CheckpointError(f"model.stage1={str(path)!r}: {str(snap.path)!r} carries no model config; it was not "
                              "written by `ganzoo train`")
    cfg = OmegaConf.to_container(OmegaConf.create(yaml), resolve=True)
    bundle = build_bundle(cfg)
    if bundle.info.get("kind") != "autoencoder":
        raise ConfigError(f"model.stage1={str(path)!r} is a {cfg.get('name')} run, not a vector-quantized tokenizer; "
                          "train one first, e.g. `ganzoo train model=vqgan`, and pass its run folder")
    ae = bundle.modules["G"]
    load_module_weights(ae, snap.ema.get("G", snap.weights.get("G", {})), what=f"stage-1 tokenizer {cfg['name']}")
    return ae, cfg, snap.path


class PriorObjective(Objective):
    """Cross-entropy of the codes given the prefix and the codes before them (one ``prior`` phase)."""

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
        prefix = prefix_tokens(batch.label, len(batch), cond_tokens=self.cond_tokens, n_embed=self.n_embed,
                               device=codes.device)  # [N, 1]
        logits = gpt(torch.cat([prefix, inputs[:, :-1]], dim=1))  # [N, h * w, vocab]
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


def sample_prior(
    modules: Mapping[str, nn.Module],
    n: int | None = None,
    *,
    c: torch.Tensor | None = None,
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
    """Draw ``n`` images: codes from the prior (prefix from ``c``), then the tokenizer's decoder.

    ``generator`` (a CPU generator) drives every draw, so a seed gives the same images on every device;
    without one a fixed seed (0) is used, so training grids stay comparable. ``grid=(H, W)`` larger than
    the training code grid samples with a sliding window. GAN options (``z``) are ignored."""
    gpt, tokenizer = modules["prior"], modules["tokenizer"]
    device = next(gpt.parameters()).device
    if c is not None:
        n = int(c.shape[0])
    if n is None:
        raise ValueError("sample_prior needs n or c")
    if c is None and c_dim > 0:
        c = torch.randint(0, c_dim, (n,), generator=generator)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    prefix = prefix_tokens(c, n, cond_tokens=cond_tokens, n_embed=tokenizer.n_embed, device=device)
    allowed = tokenizer.n_embed if cond_tokens == "separate" else None
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
    """
    if cond_tokens not in ("shared", "separate"):
        raise ConfigError(f"model.cond_tokens={cond_tokens!r}; use shared (taming) or separate")
    tok, resolved = _tokenizer(stage1, stage1_hash, stage1_model)
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
    if cond_tokens == "shared" and c_dim > n_embed:
        raise ConfigError(f"cond_tokens=shared puts the {c_dim} classes in the {n_embed}-code vocabulary; "
                          "use model.cond_tokens=separate")
    need = n_embed if cond_tokens == "shared" else n_embed + max(c_dim, 1)
    p = dict(prior or {})
    p.setdefault("vocab_size", need)
    p.setdefault("block_size", h * w)
    if int(p["vocab_size"]) < need or int(p["block_size"]) < h * w:
        raise ConfigError(f"model.prior.vocab_size={p['vocab_size']} / block_size={p['block_size']} are too small for "
                          f"{n_embed} codes{f' + {c_dim} classes' if c_dim else ''} and {h * w} codes per image: "
                          f"need at least {need} / {h * w}")
    gpt = construct(GPT, p, where="model.prior")
    objective = PriorObjective(optim=_optimizer(optim or {}), cond_tokens=cond_tokens, n_embed=n_embed, pkeep=pkeep)
    s = dict(sample or {})
    unknown = set(s) - {"temperature", "top_k", "top_p"}
    if unknown:
        raise ConfigError(f"model.sample has no option(s) {sorted(unknown)}; allowed: temperature, top_k, top_p")
    info: dict[str, Any] = {"kind": "prior", "c_dim": int(c_dim), "z_dim": 0, "n_embed": n_embed, "code_shape": (h, w),
                            "resolution": tok.img_resolution, "channels": tok.img_channels, "resolved": resolved}
    if missing:
        info["missing"] = missing

    def draw(modules: Mapping[str, nn.Module], n: int | None = None, **opts: Any) -> torch.Tensor:
        return sample_prior(modules, n, **{**s, **opts, "cond_tokens": cond_tokens, "c_dim": int(c_dim)})

    return Bundle(modules={"prior": gpt, "tokenizer": tok}, objective=objective, sample=draw, ema=None, info=info)


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
    tok = entry.presets.get("tokenizer") if entry.builder is vq_prior else None
    return tok if isinstance(tok, str) else None


def _tokenizer(stage1: str | None, expected: str | None,
               saved_model: dict[str, Any] | None) -> tuple[FrozenTokenizer | None, dict[str, Any]]:
    """The frozen tokenizer and the config entries that pin it (``stage1_hash``, ``stage1_model``)."""
    if stage1 is None and saved_model is None:
        return None, {}
    if stage1 is not None and Path(stage1).expanduser().exists():
        ae, cfg, snap_path = load_stage1(stage1)
        got = tokenizer_hash(ae)
        if expected is not None and got != expected:
            raise CheckpointError(
                f"model.stage1={stage1!r} holds a tokenizer with hash {got}, but this prior was trained on hash "
                f"{expected}. A prior only works with the tokenizer it learned: use that stage-1 snapshot (the run's "
                "config.yaml names it), or train a new prior on this tokenizer (a fresh run, without trainer.resume)."
            )
        resolved = {"stage1": str(snap_path), "stage1_hash": got, "stage1_model": cfg}
        return FrozenTokenizer(ae, expected_hash=got), resolved
    if saved_model is None or expected is None:
        raise ConfigError(f"model.stage1={stage1!r} does not exist: pass the run folder or snapshot of the trained "
                          "tokenizer (e.g. runs/<date>_vqgan_fashion)")
    # The stage-1 files are gone, but this prior's config pins the tokenizer: rebuild it; its weights come from
    # the prior's own checkpoint and are checked against the hash before first use.
    from ..runtime import build_bundle

    ae = build_bundle(saved_model).modules["G"]
    return FrozenTokenizer(ae, expected_hash=expected), {}


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
