"""The contract between a model family and the generic trainer.

A registry entry builds a :class:`Bundle`: the named modules to train, an :class:`Objective`
(an ordered list of :class:`Phase`), an optional :class:`Schedule`, and a ``sample`` function.
The trainer only ever talks to these types; it knows nothing about any family.

See ``docs/architecture.md`` for the picture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .training import distributed as dist

Logs = dict[str, float | torch.Tensor]
LossFn = Callable[["Batch", "StepContext"], tuple[torch.Tensor, Logs]]


@dataclass
class Batch:
    """One minibatch of real data on the training device.

    ``img`` is ``[N, C, H, W]`` in ``[-1, 1]`` at the model resolution; ``label`` holds class
    indices ``[N]`` (int64) or is ``None`` for unconditional data.
    """

    img: torch.Tensor
    label: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.img.shape[0]

    def split(self, parts: int) -> list[Batch]:
        """Split into ``parts`` micro-batches for gradient accumulation."""
        if parts <= 1:
            return [self]
        imgs = self.img.chunk(parts)
        labels = self.label.chunk(parts) if self.label is not None else [None] * len(imgs)
        return [Batch(i, l) for i, l in zip(imgs, labels)]


@dataclass
class StepContext:
    """What a phase's loss function may read. Built by the trainer for every step."""

    modules: Mapping[str, nn.Module]
    state: Mapping[str, Any]  # schedule state (resolution level, alpha, ...) or {}
    step: int  # optimizer steps taken so far (phase-independent)
    images_seen: int
    device: torch.device
    c_dim: int = 0  # number of classes; 0 = unconditional

    def sample_labels(self, n: int) -> torch.Tensor | None:
        """Uniform random class labels for fake samples, or None when unconditional."""
        if self.c_dim <= 0:
            return None
        return dist.randint(0, self.c_dim, n, device=self.device)  # this rank's rows under torchrun


@dataclass
class Phase:
    """One optimisation step of one module.

    Args:
        name: label used in logs, e.g. ``"Gmain"`` or ``"Dreg"``.
        module: key into ``Bundle.modules`` whose parameters this phase updates.
        loss: ``loss(batch, ctx) -> (scalar loss, logs)``.
        interval: run every ``interval`` steps. Lazy regularisation (StyleGAN2 Sec. 3.1):
            the trainer multiplies the loss by ``interval`` so its expected gradient is unchanged.
        repeats: run this many times per step, each on a fresh batch (BigGAN: 2 D steps per G).
        active: optional ``active(ctx) -> bool`` (e.g. a discriminator that starts late).
        needs_batch: False when the loss ignores real data (a generator phase), so repeats do
            not consume extra real images.
        double_backward: True when the loss differentiates a gradient (R1, WGAN-GP, path length:
            ``autograd.grad(create_graph=True)``). Such phases run eager under ``trainer.compile``,
            whose graphs give a first-order backward only (``ganzoo.training.compile``).
    """

    name: str
    module: str
    loss: LossFn
    interval: int = 1
    repeats: int = 1
    active: Callable[[StepContext], bool] | None = None
    needs_batch: bool = True
    double_backward: bool = False

    def __post_init__(self) -> None:
        if self.interval < 1 or self.repeats < 1:
            raise ValueError(f"phase {self.name}: interval and repeats must be >= 1")


@dataclass
class OptimizerSpec:
    """Optimizer of one module. ``kind`` is ``adam`` or ``adamw``.

    ``param_groups(module) -> [{"params": [...], "weight_decay": ...}, ...]`` optionally splits the
    module's parameters into groups (a transformer decays Linear weights only, as minGPT)."""

    lr: float
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    weight_decay: float = 0.0
    kind: str = "adam"
    param_groups: Callable[[nn.Module], list[dict[str, Any]]] | None = None

    def lazy(self, interval: int) -> OptimizerSpec:
        """Correct Adam for a regulariser run every ``interval`` steps (StyleGAN2 App. B).

        The module takes ``interval + 1`` updates per ``interval`` minibatches, so lr and the
        betas are rescaled by ``c = interval / (interval + 1)``.
        """
        if interval <= 1:
            return self
        c = interval / (interval + 1)
        return OptimizerSpec(
            lr=self.lr * c,
            betas=(self.betas[0] ** c, self.betas[1] ** c),
            eps=self.eps,
            weight_decay=self.weight_decay,
            kind=self.kind,
            param_groups=self.param_groups,
        )

    def build_for(self, module: nn.Module) -> torch.optim.Optimizer:
        """The optimizer of ``module``'s parameters (in groups when ``param_groups`` is set)."""
        return self.build(self.param_groups(module) if self.param_groups is not None else module.parameters())

    def build(self, params) -> torch.optim.Optimizer:
        """The optimizer of ``params`` (tensors or param-group dicts). On CUDA, when every parameter is a
        CUDA floating-point tensor, Adam's fused kernel (one launch for all parameters, no host sync);
        elsewhere torch's default implementation, so CPU numerics are unchanged."""
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(self.kind)
        if cls is None:
            raise ValueError(f"unknown optimizer kind {self.kind!r}; use 'adam' or 'adamw'")
        groups = [{**g, "params": list(g["params"])} if isinstance(g, dict) else g for g in params]
        tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
        fused = bool(tensors) and all(p.is_cuda and p.is_floating_point() for p in tensors)
        return cls(groups, lr=self.lr, betas=tuple(self.betas), eps=self.eps, weight_decay=self.weight_decay,
                   **({"fused": True} if fused else {}))


