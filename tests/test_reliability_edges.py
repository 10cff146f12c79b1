"""Reliability, round 2 (issue 19, items 1-6 and 9; docs/reliability.md): no lost snapshots or provenance, one
file per sample grid, no orphan snapshot used silently, checksummed snapshots, budgets that survive resume, and
no training from a folder that is not a run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from torch import nn

import ganzoo.training.checkpoint as ck
from ganzoo.cli import main
from ganzoo.errors import CheckpointError
from ganzoo.training.checkpoint import find_checkpoint, load_snapshot, save_snapshot
from ganzoo.training.trainer import Trainer

from .conftest import SMOKE, compose

# Batches of 16; a snapshot every 2 steps (32 images), three kept.
RUN = [*SMOKE, "trainer.grid=4", "trainer.checkpoint_every_kimg=0.032", "trainer.sample_every_kimg=1",
       "trainer.keep_checkpoints=3"]


def snap(run: Path, images: int, suffix: str = ".safetensors") -> Path:
    return run / "checkpoints" / f"snapshot-{images:010d}{suffix}"


def numbered(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("snapshot-*.safetensors"))


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("GANZOO_FAULT", raising=False)
    ck._FAULT_COUNTS.clear()
    getattr(ck, "_WARNED", set()).clear()
    yield
    ck._FAULT_COUNTS.clear()


def _flip_a_byte(path: Path) -> None:
    """Flip the lowest bit of one byte in the middle of a file (for weights: the low byte of a float32 in the
    tensor data, so every value stays finite and the file still parses)."""
    data = bytearray(path.read_bytes())
    if path.name.endswith(".safetensors"):
        start = 8 + int.from_bytes(data[:8], "little")
        i = start + (len(data) - start) // 2 // 4 * 4
    else:
        i = len(data) // 2
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


# -- 1. resuming from an older snapshot ------------------------------------------------------------
def test_resume_from_an_older_snapshot_keeps_it_and_sets_later_ones_aside(tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(compose([*RUN, "trainer.steps=6", "trainer.sample_every_kimg=0.032"]), run).fit()  # at 32, 64, 96
    older = snap(run, 32)
    Trainer(compose([*RUN, "trainer.steps=3", f"trainer.resume={older}"]), run).fit()  # one new snapshot: 48
    err = capsys.readouterr().err
    # keep_checkpoints=3 no longer counts the abandoned 64 and 96: the snapshot the run started from stays.
    assert numbered(run) == [older.name, snap(run, 48).name]
    assert snap(run, 32, ".state.pt").exists()
    [aside] = list((run / "checkpoints").glob("abandoned-*"))
    assert sorted(p.name for p in aside.iterdir()) == sorted(
        [snap(run, n, s).name for n in (64, 96) for s in (".safetensors", ".state.pt", ".sha256.json")]
        + ["metrics.jsonl", "samples"])  # the abandoned continuation's records and grids go with it
    assert sorted(p.name for p in (aside / "samples").iterdir()) == ["fakes_0000000064.png", "fakes_0000000096.png"]
    assert sorted(p.name for p in (run / "samples").glob("fakes_*")) == ["fakes_0000000032.png", "fakes_0000000048.png"]
    warning = next(line for line in err.splitlines() if "abandon" in line)
    assert "snapshot-0000000064" in warning and "snapshot-0000000096" in warning and aside.name in warning
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["name"] == "snapshot-0000000048"
    assert load_snapshot(run).state["step"] == 3


# -- 2. a refused resume writes nothing; the commands are a history ---------------------------------
def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_a_refused_resume_writes_nothing_and_commands_are_appended(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *RUN, "trainer.steps=2", f"hydra.run.dir={run}"]) == 0
    before = _files(run)
    assert ".hydra/overrides.yaml" in before
    assert main(["train", f"trainer.resume={run}", "seed=2"]) == 2
    assert "seed: 0 -> 2" in capsys.readouterr().err
    assert _files(run) == before  # .hydra/*.yaml, config, commands.log: all as they were
    assert "commands.log" in before
    assert main(["train", f"trainer.resume={run}", "trainer.steps=3"]) == 0
    history = (run / "commands.log").read_text().splitlines()
    assert len(history) == 2 and "trainer.steps=2" in history[0] and history[1].endswith(
        f"ganzoo train trainer.resume={run} trainer.steps=3")
    assert (run / ".hydra" / "overrides.yaml").read_bytes() == before[".hydra/overrides.yaml"]  # the first command


# -- 3. one file per sample grid --------------------------------------------------------------------
def test_every_sample_grid_gets_its_own_file(tmp_path):
    run = tmp_path / "run"
    Trainer(compose([*RUN, "trainer.steps=4", "trainer.sample_every_kimg=0.016"]), run).fit()  # every 16 images
    grids = sorted(p.name for p in (run / "samples").glob("fakes_*.png"))
    assert grids == [f"fakes_{n:010d}.png" for n in (16, 32, 48, 64)]


# -- 4. orphan snapshots ----------------------------------------------------------------------------
def test_second_ctrl_c_during_the_first_snapshot_leaves_no_orphan_and_says_so(tmp_path, capsys, monkeypatch):
    """Two quick Ctrl-C: the second lands after the weights file of the stop's snapshot was renamed. Nothing
    of that snapshot stays, and the message does not promise a continuation that would start over."""
    run = tmp_path / "run"
    monkeypatch.setenv("GANZOO_FAULT", "step:2:INT,weights.renamed:1:INT")
    assert main(["train", *RUN, "trainer.steps=6", "trainer.checkpoint_every_kimg=1", f"hydra.run.dir={run}"]) == 130
    err = capsys.readouterr().err
    assert "aborted at step 2" in err and "nothing to continue from" in err and "Continue with" not in err
    assert not list((run / "checkpoints").iterdir())  # no orphan weights, no sidecar, no temporary file
    assert main(["generate", str(run), "--n", "4", "--out", str(tmp_path / "x.png")]) == 2


def test_generate_never_uses_an_orphan_silently(tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(compose([*RUN, "trainer.steps=4"]), run).fit()  # snapshots at 32 and 64
    orphan = snap(run, 80)
    orphan.write_bytes(snap(run, 64).read_bytes())  # a weights file whose state write was killed
    (run / "checkpoints" / "latest.json").unlink()
    assert main(["generate", str(run), "--n", "4", "--out", str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err
    assert orphan.name in err and "not used" in err and snap(run, 64).name in err
    assert find_checkpoint(run) == snap(run, 64)
    for n in (32, 64):  # no complete snapshot left: refused, naming the orphan and how to use it on purpose
        snap(run, n, ".state.pt").unlink()
    assert main(["generate", str(run), "--n", "4", "--out", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint" in err and str(orphan) in err and not (tmp_path / "b.png").exists()
    assert main(["generate", str(orphan), "--n", "4", "--out", str(tmp_path / "c.png")]) == 0  # explicitly: used


# -- 5. checksums -----------------------------------------------------------------------------------
def test_snapshots_record_their_sha256(tmp_path):
    run = tmp_path / "run"
    Trainer(compose([*RUN, "trainer.steps=2"]), run).fit()
    weights, state = snap(run, 32), snap(run, 32, ".state.pt")
    sums = json.loads(snap(run, 32, ".sha256.json").read_text())
    assert sums["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert sums["state"]["sha256"] == hashlib.sha256(state.read_bytes()).hexdigest()
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["sha256"] == {"weights": sums["weights"]["sha256"], "state": sums["state"]["sha256"]}


def test_a_flipped_byte_is_refused_by_generate_eval_resume_and_init(tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(compose([*RUN, "trainer.steps=4"]), run).fit()  # snapshots at 32 and 64
    good, bad = snap(run, 32), snap(run, 64)
    pristine = {p: p.read_bytes() for p in (bad, snap(run, 64, ".state.pt"))}
    _flip_a_byte(bad)
    commands = [["generate", str(run), "--n", "4", "--out", str(tmp_path / "x.png")],
                ["eval", str(run), "--metrics", "fid", "--num-fake", "2", "--no-download"],
                ["train", f"trainer.resume={run}", "trainer.steps=6"]]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "SHA-256" in err and repr(str(bad)) in err and f"verifies is {str(good)!r}" in err, (argv, err)
    with pytest.raises(CheckpointError, match="SHA-256"):
        Trainer(compose([*SMOKE, f"model.init={run}"]), tmp_path / "finetune")
    # The state file is checked too (resume), and the weights alone still serve generate once restored.
    bad.write_bytes(pristine[bad])
    _flip_a_byte(snap(run, 64, ".state.pt"))
    assert main(["train", f"trainer.resume={run}", "trainer.steps=6"]) == 2
    assert "SHA-256" in capsys.readouterr().err
    assert main(["generate", str(run), "--n", "4", "--out", str(tmp_path / "y.png")]) == 0
    # The snapshot the message names resumes (and the damaged later one is set aside, not deleted).
    assert main(["train", f"trainer.resume={good}", "trainer.steps=6"]) == 0
    assert load_snapshot(run).state["step"] == 6
    assert list((run / "checkpoints").glob("abandoned-*/snapshot-0000000064.state.pt"))


def test_snapshots_without_checksums_still_load_and_imported_ones_verify(tmp_path):
    run = tmp_path / "run"
    Trainer(compose([*RUN, "trainer.steps=2"]), run).fit()
    snap(run, 32, ".sha256.json").unlink()  # as written before checksums
    pointer = json.loads((run / "checkpoints" / "latest.json").read_text())
    pointer.pop("sha256")
    (run / "checkpoints" / "latest.json").write_text(json.dumps(pointer))
    assert load_snapshot(run).state["step"] == 2
    # An imported run (ganzoo.pretrained.run_folder writes through save_snapshot, keep=0) is checksummed too.
    ckpt = tmp_path / "imported" / "checkpoints"
    path = save_snapshot(ckpt, modules={"G": nn.Linear(4, 4)}, ema={}, state={"images_seen": 0, "step": 0},
                         metadata={"model": "x", "import": "{}"}, keep=0)
    assert load_snapshot(path, with_state=False).metadata["import"] == "{}"
    _flip_a_byte(path)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_snapshot(tmp_path / "imported", with_state=False)


# -- 6. time budgets across resumes -------------------------------------------------------------------
def test_a_finished_time_limited_run_resumed_trains_nothing_more(tmp_path):
    run = tmp_path / "run"
    limited = [*RUN, "trainer.kimg=100", "trainer.minutes=0.0005"]  # 30 ms of training: a step or two
    first = Trainer(compose(limited), run).fit()
    assert first["stopped"] is None and 0 < first["images_seen"] < 100_000
    again = Trainer(compose([*limited, f"trainer.resume={run}"]), run).fit()
    assert (again["step"], again["images_seen"]) == (first["step"], first["images_seen"])
    assert load_snapshot(run).state["train_time_s"] >= 0.03  # the budget spent, saved with the snapshot


@pytest.mark.parametrize("ticks", [7, 8, 9, 10, 11, 12])
def test_the_step_that_spends_the_budget_is_the_one_checkpointed(tmp_path, monkeypatch, ticks):
    """The clock advances 1 ms per reading, so the budget runs out at every possible reading within a step as
    ``ticks`` varies. Whenever it does, the run's last step is saved with the spent time: reading the clock again
    at the top of the loop once ended the run one step after its last snapshot, and its resume trained on."""
    clock = iter(range(1_000_000))
    monkeypatch.setattr(Trainer, "train_time", property(lambda self: self._time_offset + next(clock) * 1e-3))
    run = tmp_path / "run"
    limited = [*RUN, "trainer.kimg=100", f"trainer.minutes={ticks * 1e-3 / 60}", "trainer.checkpoint_every_kimg=1"]
    first = Trainer(compose(limited), run).fit()
    state = load_snapshot(run).state
    assert first["time_limit_minutes"] is not None
    assert (state["step"], state["images_seen"]) == (first["step"], first["images_seen"])
    assert state["train_time_s"] >= ticks * 1e-3
    again = Trainer(compose([*limited, f"trainer.resume={run}"]), run).fit()
    assert (again["step"], again["images_seen"]) == (first["step"], first["images_seen"])


def test_logged_time_counts_across_resumes(tmp_path):
    run = tmp_path / "run"
    Trainer(compose([*RUN, "trainer.steps=2"]), run).fit()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    t1 = rows[-1]["time_s"]
    assert load_snapshot(run).state["train_time_s"] >= t1
    Trainer(compose([*RUN, "trainer.steps=4", f"trainer.resume={run}"]), run).fit()
    later = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][len(rows):]
    assert later and all(r["time_s"] > t1 and r["wall_s"] >= r["time_s"] for r in later)
    assert load_snapshot(run).state["train_time_s"] > t1


# -- 9. a resume folder that is not a run ------------------------------------------------------------
@pytest.mark.parametrize("what", ["empty", "missing"])
def test_resume_of_a_folder_that_is_not_a_run_is_refused(tmp_path, capsys, monkeypatch, what):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "somewhere"
    if what == "empty":
        target.mkdir()
    assert main(["train", f"trainer.resume={target}", *RUN, "trainer.steps=1"]) == 2
    err = capsys.readouterr().err
    assert ("not a ganzoo run folder" if what == "empty" else "does not exist") in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # no new dated run folder, nothing trained
    assert not target.exists() or not list(target.iterdir())


def test_a_killed_write_leaves_no_stray_checksum_file(tmp_path):
    """clean_temp_files removes a checksum sidecar whose snapshot was never renamed into place (a kill)."""
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "snapshot-0000000016.sha256.json").write_text("{}")
    (ckpt / ".snapshot-0000000016.sha256.json.abc123").write_text("{}")
    ck.clean_temp_files(ckpt)
    assert not list(ckpt.iterdir())


# -- issue 19.12, 19.13, 19.22 --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["weights", "state", "checksum", "latest"])
def test_disk_full_during_each_kind_of_write_says_so_and_keeps_the_earlier_snapshot(tmp_path, monkeypatch, capsys,
                                                                                    kind):
    run = tmp_path / "run"
    monkeypatch.setenv("GANZOO_FAULT", f"{kind}.written:2:ENOSPC")  # the second snapshot's write finds the disk full
    assert main(["train", *SMOKE, "trainer.grid=0", f"hydra.run.dir={run}"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "snapshot-0000000128" in err and "Traceback" not in err
    monkeypatch.delenv("GANZOO_FAULT")
    snaps = sorted((run / "checkpoints").glob("snapshot-*.safetensors"))
    assert [p.name for p in snaps][:1] == ["snapshot-0000000128.safetensors"]
    assert load_snapshot(snaps[0]).state["images_seen"] == 128  # it verifies against its checksums
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_run_folder_that_takes_no_files_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    trainer = Trainer(compose(SMOKE), tmp_path / "run")
    trainer.run_dir = blocker / "run"  # its checkpoints/ cannot be created
    with pytest.raises(CheckpointError, match="cannot write checkpoints .* so nothing was trained"):
        trainer.fit()
    assert trainer.step == 0


def test_config_yaml_says_it_is_a_record(tmp_path, train_run):
    from omegaconf import OmegaConf

    train_run("trainer.steps=1", "trainer.grid=0")
    text = (tmp_path / "run" / "config.yaml").read_text()
    assert text.startswith("# The configuration this run was trained with") and "editing it" in text
    assert OmegaConf.load(tmp_path / "run" / "config.yaml").model.name == "dcgan_tiny"
