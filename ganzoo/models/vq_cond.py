"""Condition stages of a code-conditioned VQ prior (taming's ``cond_stage_model``; Esser et al. 2021, Sec. 3.2,
"Conditioned Synthesis"): they turn a condition image into a sequence of tokens that is prepended to the image
codes, so the transformer learns ``p(s | c) = prod_i p(s_i | s_<i, c)``.

Two kinds:

* a frozen VQ tokenizer of its own (``model.cond_stage=<run folder or snapshot>``, e.g. a depth-map VQ-GAN as
  in taming's D-RIN ``drin_transformer.yaml``), pinned like the image tokenizer (``ganzoo.models.vq_frozen``);
  with ``model.cond_input=labels`` a tokenizer of one-hot label maps (taming's ``VQSegmentationModel``);
* a parameter-free provider: ``{kind: downsample, size, levels}`` area-averages the image to ``size x size``
  and quantizes each channel value to ``levels`` tokens (taming's ``CoordStage`` arithmetic on the image:
  super-resolution); ``{kind: edges, size, threshold, patch}``, a Sobel edge map thresholded to edge / flat,
  ``patch x patch`` blocks packed into one token (map-to-image); ``{kind: coord, n_embed, down_factor}``,
  taming's ``CoordStage`` on its own input: the map of each pixel's position in the frame (FacesHQ), which
  tells a window where it lies in a larger image.

The embedded data has no paired maps, so every stage derives its condition from the training image
(:meth:`CondStage.derive`); paired data would hand the condition image to :meth:`CondStage.encode` directly.
Every stage records the conditions of the first training images it sees (``grid_cond``, a buffer saved in the
prior's checkpoints): the trainer's sample grids and a plain ``bundle.sample(modules, n)`` draw under those
real conditions, since a code-conditioned prior has no unconditional samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .vq_frozen import FrozenTokenizer, pinned_tokenizer

__all__ = ["CondStage", "DownsampleStage", "EdgeStage", "CoordStage", "TokenizerStage", "LabelMapStage",
           "make_cond_stage", "GRID_CONDITIONS", "coordinate_map", "one_hot", "label_colours"]

GRID_CONDITIONS = 16  # conditions recorded from the first training batch for sample grids (cycled)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601: RGB -> grey for a one-channel condition


def adapt_channels(img: torch.Tensor, channels: int) -> torch.Tensor:
    """``img [N, C, H, W]`` with ``channels`` channels: grey -> RGB repeats, RGB -> grey takes the luma."""
    c = img.shape[1]
    if c == channels:
        return img
    if c == 1:
        return img.expand(-1, channels, -1, -1)
    if c == 3 and channels == 1:
        w = img.new_tensor(_LUMA).view(1, 3, 1, 1)
        return (img * w).sum(dim=1, keepdim=True)
    raise ConfigError(f"cannot turn a {c}-channel image into a {channels}-channel one (only grey <-> RGB)")


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    if img.shape[-1] == size and img.shape[-2] == size:
        return img
    if size < img.shape[-1]:
        return F.interpolate(img, size=(size, size), mode="area")
    return F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)


class CondStage(nn.Module):
    """What every condition stage offers the prior (see the module docstring).

    Attributes: ``kind``; ``cond_resolution`` and ``cond_channels`` (the condition image ``[N, Cc, r, r]``);
    ``n_tokens`` (L) and ``vocab`` (tokens lie in ``[0, vocab)``); ``token_shape`` (the tokens' spatial grid,
    raster order); ``token_offset`` (where the prior puts them in its vocabulary, set by the prior's builder).
    """

    kind = "?"
    grid_slots = GRID_CONDITIONS  # training conditions kept for sample grids (0: the stage records none)

    def __init__(self, *, image_resolution: int, image_channels: int, cond_resolution: int, cond_channels: int,
                 n_tokens: int, vocab: int, token_shape: tuple[int, int]):
        super().__init__()
        self.image_resolution, self.image_channels = int(image_resolution), int(image_channels)
        self.cond_resolution, self.cond_channels = int(cond_resolution), int(cond_channels)
        self.n_tokens, self.vocab, self.token_shape = int(n_tokens), int(vocab), tuple(int(s) for s in token_shape)
        self.token_offset = 0
        r, cc = self.cond_resolution, self.cond_channels
        self.register_buffer("grid_cond", torch.zeros(self.grid_slots, cc, r, r))
        self.register_buffer("grid_filled", torch.zeros((), dtype=torch.long))

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "resolution": self.cond_resolution, "channels": self.cond_channels,
                "n_tokens": self.n_tokens}

    def check(self, cond_img: torch.Tensor) -> None:
        """Refuse a condition image of the wrong shape with what is expected."""
        want = (self.cond_channels, self.cond_resolution, self.cond_resolution)
        if cond_img.dim() != 4 or tuple(cond_img.shape[1:]) != want:
            raise ConfigError(
                f"the condition image has shape {list(cond_img.shape)}, but this prior's {self.kind} condition is "
                f"[N, {want[0]}, {want[1]}, {want[2]}] ({want[0]} channel(s), {want[1]}x{want[2]} pixels); "
                "derive it from a full-size image with cond_stage.derive(img)")

    def derive(self, img: torch.Tensor) -> torch.Tensor:
        """The condition of a training image ``[N, C, R, R]`` in [-1, 1] -> ``[N, Cc, r, r]``."""
        raise NotImplementedError

    def encode(self, cond_img: torch.Tensor) -> torch.Tensor:
        """Condition image ``[N, Cc, r, r]`` -> tokens ``[N, L]`` in ``[0, vocab)`` (before the offset)."""
        raise NotImplementedError

    def preview(self, cond_img: torch.Tensor) -> torch.Tensor:
        """The condition as the prior sees it, shown at the output size ``[N, C, R, R]`` (for grids)."""
        raise NotImplementedError

    def _at_output(self, img: torch.Tensor, mode: str) -> torch.Tensor:
        img = adapt_channels(img, self.image_channels)
        r = self.image_resolution
        out = F.interpolate(img, size=(r, r), mode=mode) if mode == "nearest" else _resize(img, r)
        return out.clamp(-1, 1)

    @torch.no_grad()
    def record(self, cond_img: torch.Tensor) -> None:
        """Keep the first :data:`GRID_CONDITIONS` conditions seen in training (the sample grids' inputs)."""
        filled = int(self.grid_filled)
        if filled >= self.grid_slots:
            return
        take = cond_img[: self.grid_slots - filled].detach().to(self.grid_cond)
        self.grid_cond[filled : filled + take.shape[0]] = take
        self.grid_filled.fill_(filled + take.shape[0])

    def recorded(self, n: int) -> torch.Tensor:
        """``n`` recorded conditions (cycled): what a sample without a condition image is conditioned on."""
        filled = int(self.grid_filled)
        if filled == 0:
            raise ConfigError(
                f"this prior is conditioned on a {self.kind} condition and has recorded none yet (it records the "
                "first training images' conditions): pass a condition image (cond_img=..., or ganzoo generate "
                "--mode condition --image F)")
        return self.grid_cond[torch.arange(n, device=self.grid_cond.device) % filled]


class DownsampleStage(CondStage):
    """Super-resolution: the image area-averaged to ``size x size``, each channel value quantized uniformly to
    ``levels`` tokens (taming's ``CoordStage``: ``interpolate(mode="area")`` then rounding; here the ``levels``
    values ``0 .. levels - 1`` span [-1, 1]). ``channels``: 1 takes the luma of an RGB image (taming's
    single-channel ``CoordStage``); default the image's channels. Tokens run in raster order with the channels
    of a pixel side by side: ``token_shape = (size, size * channels)``."""

    kind = "downsample"

    def __init__(self, *, size: int = 8, levels: int = 16, channels: int | None = None,
                 image_resolution: int, image_channels: int):
        size, levels = int(size), int(levels)
        cc = int(channels or image_channels)
        if not 1 <= size <= image_resolution:
            raise ConfigError(f"model.cond_stage.size={size} must lie in [1, {image_resolution}] (the image size)")
        if levels < 2:
            raise ConfigError(f"model.cond_stage.levels={levels} must be >= 2")
        if cc not in (1, image_channels):
            raise ConfigError(f"model.cond_stage.channels={cc}: use 1 (grey) or the image's {image_channels}")
        super().__init__(image_resolution=image_resolution, image_channels=image_channels, cond_resolution=size,
                         cond_channels=cc, n_tokens=size * size * cc, vocab=levels, token_shape=(size, size * cc))
        self.levels = levels

    @torch.no_grad()
    def derive(self, img: torch.Tensor) -> torch.Tensor:
        img = adapt_channels(img.float(), self.cond_channels)
        return F.interpolate(img, size=(self.cond_resolution,) * 2, mode="area")

    @torch.no_grad()
    def encode(self, cond_img: torch.Tensor) -> torch.Tensor:
        self.check(cond_img)
        unit = (cond_img.float().clamp(-1, 1) + 1) / 2  # [N, Cc, s, s] in [0, 1]
        tokens = torch.round(unit * (self.levels - 1)).long()
        return tokens.permute(0, 2, 3, 1).reshape(cond_img.shape[0], -1)  # [N, s * s * Cc], (y, x, c) order

    def dequantize(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[N, L]`` -> the quantized condition image ``[N, Cc, s, s]`` in [-1, 1]."""
        s, cc = self.cond_resolution, self.cond_channels
        img = tokens.view(-1, s, s, cc).permute(0, 3, 1, 2).float()
        return img / (self.levels - 1) * 2 - 1

    @torch.no_grad()
    def preview(self, cond_img: torch.Tensor) -> torch.Tensor:
        return self._at_output(self.dequantize(self.encode(cond_img)), "nearest")


class EdgeStage(CondStage):
    """Map-to-image from edges: the grey image area-averaged to ``size x size``, its Sobel gradient magnitude
    (on [0, 1] intensities, replicate padding) thresholded at ``threshold``. The condition image is the edge map,
    -1 flat and +1 edge. ``patch`` p packs each p x p block of the map into one token of ``2^(p*p)`` values (bit
    ``i*p + j`` is pixel (i, j) of the block), a lossless, parameter-free shortening of the sequence, as taming's
    learned cond stages shorten a map 16-fold: ``(size / p)^2`` tokens; p = 1 gives one token per pixel (0 flat,
    1 edge)."""

    kind = "edges"

    def __init__(self, *, size: int = 16, threshold: float = 0.5, patch: int = 1, image_resolution: int,
                 image_channels: int):
        size, patch = int(size), int(patch)
        if not 3 <= size <= image_resolution:
            raise ConfigError(f"model.cond_stage.size={size} must lie in [3, {image_resolution}]")
        if not threshold > 0:
            raise ConfigError(f"model.cond_stage.threshold={threshold} must be > 0")
        if patch not in (1, 2, 3) or size % patch:
            raise ConfigError(f"model.cond_stage.patch={patch} must be 1, 2 or 3 and divide size={size}")
        side = size // patch
        super().__init__(image_resolution=image_resolution, image_channels=image_channels, cond_resolution=size,
                         cond_channels=1, n_tokens=side * side, vocab=2 ** (patch * patch), token_shape=(side, side))
        self.threshold, self.patch = float(threshold), patch
        self.register_buffer("bit_values", 2 ** torch.arange(patch * patch), persistent=False)

    @torch.no_grad()
    def derive(self, img: torch.Tensor) -> torch.Tensor:
        grey = (adapt_channels(img.float(), 1) + 1) / 2
        grey = F.pad(F.interpolate(grey, size=(self.cond_resolution,) * 2, mode="area"), (1, 1, 1, 1),
                     mode="replicate")
        kx = grey.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
        gx, gy = F.conv2d(grey, kx), F.conv2d(grey, kx.transpose(2, 3))
        return torch.where(torch.hypot(gx, gy) > self.threshold, 1.0, -1.0)

    @torch.no_grad()
    def encode(self, cond_img: torch.Tensor) -> torch.Tensor:
        self.check(cond_img)
        p = self.patch
        bits = F.unfold((cond_img > 0).float(), kernel_size=p, stride=p).long()  # [N, p * p, L], raster in a block
        return (bits * self.bit_values.view(1, -1, 1)).sum(1)  # [N, (s / p)^2]

    def edge_map(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[N, L]`` -> the edge map ``[N, 1, s, s]`` (-1 flat, +1 edge): the inverse of :meth:`encode`."""
        bits = (tokens.unsqueeze(1) // self.bit_values.view(1, -1, 1)) % 2  # [N, p * p, L]
        s, p = self.cond_resolution, self.patch
        return F.fold(bits.float(), output_size=(s, s), kernel_size=p, stride=p) * 2 - 1

    @torch.no_grad()
    def preview(self, cond_img: torch.Tensor) -> torch.Tensor:
        return self._at_output(self.edge_map(self.encode(cond_img)), "nearest")


def coordinate_map(n: int, resolution: int, *, device: torch.device | None = None) -> torch.Tensor:
    """Each pixel's raster position in the frame, ``i / (R * R)``, as a condition image ``[n, 1, R, R]`` in
    [-1, 1] (taming/data/faceshq.py: ``np.arange(h * w).reshape(h, w, 1) / (h * w)``, the crop being the frame)."""
    r = int(resolution)
    unit = torch.arange(r * r, dtype=torch.float64, device=device).div(r * r).view(1, 1, r, r)
    return (unit * 2 - 1).float().expand(n, 1, r, r)


class CoordStage(CondStage):
    """taming's ``CoordStage`` (taming/modules/misc/coord.py; the FacesHQ transformer): the condition is the
    coordinate map of the crop (:func:`coordinate_map`, ``[N, 1, R, R]`` at the image size, stored in [-1, 1]
    like every condition image, i.e. ``2u - 1`` for taming's ``u`` in [0, 1]), area-averaged by
    ``down_factor`` and quantized as ``round(n_embed * u)``: ``(R / down_factor)^2`` tokens. taming can emit
    ``n_embed`` itself for ``u`` within half a level of 1 (one past its vocabulary); it is clamped to
    ``n_embed - 1`` here, which no coordinate map of a frame reaches. The condition does not depend on the
    image: training on whole frames conditions every sample on the same map, so sampling needs no condition
    image (:meth:`recorded` is the frame's map)."""

    kind = "coord"

    def __init__(self, *, n_embed: int = 1024, down_factor: int = 16, image_resolution: int, image_channels: int):
        n_embed, f = int(n_embed), int(down_factor)
        if n_embed < 2:
            raise ConfigError(f"model.cond_stage.n_embed={n_embed} must be >= 2")
        if f < 1 or image_resolution % f:
            raise ConfigError(f"model.cond_stage.down_factor={f} must divide the image size {image_resolution}")
        side = image_resolution // f
        super().__init__(image_resolution=image_resolution, image_channels=image_channels,
                         cond_resolution=image_resolution, cond_channels=1, n_tokens=side * side, vocab=n_embed,
                         token_shape=(side, side))
        self.n_embed, self.down_factor = n_embed, f

    @torch.no_grad()
    def derive(self, img: torch.Tensor) -> torch.Tensor:
        return coordinate_map(img.shape[0], self.cond_resolution, device=img.device)

    @torch.no_grad()
    def encode(self, cond_img: torch.Tensor) -> torch.Tensor:
        self.check(cond_img)
        unit = (cond_img.float() + 1) / 2
        if unit.min() < -1e-6 or unit.max() > 1 + 1e-6:
            raise ConfigError("a coordinate condition lies in [-1, 1] (taming's [0, 1]); got values outside it")
        unit = F.interpolate(unit, scale_factor=1 / self.down_factor, mode="area").clamp(0.0, 1.0)
        tokens = torch.round(unit * self.n_embed).long().clamp_(max=self.n_embed - 1)
        return tokens.flatten(1)  # [N, (R / f)^2]

    @torch.no_grad()
    def preview(self, cond_img: torch.Tensor) -> torch.Tensor:
        side = self.token_shape[0]
        grid = self.encode(cond_img).view(-1, 1, side, side).float() / self.n_embed * 2 - 1
        return self._at_output(grid, "nearest")

    def recorded(self, n: int) -> torch.Tensor:
        return coordinate_map(n, self.cond_resolution, device=self.grid_cond.device)


class TokenizerStage(CondStage):
    """A frozen VQ tokenizer of the condition (taming's ``cond_stage_model``): the condition image is the
    training image resized to the tokenizer's resolution and channels, its tokens the tokenizer's codes."""

    kind = "tokenizer"

    def __init__(self, tokenizer: FrozenTokenizer, *, image_resolution: int, image_channels: int):
        h, w = tokenizer.code_shape
        super().__init__(image_resolution=image_resolution, image_channels=image_channels,
                         cond_resolution=tokenizer.img_resolution, cond_channels=tokenizer.img_channels,
                         n_tokens=h * w, vocab=tokenizer.n_embed, token_shape=(h, w))
        self.tokenizer = tokenizer

    @torch.no_grad()
    def derive(self, img: torch.Tensor) -> torch.Tensor:
        return _resize(adapt_channels(img.float(), self.cond_channels), self.cond_resolution).clamp(-1, 1)

    @torch.no_grad()
    def encode(self, cond_img: torch.Tensor) -> torch.Tensor:
        self.check(cond_img)
        return self.tokenizer.encode(cond_img).flatten(1)  # [N, h * w]

    @torch.no_grad()
    def preview(self, cond_img: torch.Tensor) -> torch.Tensor:
        h, w = self.token_shape
        return self._at_output(self.tokenizer.decode(self.encode(cond_img).view(-1, h, w)), "bilinear")


class LabelMapStage(TokenizerStage):
    """A frozen VQ tokenizer of one-hot label maps (taming's ``VQSegmentationModel``: S-FLCKR, ADE20K, COCO-Stuff):
    the condition image is ``[N, n_labels, r, r]`` with 1 at each pixel's label and 0 elsewhere
    (``np.eye(n_labels)[segmentation]`` in taming's data), ``n_labels`` the tokenizer's channels. A label map
    cannot be derived from an image, so such a prior samples from given maps (:func:`one_hot`) and does not
    train on the embedded data; it records no grid conditions (they would be ``n_labels`` channels each)."""

    kind = "labels"
    grid_slots = 0

    def __init__(self, tokenizer: FrozenTokenizer, *, image_resolution: int, image_channels: int):
        if tokenizer.img_channels < 2:
            raise ConfigError(f"model.cond_input=labels needs a tokenizer of one-hot label maps (a channel per label); "
                              f"this condition tokenizer reads {tokenizer.img_channels} channel(s)")
        super().__init__(tokenizer, image_resolution=image_resolution, image_channels=image_channels)

    @property
    def n_labels(self) -> int:
        return self.cond_channels

    def derive(self, img: torch.Tensor) -> torch.Tensor:
        raise ConfigError(f"this prior is conditioned on label maps ({self.n_labels} labels), which cannot be derived "
                          "from an image: pass them as files, ganzoo generate RUN --mode condition --image labels.png "
                          "(a grey PNG whose pixel values are the labels)")

    def recorded(self, n: int) -> torch.Tensor:
        return self.derive(torch.empty(0))

    @torch.no_grad()
    def preview(self, cond_img: torch.Tensor) -> torch.Tensor:
        """The labels the condition's codes decode to (argmax), in :func:`label_colours`."""
        h, w = self.token_shape
        decoded = self.tokenizer.decode(self.encode(cond_img).view(-1, h, w))  # [N, n_labels, r, r]
        rgb = label_colours(self.n_labels, device=decoded.device)[decoded.argmax(1)].permute(0, 3, 1, 2)
        return self._at_output(rgb, "nearest")


def one_hot(labels: torch.Tensor, n_labels: int) -> torch.Tensor:
    """Integer label maps ``[N, r, r]`` -> the one-hot condition ``[N, n_labels, r, r]`` (float, 0 or 1)."""
    return F.one_hot(labels.long(), n_labels).permute(0, 3, 1, 2).float()


def label_colours(n_labels: int, *, device: torch.device | None = None) -> torch.Tensor:
    """A fixed colour per label, ``[n_labels, 3]`` in [-1, 1] (hues by the golden angle, for previews)."""
    hue = (torch.arange(n_labels, dtype=torch.float64) * 0.6180339887498949) % 1.0
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64)[None] + hue[:, None] * 6) % 6
    rgb = 1 - 0.85 * torch.clamp(torch.minimum(k, 4 - k), 0, 1)  # HSV with s 0.85, v 1
    return (rgb * 2 - 1).float().to(device)


_PROVIDERS: dict[str, type[CondStage]] = {"downsample": DownsampleStage, "edges": EdgeStage, "coord": CoordStage}


def make_cond_stage(spec: Any, saved_hash: str | None, saved_model: dict[str, Any] | None,
                    preset: Any, *, resolution: int, channels: int, cond_input: str = "image"
                    ) -> tuple[CondStage | None, dict[str, Any], str | None]:
    """The condition stage of ``model.cond_stage`` -> ``(stage or None, config entries to pin, missing)``.

    ``spec``: a VQ run folder or snapshot (a frozen tokenizer, pinned as ``cond_stage_hash`` /
    ``cond_stage_model``), ``{kind: downsample|edges|coord, ...}``, or None. ``preset`` (``model.cond_tokenizer``: a
    registered tokenizer name, or ``{name: ..., <overrides>}``) sizes an untrained condition tokenizer when no
    run is given (parameter counts, shape tests): such a prior cannot train, and ``missing`` says why.
    ``cond_input``: ``image`` (the tokenizer reads condition images) or ``labels`` (one-hot label maps:
    :class:`LabelMapStage`)."""
    if cond_input not in ("image", "labels"):
        raise ConfigError(f"model.cond_input={cond_input!r}; use image or labels (one-hot label maps)")
    if cond_input == "labels" and (spec is None or isinstance(spec, Mapping)):
        raise ConfigError("model.cond_input=labels describes a condition tokenizer of label maps: set "
                          "model.cond_stage=<its run folder>")
    geometry = dict(image_resolution=int(resolution), image_channels=int(channels))
    if isinstance(spec, Mapping):
        opts = dict(spec)
        kind = opts.pop("kind", None)
        if kind not in _PROVIDERS:
            raise ConfigError(f"model.cond_stage.kind={kind!r}: use one of {sorted(_PROVIDERS)}, or give a VQ "
                              "tokenizer's run folder as model.cond_stage=<run>")
        from ..registry import construct

        return construct(_PROVIDERS[kind], opts, where="model.cond_stage", **geometry), {}, None
    if spec is not None and not isinstance(spec, str):
        raise ConfigError(f"model.cond_stage={spec!r}: give a VQ run folder, or {{kind: downsample, size: 8, "
                          "levels: 16}}")
    tok, resolved = pinned_tokenizer(spec, saved_hash, saved_model, key="cond_stage")
    missing = None
    if tok is None:
        if preset is None:
            return None, {}, None
        from ..registry import build_model

        name, overrides = (preset, {}) if isinstance(preset, str) else (preset["name"], {
            k: v for k, v in dict(preset).items() if k != "name"})
        tok = FrozenTokenizer(build_model(name, **overrides).modules["G"], key="model.cond_stage")
        missing = (f"model.cond_stage is not set (the prior would be conditioned on an untrained {name}): train the "
                   f"condition's tokenizer first (`ganzoo train model={name}` on the condition images), then pass "
                   "model.cond_stage=<its run folder>")
    if cond_input == "labels":
        missing = missing or ("its condition is one-hot label maps, and ganzoo's data sets hold images only (no paired "
                              "label maps to train on); sample it with ganzoo generate RUN --mode condition --image "
                              "labels.png")
        return LabelMapStage(tok, **geometry), resolved, missing
    return TokenizerStage(tok, **geometry), resolved, missing