class Objective:
    """An ordered list of phases plus any running state they keep (e.g. path-length mean).

    Families subclass it or use it directly. Running state must be tensors returned by
    :meth:`state_dict` so that resume is exact.
    """

    def __init__(self, phases: list[Phase], optimizers: Mapping[str, OptimizerSpec]):
        missing = {p.module for p in phases} - set(optimizers)
        if missing:
            raise ValueError(f"phases update modules without an optimizer spec: {sorted(missing)}")
        self.phases = list(phases)
        self.optimizers = dict(optimizers)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"objective has no state but the checkpoint holds {sorted(state)}")

    def to(self, device: torch.device) -> Objective:
        return self

    def compile_targets(self, modules: Mapping[str, nn.Module]) -> list[nn.Module]:
        """The modules whose calls ``trainer.compile`` compiles: those the phase losses call.

        By default every module a phase updates. An objective that calls submodules directly
        (StyleGAN2: ``G.mapping`` and ``G.synthesis``) names those instead."""
        return [modules[name] for name in dict.fromkeys(p.module for p in self.phases)]


class Schedule:
    """Maps images seen to training state (resolution level, fade-in alpha, batch size...).

    ``state(images_seen)`` returns a plain dict; the trainer passes it to every phase through
    :class:`StepContext` and reads two optional keys itself: ``batch_size`` (per-level batch
    size) and ``log`` (a dict of scalars to log, e.g. ``{"resolution": 16, "alpha": 0.4}``).
    A schedule is a pure function of images seen, so resume needs no extra state.
    """

    def state(self, images_seen: int) -> dict[str, Any]:
        return {}


@dataclass
class EMASpec:
    """Exponential moving average of a module (Karras et al. 2018; StyleGAN2-ADA App. B).

    ``half_life_kimg`` is the number of thousands of images over which a weight's
    contribution halves; ``rampup`` (or None) caps it at ``rampup * images_seen`` early on.

    BigGAN-PyTorch's form (``utils.ema``): ``decay`` is a fixed per-step beta (0.9999) that
    replaces the half-life, and until ``start_kimg`` thousand images have been seen beta is 0,
    so the average is a copy of the module (its ``ema_start``, counted in iterations there:
    ``start_kimg = ema_start * images per step / 1000``).
    """

    module: str = "G"
    half_life_kimg: float = 10.0
    rampup: float | None = 0.05
    start_kimg: float = 0.0
    decay: float | None = None

    def beta(self, batch_size: int, images_seen: int) -> float:
        if images_seen < self.start_kimg * 1000.0:
            return 0.0
        if self.decay is not None:
            return float(self.decay)
        half_life = self.half_life_kimg * 1000.0
        if self.rampup is not None:
            half_life = min(half_life, images_seen * self.rampup)
        return 0.5 ** (batch_size / max(half_life, 1e-8))


SampleFn = Callable[..., torch.Tensor]


@dataclass
class Bundle:
    """What a registry entry builds. See the module docstring."""

    modules: dict[str, nn.Module]
    objective: Objective
    sample: SampleFn  # sample(modules, z_or_n, *, c=None, generator=None, **opts) -> images
    schedule: Schedule | None = None
    ema: EMASpec | None = None
    family: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # resolution, channels, c_dim, z_dim...
    # Extra keyword arguments for ``sample`` at a schedule state (ProGAN: level and alpha).
    sample_opts: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None

    @property
    def resolution(self) -> int:
        return int(self.info["resolution"])

    @property
    def channels(self) -> int:
        return int(self.info["channels"])

    @property
    def c_dim(self) -> int:
        return int(self.info.get("c_dim", 0))


