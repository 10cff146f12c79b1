"""GAN inversion by optimisation: find the latent whose image is closest to a target.

The default follows StyleGAN2-ADA's projector (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data", ``projector.py`` of NVlabs/stylegan2-ada-pytorch at d72cc7d; the method is
StyleGAN2's, Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", Sec. 5 and
App. D), with every constant checked against that file:

- start at the mean ``w_avg`` of 10,000 mapped samples (``z`` drawn with seed 123);
  ``w_std = sqrt(sum ||w_i - w_avg||^2 / 10,000)``, the RMS distance of a sample from the mean;
- Adam, ``lr 0.1``, betas ``(0.9, 0.999)``; ``lr(t) = 0.1 * min(1, t / 0.05) * (0.5 - 0.5 cos(pi *
  min(1, (1 - t) / 0.25)))`` with ``t = step / steps`` (5 % ramp-up, cosine ramp-down over the last 25 %);
- Gaussian noise added to ``w`` at every step, ``w_std * 0.05 * max(0, 1 - t / 0.75)^2``;
- the per-layer noise images (``noise_const``) drawn afresh, optimised jointly, penalised by the
  multi-scale autocorrelation regulariser (weight ``1e5``: squared means of each image times itself
  shifted by one pixel along x and y, on a pyramid halved down to 8x8) and renormalised to zero mean
  and unit variance after every step;
- 1000 steps.

Spaces: ``w`` (one ``w`` broadcast to every layer, the official one), ``w+`` (one ``w`` per layer, started
at the mean: Abdal et al. 2019, "Image2StyleGAN", Sec. 3-4), and ``z`` for every generator: the same
schedule and distance on ``z``, started at the mean of the 10,000 ``z`` samples with ``z_std`` computed
the same way; a conditional generator gets a fixed class and, with ``optimize_class``, its class
embedding (``G.class_embedding`` / ``G(z, embedding=e)``, the protocol of ``sampling/class_interp.py``;
BigGAN's shared embedding) optimised too.

Several targets are projected together as a batch: every image has its own latent and noise images,
and the loss is their sum, so (Adam being element-wise) each image follows the same path as alone
except for the draws of the ``w`` noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..sampling.class_interp import has_class_embedding
from ..sampling.truncation import is_style_generator

SPACES = ("w", "w+", "z")


@dataclass
class ProjectConfig:
    """The projector's schedule (StyleGAN2-ADA ``projector.py`` defaults)."""

    steps: int = 1000
    lr: float = 0.1
    lr_rampup: float = 0.05  # fraction of steps
    lr_rampdown: float = 0.25  # fraction of steps
    latent_noise: float = 0.05  # initial_noise_factor, times the latent's std
    latent_noise_ramp: float = 0.75  # fraction of steps over which the latent noise decays to 0
    noise_reg: float = 1e5  # regularize_noise_weight
    avg_samples: int = 10_000  # samples for the mean latent and its std
    avg_seed: int = 123
    seed: int = 0  # the noise images and the latent-noise draws
    frames: int = 50  # images kept for the optimisation GIF


@dataclass
class Projection:
    """What :func:`project` found, all on CPU. ``latent``: ``[N, z_dim]``, ``[N, w_dim]`` or ``[N, num_ws, w_dim]``."""

    space: str
    latent: Tensor
    images: Tensor  # [N, C, H, W] the projections (no latent noise)
    start_images: Tensor  # [N, C, H, W] the images of the starting (mean) latent
    distance: Tensor  # [N] final distance to the targets
    start_distance: Tensor  # [N]
    history: Tensor  # [steps, N] the distance at each step (as optimised: with the latent noise)
    frames: list[tuple[int, Tensor]] = field(default_factory=list)  # (step, images [N, C, H, W])
    noise: dict[str, Tensor] = field(default_factory=dict)  # buffer name -> [N, 1, R, R]
    embedding: Tensor | None = None  # [N, d] the optimised class embedding


def learning_rate(step: int, cfg: ProjectConfig) -> float:
    """``lr`` at ``step``: linear ramp-up over ``lr_rampup``, cosine ramp-down over the last ``lr_rampdown``."""
    t = step / cfg.steps
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return cfg.lr * ramp * min(1.0, t / cfg.lr_rampup)


