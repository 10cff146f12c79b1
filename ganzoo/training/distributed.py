"""Multi-process training: ranks, the global batch, and the collectives that keep ranks in step.

A single-process run is rank 0 of 1; ``torchrun`` sets the environment for more. The contract:

- **Global batch.** ``trainer.batch_size`` is the batch of one optimizer step over all ranks
  (StyleGAN2-ADA's ``--batch``); each rank draws ``batch_size / world_size`` of it. Rank ``r`` holds
  the global samples ``r, r + W, r + 2W, ...`` (the loader interleaves data positions the same way),
  so StyleGAN2's minibatch-stddev groups are the groups of the one-process run.
- **Sharded phases.** Inside :func:`sharded_batch` (the trainer enters it around each phase's loss):
  random draws made with :func:`randn`, :func:`rand`, :func:`randint` return this rank's rows of one
  global draw, so every rank sees the numbers the one-process run would give its samples; batch
  statistics (:func:`batch_mean`, :class:`SyncBatchNorm`) are taken over the global batch through a
  differentiable all-reduce, so gradients of any order match too. All ranks share one RNG stream
  (same seed, same draws), which is why the resumed RNG state of rank 0 is valid for every rank.
- **Gradients** are averaged by an explicit all-reduce after each phase's backward (as StyleGAN2-ADA
  does) rather than through DistributedDataParallel, because phases toggle ``requires_grad`` per
  module, which DDP's fixed gradient hooks do not allow. Identical gradients and optimizers keep the
  weights, spectral-norm vectors (a function of the weights) and EMA copies identical on all ranks.

With one process every helper here is the plain local operation, bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Only rank 0 logs, writes samples and checkpoints."""
    return rank() == 0


