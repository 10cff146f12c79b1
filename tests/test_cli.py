"""The command line: list, train (Hydra), generate, and the error messages people see."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ganzoo.cli import main


def test_list_prints_every_model_with_counts(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "dcgan " in out and "baseline" in out
    assert "G 3.58M, D 2.77M" in out  # the paper configuration of DCGAN


def test_unknown_command(capsys):
    assert main(["trian"]) == 2
    assert "Did you mean 'train'" in capsys.readouterr().err


def test_train_then_generate_from_the_shell(tmp_path):
    """The real console entry point: `ganzoo train` in a subprocess, then `ganzoo generate` on its run."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "ganzoo.cli", "train", "model=dcgan_tiny", "trainer=smoke", "trainer.steps=3",
           "trainer.device=cpu", f"hydra.run.dir={run}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done:" in proc.stdout
    assert (run / "config.yaml").exists() and (run / "metrics.jsonl").exists()
    assert list((run / "checkpoints").glob("snapshot-*.safetensors"))

    out_a, out_b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["generate", str(run), "--n", "9", "--seed", "3", "--out", str(out_a)]) == 0
    assert main(["generate", str(run), "--n", "9", "--seed", "3", "--out", str(out_b), "--individual",
                 str(tmp_path / "ind")]) == 0
    a, b = np.asarray(Image.open(out_a)), np.asarray(Image.open(out_b))
    assert a.shape == (3 * 32, 3 * 32, 3) and np.array_equal(a, b)  # seeded
    assert len(list((tmp_path / "ind").glob("*.png"))) == 9


def test_train_unknown_model_lists_choices():
    proc = subprocess.run([sys.executable, "-m", "ganzoo.cli", "train", "model=dcgna", "trainer.device=cpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "dcgna" in proc.stderr and "dcgan" in proc.stderr  # Hydra lists the available options


def test_train_impossible_resolution_message(tmp_path, capsys):
    rc = main(["train", "model=dcgan_tiny", "model.resolution=48", "trainer.device=cpu",
               f"hydra.run.dir={tmp_path / 'r'}"])
    assert rc == 2
    assert "cannot produce resolution 48" in capsys.readouterr().err


def test_generate_missing_checkpoint_message(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_generate_rejects_unknown_generator_option(tmp_path, capsys, train_run):
    train_run("trainer.steps=1")
    assert main(["generate", str(tmp_path / "run"), "--opt", "wiggle=3"]) == 2
    assert "does not take ['wiggle']" in capsys.readouterr().err


def test_config_dir_is_found():
    from ganzoo.cli import config_dir

    d = config_dir()
    assert (d / "train.yaml").exists() and (Path(d) / "model" / "dcgan.yaml").exists()