def latent_noise_scale(step: int, cfg: ProjectConfig, std: float | Tensor) -> float | Tensor:
    """Std of the noise added to the latent at ``step``: ``std * latent_noise * max(0, 1 - t / ramp)^2``."""
    t = step / cfg.steps
    return std * cfg.latent_noise * max(0.0, 1.0 - t / cfg.latent_noise_ramp) ** 2


def noise_regularization(bufs: list[Tensor]) -> Tensor:
    """Multi-scale autocorrelation penalty, per image ``[N]``, of noise images ``[N, 1, R, R]``.

    At each scale (halved by 2x2 averaging while larger than 8x8) the squared mean of the image times
    itself rolled by one pixel, along x and along y (StyleGAN2 App. D; ``projector.py``).
    """
    total = bufs[0].new_zeros(bufs[0].shape[0])
    for noise in bufs:
        while True:
            total = total + (noise * torch.roll(noise, shifts=1, dims=3)).mean(dim=(1, 2, 3)) ** 2
            total = total + (noise * torch.roll(noise, shifts=1, dims=2)).mean(dim=(1, 2, 3)) ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return total


@torch.no_grad()
def normalize_noise_(bufs: list[Tensor]) -> None:
    """Each image of each buffer to zero mean and unit variance, in place."""
    for buf in bufs:
        buf -= buf.mean(dim=(1, 2, 3), keepdim=True)
        buf *= buf.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()


