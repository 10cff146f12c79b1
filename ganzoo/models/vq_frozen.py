"""Frozen VQ tokenizers inside a code prior: loading a stage-1 run, pinning its weights by content hash, and
rebuilding it from the prior's own checkpoint when the stage-1 files are gone.

A prior uses up to two of them: the image tokenizer (``model.stage1``, taming's ``first_stage_model``) and,
for a code-conditioned prior, the condition's tokenizer (``model.cond_stage``, taming's ``cond_stage_model``,
e.g. a depth-map VQ-GAN for D-RIN). Both are pinned the same way, under their own config key: the run's
config records ``<key>`` (the snapshot), ``<key>_hash`` (:func:`tokenizer_hash`) and ``<key>_model`` (its
model config), and a tokenizer whose weights differ from the recorded hash is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError

__all__ = ["FrozenTokenizer", "tokenizer_hash", "load_stage1", "pinned_tokenizer"]


def tokenizer_hash(module: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of a module's state dict: names, dtypes, shapes and values.

    A content hash rather than a file hash: the same weights saved twice (a stage-1 snapshot, or a copy
    inside a prior's checkpoint) hash the same, and any changed weight changes it."""
    h = hashlib.sha256()
    for key, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        # flattened first: a 0-d tensor (a spectral norm's sigma, a noise strength) cannot be viewed as bytes
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


class FrozenTokenizer(nn.Module):
    """A stage-1 autoencoder used only to encode images to codes and decode codes to images.

    It never trains: parameters do not require gradients and ``train()`` leaves the autoencoder in eval
    mode, so its quantizer's training-time behaviour (EMA codebook updates, dead-code restarts) never
    runs. ``expected_hash`` is checked once, the first time codes are used, which catches a tokenizer
    whose weights were loaded from somewhere else than the run the prior belongs to. ``key`` names the
    config entry it came from (``model.stage1`` or ``model.cond_stage``) in messages.
    """

    def __init__(self, autoencoder: nn.Module, *, expected_hash: str | None = None, key: str = "model.stage1"):
        super().__init__()
        self.ae = autoencoder.eval().requires_grad_(False)
        self.expected_hash = expected_hash
        self.key = key
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
                f"{self.expected_hash}). A prior only works with the exact tokenizer weights it was trained on: "
                f"point {self.key} at that snapshot, or train a new prior for this tokenizer."
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


def load_stage1(path: str | Path, *, key: str = "model.stage1") -> tuple[nn.Module, dict[str, Any], Path]:
    """Build a stage-1 autoencoder from a run folder or snapshot and load its weights (EMA if kept).

    Returns ``(autoencoder, its model config, the snapshot file)``. A GAN run or a code prior's run is
    refused: only a VQ tokenizer turns images into codes."""
    from omegaconf import OmegaConf

    from ..runtime import build_bundle
    from ..training.checkpoint import load_module_weights, load_snapshot

    snap = load_snapshot(path, with_state=False)
    yaml = snap.metadata.get("model_config")
    if not yaml:
        raise CheckpointError(f"{key}={str(path)!r}: {str(snap.path)!r} carries no model config; it was not "
                              "written by `ganzoo train`")
    cfg = OmegaConf.to_container(OmegaConf.create(yaml), resolve=True)
    name = cfg.get("name")
    if "prior" in cfg and "stage1" in cfg:
        # A code prior's run (GPT sizes and its own stage1): building it would load its tokenizer for nothing.
        raise ConfigError(f"{key}={str(path)!r} is a {name} run (a code prior), not a vector-quantized tokenizer; "
                          f"pass a tokenizer's run folder (that prior's own tokenizer is its config's model.stage1: "
                          f"{cfg.get('stage1')!r})")
    bundle = build_bundle(cfg)
    if bundle.info.get("kind") != "autoencoder":
        raise ConfigError(f"{key}={str(path)!r} is a {name} run, not a vector-quantized tokenizer; "
                          "train one first, e.g. `ganzoo train model=vqgan`, and pass its run folder")
    ae = bundle.modules["G"]
    load_module_weights(ae, snap.ema.get("G", snap.weights.get("G", {})), what=f"stage-1 tokenizer {name}")
    return ae, cfg, snap.path


def pinned_tokenizer(path: str | None, expected: str | None, saved_model: dict[str, Any] | None, *,
                     key: str) -> tuple[FrozenTokenizer | None, dict[str, Any]]:
    """The frozen tokenizer named by config entry ``model.<key>`` and the entries that pin it (``<key>``,
    ``<key>_hash``, ``<key>_model``), to be written into the run's config.

    ``path`` (a run folder or snapshot) is loaded and its hash compared with ``expected`` (the run's pin, on
    resume); when the files are gone but ``saved_model`` and ``expected`` are known, the tokenizer is rebuilt
    untrained and takes its weights from the prior's own checkpoint, checked against the hash before first use.
    Returns ``(None, {})`` when nothing is configured."""
    where = f"model.{key}"
    if path is None and saved_model is None:
        return None, {}
    if path is not None and Path(path).expanduser().exists():
        ae, cfg, snap_path = load_stage1(path, key=where)
        got = tokenizer_hash(ae)
        if expected is not None and got != expected:
            raise CheckpointError(
                f"{where}={path!r} holds a tokenizer with hash {got}, but this prior was trained on hash "
                f"{expected}. A prior only works with the tokenizer it learned: use that snapshot (the run's "
                "config.yaml names it), or train a new prior on this tokenizer (a fresh run, without trainer.resume)."
            )
        resolved = {key: str(snap_path), f"{key}_hash": got, f"{key}_model": cfg}
        return FrozenTokenizer(ae, expected_hash=got, key=where), resolved
    if saved_model is None or expected is None:
        raise ConfigError(f"{where}={path!r} does not exist: pass the run folder or snapshot of the trained "
                          "tokenizer (e.g. runs/<date>_vqgan_fashion)")
    from ..runtime import build_bundle

    ae = build_bundle(saved_model).modules["G"]
    return FrozenTokenizer(ae, expected_hash=expected, key=where), {}
