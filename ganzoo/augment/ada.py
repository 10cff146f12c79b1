"""ADA: adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data").

Two parts:

- :func:`ada_pipeline`: the augmentation pipeline of Sec. 2.3 / App. B (StyleGAN2-ADA's
  ``AugmentPipe``). Each transform is applied to a sample with probability ``multiplier * p``;
  geometric transforms compose into one 3x3 inverse matrix per sample (output pixel -> input
  pixel) and colour transforms into one 4x4 matrix per sample, so every image is resampled
  once and recoloured once. Everything is differentiable with respect to the images.
- :class:`AdaptiveAugment`: the objective's augmenter. It keeps the overfitting heuristic
  ``r_t = E[sign(D(real))]`` (Sec. 3, Eq. 1) over ``interval`` D steps and moves ``p`` by
  ``sign(r_t - target) * images / (speed_kimg * 1000)``, clamped at 0 (``ada_target``,
  ``ada_interval``, ``ada_kimg`` of the official training loop).

Differences from the official code, all deliberate:

- Resampling is ``F.affine_grid`` + bilinear ``F.grid_sample`` with reflection padding at the
  original resolution. The official pipe reflect-pads, upsamples 2x with a sym6 wavelet
  low-pass (upfirdn2d), samples bilinearly, and low-passes back down, which suppresses the
  aliasing that rotations and down-scaling introduce. Ours aliases a little more, and its
  reflection repeats the edge pixel (mirror about the pixel edge) where ``F.pad(mode="reflect")``
  does not.
- A sample that draws no geometric (or no colour) transform is passed through untouched
  (``torch.where``), where the official pipe still filters it. So ``p = 0`` is exactly the
  identity, and no host synchronisation is needed to decide whether to resample.
- One-channel images: hue and saturation are skipped (the official pipe does the same: both
  act orthogonally to the luma axis, which is all a grey image has). Brightness, contrast and
  luma flip act on the grey value through the mean of the RGB rows of the colour matrix, as
  in the official pipe (luma flip negates the image).
- ``r_t`` is gathered from ``Dmain``'s real logits only (the official collector also sees the
  real logits of the lazy R1 step), and it counts the real images D saw, so BigGAN's repeated
  D steps move ``p`` by the images they used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F

# -- the pipeline specification -----------------------------------------------------------------


@dataclass(frozen=True)
class PipelineSpec:
    """Probability multipliers (0 = off) and strengths of each transform (``AugmentPipe`` defaults)."""

    # pixel blitting
    xflip: float = 0.0
    rotate90: float = 0.0
    xint: float = 0.0
    xint_max: float = 0.125  # integer translation range, fraction of the image size
    # general geometric
    scale: float = 0.0
    rotate: float = 0.0
    aniso: float = 0.0
    xfrac: float = 0.0
    scale_std: float = 0.2  # log2 std of isotropic scaling
    rotate_max: float = 1.0  # 1 = full circle
    aniso_std: float = 0.2  # log2 std of anisotropic scaling
    xfrac_std: float = 0.125  # std of fractional translation, fraction of the image size
    # colour
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    brightness_std: float = 0.2
    contrast_std: float = 0.5  # log2
    hue_max: float = 1.0  # 1 = full circle
    saturation_std: float = 1.0  # log2


_BLIT = dict(xflip=1.0, rotate90=1.0, xint=1.0)
_GEOM = dict(scale=1.0, rotate=1.0, aniso=1.0, xfrac=1.0)
_COLOR = dict(brightness=1.0, contrast=1.0, lumaflip=1.0, hue=1.0, saturation=1.0)
# The official names (train.py --augpipe). filter, noise and cutout (bgcf, bgcfn, bgcfnc) are not built.
PIPELINES: dict[str, PipelineSpec] = {
    "blit": PipelineSpec(**_BLIT),
    "geom": PipelineSpec(**_GEOM),
    "color": PipelineSpec(**_COLOR),
    "bg": PipelineSpec(**_BLIT, **_GEOM),
    "bgc": PipelineSpec(**_BLIT, **_GEOM, **_COLOR),
}


def pipeline_spec(name: str, **overrides: float) -> PipelineSpec:
    """A named pipeline, with any field replaced (e.g. ``rotate=0`` to drop arbitrary rotation)."""
    if name not in PIPELINES:
        raise ValueError(f"unknown ADA pipeline {name!r}; choose from {', '.join(PIPELINES)}")
    allowed = {f.name for f in fields(PipelineSpec)}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(f"unknown ADA pipeline field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return replace(PIPELINES[name], **{k: float(v) for k, v in overrides.items()})


# -- matrices -----------------------------------------------------------------------------------


def _eye(n: int, size: int, device: torch.device) -> torch.Tensor:
    return torch.eye(size, device=device).expand(n, size, size).clone()  # [N, size, size]


def _translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _eye(tx.shape[0], 3, tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _eye(sx.shape[0], 3, sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate2d(theta: torch.Tensor) -> torch.Tensor:
    m = _eye(theta.shape[0], 3, theta.device)
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _translate3d(t: torch.Tensor) -> torch.Tensor:
    m = _eye(t.shape[0], 4, t.device)
    m[:, :3, 3] = t[:, None]
    return m


def _scale3d(s: torch.Tensor) -> torch.Tensor:
    m = _eye(s.shape[0], 4, s.device)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = s
    return m


def _rotate3d(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotation by ``theta`` [N] about the unit ``axis`` [3] (Rodrigues), homogeneous 4x4."""
    n = theta.shape[0]
    k = torch.zeros(3, 3, device=theta.device)  # cross-product matrix of the axis
    k[0, 1], k[0, 2], k[1, 2] = -axis[2], axis[1], -axis[0]
    k = k - k.T
    s, c = torch.sin(theta)[:, None, None], torch.cos(theta)[:, None, None]
    r = torch.eye(3, device=theta.device) * c + s * k + (1 - c) * torch.outer(axis, axis)  # [N, 3, 3]
    m = _eye(n, 4, theta.device)
    m[:, :3, :3] = r
    return m


