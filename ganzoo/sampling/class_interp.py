"""Class interpolation at a fixed latent: the class-embedding protocol.

A class-conditional generator that reads its class through a learned embedding (DCGAN's
``nn.Embedding``, BigGAN's shared embedding, SAGAN's class-conditional BN tables) can be driven
by a continuous class code. Interpolating two classes' codes at a fixed ``z`` shows how one class
turns into another (BigGAN, Brock et al. 2019, Fig. 8 and BigGAN-PyTorch's ``interp_sheet``,
which lerps ``G.shared(y)``). A generator opts in with two members:

- ``G.class_embedding(c) -> e``: class indices ``[N]`` (int64) to the code ``e`` ``[N, ...]``
  the generator consumes (any trailing shape; it is interpolated linearly),
- ``G(z, c=None, *, embedding=e)``: when ``embedding`` is given it is used in place of the
  lookup of ``c`` (``c`` may then be None).

Tables indexed by class (one embedding per conditional-BN layer) can return a one-hot ``e``
``[N, c_dim]`` and compute ``e @ table.weight``: that is the same lookup for a one-hot code and a
lerp of the tables' rows in between.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError


def has_class_embedding(G: nn.Module) -> bool:
    """True when ``G`` implements the protocol above (``class_embedding`` and ``embedding=``)."""
    G = getattr(G, "module", G)  # DistributedDataParallel wrapper
    if not callable(getattr(G, "class_embedding", None)):
        return False
    params = inspect.signature(G.forward).parameters
    return "embedding" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def require_class_embedding(G: nn.Module | None) -> None:
    if G is None or not has_class_embedding(G):
        name = "no generator G" if G is None else type(getattr(G, "module", G)).__name__
        raise ConfigError(
            f"class interpolation needs a generator with a continuous class code; {name} does not implement "
            "G.class_embedding(c) and G(z, embedding=e) (see docs/sampling.md, 'Class interpolation')"
        )


def class_path(e: torch.Tensor, steps: int) -> torch.Tensor:
    """Linear path through the codes ``e [K, ...]``: ``steps`` intervals between consecutive codes.

    Returns ``[(K - 1) * steps + 1, ...]``; the codes themselves appear exactly, in order.
    """
    if e.shape[0] < 2 or steps < 1:
        raise ConfigError(f"class interpolation needs at least two classes and steps >= 1, got {e.shape[0]}, {steps}")
    t = torch.arange(steps, dtype=e.dtype, device=e.device) / steps  # [steps]
    t = t.reshape(-1, *([1] * (e.dim() - 1)))  # [steps, 1, ...]
    parts = [torch.lerp(e[i : i + 1], e[i + 1 : i + 2], t) for i in range(e.shape[0] - 1)]
    return torch.cat(parts + [e[-1:]])


@torch.no_grad()
def class_interpolation(
    G: nn.Module, z: torch.Tensor, classes: Sequence[int], *, steps: int, batch: int = 32, **opts: Any
) -> torch.Tensor:
    """Images ``[R * T, C, H, W]``, row-major: row ``r`` keeps ``z[r]`` and walks the class path.

    ``T = (len(classes) - 1) * steps + 1`` columns; column 0 is ``classes[0]`` and the last column
    ``classes[-1]`` (the same images as ``G(z, c)`` with those classes). ``opts`` go to ``G``.
    """
    require_class_embedding(G)
    c_dim = int(getattr(G, "c_dim", 0))
    bad = [k for k in classes if not 0 <= int(k) < c_dim]
    if bad:
        raise ConfigError(f"classes {bad} are out of range: this generator has {c_dim} classes (0-{c_dim - 1})")
    device = next(G.parameters()).device
    e = G.class_embedding(torch.as_tensor(list(classes), dtype=torch.long, device=device))  # [K, ...]
    path = class_path(e.float(), steps).to(e.dtype)  # [T, ...]
    rows, cols = z.shape[0], path.shape[0]
    z_all = z.to(device).repeat_interleave(cols, dim=0)  # [R * T, z_dim]
    e_all = path.repeat(rows, *([1] * (path.dim() - 1)))  # [R * T, ...]
    chunks = [G(z_all[i : i + batch], None, embedding=e_all[i : i + batch], **opts)
              for i in range(0, rows * cols, batch)]
    return torch.cat(chunks)
