"""Objectives: the ordered training phases of a family (see ``ganzoo.bundle``).

:class:`AdversarialObjective` covers the classic two-player GANs. Families plug in through
hooks instead of copying the loop:

- ``g_kwargs(ctx)``: extra keyword arguments for ``G`` and ``D`` taken from the schedule state
  (ProGAN: ``level`` and ``alpha``).
- ``prepare_reals(img, ctx)``: how real images are shown to D (ProGAN: downscaled to the
  current resolution and blended during fade-in).
- ``extra_phases``: more phases (StyleGAN2: lazy path-length regularisation of G).
- ``g_penalty(ctx) -> (loss, logs)``: a term added to G's main loss (BigGAN: orthogonal
  regularisation of G's weights). The trainer divides each micro-batch loss by
  ``trainer.accumulate`` and sums them, so the term enters G's gradient once per step.
- ``augment``: set by :func:`ganzoo.augment.attach_augment` (DiffAugment, ADA); every D call goes
  through :meth:`AdversarialObjective.discriminate`, which shows D the augmented images.

Phase order follows StyleGAN2-ADA's ``Gmain, Greg, Dmain, Dreg``; ``d_first=True`` puts the D phases
first (``Dmain, Dreg, Gmain, Greg``), as StudioGAN's default ``OPTIMIZATION.d_first``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..bundle import Batch, Objective, OptimizerSpec, Phase, StepContext
from ..training import distributed as dist
from . import functional as L

if TYPE_CHECKING:
    from ..augment import Augmenter

GAN_LOSSES: dict[str, tuple[Callable, Callable]] = {
    "nonsat": (L.nonsat_g, L.nonsat_d),
    "hinge": (L.hinge_g, L.hinge_d),
    "wgan": (L.wgan_g, L.wgan_d),
}


def _no_kwargs(ctx: StepContext) -> dict[str, Any]:
    return {}


def _identity_reals(img: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    return img


class AdversarialObjective(Objective):
    """Generator/discriminator objective with optional R1, WGAN-GP and drift terms.

    Args:
        loss: ``nonsat`` (logistic), ``hinge`` or ``wgan``.
        optim_G, optim_D: optimizer specs. With a lazy R1 (``r1_interval > 1``) D's Adam is
            corrected for laziness (StyleGAN2 App. B) here, not by the caller.
        r1_gamma: weight of R1; the penalty added is ``gamma / 2 * ||grad D(x)||^2``.
        r1_interval: 1 = in the main D phase; k > 1 = a separate lazy ``Dreg`` phase every k
            steps (its loss multiplied by k by the trainer).
        gp_lambda: WGAN-GP weight (10 in Gulrajani et al.); ``drift``: ProGAN's epsilon_drift.
        d_repeats: D steps per G step (BigGAN: 2), each on a fresh real batch.
        g_kwargs, prepare_reals: hooks, see the module docstring.
        extra_phases: inserted after ``Gmain`` (e.g. ``Greg``).
        g_penalty: optional term added to the ``Gmain`` loss, see the module docstring.
        d_first: run D's phases before G's within a step (default: G first).

    State (``state_dict``): the augmenter's, under ``augment.`` (ADA's ``p`` and its statistic).
    """

    def __init__(
        self,
        *,
        loss: str = "nonsat",
        optim_G: OptimizerSpec,
        optim_D: OptimizerSpec,
        r1_gamma: float = 0.0,
        r1_interval: int = 1,
        gp_lambda: float = 0.0,
        drift: float = 0.0,
        d_repeats: int = 1,
        g_kwargs: Callable[[StepContext], dict[str, Any]] = _no_kwargs,
        prepare_reals: Callable[[torch.Tensor, StepContext], torch.Tensor] = _identity_reals,
        extra_phases: list[Phase] | None = None,
        g_optim_interval: int = 1,
        g_penalty: Callable[[StepContext], tuple[torch.Tensor, dict[str, Any]]] | None = None,
        d_first: bool = False,
    ):
        if loss not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {loss!r}; choose one of {sorted(GAN_LOSSES)}")
        self.loss_name = loss
        self.g_loss_fn, self.d_loss_fn = GAN_LOSSES[loss]
        self.r1_gamma, self.r1_interval = float(r1_gamma), int(r1_interval)
        self.gp_lambda, self.drift = float(gp_lambda), float(drift)
        self.g_kwargs, self.prepare_reals = g_kwargs, prepare_reals
        self.g_penalty = g_penalty
        self.augment: Augmenter | None = None  # set by ganzoo.augment.attach_augment
        lazy_r1 = self.r1_gamma > 0 and self.r1_interval > 1
        g_phases = [Phase("Gmain", "G", self.g_main, needs_batch=False), *(extra_phases or [])]
        # R1 inside Dmain (r1_interval 1) and WGAN-GP differentiate D's input gradient: double backward.
        d_main_2nd = self.gp_lambda > 0 or (self.r1_gamma > 0 and not lazy_r1)
        d_phases = [Phase("Dmain", "D", self.d_main, repeats=d_repeats, double_backward=d_main_2nd)]
        if lazy_r1:
            d_phases.append(Phase("Dreg", "D", self.d_reg, interval=self.r1_interval, double_backward=True))
        self.d_first = bool(d_first)
        phases = d_phases + g_phases if self.d_first else g_phases + d_phases
        optimizers = {
            "G": optim_G.lazy(g_optim_interval),
            "D": optim_D.lazy(self.r1_interval if lazy_r1 else 1),
        }
        super().__init__(phases, optimizers)

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.augment is None:
            return {}
        return {f"augment.{k}": v for k, v in self.augment.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        other = sorted(k for k in state if not k.startswith("augment."))
        if other:
            raise ValueError(f"unexpected objective state {other}")
        aug = {k.removeprefix("augment."): v for k, v in state.items() if k.startswith("augment.")}
        # A run resumed with another augment setting (trainer.resume_force) starts that one fresh.
        if self.augment is not None and aug and set(aug) == set(self.augment.state_dict()):
            self.augment.load_state_dict(aug)

    def to(self, device: torch.device) -> AdversarialObjective:
        if self.augment is not None:
            self.augment.to(device)
        return self

    # -- helpers -------------------------------------------------------------------------------
    def generate(self, ctx: StepContext, n: int, **extra: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        G = ctx.modules["G"]
        z = dist.randn(n, G.z_dim, device=ctx.device)  # this rank's rows of the global batch's z
        c = ctx.sample_labels(n)
        return G(z, c, **self.g_kwargs(ctx), **extra), c

    def fakes_for_d(self, ctx: StepContext, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fakes shown to D in ``Dmain`` (a hook: style models update ``w_avg`` here)."""
        return self.generate(ctx, n)

    def discriminate(self, ctx: StepContext, img: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if self.augment is not None:
            img = self.augment(img, ctx)
        return ctx.modules["D"](img, c, **self.g_kwargs(ctx))

    # -- phases --------------------------------------------------------------------------------
    def g_main(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        fake, c = self.generate(ctx, len(batch))
        logits = self.discriminate(ctx, fake, c)
        loss = self.g_loss_fn(logits)
        logs: dict[str, Any] = {"loss/G": loss.detach()}
        if self.g_penalty is not None:
            reg, reg_logs = self.g_penalty(ctx)
            loss = loss + reg
            logs.update(reg_logs)
        return loss, logs

    def d_main(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        n = len(batch)
        with torch.no_grad():
            fake, c_fake = self.fakes_for_d(ctx, n)
        reals = self.prepare_reals(batch.img, ctx)
        r1_now = self.r1_gamma > 0 and self.r1_interval <= 1
        if r1_now:
            reals = reals.detach().requires_grad_(True)
        real_logits = self.discriminate(ctx, reals, batch.label)
        fake_logits = self.discriminate(ctx, fake, c_fake)
        loss = self.d_loss_fn(real_logits, fake_logits)
        logs: dict[str, Any] = {
            "loss/D": loss.detach(),
            "D/real": real_logits.detach().mean(),
            "D/fake": fake_logits.detach().mean(),
        }
        if self.augment is not None:
            logs.update(self.augment.observe_real(real_logits, ctx))
        if self.gp_lambda > 0:
            gp = L.gradient_penalty(
                lambda x: self.discriminate(ctx, x, batch.label), reals, fake
            )
            loss = loss + self.gp_lambda * gp
            logs["loss/gp"] = gp.detach()
        if self.drift > 0:
            drift = L.drift_penalty(real_logits)
            loss = loss + self.drift * drift
            logs["loss/drift"] = drift.detach()
        if r1_now:
            r1 = L.r1_penalty(real_logits, reals)
            loss = loss + 0.5 * self.r1_gamma * r1
            logs["loss/r1"] = r1.detach()
        return loss, logs

    def d_reg(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        reals = self.prepare_reals(batch.img, ctx).detach().requires_grad_(True)
        real_logits = self.discriminate(ctx, reals, batch.label)
        r1 = L.r1_penalty(real_logits, reals)
        # The "+ 0 * logits" keeps every D output in the graph (matches StyleGAN2-ADA's DDP trick).
        loss = 0.5 * self.r1_gamma * r1 + 0.0 * real_logits.mean()
        return loss, {"loss/r1": r1.detach()}


def optimizer_spec(cfg: Mapping[str, Any] | None, default: OptimizerSpec) -> OptimizerSpec:
    """An :class:`OptimizerSpec` from a yaml mapping, falling back to ``default`` per field."""
    if not cfg:
        return default
    allowed = {"lr", "betas", "eps", "weight_decay", "kind"}
    unknown = set(cfg) - allowed
    if unknown:
        raise ValueError(f"unknown optimizer option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    merged = {**default.__dict__, **dict(cfg)}
    merged["betas"] = tuple(float(b) for b in merged["betas"])
    return OptimizerSpec(**merged)


class StyleObjective(AdversarialObjective):
    """Adversarial objective for style-based generators (StyleGAN, StyleGAN2).

    The generator must expose ``mapping(z, c, *, update_w_avg=False) -> ws [N, num_ws, w_dim]``,
    ``synthesis(ws, **opts) -> img`` and ``num_ws``. Adds:

    - style-mixing regularisation (StyleGAN Sec. 3.1): with probability ``style_mixing_prob``
      the ws from layer ``cutoff`` on come from a second latent, ``cutoff ~ U[1, active_ws)``;
    - the tracked ``w_avg`` is updated by every training-mode mapping of the main latents, in
      every phase (StyleGAN2-ADA's ``MappingNetwork``; the second, mixing latents do not update it);
    - optional lazy path-length regularisation ``Greg`` (StyleGAN2 Sec. 3.2): every
      ``pl_interval`` steps on ``batch / pl_batch_shrink`` samples, weight ``pl_weight``,
      running mean with ``pl_decay``;
    - ``g_reg_interval``: the interval G's Adam is corrected for (App. B). ``None`` = ``pl_interval``
      when path-length regularisation is on, else no correction. StyleGAN2-ADA keeps 4 even with
      ``pl_weight=0`` (its ``cifar`` config), so StyleGAN2 passes it explicitly.

    ``active_ws(ctx)`` gives the number of ws in use (fewer while a progressive model grows).
    """

    def __init__(
        self,
        *,
        style_mixing_prob: float = 0.9,
        pl_weight: float = 0.0,
        pl_interval: int = 4,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        active_ws: Callable[[StepContext], int] | None = None,
        g_reg_interval: int | None = None,
        **kwargs: Any,
    ):
        self.style_mixing_prob = float(style_mixing_prob)
        self.pl_weight, self.pl_interval = float(pl_weight), int(pl_interval)
        self.pl_batch_shrink, self.pl_decay = int(pl_batch_shrink), float(pl_decay)
        self.active_ws = active_ws
        self.pl_mean = torch.zeros([])
        extra = []
        lazy_pl = self.pl_weight > 0
        if lazy_pl:
            extra.append(Phase("Greg", "G", self.g_reg, interval=self.pl_interval, needs_batch=False,
                               double_backward=True))
        if g_reg_interval is None:
            g_reg_interval = self.pl_interval if lazy_pl else 1
        super().__init__(extra_phases=extra, g_optim_interval=int(g_reg_interval), **kwargs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**super().state_dict(), "pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if "pl_mean" in state:
            self.pl_mean = state["pl_mean"].to(self.pl_mean.device).clone()
        super().load_state_dict({k: v for k, v in state.items() if k != "pl_mean"})

    def to(self, device: torch.device) -> StyleObjective:
        self.pl_mean = self.pl_mean.to(device)
        super().to(device)
        return self

    def compile_targets(self, modules: Mapping[str, nn.Module]) -> list[nn.Module]:
        """``G.mapping`` and ``G.synthesis`` (the phases call them, never ``G`` itself) and ``D``."""
        G = modules["G"]
        return [G.mapping, G.synthesis, modules["D"]]

    def mapping(self, ctx: StepContext, z: torch.Tensor, c: torch.Tensor | None, *, update_w_avg: bool) -> torch.Tensor:
        G = ctx.modules["G"]
        ws = G.mapping(z, c, update_w_avg=update_w_avg)  # [N, num_ws, w_dim]
        if self.style_mixing_prob > 0:
            n_active = self.active_ws(ctx) if self.active_ws is not None else ws.shape[1]
            if n_active > 1:
                cutoff = int(torch.randint(1, n_active, ()))
                if float(torch.rand(())) < self.style_mixing_prob:
                    ws2 = G.mapping(dist.randn_like(z), c, update_w_avg=False)
                    ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return ws

    def generate(self, ctx: StepContext, n: int, *, update_w_avg: bool = True, return_ws: bool = False, **extra):
        G = ctx.modules["G"]
        z = dist.randn(n, G.z_dim, device=ctx.device)  # this rank's rows of the global batch's z
        c = ctx.sample_labels(n)
        ws = self.mapping(ctx, z, c, update_w_avg=update_w_avg)
        img = G.synthesis(ws, **self.g_kwargs(ctx), **extra)
        return (img, c, ws) if return_ws else (img, c)

    def g_reg(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        n = max(len(batch) // self.pl_batch_shrink, 1)
        img, _, ws = self.generate(ctx, n, return_ws=True)
        penalty, lengths, new_mean = L.path_length_penalty(img, ws, self.pl_mean, decay=self.pl_decay)
        self.pl_mean = new_mean.detach()
        # "+ 0 * img" keeps the synthesis output in the graph (StyleGAN2-ADA's DDP trick).
        loss = penalty.mean() * self.pl_weight + 0.0 * img.mean()
        return loss, {"loss/pl": penalty.mean().detach(), "pl/length": lengths.mean().detach()}
