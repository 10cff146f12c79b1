"""Two CPU processes (gloo) train like one process at the same global batch, and resume exactly.

The two-process runs share one ``torch.multiprocessing`` spawn (process start-up is most of the
cost); each worker joins the group through the environment that ``torchrun`` would set, so the
trainer's own ``init_from_env`` path is the one tested.

Tolerance. Splitting the batch changes only the order of float32 sums (the gradient all-reduce, the
global batch statistics), so each gradient entry differs by a few ulps of the terms summed into it,
which is a large *relative* error for the entries whose terms nearly cancel. Adam divides each entry
by its own RMS, so such an entry still takes a step of about ``lr`` carrying that relative error:
the drift is measured in Adam steps, not in ulps. Elementwise we require
``|w_2proc - w_1proc| <= STEP_FRACTION * lr + RTOL * |w_1proc|`` (5 % of one step, plus 4 float32
ulps for the large stored weights of equalized-lr layers). Measured after 4 steps: StyleGAN2
1.9e-5 (0.8 % of a step, lr 2.5e-3), DCGAN 1.2e-7 (lr 2e-4). The check can fail: another seed is
hundreds of tolerances away, and so is "naive" data parallelism (each rank drawing its own latents
and noise, BatchNorm on the local half): 2.4e-2 for StyleGAN2 and 5.5e-3 for DCGAN.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from .conftest import compose

STEP_FRACTION, RTOL = 0.05, 4 * 2.0**-23
STEPS, HALF = 4, 2
TIMEOUT_S = 300  # all the two-process jobs: about a minute on a shared 2-core CPU; more is a hang
NAN_STEP, CKPT_KIMG = 3, 0.016  # batch 8: a snapshot every 2 steps, so one is due at the check after the NaN
# 16x16 StyleGAN2, all four phases: lazy intervals 2 so that both halves of the resume run them.
STYLE = ["model=stylegan2_tiny", "model.loss.pl_interval=2", "model.loss.r1_interval=2"]
# DCGAN has BatchNorm in G and D: synchronised statistics are needed to follow one process.
DCGAN = ["model=dcgan_tiny"]
COMMON = ["trainer=smoke", "trainer.device=cpu", "trainer.batch_size=8", "trainer.grid=0", "trainer.log_every=1",
          "data.max_images=256"]


def _cfg(model: list[str], *extra: str):
    return compose(model + COMMON + list(extra))


def _state(trainer) -> dict[str, torch.Tensor]:
    """Weights, buffers (spectral-norm vectors, BN statistics, w_avg), EMA copy and objective state."""
    out = {f"objective.{k}": v.detach().cpu().clone() for k, v in trainer.objective.state_dict().items()}
    for name, m in {**trainer.modules, **{f"ema.{k}": v for k, v in trainer.ema.items()}}.items():
        out.update({f"{name}.{k}": v.detach().cpu().clone() for k, v in m.state_dict().items()})
    return out


def _drift(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], lr: float) -> float:
    """The largest ``|a - b| / (STEP_FRACTION * lr + RTOL * |a|)`` over float entries: <= 1 passes."""
    assert a.keys() == b.keys()
    return max(
        float(((a[k].double() - b[k].double()).abs() / (STEP_FRACTION * lr + RTOL * a[k].double().abs())).max())
        for k in a
        if a[k].is_floating_point()
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the two-process side (runs in spawned workers) ------------------------------------------------
def _units(out: Path, rank: int) -> None:
    """Layer-level checks: SyncBatchNorm with double backward, quantizer EMA (each rank half a batch)."""
    from ganzoo.layers.quantize import VectorQuantizer
    from ganzoo.training import distributed as dist

    x_full, net = _bn_problem()
    dist.convert_sync_batchnorm(net)
    assert isinstance(net[0], dist.SyncBatchNorm)
    x = x_full[rank::2].clone().requires_grad_(True)
    with dist.sharded_batch():
        y = net(x)
        (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)  # R1-like double backward
        loss = gx.square().sum() + y.sum()
    loss.backward()
    dist.average_gradients(net)  # as the trainer: the mean over ranks of each rank's gradient
    grads = torch.cat([p.grad.flatten() for p in net.parameters()])
    torch.manual_seed(3)
    vq = VectorQuantizer(16, 4, ema=True).train()
    z = torch.randn(8, 4, 3, 3)
    vq(z[rank::2])
    torch.save({"bn_grads": grads, "bn_running": net[0].running_var.clone(), "codebook": vq.embed.clone()},
               out / f"units_r{rank}.pt")


def _bn_problem():
    torch.manual_seed(2)
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    net = torch.nn.Sequential(bn, torch.nn.Conv2d(3, 2, 3))
    return torch.randn(8, 3, 5, 5) * 2 + 1, net


def _diverge(root: Path, rank: int) -> None:
    """Rank 1 alone sees a NaN loss at step 3 (its value only: gradients, and so the weights every rank shares,
    stay finite, as when fp16 gradient scaling skips the step). Both ranks must stop at the same check with
    exit code 3, before the snapshot due at step 4 is written."""
    from ganzoo.training.trainer import Trainer

    trainer = Trainer(_cfg(DCGAN, "trainer.steps=8", f"trainer.checkpoint_every_kimg={CKPT_KIMG}"), root / "diverge")

    def poisoned(loss_fn):
        def loss(batch, ctx):
            value, logs = loss_fn(batch, ctx)
            return (value + float("nan") if rank == 1 and ctx.step == NAN_STEP else value), logs

        return loss

    trainer.phases = [dataclasses.replace(p, loss=poisoned(p.loss)) for p in trainer.phases]
    result: dict = {"exit_code": 0, "message": ""}
    try:
        trainer.fit()
    except Exception as err:  # noqa: BLE001  (recorded: a rank left alone fails in gloo instead)
        result = {"exit_code": getattr(err, "exit_code", type(err).__name__), "message": str(err)}
    result["step"] = trainer.step
    torch.save(result, root / f"diverge_r{rank}.pt")


def _signal_one_rank(root: Path, rank: int) -> None:
    """SIGUSR1 reaches rank 1 alone, during its step 4 (of 12; agreement polled every 3 steps). Both ranks must stop
    after step 6, rank 0 saving that step's snapshot; without agreement rank 1 would leave after step 4 and rank 0
    wait in step 5's all-reduce."""
    import ganzoo.training.checkpoint as ck
    from ganzoo.training.trainer import Trainer

    trainer = Trainer(_cfg(DCGAN, "trainer.steps=12", "trainer.log_every=3"), root / "signal")
    ck._FAULT_COUNTS.clear()  # this process's earlier runs visited the step hook too
    if rank == 1:
        os.environ["GANZOO_FAULT"] = "step:4:USR1"
    try:
        trainer.fit()
    finally:
        os.environ.pop("GANZOO_FAULT", None)
    torch.save({"step": trainer.step, "stopped": trainer.stopped}, root / f"signal_r{rank}.pt")


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2", OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import torch.distributed as tdist

    from ganzoo.training.trainer import Trainer

    root = Path(out)
    jobs = [
        ("style", _cfg(STYLE, f"trainer.steps={STEPS}")),
        ("style_half", _cfg(STYLE, f"trainer.steps={HALF}")),
        ("style_resumed", _cfg(STYLE, f"trainer.steps={STEPS}", f"trainer.resume={root / 'style_half'}")),
        ("dcgan", _cfg(DCGAN, f"trainer.steps={STEPS}")),
        # A time budget: rank 0's clock decides (polled every log_every steps), so both ranks stop together.
        ("dcgan_timed", _cfg(DCGAN, "trainer.kimg=1000", "trainer.minutes=0.02", "trainer.log_every=3")),
    ]
    try:
        for name, cfg in jobs:
            trainer = Trainer(cfg, root / name)
            trainer.fit()
            torch.save(_state(trainer), root / f"{name}_r{rank}.pt")
            torch.save(trainer.step, root / f"{name}_step_r{rank}.pt")
            tdist.barrier()  # rank 0 has written its checkpoint before anyone resumes from it
        _units(root, rank)
        _signal_one_rank(root, rank)
        _diverge(root, rank)  # last: without agreement one rank would be left waiting in an all-reduce
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()


