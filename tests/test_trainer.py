"""The generic trainer: outputs, exact resume, learning, EMA, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganzoo.errors import CheckpointError, ConfigError
from ganzoo.training.checkpoint import find_checkpoint, load_snapshot
from ganzoo.training.trainer import Trainer

from .conftest import compose


def _read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_outputs(train_run, tmp_path):
    trainer, summary = train_run()
    run = tmp_path / "run"
    assert summary["images_seen"] >= 256 and summary["step"] == 16
    assert (run / "config.yaml").exists()
    rows = _read_metrics(run)
    assert rows and {"step", "kimg", "img_per_s", "loss/G", "loss/D"} <= set(rows[-1])
    assert rows[-1]["kimg"] == pytest.approx(0.256)
    assert (run / "samples" / "reals.png").exists()
    assert len(list((run / "samples").glob("fakes_*.png"))) >= 1
    ckpt = find_checkpoint(run)
    assert ckpt.name == "snapshot-0000000256.safetensors"
    snap = load_snapshot(run)
    assert snap.model_name == "dcgan_tiny"
    assert snap.state["images_seen"] == 256 and snap.state["step"] == 16
    assert set(snap.weights) == {"G", "D"} and set(snap.ema) == {"G"}
    assert "dcgan_tiny" in snap.config_yaml


def _all_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in trainer.modules.items():
        out.update({f"{name}.{k}": v.detach().clone() for k, v in m.state_dict().items()})
    for name, m in trainer.ema.items():
        out.update({f"ema.{name}.{k}": v.detach().clone() for k, v in m.state_dict().items()})
    for name, opt in trainer.optimizers.items():
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                out[f"opt.{name}.{i}.{k}"] = torch.as_tensor(v).clone()
    return out


@pytest.mark.parametrize("extra", [[], ["data.flip=true", "trainer.accumulate=2"]])
def test_resume_equals_uninterrupted(tmp_path, extra):
    """N steps straight == N/2 steps, stop, resume, N/2 steps (weights, EMA, optimizer state)."""
    base = ["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=4", *extra]
    straight = Trainer(compose(base + ["trainer.steps=8"]), tmp_path / "straight")
    straight.fit()
    half = Trainer(compose(base + ["trainer.steps=4"]), tmp_path / "half")
    half.fit()
    resumed = Trainer(compose(base + ["trainer.steps=8", f"trainer.resume={tmp_path / 'half'}"]), tmp_path / "resumed")
    assert resumed.step == 4 and resumed.images_seen == 4 * 16
    resumed.fit()
    a, b = _all_state(straight), _all_state(resumed)
    assert a.keys() == b.keys()
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, f"resume diverged in {mismatched[:5]}"
    # And the stop really changed something (the test would be vacuous otherwise).
    assert not torch.equal(_all_state(half)["G.net.0.weight"], a["G.net.0.weight"])


def test_discriminator_learns_when_generator_frozen(train_run, tmp_path):
    """With G's learning rate at 0, D separates reals from G's fakes: its loss falls well below log(4)."""
    _, _ = train_run("model.optim.G.lr=0", "model.optim.D.lr=1e-3", "trainer.steps=40", "trainer.log_every=1")
    rows = _read_metrics(tmp_path / "run")
    first, last = rows[0]["loss/D"], rows[-1]["loss/D"]
    assert first > 1.0  # near 2*log(2) = 1.386 at the start
    assert last < 0.5 * first


def test_ema_tracks_generator(train_run):
    trainer, _ = train_run("trainer.steps=6")
    G, G_ema = trainer.modules["G"], trainer.ema["G"]
    diffs = [(p - q).abs().max().item() for p, q in zip(G.parameters(), G_ema.parameters())]
    assert max(diffs) > 0  # the average lags the weights
    for b, be in zip(G.buffers(), G_ema.buffers()):
        assert torch.equal(b, be)  # buffers are copied
    assert not any(p.requires_grad for p in G_ema.parameters())


def test_ema_beta_formula():
    from ganzoo.bundle import EMASpec

    spec = EMASpec(half_life_kimg=10, rampup=None)
    beta = spec.beta(batch_size=32, images_seen=10**6)
    assert beta ** (10_000 / 32) == pytest.approx(0.5)  # 10k images halve a contribution
    ramped = EMASpec(half_life_kimg=10, rampup=0.05).beta(batch_size=32, images_seen=1000)
    assert ramped == pytest.approx(0.5 ** (32 / 50))  # half-life capped at 5% of images seen


def test_bf16_autocast_runs(train_run):
    trainer, summary = train_run("trainer.precision=bf16", "trainer.steps=2")
    assert summary["step"] == 2


def test_resume_from_another_model_fails(train_run, tmp_path):
    train_run("trainer.steps=2")
    cfg = compose(["model=dcgan", "trainer=smoke", "trainer.device=cpu", f"trainer.resume={tmp_path / 'run'}"])
    with pytest.raises(CheckpointError, match="model 'dcgan_tiny'.*Resume with model=dcgan_tiny"):
        Trainer(cfg, tmp_path / "other")


def test_resume_with_other_model_config_fails(train_run, tmp_path):
    train_run("trainer.steps=2")
    cfg = compose(
        ["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "model.G.base_channels=16",
         f"trainer.resume={tmp_path / 'run'}"]
    )
    with pytest.raises(CheckpointError, match=r"model\.G\.base_channels: checkpoint 8 vs now 16"):
        Trainer(cfg, tmp_path / "other")


def test_corrupt_checkpoint_message(train_run, tmp_path):
    train_run("trainer.steps=2")
    ckpt = find_checkpoint(tmp_path / "run")
    ckpt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="cannot read checkpoint.*corrupt"):
        load_snapshot(tmp_path / "run")
    state = ckpt.with_name(ckpt.name.replace(".safetensors", ".state.pt"))
    state.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError):
        load_snapshot(state)


def test_missing_checkpoint_message(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        find_checkpoint(tmp_path / "empty")


def test_conditional_model_needs_labels(tmp_path):
    cfg = compose(["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "model.c_dim=auto"])
    t = Trainer(cfg, tmp_path / "c")
    assert t.c_dim == 10  # the embedded Fashion-MNIST subset has 10 classes
    t.fit()
    cfg = compose(["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "model.c_dim=3"])
    with pytest.raises(ConfigError, match="has 10 classes but model.c_dim=3"):
        Trainer(cfg, tmp_path / "d")


def test_bad_trainer_values(tmp_path):
    with pytest.raises(ConfigError, match="not divisible"):
        Trainer(compose(["model=dcgan_tiny", "trainer=smoke", "trainer.accumulate=3"]), tmp_path / "x")
    with pytest.raises(ConfigError, match="trainer.device"):
        Trainer(compose(["model=dcgan_tiny", "trainer=smoke", "trainer.device=toaster"]), tmp_path / "y")


def test_checkpoint_write_is_atomic(train_run, tmp_path, monkeypatch):
    """A crash while writing leaves the previous snapshot and latest.json untouched."""
    trainer, _ = train_run("trainer.steps=2")
    ckpt_dir = tmp_path / "run" / "checkpoints"
    before = sorted(p.name for p in ckpt_dir.iterdir())
    latest = (ckpt_dir / "latest.json").read_text()

    import ganzoo.training.checkpoint as ck

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    trainer.images_seen += 1000
    with pytest.raises(CheckpointError, match=r"could not save a checkpoint .*the write failed \(disk full\)"):
        trainer.save_checkpoint()  # one message for people (issue 19.12), the earlier snapshot intact
    assert sorted(p.name for p in ckpt_dir.iterdir()) == before
    assert (ckpt_dir / "latest.json").read_text() == latest


def test_resume_drops_metric_records_past_the_snapshot(tmp_path):
    """A run killed after its last checkpoint logged steps it will repeat: resume keeps each step once."""
    base = ["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.grid=0", "trainer.log_every=1"]
    run = tmp_path / "run"
    Trainer(compose(base + ["trainer.steps=4"]), run).fit()
    with open(run / "metrics.jsonl", "a") as fh:  # what the killed process wrote after the snapshot
        fh.write(json.dumps({"step": 5, "kimg": 0.08}) + "\n" + json.dumps({"step": 6, "kimg": 0.096}) + "\n")
        fh.write('{"step": 7, "ki')  # torn by the kill
    Trainer(compose(base + ["trainer.steps=6", f"trainer.resume={run}"]), run).fit()
    steps = [r["step"] for r in _read_metrics(run)]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert "loss/G" in _read_metrics(run)[-1]  # step 6 is the resumed run's record, not the stale one
