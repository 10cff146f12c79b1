"""Reliability (issue 11, docs/reliability.md): kills at every kind of write, signals, divergence,
resume of the run's own config, refusal of diverged snapshots."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import ganzoo.training.checkpoint as ck
from ganzoo.cli import main
from ganzoo.errors import GanzooError
from ganzoo.training.checkpoint import find_checkpoint, load_snapshot
from ganzoo.training.trainer import Trainer

from .conftest import compose

# 12 steps of 16 images, a snapshot every 3 steps (48 images), two kept: 4 snapshot writes per run.
FAULT_RUN = ["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.steps=12", "trainer.grid=4",
             "trainer.checkpoint_every_kimg=0.048", "trainer.sample_every_kimg=0.096", "trainer.keep_checkpoints=2"]


@pytest.fixture(autouse=True)
def _fresh_fault_counts(monkeypatch):
    monkeypatch.delenv("GANZOO_FAULT", raising=False)
    counts = getattr(ck, "_FAULT_COUNTS", {})  # per-process visit counts of the fault points
    counts.clear()
    yield
    counts.clear()


def complete_snapshots(ckpt_dir: Path) -> list[Path]:
    return [p for p in sorted(ckpt_dir.glob("snapshot-*.safetensors"))
            if p.with_name(p.name.replace(".safetensors", ".state.pt")).exists()]


def _cli(args: list[str], fault: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("GANZOO_FAULT", None)
    if fault:
        env["GANZOO_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "ganzoo.cli", "train", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _final_state(run: Path) -> dict[str, torch.Tensor]:
    """Weights, EMA and optimizer state of a run's newest snapshot, flattened."""
    snap = load_snapshot(run)
    out = {f"w.{m}.{k}": v for m, sd in snap.weights.items() for k, v in sd.items()}
    out.update({f"ema.{m}.{k}": v for m, sd in snap.ema.items() for k, v in sd.items()})
    for name, opt in snap.state["optimizers"].items():
        for i, st in opt["state"].items():
            out.update({f"opt.{name}.{i}.{k}": torch.as_tensor(v) for k, v in st.items()})
    out["images_seen"] = torch.tensor(snap.state["images_seen"])
    return out


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"not bit-identical: {different[:5]}"


