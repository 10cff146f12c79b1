"""Every config value is checked at start with one message and no traceback (issue 11.5)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ganzoo.cli import main
from ganzoo.errors import CheckpointError, ConfigError
from ganzoo.training.checkpoint import find_checkpoint
from ganzoo.training.trainer import Trainer

from .conftest import SMOKE, compose


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.log_every=0", "trainer.log_every=0"),
        ("trainer.kimg=ten", "trainer.kimg='ten'"),
        ("seed=abc", "seed='abc'"),
        ("trainer.kimg=-1", "trainer.kimg=-1"),
        ("model.c_dim=-1", "model.c_dim=-1"),
        ("trainer.batch_size=0", "trainer.batch_size=0"),
        ("trainer.precision=fp8", "trainer.precision='fp8'"),
        ("trainer.keep_checkpoints=-2", "trainer.keep_checkpoints=-2"),
        ("trainer.grid=many", "trainer.grid='many'"),
        ("trainer.guard.loss_factor=0.5", "trainer.guard.loss_factor=0.5"),
        ("trainer.eval.every_kimg=-5", "trainer.eval.every_kimg=-5"),
        ("data.max_images=0", "data.max_images=0"),
        ("trainer.ema=maybe", "trainer.ema='maybe'"),
    ],
)
def test_bad_value_is_named(override, key):
    with pytest.raises(ConfigError, match="invalid configuration") as info:
        Trainer(compose([*SMOKE, override]), "/nonexistent/never-created")
    assert key in str(info.value)


def test_all_problems_in_one_message_and_defaults_are_valid():
    from ganzoo.training.validate import config_problems

    assert config_problems(compose(SMOKE)) == []
    assert config_problems(compose(["model=stylegan2_tiny"])) == []
    problems = config_problems(compose([*SMOKE, "trainer.log_every=0", "seed=-3", "trainer.accumulate=3"]))
    assert len(problems) == 3 and any("not divisible" in p for p in problems)


def test_a_bad_preset_batch_names_model_batch_size():
    from ganzoo.training.validate import config_problems

    (problem,) = config_problems(compose(["model=stylegan2", "model.batch_size=0"]))
    assert problem.startswith("trainer.batch_size=0") and "model.batch_size" in problem
    (problem,) = config_problems(compose(["model=stylegan2", "trainer.batch_size=0"]))  # the user's own value
    assert "model.batch_size" not in problem


def test_cli_prints_one_paragraph_without_traceback(tmp_path, capsys):
    rc = main(["train", *SMOKE, "trainer.kimg=ten", "trainer.log_every=0", f"hydra.run.dir={tmp_path / 'r'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.count("\n") == 1 and "trainer.kimg='ten'" in err and "trainer.log_every=0" in err


def _folder(root, classes: dict[str, int]):
    for name, n in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(root / name / f"{i}.png")
    return root


def test_class_count_must_match_and_empty_class_folder_is_reported(tmp_path):
    """Issue 11.5: model.c_dim above the data's classes is refused unless forced; an empty class folder
    is named in a warning."""
    root = _folder(tmp_path / "imgs", {"a": 3, "b": 3, "empty": 0})
    base = [*SMOKE, "data=folder", f"data.root={root}", "trainer.steps=1", "trainer.grid=0"]
    with pytest.warns(UserWarning, match=r"\['empty'\].*2 classes"):
        with pytest.raises(ConfigError, match="has 2 classes but model.c_dim=3.*force_c_dim"):
            Trainer(compose([*base, "model.c_dim=3"]), tmp_path / "r1")
    with pytest.warns(UserWarning, match="empty"):
        t = Trainer(compose([*base, "model.c_dim=3", "trainer.force_c_dim=true"]), tmp_path / "r2")
    assert t.c_dim == 3
    with pytest.warns(UserWarning, match="empty"):
        assert Trainer(compose([*base, "model.c_dim=auto"]), tmp_path / "r3").c_dim == 2


def test_torchvision_root_folders_are_not_called_empty_classes(tmp_path):
    """A torchvision set keeps its own folders (raw/, processed/) under root: no empty-class warning."""
    import warnings

    from ganzoo.data import TorchvisionDataset
    from ganzoo.training.validate import report_empty_class_folders

    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    fake = TorchvisionDataset.__new__(TorchvisionDataset)
    fake.root, fake.class_names = tmp_path, ["0", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert report_empty_class_folders(fake) == []


def test_malformed_state_file_is_a_message(train_run, tmp_path):
    """A safe but malformed .state.pt (loads with weights_only, wrong content) gives a CheckpointError."""
    train_run("trainer.steps=1")
    state = find_checkpoint(tmp_path / "run").with_suffix("").with_suffix(".state.pt")
    for payload in ({"step": "x"}, torch.zeros(3), {"step": 1, "images_seen": 16, "optimizers": {"G": {}}}):
        torch.save(payload, state)
        with pytest.raises(CheckpointError, match="malformed|does not fit"):
            Trainer(compose([*SMOKE, f"trainer.resume={tmp_path / 'run'}"]), tmp_path / "other")


def test_leftover_temp_files_are_removed_on_start(train_run, tmp_path):
    """Temporary files of killed writes go when a run starts in the folder; other files stay."""
    train_run("trainer.steps=1")
    ckpt = tmp_path / "run" / "checkpoints"
    leftovers = [ckpt / ".snapshot-0000000032.safetensors.ab_12x", ckpt / ".latest.json.q9z"]
    for p in leftovers:
        p.write_bytes(b"partial")
    (ckpt / ".user-notes").write_text("not ours")
    train_run("trainer.steps=2", f"trainer.resume={tmp_path / 'run'}")
    assert not any(p.exists() for p in leftovers)
    assert (ckpt / ".user-notes").exists()


def test_lpips_weights_pickle_is_refused_with_a_message(tmp_path, capsys):
    """--lpips-weights pointing at a pickle with code: a message, the code never runs."""
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "vgg.pth"
    bad.write_bytes(pickle.dumps(Payload()))
    from ganzoo.metrics import lpips_distance
    from ganzoo.metrics.features import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="cannot|safely"):
        lpips_distance("vgg", str(bad), allow_download=False)
    assert not marker.exists()


def test_missing_inception_message_names_the_cli_flag(tmp_path):
    from ganzoo.metrics.features import WeightsNotFoundError, load_inception

    with pytest.raises(WeightsNotFoundError) as info:
        load_inception(str(tmp_path / "nope.pt"), allow_download=False)
    assert "--weights" in str(info.value) and "... weights=..." not in str(info.value)