@pytest.fixture(scope="module")
def two_procs(tmp_path_factory) -> Path:
    """The workers' results; workers still running after TIMEOUT_S (a hang) are killed, and the tests whose
    results are missing fail."""
    out = tmp_path_factory.mktemp("ddp")
    procs = mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=False)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not procs.join(timeout=max(deadline - time.monotonic(), 0.1)):
            if time.monotonic() > deadline:
                (out / "timed_out").touch()
                break
    finally:
        for proc in procs.processes:
            if proc.is_alive():
                proc.kill()
    return out


def _load(out: Path, name: str, rank: int = 0) -> dict[str, torch.Tensor]:
    return torch.load(out / f"{name}_r{rank}.pt", weights_only=True)


def _one_proc(tmp_path: Path, model: list[str], *extra: str) -> tuple[dict[str, torch.Tensor], float]:
    """The final state of a one-process run, and the largest learning rate of its optimizers."""
    from ganzoo.training.trainer import Trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers; several threads on a shared 2-core CPU are many times slower
    try:
        trainer = Trainer(_cfg(model, f"trainer.steps={STEPS}", *extra), tmp_path / "_".join(extra or ("one",)))
        trainer.fit()
    finally:
        torch.set_num_threads(threads)
    lr = max(g["lr"] for opt in trainer.optimizers.values() for g in opt.param_groups)
    return _state(trainer), float(lr)


# -- tests -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,name", [(STYLE, "style"), (DCGAN, "dcgan")], ids=["stylegan2", "dcgan"])
def test_two_processes_follow_one_process(two_procs, tmp_path, model, name):
    """Weights, buffers, EMA and objective state after 4 steps at global batch 8: 2 x 4 == 1 x 8."""
    two = _load(two_procs, name)
    assert not [k for k, v in _load(two_procs, name, 1).items() if not torch.equal(v, two[k])], "ranks disagree"
    one, lr = _one_proc(tmp_path, model)
    drift = _drift(one, two, lr)
    assert drift <= 1, f"2 processes drift {drift:.3g} tolerances from 1 process"
    other_seed = _drift(one, _one_proc(tmp_path, model, "seed=1")[0], lr)
    assert other_seed > 100, f"a different seed is only {other_seed:.3g} tolerances away"