def noise_buffers(G: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """The constant noise images of a style generator: ``qualified name -> (owning module, buffer name)``."""
    found = {}
    for mod_name, module in G.named_modules():
        if "noise_const" in getattr(module, "_buffers", {}) and module._buffers["noise_const"] is not None:
            found[f"{mod_name}.noise_const"] = (module, "noise_const")
    return found


@torch.no_grad()
def latent_stats(G: nn.Module, space: str, c: Tensor | None, cfg: ProjectConfig) -> tuple[Tensor, float]:
    """Mean latent ``[latent_dim]`` and its RMS spread from ``cfg.avg_samples`` draws (``projector.py``).

    In ``w``/``w+`` the draws are mapped; ``c`` (one class, or None) conditions the mapping.
    """
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(cfg.avg_seed)
    z = torch.randn(cfg.avg_samples, G.z_dim, generator=gen)  # [S, z_dim]
    if space == "z":
        samples = z
    else:
        chunks = []
        for zz in z.split(1000):
            cc = None if c is None else c[:1].expand(zz.shape[0]).to(device)
            ws = G.mapping(zz.to(device), cc)
            chunks.append((ws[:, 0] if ws.dim() == 3 else ws).float().cpu())  # [S, w_dim]
        samples = torch.cat(chunks)
    mean = samples.mean(0)
    std = float(((samples - mean).square().sum() / samples.shape[0]).sqrt())
    return mean, std


def check_space(G: nn.Module, space: str, what: str = "this model") -> None:
    if space not in SPACES:
        raise ConfigError(f"--space {space!r} is not known; use one of {', '.join(SPACES)}")
    if space in ("w", "w+") and not is_style_generator(G):
        raise ConfigError(f"--space {space} needs a style generator (stylegan, stylegan2); {what} has no W space: "
                          "use --space z")


def project(
    G: nn.Module,
    targets: Tensor,
    distance: Callable[[Tensor, Tensor], Tensor],
    *,
    space: str = "w",
    c: Tensor | None = None,
    optimize_class: bool = False,
    cfg: ProjectConfig | None = None,
    opts: dict[str, Any] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Projection:
    """Project ``targets`` ``[N, C, H, W]`` (in ``[-1, 1]``) into ``G``'s ``space``; see the module docstring.

    ``opts`` go to the generator (a progressive model's ``level``/``alpha``). ``progress(step, mean distance)``
    is called after every step.
    """
    cfg = cfg or ProjectConfig()
    opts = dict(opts or {})
    check_space(G, space)
    if cfg.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {cfg.steps}")
    device = next(G.parameters()).device
    n = targets.shape[0]
    targets = targets.to(device, torch.float32)
    c = None if c is None else c.to(device)
    style = is_style_generator(G)
    gen = torch.Generator().manual_seed(cfg.seed)

    # The mean latent and its spread per image: of each image's own class when the mapping takes classes.
    per_class = c is not None and space != "z"
    stats = {k: latent_stats(G, space, c[i : i + 1], cfg) for i, k in enumerate(c.tolist())} if per_class else {}
    mean_std = [stats[k] for k in c.tolist()] if per_class else [latent_stats(G, space, c, cfg)] * n
    means = torch.stack([m for m, _ in mean_std])  # [N, D]
    # One spread (a float, as projector.py), or one per image [N, 1(, 1)] when the classes differ.
    std: float | Tensor = mean_std[0][1] if len({sd for _, sd in mean_std}) == 1 else \
        torch.tensor([sd for _, sd in mean_std]).view(n, *[1] * (2 if space == "w+" else 1))
    if space == "w+":
        start = means.unsqueeze(1).repeat(1, G.num_ws, 1)  # [N, num_ws, w_dim]
    else:
        start = means.clone()  # [N, z_dim | w_dim]
    latent = start.clone().to(device).requires_grad_(True)
    params = [latent]
    embedding = None
    if optimize_class:
        if c is None or not has_class_embedding(G):
            raise ConfigError("--optimize-class needs a class-conditional generator with a class embedding "
                              "(biggan, biggan_deep, sagan, dcgan with classes) and a class (--class K, or the "
                              "dataset labels with --from-data)")
        with torch.no_grad():
            embedding = G.class_embedding(c).detach().float().clone()
        embedding.requires_grad_(True)
        params.append(embedding)

    # The noise images: one per image and layer, drawn afresh (projector.py), swapped in for the buffers.
    owners = noise_buffers(G) if style else {}
    originals = {name: mod._buffers[key] for name, (mod, key) in owners.items()}
    bufs: dict[str, Tensor] = {}
    for name, orig in originals.items():
        buf = torch.randn(n, *orig.shape[1:], generator=gen).to(device)  # [N, 1, R, R]
        bufs[name] = buf.requires_grad_(True)
    optimizer = torch.optim.Adam(params + list(bufs.values()), lr=cfg.lr, betas=(0.9, 0.999))

    def render(x: Tensor) -> Tensor:
        if space in ("w", "w+"):
            ws = x.unsqueeze(1).repeat(1, G.num_ws, 1) if space == "w" else x  # [N, num_ws, w_dim]
            return G.synthesis(ws, noise_mode="const", **opts)
        if style:
            return G.synthesis(G.mapping(x, c), noise_mode="const", **opts)
        if embedding is not None:
            return G(x, None, embedding=embedding, **opts)
        return G(x, c, **opts)

    history = torch.zeros(cfg.steps, n)
    frames: list[tuple[int, Tensor]] = []
    every = max(1, cfg.steps // max(1, cfg.frames))
    try:
        for name, (mod, key) in owners.items():
            mod._buffers[key] = bufs[name]
        with torch.no_grad():
            start_images = render(latent).float()
            start_distance = distance(start_images, targets).float().cpu()
        used = list(bufs.values())
        for step in range(cfg.steps):
            lr = learning_rate(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            scale = latent_noise_scale(step, cfg, std)  # a float, or [N, 1(, 1)]: each image's own spread
            jitter = (torch.randn(latent.shape, generator=gen) * scale).to(device)
            images = render(latent + jitter).float()
            dist = distance(images, targets)  # [N]
            loss = dist.sum()
            if used:
                loss = loss + cfg.noise_reg * noise_regularization(used).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            normalize_noise_(used)
            history[step] = dist.detach().float().cpu()
            if step % every == 0 or step == cfg.steps - 1:
                frames.append((step, images.detach().cpu()))
            if progress is not None:
                progress(step, float(history[step].mean()))
        with torch.no_grad():
            final = render(latent).float()
            final_distance = distance(final, targets).float().cpu()
    finally:
        for name, (mod, key) in owners.items():
            mod._buffers[key] = originals[name]
    return Projection(
        space=space, latent=latent.detach().cpu(), images=final.cpu(), start_images=start_images.cpu(),
        distance=final_distance, start_distance=start_distance, history=history, frames=frames,
        noise={name: b.detach().cpu() for name, b in bufs.items()},
        embedding=None if embedding is None else embedding.detach().cpu(),
    )