def _draw(n: int, prob: torch.Tensor | float, device: torch.device) -> torch.Tensor:
    """Which samples get a transform: ``U(0, 1) < prob``, [N] bool."""
    return torch.rand(n, device=device) < prob


# -- the pipeline -------------------------------------------------------------------------------


def _geometric(n: int, h: int, w: int, spec: PipelineSpec, p: torch.Tensor,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse transforms ``G_inv`` [N, 3, 3] in pixel units about the image centre, and [N] applied."""
    g_inv = _eye(n, 3, device)
    applied = torch.zeros(n, dtype=torch.bool, device=device)
    one, zero = torch.ones(n, device=device), torch.zeros(n, device=device)

    def gate(prob: torch.Tensor, value: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        nonlocal applied
        on = _draw(n, prob, device)
        applied = applied | on
        return torch.where(on, value, identity)

    if spec.xflip > 0:  # x -> -x with probability 1/2 when drawn
        flip = gate(spec.xflip * p, torch.floor(torch.rand(n, device=device) * 2), zero)
        g_inv = g_inv @ _scale2d(1 - 2 * flip, one)
    if spec.rotate90 > 0:
        quarter = gate(spec.rotate90 * p, torch.floor(torch.rand(n, device=device) * 4), zero)
        g_inv = g_inv @ _rotate2d(math.pi / 2 * quarter)  # inverse of a rotation by -90 deg * quarter
    if spec.xint > 0:
        t = (torch.rand(n, 2, device=device) * 2 - 1) * spec.xint_max
        on = _draw(n, spec.xint * p, device)
        applied = applied | on
        t = torch.where(on[:, None], t, torch.zeros_like(t))
        g_inv = g_inv @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h))
    if spec.scale > 0:
        s = gate(spec.scale * p, torch.exp2(torch.randn(n, device=device) * spec.scale_std), one)
        g_inv = g_inv @ _scale2d(1 / s, 1 / s)
    # Rotation happens before or after the anisotropic scaling, each with p_rot, so that
    # P(at least one) = rotate * p (App. B).
    p_rot = 1 - torch.sqrt((1 - spec.rotate * p).clamp(0, 1))
    if spec.rotate > 0:
        theta = gate(p_rot, (torch.rand(n, device=device) * 2 - 1) * math.pi * spec.rotate_max, zero)
        g_inv = g_inv @ _rotate2d(theta)  # inverse of a rotation by -theta
    if spec.aniso > 0:
        s = gate(spec.aniso * p, torch.exp2(torch.randn(n, device=device) * spec.aniso_std), one)
        g_inv = g_inv @ _scale2d(1 / s, s)
    if spec.rotate > 0:
        theta = gate(p_rot, (torch.rand(n, device=device) * 2 - 1) * math.pi * spec.rotate_max, zero)
        g_inv = g_inv @ _rotate2d(theta)
    if spec.xfrac > 0:
        t = torch.randn(n, 2, device=device) * spec.xfrac_std
        on = _draw(n, spec.xfrac * p, device)
        applied = applied | on
        t = torch.where(on[:, None], t, torch.zeros_like(t))
        g_inv = g_inv @ _translate2d(-t[:, 0] * w, -t[:, 1] * h)
    return g_inv, applied


def _colour(n: int, channels: int, spec: PipelineSpec, p: torch.Tensor,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour transforms ``C`` [N, 4, 4] (``C @ [r, g, b, 1]``), and [N] applied."""
    c_mat = _eye(n, 4, device)
    applied = torch.zeros(n, dtype=torch.bool, device=device)
    luma = torch.tensor([1.0, 1.0, 1.0], device=device) / math.sqrt(3)  # the luma axis
    vv = torch.zeros(4, 4, device=device)
    vv[:3, :3] = torch.outer(luma, luma)
    eye4 = torch.eye(4, device=device)

    def draw(prob: torch.Tensor) -> torch.Tensor:
        nonlocal applied
        on = _draw(n, prob, device)
        applied = applied | on
        return on

    if spec.brightness > 0:
        b = torch.randn(n, device=device) * spec.brightness_std
        b = torch.where(draw(spec.brightness * p), b, torch.zeros_like(b))
        c_mat = _translate3d(b) @ c_mat
    if spec.contrast > 0:
        c = torch.exp2(torch.randn(n, device=device) * spec.contrast_std)
        c = torch.where(draw(spec.contrast * p), c, torch.ones_like(c))
        c_mat = _scale3d(c) @ c_mat
    if spec.lumaflip > 0:  # Householder reflection through the plane orthogonal to luma
        i = torch.floor(torch.rand(n, device=device) * 2)
        i = torch.where(draw(spec.lumaflip * p), i, torch.zeros_like(i))
        c_mat = (eye4 - 2 * vv * i[:, None, None]) @ c_mat
    if spec.hue > 0 and channels > 1:
        theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * spec.hue_max
        theta = torch.where(draw(spec.hue * p), theta, torch.zeros_like(theta))
        c_mat = _rotate3d(luma, theta) @ c_mat
    if spec.saturation > 0 and channels > 1:
        s = torch.exp2(torch.randn(n, device=device) * spec.saturation_std)
        s = torch.where(draw(spec.saturation * p), s, torch.ones_like(s))[:, None, None]
        c_mat = (vv + (eye4 - vv) * s) @ c_mat
    return c_mat, applied


def _resample(img: torch.Tensor, g_inv: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` [N, C, H, W] at ``G_inv @ output pixel``; bilinear, reflection padding."""
    n, c, h, w = img.shape
    # Pixel units about the centre -> affine_grid's normalised units (align_corners=False: the
    # image spans [-1, 1] edge to edge, so one pixel is 2 / size).
    to_norm = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0], dtype=img.dtype, device=img.device))
    from_norm = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0], dtype=img.dtype, device=img.device))
    theta = (to_norm @ g_inv.to(img.dtype) @ from_norm)[:, :2, :]  # [N, 2, 3]
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)  # [N, H, W, 2]
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _recolour(img: torch.Tensor, c_mat: torch.Tensor) -> torch.Tensor:
    n, c, h, w = img.shape
    flat = img.reshape(n, c, h * w)  # [N, C, HW]
    if c == 3:
        out = c_mat[:, :3, :3] @ flat + c_mat[:, :3, 3:]
    elif c == 1:  # the grey value follows the mean of the RGB rows (official AugmentPipe)
        rows = c_mat[:, :3, :].mean(dim=1, keepdim=True)  # [N, 1, 4]
        out = flat * rows[:, :, :3].sum(dim=2, keepdim=True) + rows[:, :, 3:]
    else:
        raise ValueError(f"ADA colour transforms need 1 or 3 channels, got {c}; use pipeline=bg")
    return out.reshape(n, c, h, w)


def ada_pipeline(img: torch.Tensor, p: torch.Tensor | float, spec: PipelineSpec | str = "bgc") -> torch.Tensor:
    """Augment ``img`` [N, C, H, W] with the pipeline ``spec`` at strength ``p``.

    Computed in float32 with autocast off (the colour matrices would lose precision in bf16) and
    returned in the input's dtype. ``p`` may be a tensor on the image's device (no host sync).
    """
    spec = PIPELINES[spec] if isinstance(spec, str) else spec
    n, c, h, w = img.shape
    device = img.device
    p = torch.as_tensor(p, dtype=torch.float32, device=device)
    with torch.autocast(device_type=device.type, enabled=False):
        x = img.float()
        g_inv, moved = _geometric(n, h, w, spec, p, device)
        if bool(spec.xflip or spec.rotate90 or spec.xint or spec.scale or spec.rotate or spec.aniso or spec.xfrac):
            x = torch.where(moved[:, None, None, None], _resample(x, g_inv), x)
        c_mat, recoloured = _colour(n, c, spec, p, device)
        if bool(spec.brightness or spec.contrast or spec.lumaflip or (c > 1 and (spec.hue or spec.saturation))):
            x = torch.where(recoloured[:, None, None, None], _recolour(x, c_mat), x)
    return x.to(img.dtype)


# -- adaptive p ---------------------------------------------------------------------------------


class AdaptiveAugment:
    """ADA as the objective's augmenter: the pipeline at strength ``p``, and ``p``'s controller.

    Args:
        pipeline: a name from :data:`PIPELINES` (``bgc`` is the paper's default), or a spec.
        p: the initial strength.
        target: ``r_t`` to hold (0.6, Sec. 3).
        interval: D steps between adjustments (4).
        speed_kimg: thousands of real images for ``p`` to move by 1 (500).
        fixed_p: a constant strength instead of the controller (the paper's "fixed p" baseline).

    State (``state_dict``): ``p``, the pending sign sum, logit and image counts, the D steps since
    the last adjustment and the step of the last D call, so a resumed run adjusts exactly when an
    uninterrupted one would.
    """

    kind = "ada"

    def __init__(self, *, pipeline: str | PipelineSpec = "bgc", p: float = 0.0, target: float = 0.6,
                 interval: int = 4, speed_kimg: float = 500.0, fixed_p: float | None = None):
        self.spec = pipeline_spec(pipeline) if isinstance(pipeline, str) else pipeline
        if interval < 1 or speed_kimg <= 0 or p < 0 or (fixed_p is not None and fixed_p < 0):
            raise ValueError("ADA needs interval >= 1, speed_kimg > 0, p >= 0 and fixed_p null or >= 0")
        self.target, self.interval, self.speed_kimg = float(target), int(interval), float(speed_kimg)
        self.fixed_p = None if fixed_p is None else float(fixed_p)
        self.p = torch.tensor(float(p if fixed_p is None else fixed_p))
        self.sign_sum = torch.zeros([])  # sum of sign(D(real)) since the last adjustment
        self.logit_count = torch.zeros([])  # logits summed (PatchGAN D: several per image)
        self.images = 0  # real images D saw since the last adjustment (all ranks)
        self.d_steps = 0  # training steps with a Dmain call since the last adjustment
        self.last_step = -1  # the training step of the last Dmain call

    # -- the objective's interface --------------------------------------------------------------
    def __call__(self, img: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        if ctx is not None:
            self._maybe_adjust(int(ctx.step))
        if self.p.device != img.device:
            self.to(img.device)
        return ada_pipeline(img, self.p, self.spec)

    def observe_real(self, logits: torch.Tensor, ctx: Any = None) -> dict[str, torch.Tensor]:
        """Add ``Dmain``'s real logits to ``r_t`` (on device; no host sync). Returns logs."""
        step = int(ctx.step) if ctx is not None else self.last_step + 1
        if step != self.last_step:
            self.d_steps, self.last_step = self.d_steps + 1, step
        signs = logits.detach().float().sign()
        if self.sign_sum.device != signs.device:
            self.to(signs.device)
        self.sign_sum = self.sign_sum + signs.sum()
        self.logit_count = self.logit_count + signs.numel()
        self.images += logits.shape[0] * _world_size()
        return {"aug/p": self.p.detach().clone(), "aug/rt": signs.mean()}

    def _maybe_adjust(self, step: int) -> None:
        """After ``interval`` complete D steps (the first call of a later step), move ``p``."""
        if self.d_steps < self.interval or step == self.last_step:
            return
        stats = torch.stack([self.sign_sum, self.logit_count])
        if _world_size() > 1:  # identical p on every rank: the statistic is global
            torch.distributed.all_reduce(stats)
        if self.fixed_p is None:
            r_t = stats[0] / stats[1].clamp_min(1)
            step_size = self.images / (self.speed_kimg * 1000)
            self.p = (self.p + torch.sign(r_t - self.target) * step_size).clamp_min(0)
        self.sign_sum = torch.zeros_like(self.sign_sum)
        self.logit_count = torch.zeros_like(self.logit_count)
        self.images, self.d_steps = 0, 0

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "p": self.p.detach().cpu().clone(),
            "sign_sum": self.sign_sum.detach().cpu().clone(),
            "logit_count": self.logit_count.detach().cpu().clone(),
            "counters": torch.tensor([self.images, self.d_steps, self.last_step], dtype=torch.int64),
        }

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        device = self.p.device
        if self.fixed_p is None:  # a fixed p is a setting, not state
            self.p = state["p"].to(device, torch.float32).clone()
        self.sign_sum = state["sign_sum"].to(device, torch.float32).clone()
        self.logit_count = state["logit_count"].to(device, torch.float32).clone()
        self.images, self.d_steps, self.last_step = (int(v) for v in state["counters"].tolist())

    def to(self, device: torch.device) -> AdaptiveAugment:
        self.p, self.sign_sum, self.logit_count = (t.to(device) for t in (self.p, self.sign_sum, self.logit_count))
        return self


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