def test_two_processes_resume_exactly(two_procs):
    """4 steps straight == 2 steps, stop, resume to 4 (both with 2 processes), bit for bit."""
    straight, resumed = _load(two_procs, "style"), _load(two_procs, "style_resumed")
    assert straight.keys() == resumed.keys()
    assert not [k for k in straight if not torch.equal(straight[k], resumed[k])]


def test_two_processes_stop_together_on_a_time_budget(two_procs):
    """trainer.minutes under 2 processes: rank 0's clock decides, so both ranks end after the same step."""
    steps = [torch.load(two_procs / f"dcgan_timed_step_r{r}.pt") for r in (0, 1)]
    assert steps[0] == steps[1] and steps[0] > 0 and steps[0] % 3 == 0, steps  # a polled step
    two = _load(two_procs, "dcgan_timed")
    assert not [k for k, v in _load(two_procs, "dcgan_timed", 1).items() if not torch.equal(v, two[k])]


def test_a_signal_to_one_process_stops_both_after_the_same_step(two_procs):
    from ganzoo.training.checkpoint import load_snapshot

    got = [torch.load(two_procs / f"signal_r{r}.pt") for r in (0, 1)]
    assert got[0] == got[1] == {"step": 6, "stopped": "SIGUSR1"}, got
    assert load_snapshot(two_procs / "signal").state["step"] == 6  # rank 0 saved the step both stopped after


def test_sync_batchnorm_and_quantizer_ema_follow_one_process(two_procs):
    """SyncBatchNorm (forward, double backward, running stats) and the codebook EMA over 2 ranks."""
    from ganzoo.layers.quantize import VectorQuantizer

    x, net = _bn_problem()
    x.requires_grad_(True)
    y = net(x)
    (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    # Each rank's loss is a sum over its half; the trainer averages gradients, hence the 1/2.
    (0.5 * (gx.square().sum() + y.sum())).backward()
    grads = torch.cat([p.grad.flatten() for p in net.parameters()])
    torch.manual_seed(3)
    vq = VectorQuantizer(16, 4, ema=True).train()
    vq(torch.randn(8, 4, 3, 3))
    for rank in (0, 1):
        got = torch.load(two_procs / f"units_r{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["bn_grads"], grads, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got["bn_running"], net[0].running_var, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got["codebook"], vq.embed, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(grads, 2 * grads)  # a non-trivial gradient


def test_batch_size_is_global(monkeypatch):
    """trainer.batch_size is the global batch: it must split over processes x accumulation."""
    from ganzoo.errors import ConfigError
    from ganzoo.training import distributed as dist

    monkeypatch.setattr(dist, "world_size", lambda: 2)
    assert dist.local_batch_size(8) == 4
    with pytest.raises(ConfigError, match="global batch"):
        dist.local_batch_size(6, accumulate=2)


def test_two_processes_log_the_global_mean(two_procs, tmp_path):
    """metrics.jsonl of 2 processes holds the losses of the global batch, as the one-process run logs them
    (not rank 0's half of the batch)."""
    def losses(run: Path) -> list[dict[str, float]]:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k.startswith("loss/")} for r in rows if "step" in r]

    two = losses(two_procs / "dcgan")
    _one_proc(tmp_path, DCGAN)
    one = losses(tmp_path / "one")
    assert len(two) == len(one) == STEPS and two[0].keys() == one[0].keys() and two[0]
    for a, b in zip(two, one):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), (a, b)


def test_a_nan_on_one_rank_stops_every_rank(two_procs):
    """The divergence guard's verdict is agreed: rank 1 alone sees a NaN loss, and both ranks stop at the same
    step with exit code 3 and the same message (no rank left waiting in an all-reduce); the snapshot due after
    the NaN is not written, and the one before it is complete, verified and finite."""
    from ganzoo.training.checkpoint import complete_snapshots, find_checkpoint, newest_finite_snapshot, verify_snapshot

    assert not (two_procs / "timed_out").exists(), "a rank hung"
    results = [torch.load(two_procs / f"diverge_r{r}.pt") for r in (0, 1)]
    assert [r["exit_code"] for r in results] == [3, 3], results
    assert results[0]["step"] == results[1]["step"] == NAN_STEP + 1
    assert results[0]["message"] == results[1]["message"]
    message = results[0]["message"]
    assert "on rank 1, the " in message and "became NaN or infinite" in message, message
    ckpts = two_procs / "diverge" / "checkpoints"
    good = ckpts / "snapshot-0000000016.safetensors"
    assert complete_snapshots(ckpts) == [good] and find_checkpoint(ckpts.parent) == good
    verify_snapshot(good)
    assert newest_finite_snapshot(ckpts) == good and str(good) in results[0]["message"]
    assert not [p for p in ckpts.iterdir() if p.name.startswith(".") or ".tmp" in p.name]