def _no_temp_files(run: Path) -> None:
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The uninterrupted run (in-process: the same trainer as the CLI's, with its one thread, since the
    thread count changes the order of float reductions)."""
    run = tmp_path_factory.mktemp("ref") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(compose(FAULT_RUN), run).fit()
    finally:
        torch.set_num_threads(threads)
    return _final_state(run)


def test_kill9_at_every_kind_of_write_then_resume_is_bit_identical(tmp_path, reference):
    """SIGKILL during the very first state write, a weights write, a latest.json write and a training
    step; each time `ganzoo train trainer.resume=RUN` (no other argument: the run's own config) continues.
    The final weights, EMA and optimizer state equal the uninterrupted run's bit for bit."""
    run = tmp_path / "run"
    first = _cli([*FAULT_RUN, f"hydra.run.dir={run}"], fault="state.written:1")
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    # Killed while the very first state file was being written: a weights file without state, a temp file.
    assert list((run / "checkpoints").glob(".snapshot-*.state.pt.*")) and not complete_snapshots(run / "checkpoints")
    chain = [
        ("weights.begin:2", "starts from the beginning"),  # first write killed -> starts over, with a message
        ("latest.written:1", None),  # both snapshot files in place, latest.json not yet renamed
        ("step:2", None),  # during training
        (None, None),  # to the end
    ]
    for fault, expected in chain:
        proc = _cli([f"trainer.resume={run}"], fault=fault)
        if fault is None:
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert "done:" in proc.stdout
        else:
            assert proc.returncode == -signal.SIGKILL, (fault, proc.stderr[-2000:])
        if expected:
            assert expected in proc.stderr
    _no_temp_files(run)
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 12
    assert len(complete_snapshots(run / "checkpoints")) == 2  # keep_checkpoints=2 still holds
    _assert_identical(reference, _final_state(run))


@pytest.mark.slow
def test_many_random_kill_points_then_resume_is_bit_identical(tmp_path):
    """As above with random kill points (a random phase of a random kind of write, or a random step) until
    the run ends: 36 steps, a snapshot every 2 steps, so about 20 kills land before it does."""
    config = [*FAULT_RUN, "trainer.steps=36", "trainer.checkpoint_every_kimg=0.032"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(compose(config), tmp_path / "ref").fit()
    finally:
        torch.set_num_threads(threads)
    rng = random.Random(1234)
    run = tmp_path / "run"
    points = [f"{kind}.{when}" for kind in ("weights", "state", "latest") for when in ("begin", "written", "renamed")]
    kills = []
    for attempt in range(80):
        fault = f"{rng.choice(points + ['step'] * 3)}:{rng.randint(1, 3)}"
        args = [*config, f"hydra.run.dir={run}"] if attempt == 0 else [f"trainer.resume={run}"]
        proc = _cli(args, fault=fault)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        kills.append(fault)
    else:
        pytest.fail("the run did not finish")
    assert len(kills) >= 10, kills
    _no_temp_files(run)
    _assert_identical(_final_state(tmp_path / "ref"), _final_state(run))


def test_sigterm_saves_and_exits_143(tmp_path):
    """SIGTERM (what SLURM/Kubernetes send) at step 3: a checkpoint of step 3, exit code 143, a message."""
    run = tmp_path / "run"
    proc = _cli([*FAULT_RUN, f"hydra.run.dir={run}", "trainer.checkpoint_every_kimg=1"], fault="step:3:TERM")
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "stopped by SIGTERM at 48 of 192 images" in proc.stdout and "done:" not in proc.stdout
    assert "Traceback" not in proc.stderr
    assert load_snapshot(run).state["step"] == 3


@pytest.mark.parametrize("sig, code", [("USR1", 138), ("INT", 130)])
def test_sigusr1_and_ctrl_c_save_and_say_stopped(tmp_path, capsys, monkeypatch, sig, code):
    run = tmp_path / "run"
    monkeypatch.setenv("GANZOO_FAULT", f"step:2:{sig}")
    rc = main(["train", *FAULT_RUN, "trainer.checkpoint_every_kimg=1", f"hydra.run.dir={run}"])
    out = capsys.readouterr().out
    assert rc == code
    assert "stopped by" in out and "done:" not in out and f"trainer.resume={run}" in out
    assert load_snapshot(run).state["step"] == 2


def test_second_ctrl_c_aborts_without_traceback(tmp_path, capsys, monkeypatch):
    """Ctrl-C at step 2, Ctrl-C again while the stop's checkpoint is written: exit 130, no half file."""
    run = tmp_path / "run"
    monkeypatch.setenv("GANZOO_FAULT", "step:2:INT,state.begin:1:INT")
    rc = main(["train", *FAULT_RUN, "trainer.checkpoint_every_kimg=1", f"hydra.run.dir={run}"])
    err = capsys.readouterr().err
    assert rc == 130 and "aborted at step 2" in err and "Traceback" not in err
    assert not complete_snapshots(run / "checkpoints")  # the interrupted write left nothing
    _no_temp_files(run)


def test_ctrl_c_during_startup(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GANZOO_FAULT", "startup:1:INT")
    rc = main(["train", *FAULT_RUN, f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert rc == 130 and "interrupted during start-up" in err and "Traceback" not in err


def test_finite_blowup_stops_with_exit_code_3(tmp_path, capsys):
    """lr=1e6 (issue 11.2): losses reach ~1e14 while staying finite; the guard stops the run, exit code 3,
    and no snapshot is written."""
    run = tmp_path / "run"
    rc = main(["train", "model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=4",
               "model.optim.G.lr=1e6", "model.optim.D.lr=1e6", f"hydra.run.dir={run}"])
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "diverged" in err and "exploded" in err
    assert not list(run.glob("checkpoints/snapshot-*"))


def test_nan_run_keeps_the_last_finite_snapshot_and_names_it(tmp_path):
    """Issue 11.1: a run that diverges to NaN never writes a non-finite snapshot, pruning keeps the last
    finite one, latest.json points at it, and the message names it."""
    run = tmp_path / "run"
    base = FAULT_RUN[:-1] + ["trainer.keep_checkpoints=1"]
    Trainer(compose(base + ["trainer.steps=6"]), run).fit()  # healthy: snapshots at steps 3 and 6
    good = find_checkpoint(run)
    cfg = compose(base + ["trainer.steps=12", "trainer.checkpoint_every_kimg=0.016", "model.optim.G.lr=1e20",
                          "model.optim.D.lr=1e20", f"trainer.resume={run}", "trainer.resume_force=true"])
    with pytest.raises(GanzooError, match=rf"last good checkpoint is '{good}'") as info:
        Trainer(cfg, run).fit()
    assert info.value.exit_code == 3
    assert find_checkpoint(run) == good and good.exists()
    for p in (run / "checkpoints").glob("snapshot-*.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(str(p)).values())


def _poison(run: Path) -> Path:
    """Write NaN into one generator weight of the run's snapshot (as ganzoo before issue 11 did)."""
    path = find_checkpoint(run)
    tensors = load_file(str(path))
    with open(path, "rb") as fh:
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
    key = next(k for k in tensors if k.startswith("ema.G.") and tensors[k].is_floating_point())
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    tensors[key.replace("ema.", "", 1)] = torch.full_like(tensors[key], float("nan"))
    save_file(tensors, str(path), metadata=header["__metadata__"])
    return path


def test_generate_and_eval_refuse_nonfinite_weights(tmp_path, capsys, train_run):
    train_run("trainer.steps=1")
    _poison(tmp_path / "run")
    assert main(["generate", str(tmp_path / "run"), "--n", "4", "--out", str(tmp_path / "x.png")]) == 2
    assert "non-finite weights" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    assert main(["eval", str(tmp_path / "run"), "--metrics", "fid", "--num-fake", "2", "--no-download"]) == 2
    assert "non-finite weights" in capsys.readouterr().err


def test_resume_takes_the_runs_own_config_and_folder(tmp_path, capsys, train_run):
    """Issue 11.3: `ganzoo train trainer.resume=RUN` (no model=) continues RUN with its own config, in RUN."""
    train_run("trainer.steps=2", "model.G.z_dim=16")
    run = tmp_path / "run"
    assert main(["train", f"trainer.resume={run}", "trainer.steps=4", "trainer.progress=false"]) == 0
    assert f"run folder {run}" in capsys.readouterr().out
    snap = load_snapshot(run)
    assert snap.state["step"] == 4 and "z_dim: 16" in snap.metadata["model_config"]


def test_resume_of_another_family_takes_none_of_the_default_models_keys(tmp_path, capsys, train_run):
    """The default model group (dcgan) must not leak keys into a resumed run of another family."""
    train_run("model=biggan_tiny", "trainer.steps=1", "trainer.grid=0")  # its G has no dcgan keys
    run = tmp_path / "run"
    assert main(["train", f"trainer.resume={run}", "trainer.steps=2", "trainer.progress=false"]) == 0, (
        capsys.readouterr().err)
    assert load_snapshot(run).state["step"] == 2


def test_resume_refuses_exactness_breaking_overrides(tmp_path, capsys, train_run):
    """Issue 11.3: another seed, batch size, data or precision would not continue the run exactly."""
    train_run("trainer.steps=2")
    run = tmp_path / "run"
    for override, shown in [("seed=1", "seed: 0 -> 1"), ("trainer.batch_size=8", "trainer.batch_size: 16 -> 8"),
                            ("data.max_images=100", "data.max_images: None -> 100"),
                            ("trainer.precision=bf16", "trainer.precision: 'fp32' -> 'bf16'")]:
        assert main(["train", f"trainer.resume={run}", override, "trainer.steps=3"]) == 2, override
        err = capsys.readouterr().err
        assert shown in err and "trainer.resume_force=true" in err
    # Forcing is possible, and says so.
    assert main(["train", f"trainer.resume={run}", "seed=1", "trainer.steps=3", "trainer.resume_force=true"]) == 0
    assert "does not continue exactly" in capsys.readouterr().err
