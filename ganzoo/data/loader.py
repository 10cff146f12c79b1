"""An infinite, exactly resumable stream of batches.

The global stream is an endless sequence of positions ``p = 0, 1, 2, ...``. Position ``p`` belongs to
epoch ``e = p // N`` (``N = len(dataset)``) and reads dataset index ``perm_e[p % N]``, where
``perm_e`` is a permutation drawn from a ``torch.Generator`` seeded by ``(seed, e)``; its flip bit
(when flips are on) comes from a second generator seeded the same way, so turning flips on or off
never changes the order. Everything is a pure function of ``(seed, p)``: a run resumed with
``start = images_seen`` sees exactly the batches the uninterrupted run would have seen.

Batches do not stop at epoch ends: the stream is continuous, every batch is full and no sample is
dropped (``drop_last`` is accepted for API symmetry with ``DataLoader`` and changes nothing).

Distributed: a step consumes one global batch of ``batch_size * world_size`` positions starting at
``start + step * batch_size * world_size``. Rank ``r`` takes the interleaved share
``base + r, base + r + world_size, base + r + 2 * world_size, ...`` (``batch_size`` positions), so
ranks are disjoint and together cover the global batch; ``images_seen`` counts global samples.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ganzoo.errors import ConfigError, DataError


def stream_seed(seed: int, epoch: int, stream: str) -> int:
    """A 63-bit seed for ``(seed, epoch, stream)``; hashing keeps (seed=0, epoch=1) apart from (1, 0)."""
    digest = hashlib.blake2b(f"ganzoo:{stream}:{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class StreamOrder:
    """Maps global stream positions to dataset keys ``(index, flip)``."""

    def __init__(self, num_samples: int, *, seed: int, flip: bool = False, cache_epochs: int = 2) -> None:
        if num_samples < 1:
            raise DataError("the dataset is empty; there is nothing to load.")
        self.num_samples = num_samples
        self.seed = int(seed)
        self.flip = bool(flip)
        self._cache: OrderedDict[int, tuple[Tensor, Tensor]] = OrderedDict()
        self._cache_epochs = cache_epochs

    def epoch(self, e: int) -> tuple[Tensor, Tensor]:
        """``(perm int64 [N], flips bool [N])`` of epoch ``e``."""
        if e in self._cache:
            self._cache.move_to_end(e)
            return self._cache[e]
        g = torch.Generator().manual_seed(stream_seed(self.seed, e, "perm"))
        perm = torch.randperm(self.num_samples, generator=g)
        if self.flip:
            g = torch.Generator().manual_seed(stream_seed(self.seed, e, "flip"))
            flips = torch.randint(0, 2, (self.num_samples,), generator=g).bool()
        else:
            flips = torch.zeros(self.num_samples, dtype=torch.bool)
        self._cache[e] = (perm, flips)
        if len(self._cache) > self._cache_epochs:
            self._cache.popitem(last=False)
        return perm, flips

    def keys(self, positions: Tensor) -> list[tuple[int, bool]]:
        """Keys for a 1-D tensor of (non-decreasing) stream positions."""
        epochs = torch.div(positions, self.num_samples, rounding_mode="floor")
        offsets = positions - epochs * self.num_samples
        index = torch.empty_like(positions)
        flip = torch.empty(positions.shape, dtype=torch.bool)
        for e in torch.unique(epochs).tolist():
            sel = epochs == e
            perm, flips = self.epoch(e)
            index[sel] = perm[offsets[sel]]
            flip[sel] = flips[offsets[sel]]
        return list(zip(index.tolist(), flip.tolist()))


class StreamBatchSampler(Sampler[list[tuple[int, bool]]]):
    """Yields this rank's keys, one list per batch, forever (see the module docstring)."""

    def __init__(
        self,
        num_samples: int,
        *,
        batch_size: int,
        seed: int,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
        flip: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size} must be >= 1.")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"rank={rank}, world_size={world_size}: need world_size >= 1 and 0 <= rank < world_size."
            )
        if start < 0:
            raise ConfigError(f"start={start} (images already seen) must be >= 0.")
        self.order = StreamOrder(num_samples, seed=seed, flip=flip)
        self.batch_size, self.start, self.rank, self.world_size = batch_size, start, rank, world_size
        self.global_batch = batch_size * world_size

    def positions(self, step: int) -> Tensor:
        """Stream positions of this rank's batch ``step`` (counted from ``start``)."""
        base = self.start + step * self.global_batch
        return base + self.rank + self.world_size * torch.arange(self.batch_size, dtype=torch.int64)

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        step = 0
        while True:
            yield self.order.keys(self.positions(step))
            step += 1


class StreamLoader(Iterator[tuple[Tensor, Tensor]]):
    """Iterator over ``(img [B, C, R, R], label [B])`` batches; ``images_seen`` counts global samples."""

    def __init__(self, loader: DataLoader, sampler: StreamBatchSampler) -> None:
        self.loader = loader
        self.sampler = sampler
        self.batches = 0
        self._it = iter(loader)

    @property
    def images_seen(self) -> int:
        """``start`` plus the global samples of every batch handed out so far."""
        return self.sampler.start + self.batches * self.sampler.global_batch

    def __iter__(self) -> StreamLoader:
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        batch = next(self._it)
        self.batches += 1
        return batch


def build_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    seed: int,
    start: int = 0,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    flip: bool = False,
    drop_last: bool = True,
    native: bool = False,
) -> StreamLoader:
    """An infinite iterator of collated batches ``(img [B, C, R, R], label [B])`` for this rank.

    ``start`` is the number of global samples already consumed (``images_seen`` of the run being
    resumed). ``flip`` turns on random horizontal flips (pass ``dataset.flip`` for the configured
    value). ``num_workers > 0`` uses persistent worker processes; memory is pinned when CUDA is
    available. ``drop_last`` has no effect: the stream is continuous, so every batch is full.
    ``native=True`` yields ``uint8`` images at their native size (``dataset.native_items``) for
    ``ganzoo.data.device_resize.BatchFit`` to fit on the training device.
    """
    del drop_last  # every batch is full, see the module docstring
    if num_workers < 0:
        raise ConfigError(f"num_workers={num_workers} must be >= 0.")
    n = len(dataset)
    if n == 0:
        raise DataError("the dataset is empty; there is nothing to load.")
    sampler = StreamBatchSampler(
        n, batch_size=batch_size, seed=seed, start=start, rank=rank, world_size=world_size, flip=flip
    )
    if native:
        from ganzoo.data.device_resize import NativeView

        dataset = NativeView(dataset)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        # A private generator: without it, creating the iterator draws the workers' base seed from
        # the global RNG, which would shift the training RNG stream and break exact resume.
        generator=torch.Generator().manual_seed(stream_seed(seed, start, "workers")),
    )
    return StreamLoader(loader, sampler)
