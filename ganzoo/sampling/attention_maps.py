"""Where a generator's self-attention looks (SAGAN, Zhang et al., ICML 2019, Fig. 1).

For a query pixel of a generated image, the attention layer's softmax row
``beta_j = softmax_i(f(x_j)^T g(x_i))`` (Sec. 3, eq. 1) is a distribution over the key positions
``i`` of the layer's feature map. This module

1. finds the :class:`~ganzoo.layers.attention.SelfAttention2d` modules of a generator,
2. runs the generator once with a forward hook on the chosen layer that recomputes those weights
   from the layer's input (:meth:`SelfAttention2d.attention_map`, ``[N, HW, HW']``),
3. maps each query pixel ``(x, y)`` of the image to the feature cell that contains it, takes that
   row, reshapes it to the key grid (``H/2 x W/2`` with the official code's max-pooled keys) and
   upsamples it to the image (nearest: every key cell covers a block of pixels),
4. renders the image, then one panel per query: the map as a heat map over the image, the query
   marked with a dot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..layers.attention import SelfAttention2d


def attention_layers(G: nn.Module) -> list[tuple[str, SelfAttention2d]]:
    """``(name, module)`` of every self-attention layer of ``G``, in module order."""
    return [(name, m) for name, m in G.named_modules() if isinstance(m, SelfAttention2d)]


@dataclass
class AttentionCapture:
    """One generator pass with the weights of one attention layer."""

    images: torch.Tensor  # [N, C, H, W] in [-1, 1]
    weights: torch.Tensor  # [N, h*w, kh*kw], rows sum to 1
    grid: tuple[int, int]  # (h, w) of the query positions (the layer's feature map)
    key_grid: tuple[int, int]  # (kh, kw) of the key positions
    layer: str  # module name inside G

    def maps(self, queries: Sequence[tuple[int, int]], *, scale: int = 1) -> torch.Tensor:
        """Attention maps ``[N, Q, H * scale, W * scale]`` for query pixels ``(x, y)`` of the image.

        ``x`` counts columns from the left, ``y`` rows from the top, in image pixels; the query's
        feature cell is ``(y * h // H, x * w // W)``.
        """
        n, _, H, W = self.images.shape
        h, w = self.grid
        kh, kw = self.key_grid
        rows = []
        for x, y in queries:
            if not (0 <= x < W and 0 <= y < H):
                raise ConfigError(f"query ({x}, {y}) is outside the {W}x{H} image; use 0 <= x < {W}, 0 <= y < {H}")
            rows.append(self.weights[:, (y * h // H) * w + (x * w // W)])  # [N, kh*kw]
        keys = torch.stack(rows, 1).reshape(n, len(queries), kh, kw)  # [N, Q, kh, kw]
        return F.interpolate(keys.float(), size=(H * scale, W * scale), mode="nearest")  # [N, Q, H', W']


@torch.no_grad()
def capture_attention(G: nn.Module, z: torch.Tensor, c: torch.Tensor | None = None, *, layer: int = 0,
                      sample: Any = None, batch: int | None = None, **opts: Any) -> AttentionCapture:
    """Generate ``G(z, c, **opts)`` (or ``sample(z, c)``) and capture the weights of attention layer ``layer``.

    ``sample`` replaces the plain call, e.g. a bundle's sampler that adds schedule options; ``batch``
    limits the latents per forward pass (the weights are ``[N, HW, HW']``, large at 64x64).
    """
    layers = attention_layers(G)
    if not layers:
        raise ConfigError(f"{type(G).__name__} has no self-attention layer (SelfAttention2d); attention maps need "
                          "one (sagan, biggan)")
    if not -len(layers) <= layer < len(layers):
        names = ", ".join(f"{i}: {name}" for i, (name, _) in enumerate(layers))
        raise ConfigError(f"--layer {layer} does not exist; this generator's attention layers are {names}")
    name, module = layers[layer]
    captured: dict[str, Any] = {"weights": []}

    def hook(mod: SelfAttention2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = inputs[0]
        captured["weights"].append(mod.attention_map(x).float())  # [n, HW, HW']
        captured["grid"] = (int(x.shape[2]), int(x.shape[3]))

    step = batch or z.shape[0]
    handle = module.register_forward_hook(hook)
    try:
        chunks = []
        for i in range(0, z.shape[0], step):
            zz, cc = z[i : i + step], (c[i : i + step] if c is not None else None)
            chunks.append(sample(zz, cc) if sample is not None else G(zz, cc, **opts))
    finally:
        handle.remove()
    if len(captured["weights"]) != len(chunks):
        raise ConfigError(f"attention layer {name!r} did not run once per forward pass (is it beyond the current "
                          "resolution of a progressive model, or used twice?)")
    images, weights = torch.cat(chunks), torch.cat(captured["weights"])
    h, w = captured["grid"]
    keys = weights.shape[-1]
    key_grid = (h, w) if keys == h * w else (h // 2, w // 2)  # SelfAttention2d(pool=True): 2x2 max-pooled keys
    if key_grid[0] * key_grid[1] != keys:
        raise ConfigError(f"attention layer {name!r}: {keys} key positions fit neither {h}x{w} nor its pooled grid")
    return AttentionCapture(images.float(), weights, (h, w), key_grid, name)


def _colormap(values: np.ndarray, name: str) -> np.ndarray:
    """``[...]`` in [0, 1] -> ``[..., 3]`` float RGB in [0, 1]."""
    from matplotlib import colormaps

    return colormaps[name](values)[..., :3]


def _dot(panel: np.ndarray, x: float, y: float, radius: float) -> None:
    """A green dot with a black ring at ``(x, y)`` in an ``[H, W, 3]`` float image."""
    H, W, _ = panel.shape
    yy, xx = np.mgrid[0:H, 0:W]
    d2 = (xx - x) ** 2 + (yy - y) ** 2
    panel[d2 <= (radius + 1) ** 2] = (0.0, 0.0, 0.0)
    panel[d2 <= radius**2] = (0.1, 1.0, 0.1)


def render_attention(
    capture: AttentionCapture,
    queries: Sequence[tuple[int, int]],
    *,
    scale: int = 1,
    alpha: float = 0.6,
    cmap: str = "jet",
) -> torch.Tensor:
    """Panels ``[N * (1 + Q), 3, H * scale, W * scale]`` in [-1, 1], row-major (save with ``nrow=1+Q``).

    Each row is one image: the image itself, then for every query the heat map of its attention
    (divided by its maximum, so the colours are relative within a panel) blended with the image
    (``alpha`` of heat), and the query pixel marked with a green dot.
    """
    imgs = F.interpolate(capture.images, scale_factor=scale, mode="nearest") if scale > 1 else capture.images
    imgs = imgs.float().cpu().clamp(-1, 1)
    if imgs.shape[1] == 1:
        imgs = imgs.repeat(1, 3, 1, 1)  # grey -> RGB, so the heat map can be coloured
    base = ((imgs[:, :3] + 1) / 2).permute(0, 2, 3, 1).numpy()  # [N, H', W', 3] in [0, 1]
    maps = capture.maps(queries, scale=scale).cpu()  # [N, Q, H', W']
    maps = (maps / maps.flatten(2).amax(-1).clamp_min(1e-12)[..., None, None]).numpy()
    radius = max(1.5, 0.03 * base.shape[1])
    panels = []
    for i in range(base.shape[0]):
        panels.append(base[i])
        for q, (x, y) in enumerate(queries):
            panel = (1 - alpha) * base[i] + alpha * _colormap(maps[i, q], cmap)
            _dot(panel, (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5, radius)
            panels.append(panel)
    out = torch.from_numpy(np.stack(panels)).permute(0, 3, 1, 2).float()  # [N * (1 + Q), 3, H', W']
    return out * 2 - 1


def default_queries(resolution: int) -> list[tuple[int, int]]:
    """Four query pixels, one in the middle of each quarter of the image."""
    a, b = resolution // 4, (3 * resolution) // 4
    return [(a, a), (b, a), (a, b), (b, b)]
