"""Augmentation of everything the discriminator sees, for every GAN family (``conf/augment/``).

Both methods hook into :meth:`AdversarialObjective.discriminate`, the one path through which
every D call goes (real and fake images, in D's and G's phases, R1 and WGAN-GP): D sees
``D(augment(img), c)``. The augmentations are differentiable, so G learns through them, and R1
takes the gradient with respect to the non-augmented reals (StyleGAN2-ADA's ``loss.py``).

- ``kind: none``: nothing is attached; training is bit-identical to a run without this module.
- ``kind: diffaugment``: :class:`~ganzoo.augment.diffaugment.DiffAugment` (Zhao et al. 2020).
- ``kind: ada``: :class:`~ganzoo.augment.ada.AdaptiveAugment` (Karras et al. 2020), whose
  strength ``p`` is objective state (checkpointed, resumed exactly) and logged as ``aug/p``.

The trainer calls :func:`attach_augment` once, right after building the bundle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .ada import PIPELINES, AdaptiveAugment, PipelineSpec, ada_pipeline, pipeline_spec
from .diffaugment import POLICIES, DiffAugment, diff_augment

__all__ = [
    "PIPELINES", "POLICIES", "AdaptiveAugment", "Augmenter", "DiffAugment", "PipelineSpec", "ada_pipeline",
    "attach_augment", "build_augment", "diff_augment", "pipeline_spec",
]

# kind -> allowed keys (besides ``kind``) and their defaults (the yaml files in conf/augment/)
OPTIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "diffaugment": {"policy": "color,translation,cutout", "translation_ratio": 0.125, "cutout_ratio": 0.5},
    "ada": {"pipeline": "bgc", "p": 0.0, "target": 0.6, "interval": 4, "speed_kimg": 500, "fixed_p": None},
}


class Augmenter(Protocol):
    """What an objective needs from an augmentation."""

    kind: str

    def __call__(self, img: torch.Tensor, ctx: Any = None) -> torch.Tensor: ...

    def observe_real(self, logits: torch.Tensor, ctx: Any = None) -> dict[str, torch.Tensor]: ...

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None: ...

    def to(self, device: torch.device) -> Any: ...


def _plain(cfg: Mapping[str, Any] | DictConfig | None) -> dict[str, Any]:
    if cfg is None:
        return {"kind": "none"}
    if isinstance(cfg, DictConfig):
        return dict(OmegaConf.to_container(cfg, resolve=True))
    return dict(cfg)


def build_augment(cfg: Mapping[str, Any] | DictConfig | None) -> Augmenter | None:
    """The augmenter a config asks for (``None`` for ``kind: none``); bad values raise ConfigError."""
    values = _plain(cfg)
    kind = values.pop("kind", "none")
    if kind not in OPTIONS:
        raise ConfigError(f"augment.kind={kind!r} is not known; choose none, diffaugment or ada "
                          "(e.g. augment=ada on the command line)")
    unknown = sorted(set(values) - set(OPTIONS[kind]))
    if unknown:
        allowed = ", ".join(sorted(OPTIONS[kind])) or "nothing besides kind"
        raise ConfigError(f"augment has unknown key(s) {unknown} for kind={kind}; allowed: {allowed}. Pick the "
                          f"group with augment={kind} rather than setting augment.kind alone")
    opts = {**OPTIONS[kind], **values}
    try:
        if kind == "diffaugment":
            return DiffAugment(opts["policy"], translation_ratio=float(opts["translation_ratio"]),
                               cutout_ratio=float(opts["cutout_ratio"]))
        if kind == "ada":
            _check_ada(opts)
            return AdaptiveAugment(
                pipeline=str(opts["pipeline"]), p=float(opts["p"]), target=float(opts["target"]),
                interval=int(opts["interval"]), speed_kimg=float(opts["speed_kimg"]),
                fixed_p=None if opts["fixed_p"] is None else float(opts["fixed_p"]),
            )
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"augment ({kind}): {err}") from err
    return None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v  # v == v: not NaN


def _check_ada(opts: Mapping[str, Any]) -> None:
    problems = []
    if opts["pipeline"] not in PIPELINES:
        problems.append(f"augment.pipeline={opts['pipeline']!r} must be one of {', '.join(PIPELINES)} (bgc is the "
                        "paper's)")
    if not _number(opts["p"]) or opts["p"] < 0:
        problems.append(f"augment.p={opts['p']!r} must be a number >= 0 (the initial strength)")
    if not _number(opts["speed_kimg"]) or opts["speed_kimg"] <= 0:
        problems.append(f"augment.speed_kimg={opts['speed_kimg']!r} must be a number > 0 (kimg for p to move by 1)")
    if isinstance(opts["interval"], bool) or not isinstance(opts["interval"], int) or opts["interval"] < 1:
        problems.append(f"augment.interval={opts['interval']!r} must be an integer >= 1 (D steps between updates)")
    t = opts["target"]
    if not _number(t) or not -1 <= t <= 1:
        problems.append(f"augment.target={t!r} must be a number in [-1, 1] (E[sign(D(real))]; the paper uses 0.6)")
    f = opts["fixed_p"]
    if f is not None and (not _number(f) or f < 0):
        problems.append(f"augment.fixed_p={f!r} must be null (adaptive) or a number >= 0")
    if problems:
        raise ConfigError("invalid ADA settings: " + "; ".join(problems))


def attach_augment(objective: Any, augment_cfg: Mapping[str, Any] | DictConfig | None) -> None:
    """Give ``objective`` (an :class:`AdversarialObjective`) the augmentation ``augment_cfg`` asks for.

    ``kind: none`` (or no config) leaves the objective untouched, for every family. Any other
    kind needs a GAN objective: autoencoder objectives (VQ-GAN, ViT-VQGAN) raise ConfigError.
    """
    from ..losses.objectives import AdversarialObjective

    augmenter = build_augment(augment_cfg)
    if augmenter is None:
        return
    if not isinstance(objective, AdversarialObjective):
        raise ConfigError(
            f"augment={augmenter.kind} applies to the GAN families (DCGAN, ProGAN, StyleGAN, StyleGAN2, SAGAN, "
            f"BigGAN), whose objective shows images to D through AdversarialObjective; this model's objective is "
            f"{type(objective).__name__}. Use augment=none for it."
        )
    objective.augment = augmenter
