"""The objective of vector-quantized autoencoders trained against a discriminator (stage 1).

VQ-GAN (Esser et al. 2021, Sec. 3.1, Eq. 4-7), following taming-transformers'
``VQLPIPSWithDiscriminator``:

- ``L_rec = rec_weight * |x - x_rec| + perceptual_weight * LPIPS(x, x_rec)`` (means over pixels and
  images; ``rec_loss="l2"`` squares the pixel term, as ViT-VQGAN);
- ``L_GAN = -mean(D(x_rec))`` (the generator side of the hinge loss);
- ``lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + 1e-4)`` at the decoder's last layer
  ``G_L`` (Eq. 7), clamped to ``[0, 1e4]``, detached, times ``disc_weight``;
- ``L_AE = L_rec + disc_factor * lambda * L_GAN + codebook_weight * L_VQ`` where ``disc_factor`` is 0
  before ``disc_start`` (taming's ``adopt_weight``);
- ``L_D = disc_factor * 0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(x_rec))))`` (hinge) or the
  ``vanilla`` softplus form.

Phases: ``AE`` (module ``G``) every step and ``D`` (module ``D``) from ``disc_start`` on. Before
``disc_start`` taming multiplies both adversarial terms by 0; here they are skipped (same updates,
less compute). The D phase reconstructs the batch again with the just-updated autoencoder, as
taming's per-optimizer ``training_step`` does, in eval mode and without gradients, so that the
quantizer's running statistics (EMA codebooks, dead-code counters) see each batch once.

``G`` follows the autoencoder convention: ``G(img) -> (img_rec, QuantizerOutput)`` and
``G.last_layer`` (see ``docs/models/vqgan.md``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..bundle import Batch, Objective, OptimizerSpec, Phase, StepContext
from ..metrics.lpips_distance import DistanceFn
from .functional import logit_laplace_nll
from .perceptual import move_perceptual

__all__ = ["AutoencoderObjective", "adaptive_weight", "hinge_d_loss", "vanilla_d_loss"]


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """taming's hinge loss: ``0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_rec)))``."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def vanilla_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """taming's logistic loss: ``0.5 * (mean softplus(-D(x)) + mean softplus(D(x_rec)))``."""
    return 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


D_LOSSES = {"hinge": hinge_d_loss, "vanilla": vanilla_d_loss}


def adaptive_weight(nll: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor, *,
                    disc_weight: float = 1.0) -> torch.Tensor:
    """VQ-GAN Eq. 7: ``disc_weight * clamp(||grad nll|| / (||grad g_loss|| + 1e-4), 0, 1e4)``, detached."""
    nll_grad = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    w = nll_grad.float().norm() / (g_grad.float().norm() + 1e-4)
    return torch.clamp(w, 0.0, 1e4).detach() * disc_weight


class AutoencoderObjective(Objective):
    """Phases ``AE`` and ``D`` of a VQ autoencoder; see the module docstring for the terms.

    Args:
        optim_G, optim_D: optimizer specs (taming: Adam, betas (0.5, 0.9), batch-scaled lr).
        rec_loss: ``"l1"`` (VQ-GAN) or ``"l2"`` (ViT-VQGAN) pixel term, weighted by ``rec_weight``.
        perceptual_weight, perceptual: LPIPS weight and distance ``(x, x_rec) -> [N]`` (needed if > 0).
        codebook_weight: weight of the quantizer loss.
        disc_weight: multiplies the adaptive weight (or is the GAN weight when ``adaptive_weight=False``).
        disc_start: optimizer step at which the adversarial terms and D training start.
        disc_factor: weight of both adversarial terms once started (taming's ``disc_factor``).
        d_loss: ``"hinge"`` or ``"vanilla"``.
        logit_laplace_weight: weight of :func:`ganzoo.losses.functional.logit_laplace_nll` (ViT-VQGAN
            Sec. 3.3; 0 = off). Its location is read from the reconstruction in pixel space, so it agrees
            with the L2 term on where the optimum is.
    """

    def __init__(
        self,
        *,
        optim_G: OptimizerSpec,
        optim_D: OptimizerSpec,
        rec_loss: str = "l1",
        rec_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        perceptual: DistanceFn | None = None,
        codebook_weight: float = 1.0,
        disc_weight: float = 1.0,
        adaptive_weight: bool = True,
        disc_start: int = 0,
        disc_factor: float = 1.0,
        d_loss: str = "hinge",
        logit_laplace_weight: float = 0.0,
    ):
        if rec_loss not in ("l1", "l2"):
            raise ValueError(f"rec_loss={rec_loss!r}; use 'l1' (VQ-GAN) or 'l2' (ViT-VQGAN)")
        if d_loss not in D_LOSSES:
            raise ValueError(f"d_loss={d_loss!r}; use one of {sorted(D_LOSSES)}")
        if perceptual_weight > 0 and perceptual is None:
            raise ValueError("perceptual_weight > 0 needs a perceptual distance (ganzoo.losses.perceptual)")
        if disc_start < 0:
            raise ValueError(f"disc_start={disc_start} must be >= 0 (an optimizer step)")
        self.rec_loss, self.rec_weight = rec_loss, float(rec_weight)
        self.perceptual_weight = float(perceptual_weight)
        self.perceptual = perceptual if self.perceptual_weight > 0 else None
        self.codebook_weight, self.disc_weight = float(codebook_weight), float(disc_weight)
        self.use_adaptive_weight = bool(adaptive_weight)
        self.disc_start, self.disc_factor = int(disc_start), float(disc_factor)
        self.d_loss_name, self.d_loss_fn = d_loss, D_LOSSES[d_loss]
        self.logit_laplace_weight = float(logit_laplace_weight)
        phases = [
            Phase("AE", "G", self.ae_step),
            Phase("D", "D", self.d_step, active=self.disc_active),
        ]
        super().__init__(phases, {"G": optim_G, "D": optim_D})

    def to(self, device: torch.device) -> AutoencoderObjective:
        move_perceptual(self.perceptual, device)
        return self

    def disc_active(self, ctx: StepContext) -> bool:
        """taming's ``adopt_weight``: the adversarial terms count from step ``disc_start`` on."""
        return ctx.step >= self.disc_start and self.disc_factor > 0

    # -- phases --------------------------------------------------------------------------------
    def ae_step(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        G = ctx.modules["G"]
        x = batch.img
        x_rec, q = G(x)
        diff = x.float() - x_rec.float()
        pixel = diff.abs().mean() if self.rec_loss == "l1" else diff.square().mean()
        nll = self.rec_weight * pixel
        logs: dict[str, Any] = {"loss/rec": pixel.detach()}
        if self.perceptual is not None:
            p = self.perceptual(x, x_rec).float().mean()
            nll = nll + self.perceptual_weight * p
            logs["loss/perceptual"] = p.detach()
        if self.logit_laplace_weight > 0:
            ll = logit_laplace_nll(x, x_rec)
            nll = nll + self.logit_laplace_weight * ll
            logs["loss/logit_laplace"] = ll.detach()
        loss = nll + self.codebook_weight * q.loss.float()
        logs.update({"loss/codebook": q.loss.detach(), "vq/perplexity": q.perplexity, "vq/usage": q.usage})
        if self.disc_active(ctx):
            logits_fake = ctx.modules["D"](x_rec)
            g_loss = -logits_fake.float().mean()
            if self.use_adaptive_weight:
                weight = adaptive_weight(nll, g_loss, G.last_layer, disc_weight=self.disc_weight)
            else:
                weight = torch.tensor(self.disc_weight, device=x.device)
            loss = loss + self.disc_factor * weight * g_loss
            logs.update({"loss/adv": g_loss.detach(), "adaptive_weight": weight.detach()})
        logs["loss/AE"] = loss.detach()
        return loss, logs

    def d_step(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        G, D = ctx.modules["G"], ctx.modules["D"]
        x = batch.img
        was_training = G.training
        G.eval()
        with torch.no_grad():
            x_rec = G(x)[0]
        G.train(was_training)
        # Separate calls as taming: BatchNorm normalises reals and reconstructions on their own.
        real_logits = D(x.detach())
        fake_logits = D(x_rec.detach())
        loss = self.disc_factor * self.d_loss_fn(real_logits.float(), fake_logits.float())
        return loss, {"loss/D": loss.detach(), "D/real": real_logits.detach().float().mean(),
                      "D/fake": fake_logits.detach().float().mean()}
