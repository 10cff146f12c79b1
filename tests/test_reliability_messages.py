"""Reliability, round 2 (issue 19, items 17, 19 and 21): fast help and list, a failed start-up writes nothing and
the run's log holds what the console showed, messages in the words the user typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from ganzoo.cli import main
from ganzoo.training.guard import DivergenceGuard, GuardConfig

from .conftest import SMOKE, compose


# -- 19.17: help without torch; list composes with OmegaConf, builds each configuration once, caches the table -----
def test_help_and_version_do_not_import_torch():
    code = ("import sys\nfrom ganzoo.cli import main\nmain(['--help'])\nmain(['--version'])\n"
            "try:\n    main(['list', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "no torch"
    assert "commands:" in out.stdout and "ganzoo 0." in out.stdout


def test_list_prints_every_model_with_the_counts_of_the_hydra_config(tmp_path, monkeypatch, capsys):
    from omegaconf import OmegaConf

    from ganzoo.cli import config_dir
    from ganzoo.commands.listing import _default_train_config
    from ganzoo.registry import list_models

    # The OmegaConf composition `list` uses is the model config `ganzoo train model=<name>` builds.
    for path in sorted((config_dir() / "model").glob("*.yaml")):
        hydra_cfg, fast = compose([f"model={path.stem}"]), _default_train_config(path.stem)
        assert OmegaConf.to_container(fast.model, resolve=True) == OmegaConf.to_container(hydra_cfg.model,
                                                                                           resolve=True), path.stem
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    assert main(["list"]) == 0
    first = capsys.readouterr().out
    rows = {line.split()[0]: line for line in first.splitlines()[1:]}
    assert set(rows) == set(list_models())
    assert "G 30.37M, D 29.01M" in rows["stylegan2_f"]  # the official config F counts
    assert list((tmp_path / "cache" / "list").glob("*.json"))  # the table is cached ...
    assert main(["list"]) == 0
    assert capsys.readouterr().out == first  # ... and printed the same from the cache
    assert main(["list", "--no-cache"]) == 0
    assert capsys.readouterr().out == first


# -- 19.21: a failed start-up leaves no folder; the run's train.log holds what the console showed ------------------
def test_a_train_that_fails_before_training_writes_no_run_folder(tmp_path, capsys):
    run = tmp_path / "runs" / "new"
    argv = ["train", *SMOKE, "data=folder", f"data.root={tmp_path / 'no_such_folder'}", f"hydra.run.dir={run}"]
    assert main(argv) == 2
    assert "data.root" in capsys.readouterr().err
    assert not run.exists()


def test_the_run_log_holds_what_the_console_showed(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *SMOKE, "trainer.steps=2", f"hydra.run.dir={run}"]) == 0
    console = capsys.readouterr()
    log = (run / "train.log").read_text()
    done = [line for line in console.out.splitlines() if line.startswith("done:")]
    assert done and done[0] in log
    assert not (run / "cli.log").exists()  # Hydra's job log is train.log itself, not an empty second file


# -- 19.19: messages in the user's words --------------------------------------------------------------------------
def test_eval_generate_reconstruct_errors_name_the_flags_typed(train_run, tmp_path, capsys):
    train_run("trainer.steps=1")
    run = str(tmp_path / "run")
    assert main(["generate", run, "--device", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--device 'nope' is not a device" in err and "trainer.device" not in err
    assert main(["eval", run, "--device", "nope", "--no-download"]) == 2
    err = capsys.readouterr().err
    assert "--device 'nope'" in err and "trainer.device" not in err
    assert main(["eval", run, "--split", "val", "--num-fake", "8", "--num-real", "8", "--no-download",
                 "--metrics", "fid", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "has no split 'val'" in err and "--split" in err and "data.split" not in err


def test_the_divergence_message_names_the_losses_and_the_keys_for_people():
    from ganzoo.training.guard import divergence_remedies

    guard = DivergenceGuard(GuardConfig(), torch.device("cpu"))
    guard.observe("Gmain", torch.tensor(1.0))
    guard.observe("Dmain", torch.tensor(float("nan")))
    problem = guard.problem({})
    assert "the discriminator's loss" in problem and "Dmain" in problem and "phase" not in problem
    fp32 = divergence_remedies("fp32", None)
    assert "model.optim.G.lr" in fp32 and "model.optim.D.lr" in fp32 and "fp32" not in fp32
    bf16 = divergence_remedies("bf16", "runs/x/checkpoints/snapshot-0000000032.safetensors")
    assert "trainer.precision=fp32" in bf16 and "trainer.resume=runs/x" in bf16


def test_a_resume_refusal_names_every_difference(train_run, tmp_path, capsys):
    train_run("trainer.steps=1")
    run = tmp_path / "run"
    assert main(["train", f"trainer.resume={run}", "seed=2", "trainer.batch_size=8", "model.G.base_channels=4"]) == 2
    err = capsys.readouterr().err
    for shown in ("model.G.base_channels: 8 -> 4", "seed: 0 -> 2", "trainer.batch_size: 16 -> 8"):
        assert shown in err, err


def test_a_resume_on_other_classes_suggests_what_works(train_run, tmp_path, capsys):
    train_run("model=sagan_tiny", "trainer.steps=1", "trainer.batch_size=4", "trainer.grid=0")
    run = tmp_path / "run"
    assert main(["train", f"trainer.resume={run}", "data=emoji"]) == 2  # the data change named first
    assert "data.name: 'fashion' -> 'emoji'" in capsys.readouterr().err
    assert main(["train", f"trainer.resume={run}", "data=emoji", "trainer.resume_force=true"]) == 2
    err = capsys.readouterr().err
    assert "trainer.force_c_dim=true" in err and "set model.c_dim" not in err and "model.c_dim cannot change" in err
    # The suggestion works.
    assert main(["train", f"trainer.resume={run}", "data=emoji", "trainer.resume_force=true",
                 "trainer.force_c_dim=true", "trainer.steps=2"]) == 0, capsys.readouterr().err
    assert Path(run / "checkpoints").is_dir()


def test_class_interp_on_an_unconditional_model_says_it_has_no_classes(tmp_path, capsys):
    """19.19: was "this model has 0 classes (0--1)"."""
    from ganzoo.cli import main
    from ganzoo.training.trainer import Trainer

    Trainer(compose([*SMOKE, "trainer.steps=1", "trainer.grid=0"]), tmp_path / "run").fit()
    assert main(["generate", str(tmp_path / "run"), "--mode", "class-interp", "--classes", "0,1"]) == 2
    err = capsys.readouterr().err
    assert "unconditional" in err and "0--1" not in err


def test_the_trainers_divergence_message_does_not_advise_fp32_to_an_fp32_run(tmp_path):
    """19.19: the trainer's own divergence message takes the remedies from the guard."""
    from ganzoo.errors import DivergedError
    from ganzoo.training.trainer import Trainer

    trainer = Trainer(compose([*SMOKE, "trainer.steps=4", "trainer.grid=0", "trainer.precision=fp32",
                               "model.optim.D.lr=1e30", "model.optim.G.lr=1e30"]), tmp_path / "run")
    try:
        trainer.fit()
    except DivergedError as err:
        text = str(err)
    else:
        raise AssertionError("lr 1e30 did not diverge")
    assert "model.optim.G.lr" in text and "model.optim.D.lr" in text and "trainer.precision=fp32" not in text
