"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

Every image D sees, real or fake, in D's and in G's phase, goes through the same random,
differentiable transforms (Sec. 3, Fig. 4b), so G's gradient flows back through them. The
policy ``color,translation,cutout`` is the paper's default (Sec. 4.1):

- ``color``: brightness ``x + U(-0.5, 0.5)``, saturation ``mean_c + (x - mean_c) * U(0, 2)``,
  contrast ``mean + (x - mean) * U(0.5, 1.5)``, per sample (the official ``DiffAugment_pytorch``);
  on one channel the saturation step is the identity (the channel mean is the pixel itself);
- ``translation``: an integer shift of up to ``ratio * size`` pixels (1/8) in each direction,
  per sample, the uncovered border filled with zeros;
- ``cutout``: one square of ``ratio * size`` (1/2) set to zero, its centre uniform over the
  image (it may stick out of the border, as in the official code).

Every transform is applied to every sample (there is no probability). The random draws use
the global torch RNG, which the trainer checkpoints, so a resumed run draws the same transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def _uniform(x: torch.Tensor) -> torch.Tensor:
    """One U(0, 1) number per sample, shaped to broadcast over ``[N, C, H, W]``."""
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (_uniform(x) - 0.5)


def saturation(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)  # [N, 1, H, W]
    return mean + (x - mean) * (2.0 * _uniform(x))


def contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # [N, 1, 1, 1]
    return mean + (x - mean) * (_uniform(x) + 0.5)


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each sample by integers in ``[-s, s]`` (``s = round(ratio * size)``), zero fill.

    Zero padding by ``s`` then a per-sample gather of rows and of columns: indexing is
    differentiable with respect to ``x`` (the gradient of a dropped pixel is zero).
    """
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sh == 0 and sw == 0:
        return x
    dy = torch.randint(-sh, sh + 1, (n, 1), device=x.device)  # [N, 1]
    dx = torch.randint(-sw, sw + 1, (n, 1), device=x.device)
    padded = F.pad(x, [sw, sw, sh, sh])  # [N, C, H + 2sh, W + 2sw]
    # Output row i reads padded row i + sh - dy: a positive dy moves the content down.
    rows = torch.arange(h, device=x.device).unsqueeze(0) + sh - dy  # [N, H]
    cols = torch.arange(w, device=x.device).unsqueeze(0) + sw - dx  # [N, W]
    c, wp = padded.shape[1], padded.shape[3]
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, wp))  # [N, C, H, W + 2sw]
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))  # [N, C, H, W]


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one ``round(ratio * H) x round(ratio * W)`` square per sample.

    As in the official code the square's centre is uniform over ``[0, size + (1 - side % 2))``
    pixels, so a square may be clipped by the border.
    """
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if ch == 0 or cw == 0:
        return x
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1), device=x.device)  # [N, 1]
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1), device=x.device)
    top, left = cy - ch // 2, cx - cw // 2
    ys = torch.arange(h, device=x.device).unsqueeze(0)  # [1, H]
    xs = torch.arange(w, device=x.device).unsqueeze(0)
    in_y = (ys >= top) & (ys < top + ch)  # [N, H]
    in_x = (xs >= left) & (xs < left + cw)  # [N, W]
    keep = ~(in_y[:, :, None] & in_x[:, None, :])  # [N, H, W]
    return x * keep.unsqueeze(1).to(x.dtype)


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """``"color,translation"`` or a list -> the names, checked against :data:`POLICIES`."""
    names = [p.strip() for p in (policy.split(",") if isinstance(policy, str) else policy)]
    names = [p for p in names if p]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; choose from {', '.join(POLICIES)}")
    return tuple(names)


def diff_augment(
    x: torch.Tensor,
    policy: str | Sequence[str] = "color,translation,cutout",
    *,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
) -> torch.Tensor:
    """Apply the policy's transforms in order (colour, then translation, then cutout)."""
    steps: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
        "color": [brightness, saturation, contrast],
        "translation": [lambda t: translation(t, translation_ratio)],
        "cutout": [lambda t: cutout(t, cutout_ratio)],
    }
    for name in parse_policy(policy):
        for fn in steps[name]:
            x = fn(x)
    return x.contiguous()


class DiffAugment:
    """The objective's augmenter for DiffAugment: stateless, no statistics."""

    kind = "diffaugment"

    def __init__(self, policy: str | Sequence[str] = "color,translation,cutout", *,
                 translation_ratio: float = 0.125, cutout_ratio: float = 0.5):
        self.policy = parse_policy(policy)
        if not 0 <= translation_ratio < 1 or not 0 <= cutout_ratio <= 1:
            raise ValueError("translation_ratio must be in [0, 1) and cutout_ratio in [0, 1]")
        self.translation_ratio, self.cutout_ratio = float(translation_ratio), float(cutout_ratio)

    def __call__(self, img: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        return diff_augment(img, self.policy, translation_ratio=self.translation_ratio, cutout_ratio=self.cutout_ratio)

    def observe_real(self, logits: torch.Tensor, ctx: Any = None) -> dict[str, torch.Tensor]:
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        pass

    def to(self, device: torch.device) -> DiffAugment:
        return self
