"""Latent files: what ``ganzoo project`` writes and ``generate --mode arithmetic`` / ``edit`` read.

A latent is a safetensors file (never a pickle: latents are handed around between people), with
``value`` (and ``c``, ``extra.<name>``) as tensors and the space and metadata as JSON in the header.
``meta["model_hash"]`` is the content hash of the generator the latent belongs to
(:func:`model_hash`), so a latent of another model is refused instead of decoding to noise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError

FORMAT = "ganzoo.latent"
VERSION = "1"
SPACES = ("z", "w", "w+", "codes")


@dataclass
class Latent:
    """One or more latents of one model.

    ``value``: z ``[N, z_dim]``; w ``[N, w_dim]``; w+ ``[N, num_ws, w_dim]``; codes ``[N, h, w]`` int64.
    ``c``: class indices ``[N]`` int64, or None. ``extra``: other optimised tensors, e.g.
    ``class_embedding`` ``[N, d]`` or ``noise.<buffer name>`` of a style generator.
    ``meta``: strings: model name, family, run folder, snapshot path and sha256, ``model_hash``, ...
    """

    space: str
    value: torch.Tensor
    c: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.space not in SPACES:
            raise ConfigError(f"latent space {self.space!r} is not one of {', '.join(SPACES)}")
        want_dims = {"z": 2, "w": 2, "w+": 3, "codes": 3}[self.space]
        if self.value.dim() != want_dims:
            raise ConfigError(f"a {self.space!r} latent has {want_dims} dims, got shape {tuple(self.value.shape)}")
        if self.c is not None and tuple(self.c.shape) != (self.value.shape[0],):
            raise ConfigError(f"latent classes have shape {tuple(self.c.shape)}; expected ({self.value.shape[0]},)")

    def __len__(self) -> int:
        return self.value.shape[0]


def model_hash(module: nn.Module) -> str:
    """Content hash of a module's weights and buffers (16 hex digits): the code prior's tokenizer hash, which a
    latent or directions file records to refuse being used with another model."""
    from ..models.vq_frozen import tokenizer_hash

    return tokenizer_hash(module)


def save_latent(path: str | Path, latent: Latent) -> Path:
    """Write ``latent`` to ``path`` (safetensors, metadata in the header) atomically; returns the path."""
    from safetensors.torch import save_file

    from ..training.checkpoint import atomic_write

    path = Path(path)
    tensors = {"value": latent.value.detach().cpu().contiguous()}
    if latent.c is not None:
        tensors["c"] = latent.c.detach().cpu().to(torch.int64).contiguous()
    for name, t in latent.extra.items():
        tensors[f"extra.{name}"] = t.detach().cpu().contiguous()
    header = {"format": FORMAT, "version": VERSION, "space": latent.space,
              "meta": json.dumps({k: str(v) for k, v in latent.meta.items()}, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))
    return path


def load_latent(path: str | Path, *, expected_hash: str | None = None, what: str = "--latent",
                expected_model: str | None = None) -> Latent:
    """Read a latent written by :func:`save_latent`.

    Refuses (``ConfigError``) a missing file, a file that is not a ganzoo latent, and, when ``expected_hash``
    is given, a latent of another model (``expected_model`` names the model asked for in the message).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path}: no such file; pass a latent written by `ganzoo project` "
                          f"(<run>/projected/<name>/latent.safetensors)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ConfigError(f"{what} {path} is not a ganzoo latent file (not safetensors: {e}); pass a "
                          f"latent.safetensors written by `ganzoo project`") from None
    if header.get("format") != FORMAT or "value" not in tensors:
        raise ConfigError(f"{what} {path} is a safetensors file but not a ganzoo latent (no '{FORMAT}' header); "
                          f"pass a latent.safetensors written by `ganzoo project`")
    try:
        meta = json.loads(header.get("meta", "{}"))
    except json.JSONDecodeError:
        raise ConfigError(f"{what} {path}: its metadata is not valid JSON; write it again with `ganzoo project`") \
            from None
    if expected_hash is not None and meta.get("model_hash") != expected_hash:
        theirs = meta.get("model", "an unknown model")
        run = meta.get("run")
        theirs += f" (run {run})" if run else ""
        ours = expected_model or "this run's generator"
        raise ConfigError(f"{what} {path} belongs to {theirs}, weights {meta.get('model_hash', '?')}, not to "
                          f"{ours}, weights {expected_hash}; project the image into this run first "
                          f"(`ganzoo project RUN IMAGE`)")
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    return Latent(space=header.get("space", ""), value=tensors["value"], c=tensors.get("c"), extra=extra,
                  meta={k: str(v) for k, v in meta.items()})
