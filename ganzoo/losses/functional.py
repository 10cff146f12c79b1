"""Pure GAN loss functions. Each takes logits/tensors and returns a scalar (mean over batch).

Discriminator logits may be ``[N]`` or PatchGAN maps ``[N, 1, h, w]``; every function averages
over all elements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..training import distributed as dist


def nonsat_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``softplus(-D(G(z)))`` (Goodfellow et al. 2014, Sec. 3)."""
    return F.softplus(-fake_logits).mean()


def nonsat_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic discriminator loss ``softplus(D(G(z))) + softplus(-D(x))``."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def hinge_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss ``-D(G(z))`` (Lim & Ye 2017; SAGAN eq. 6)."""
    return -fake_logits.mean()


def hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss ``relu(1 - D(x)) + relu(1 + D(G(z)))``."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def wgan_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Wasserstein generator loss ``-D(G(z))`` (Arjovsky et al. 2017)."""
    return -fake_logits.mean()


def wgan_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss ``D(G(z)) - D(x)``."""
    return fake_logits.mean() - real_logits.mean()


def drift_penalty(real_logits: torch.Tensor) -> torch.Tensor:
    """ProGAN's drift term ``E[D(x)^2]`` keeping critic outputs near 0 (Karras et al. 2018, App. A.1)."""
    return real_logits.square().mean()


def _grad_sq_norm(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(outputs=outputs.sum(), inputs=inputs, create_graph=True)
    return grad.square().flatten(1).sum(1)  # [N]


def r1_penalty(real_logits: torch.Tensor, real_img: torch.Tensor) -> torch.Tensor:
    """R1 regulariser ``E ||grad_x D(x)||^2`` on real data (Mescheder et al. 2018, eq. 9).

    ``real_img`` must have ``requires_grad=True`` and produced ``real_logits``. The caller
    multiplies by ``gamma / 2``.
    """
    return _grad_sq_norm(real_logits, real_img).mean()


def gradient_penalty(
    critic, real: torch.Tensor, fake: torch.Tensor, *, target: float = 1.0, **critic_kwargs
) -> torch.Tensor:
    """WGAN-GP penalty ``E (||grad D(x_hat)|| - target)^2`` on random interpolates
    (Gulrajani et al. 2017, Alg. 1). The caller multiplies by lambda (10 in the paper)."""
    eps = dist.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    grad_norm = _grad_sq_norm(critic(mixed, **critic_kwargs), mixed).add(1e-12).sqrt()
    return (grad_norm - target).square().mean()


def path_length_penalty(
    img: torch.Tensor, w: torch.Tensor, pl_mean: torch.Tensor, *, decay: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """StyleGAN2 path-length regulariser (Karras et al. 2020, Sec. 3.2, eq. 4).

    ``img = G.synthesis(w)`` with ``w`` ``[N, L, w_dim]`` requiring grad. Draws ``y ~ N(0, I)``
    scaled by ``1 / sqrt(H * W)``, computes ``|| J_w^T y ||_2`` per sample, and penalises its
    squared distance to a running mean ``a`` updated with ``decay``.

    Returns ``(penalty [N], lengths [N], new_pl_mean)``; the caller multiplies by the weight.
    """
    h, w_ = img.shape[2], img.shape[3]
    noise = dist.randn_like(img) / (h * w_) ** 0.5
    (grad,) = torch.autograd.grad(outputs=(img * noise).sum(), inputs=w, create_graph=True)
    lengths = grad.float().square().sum(2).mean(1).sqrt()  # [N], fp32 under bf16 autocast too
    # As the official code: the running mean is not detached inside the penalty (its gradient is
    # scaled by ``decay``); the caller stores ``new_mean.detach()``.
    new_mean = pl_mean.lerp(dist.batch_mean(lengths), decay)  # global batch under torchrun
    penalty = (lengths - new_mean).square()
    return penalty, lengths, new_mean


def orthogonal_regularization(weights, *, strength: float = 1e-4, blacklist=()) -> torch.Tensor:
    """BigGAN's orthogonal regulariser ``strength * sum_W ||W W^T * (1 - I)||_F^2`` (Brock et al. 2019,
    Sec. 3.1, eq. 3: the off-diagonal form, which leaves the row norms free).

    Every weight with at least two dimensions that is not in ``blacklist`` (compared by identity)
    is flattened to ``[out, in * k * k]`` (rows = output units, as BigGAN-PyTorch's ``utils.ortho``).
    The Gram matrices are computed in fp32 with autocast off, so bf16 training regularises the
    same quantity. The gradient of one term is ``4 * strength * (W W^T * (1 - I)) W``;
    BigGAN-PyTorch adds ``2 * beta * (W W^T * (1 - I)) W`` to ``.grad`` directly, i.e. the gradient
    of this function with ``strength = beta / 2`` (see ``ganzoo.models.biggan``).
    """
    total = None
    for W in weights:
        if W.ndim < 2 or any(W is b for b in blacklist):
            continue
        with torch.autocast(device_type=W.device.type, enabled=False):
            m = W.float().flatten(1)  # [out, in * k * k]
            gram = m @ m.t()  # [out, out]
            off = gram * (1.0 - torch.eye(gram.shape[0], device=W.device, dtype=gram.dtype))
            term = off.square().sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("orthogonal_regularization found no weight matrices")
    return strength * total


def logit_laplace_nll(
    target: torch.Tensor,
    reconstruction: torch.Tensor,
    *,
    log_scale: torch.Tensor | float = 0.0,
    eps: float = 0.1,
    reduction: str = "mean",
) -> torch.Tensor:
    """Negative log-likelihood of ``target`` under a logit-Laplace distribution (DALL-E, Ramesh et
    al. 2021, App. A.3; the ``L_Logit-Laplace`` term of ViT-VQGAN, Yu et al. 2022, Sec. 3.3); the
    mean, or per element with ``reduction="none"``.

    Pixels in ``[-1, 1]`` are mapped to ``(eps, 1 - eps)`` by ``phi(x) = (1 - 2 eps) (x + 1) / 2 + eps``
    (DALL-E Eq. 3); the density of ``x`` in ``(0, 1)`` is
    ``f(x | mu, b) = exp(-|logit(x) - mu| / b) / (2 b x (1 - x))``, so the loss per element is
    ``log(2 b x (1 - x)) + |logit(x) - mu| / b`` with ``x = phi(target)``.

    ViT-VQGAN's decoder predicts one value per pixel, so the location is taken from the
    reconstruction itself, ``mu = logit(phi(clamp(reconstruction, -1, 1)))`` (clamped so that
    ``mu`` stays finite; outside ``[-1, 1]`` only the L2 term pulls the output back), and the scale
    ``b = exp(log_scale)`` is 1 unless a decoder predicts it (a tensor broadcastable to the images).
    """
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")

    def phi(x: torch.Tensor) -> torch.Tensor:
        return (1.0 - 2.0 * eps) * (x + 1.0) / 2.0 + eps

    with torch.autocast(device_type=target.device.type, enabled=False):
        x = phi(target.float())
        mu = torch.logit(phi(reconstruction.float().clamp(-1.0, 1.0)))
        log_b = torch.as_tensor(log_scale, device=target.device, dtype=torch.float32)
        nll = (
            torch.log(2.0 * x * (1.0 - x)) + log_b + (torch.logit(x) - mu).abs() * torch.exp(-log_b)
        )
        return nll.mean() if reduction == "mean" else nll