def init_from_env(device: torch.device) -> None:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def local_batch_size(global_batch: int, *, accumulate: int = 1, what: str = "trainer.batch_size") -> int:
    """This rank's share of a global batch; a :class:`ConfigError` when it does not split evenly."""
    ws, parts = world_size(), max(int(accumulate), 1)
    if global_batch % (ws * parts) != 0:
        fit = ws * parts * max(1, global_batch // (ws * parts))
        raise ConfigError(
            f"{what}={global_batch} is the global batch of one step; it must be divisible by the number of "
            f"processes ({ws}) times trainer.accumulate ({parts}), e.g. {what}={fit}."
        )
    return global_batch // ws


def agree(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Rank 0's ``flag`` on every rank (one tiny broadcast): for decisions only rank 0's clock makes."""
    if world_size() == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def agree_max(value: int, device: torch.device | str = "cpu") -> int:
    """The largest of the ranks' ``value`` on every rank (one tiny all-reduce): for decisions any rank can make,
    such as a stop signal that reached one process only."""
    if world_size() == 1:
        return value
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def agree_problems(problem: str | None, device: torch.device | str = "cpu", *, limit: int = 2048) -> str | None:
    """One verdict for all ranks: None when no rank reports a problem, else every reporting rank's sentence.

    For decisions any rank can make (the divergence guard reads its own flags, from its own shard's losses):
    a rank that stops alone leaves the others waiting in their next all-reduce. One tiny all-reduce of a
    flag per rank; only when a flag is set, a second one sums the ranks' messages (UTF-8 bytes, at most
    ``limit`` each, in each rank's own row), so every rank raises the same error at the same step."""
    if world_size() == 1:
        return problem
    ws, me = world_size(), rank()
    flags = torch.zeros(ws, device=device)
    flags[me] = float(problem is not None)
    dist.all_reduce(flags)
    flags = flags.cpu()
    if not bool(flags.any()):
        return None
    rows = torch.zeros(ws, limit, dtype=torch.uint8, device=device)
    if problem is not None:
        data = problem.encode()[:limit]
        rows[me, : len(data)] = torch.tensor(list(data), dtype=torch.uint8, device=device)
    dist.all_reduce(rows)
    said: dict[str, list[int]] = {}
    for r, row in enumerate(rows.cpu()):
        if bool(flags[r]):
            said.setdefault(bytes(row.tolist()).rstrip(b"\0").decode(errors="replace"), []).append(r)
    if len(said) == 1 and len(next(iter(said.values()))) == ws:
        return next(iter(said))  # every rank saw the same (e.g. weights, which all ranks share)
    return "; ".join(f"on rank {', '.join(map(str, ranks))}, {text}" for text, ranks in said.items())


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over ranks (one all-reduce; ``x`` itself with one process). Not differentiable."""
    if world_size() == 1:
        return x
    out = x.detach().clone()
    dist.all_reduce(out)
    return out / world_size()


def global_means(logs: Mapping[str, Sequence[torch.Tensor]], device: torch.device | str = "cpu") -> dict[str, float]:
    """``{key: mean of its logged values}`` over the global batch: each rank's mean of its shard's values,
    averaged over ranks (equal shards) in one all-reduce of all keys stacked, so a run with N processes logs
    what the one-process run logs, not rank 0's shard. Called at log time only, by every rank (the keys are
    those of the same phases on every rank; they are reduced in sorted order and returned in ``logs``' order)."""
    keys = sorted(logs)
    if not keys:
        return {}
    local = torch.stack([torch.stack(list(logs[k])).float().mean().to(device) for k in keys])
    means = dict(zip(keys, mean_over_ranks(local).tolist()))
    return {k: means[k] for k in logs}


def broadcast_module(module: nn.Module) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if world_size() == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def average_gradients(module: nn.Module) -> None:
    if world_size() == 1:
        return
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


# -- sharded phases ------------------------------------------------------------------------------
_SHARDED = False


@contextmanager
def sharded_batch() -> Iterator[None]:
    """While active (and with more than one process), the local batch is this rank's shard of the
    global batch: see the module docstring. Every rank must enter it around the same code."""
    global _SHARDED
    previous, _SHARDED = _SHARDED, True
    try:
        yield
    finally:
        _SHARDED = previous


def sharding() -> bool:
    """True inside :func:`sharded_batch` when there is more than one process."""
    return _SHARDED and world_size() > 1


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks. Each rank's loss uses the sum, so the gradient of the total loss with respect
    to one rank's input is the sum of all ranks' output gradients: backward is the same all-reduce
    (applied through this Function again, so double backward works for R1 and path length)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``x`` over ranks (``x`` itself with one process)."""
    return _AllReduceSum.apply(x) if world_size() > 1 else x


def batch_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of all elements of ``x`` over the global batch when sharding (equal shards), else ``x.mean()``.

    Differentiable; e.g. the running path-length mean (StyleGAN2 Sec. 3.2) and the ``w_avg`` tracked
    for truncation then follow the one-process run and stay identical on every rank. (StyleGAN2-ADA
    keeps both per rank and leaves them out of its consistency check; reducing them is what lets a
    resumed multi-process run continue exactly.)
    """
    if not sharding():
        return x.mean()
    return all_reduce_sum(x.sum()) / (x.numel() * world_size())


def batch_mean_rows(x: torch.Tensor) -> torch.Tensor:
    """Mean over dim 0 (the batch) of the global batch when sharding, else ``x.mean(dim=0)``."""
    if not sharding():
        return x.mean(dim=0)
    return all_reduce_sum(x.sum(dim=0)) / (x.shape[0] * world_size())


def _rows(full: torch.Tensor) -> torch.Tensor:
    """This rank's rows ``r, r + W, ...`` of a global draw (the loader's interleaving)."""
    return full[rank() :: world_size()].contiguous()


def randn(
    n: int, *shape: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``torch.randn(n, *shape)``; when sharding, this rank's ``n`` rows of a draw for the global batch."""
    if not sharding():
        return torch.randn(n, *shape, device=device, dtype=dtype)
    return _rows(torch.randn(n * world_size(), *shape, device=device, dtype=dtype))


def randn_like(x: torch.Tensor) -> torch.Tensor:
    """``torch.randn_like(x)``; when sharding, this rank's rows of a global draw (dim 0 is the batch)."""
    if not sharding():
        return torch.randn_like(x)
    return randn(*x.shape, device=x.device, dtype=x.dtype)


def rand(
    n: int, *shape: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``torch.rand(n, *shape)``; when sharding, this rank's rows of a global draw."""
    if not sharding():
        return torch.rand(n, *shape, device=device, dtype=dtype)
    return _rows(torch.rand(n * world_size(), *shape, device=device, dtype=dtype))


def randint(low: int, high: int, n: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """``torch.randint(low, high, (n,))``; when sharding, this rank's rows of a global draw."""
    if not sharding():
        return torch.randint(low, high, (n,), device=device)
    return _rows(torch.randint(low, high, (n * world_size(),), device=device))


# -- batch norm over the global batch ------------------------------------------------------------
class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (Ioffe & Szegedy 2015, Alg. 1).

    ``torch.nn.SyncBatchNorm`` runs only on GPUs; this one works with any backend (gloo on CPU
    included) through two differentiable all-reduces (sums, then squared deviations: the two-pass
    variance, as accurate as the local kernel). Outside :func:`sharded_batch`, in eval mode and with
    one process it is ``nn.BatchNorm``. Parameters and buffers are those of ``nn.BatchNorm``, so
    checkpoints are interchangeable.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected input with a channel dimension [N, C, ...], got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and sharding()):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.full([1], float(xf.numel() // xf.shape[1]), device=x.device)
        sums = all_reduce_sum(torch.cat([xf.sum(dims), count]))  # [C + 1]
        total = sums[-1].detach()
        mean = sums[:-1] / total  # [C]
        centred = xf - mean.view(shape)
        var = all_reduce_sum(centred.square().sum(dims)) / total  # [C], biased (used to normalise)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                # momentum None = cumulative average, as nn.BatchNorm
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * (total / (total - 1).clamp(min=1))
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm inside ``module`` (in place) by a :class:`SyncBatchNorm` holding the same
    parameter and buffer tensors, so optimizers, EMA copies and checkpoints are unaffected. Only
    needed with several processes; returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, SyncBatchNorm):
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            sync.training = child.training
            for key, value in [*child._parameters.items(), *child._buffers.items()]:
                setattr(sync, key, value)
            setattr(module, name, sync)
        else:
            convert_sync_batchnorm(child)
    return module