def sample_gan(
    modules: Mapping[str, nn.Module],
    n: int | None = None,
    *,
    z: torch.Tensor | None = None,
    c: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    module: str = "G",
    **opts: Any,
) -> torch.Tensor:
    """Draw images from a GAN generator: ``z ~ N(0, I)`` then ``G(z, c, **opts)``.

    ``z`` may be passed directly (fixed latents); otherwise ``n`` latents are drawn with
    ``generator`` (a CPU generator keeps the draws identical on every device).
    """
    G = modules[module]
    device = next(G.parameters()).device
    if z is None:
        if n is None:
            raise ValueError("sample_gan needs n or z")
        z = torch.randn(n, G.z_dim, generator=generator)
    z = z.to(device)
    if c is not None:
        c = c.to(device)
    elif getattr(G, "c_dim", 0) > 0:
        c = torch.randint(0, G.c_dim, (z.shape[0],), generator=generator).to(device)
    return G(z, c, **opts)


def gan_bundle(
    G: nn.Module,
    D: nn.Module,
    objective: Objective,
    *,
    ema: EMASpec | None,
    schedule: Schedule | None = None,
    sample_opts: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
) -> Bundle:
    """The bundle of a two-player GAN, drawn with :func:`sample_gan`.

    ``info`` is read from the generator's attributes (``img_resolution``, ``img_channels``,
    ``c_dim``, ``z_dim`` and, for style-based generators, ``w_dim`` and ``num_ws``).
    """
    info: dict[str, Any] = {
        "resolution": int(G.img_resolution),
        "channels": int(G.img_channels),
        "c_dim": int(G.c_dim),
        "z_dim": int(G.z_dim),
    }
    for extra in ("w_dim", "num_ws"):
        if hasattr(G, extra):
            info[extra] = int(getattr(G, extra))
    return Bundle(
        modules={"G": G, "D": D},
        objective=objective,
        sample=sample_gan,
        schedule=schedule,
        ema=ema,
        sample_opts=sample_opts,
        info=info,
    )


def sample_reconstruction(
    modules: Mapping[str, nn.Module],
    n: int | None = None,
    *,
    reals: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    module: str = "G",
    **opts: Any,
) -> torch.Tensor:
    """Reconstruct ``reals`` [N, C, H, W] in ``[-1, 1]`` with an autoencoder ``G(img) -> (img_rec, ...)``.

    Without ``reals``, ``n`` images are decoded from codes drawn uniformly (with ``generator``): an
    autoencoder has no prior of its own (a stage-2 prior bundle samples meaningful codes). GAN options
    (``z``, ``c``) are ignored.
    """
    G = modules[module]
    device = next(G.parameters()).device
    if reals is None:
        if n is None:
            raise ValueError("sample_reconstruction needs reals=[N, C, H, W] (or n for uniformly drawn codes)")
        h, w = G.code_shape
        idx = torch.randint(0, int(G.n_embed), (n, h, w), generator=generator)  # [N, h, w]
        return G.decode_indices(idx.to(device))
    return G(reals.to(device))[0]


def autoencoder_bundle(G: nn.Module, D: nn.Module, objective: Objective, *, ema: EMASpec | None = None) -> Bundle:
    """The bundle of a (vector-quantized) autoencoder trained against ``D`` (VQ-GAN, ViT-VQGAN stage 1).

    ``info["kind"] == "autoencoder"`` tells tools (trainer sample grids, eval) to show reconstructions of
    real images; it also records ``n_embed`` and ``code_shape`` (the code grid, for a stage-2 prior).
    """
    info: dict[str, Any] = {
        "kind": "autoencoder",
        "resolution": int(G.img_resolution),
        "channels": int(G.img_channels),
        "c_dim": 0,
        "z_dim": 0,
        "n_embed": int(G.n_embed),
        "embed_dim": int(G.embed_dim),
        "code_shape": tuple(int(s) for s in G.code_shape),
    }
    return Bundle(modules={"G": G, "D": D}, objective=objective, sample=sample_reconstruction, ema=ema, info=info)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def is_power_of_two(x: int) -> bool:
    return x >= 1 and 2 ** int(round(math.log2(x))) == x
