"""`ganzoo eval --task`: completion and super-resolution scored against their split and their ground truth, with
provenance in eval.jsonl; bad requests exit 2 and write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import ganzoo.evaluation as evaluation
from ganzoo.cli import main
from ganzoo.metrics.features import FeatureExtractor

from .test_evaluation import _TinyFeatures
from .test_vq_completion import runs


@pytest.fixture
def tiny(tmp_path_factory, monkeypatch) -> dict[str, Path]:
    """The shared tiny runs, a small random feature network for FID/KID, and no LPIPS weights on this machine."""
    ext = FeatureExtractor(torch.jit.script(_TinyFeatures()), kind="fid-helper", weights_path="<test>",
                           weights_sha256="ab" * 32, source="explicit")
    monkeypatch.setattr(evaluation, "load_inception", lambda weights=None, *, device=None, allow_download=True: ext)

    def no_lpips(*a, **k):
        raise evaluation.WeightsNotFoundError("no LPIPS weights in this test")

    monkeypatch.setattr(evaluation, "lpips_distance", no_lpips)
    return runs(tmp_path_factory)


def _records(run: Path) -> list[dict]:
    path = run / "eval.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_completion_task_writes_its_metrics(tiny, tmp_path, capsys):
    run = tiny["prior"]
    before = len(_records(run))
    argv = ["eval", str(run), "--task", "complete:top", "--num-fake", "6", "--num-real", "12", "--cache-dir",
            str(tmp_path / "cache"), "--device", "cpu", "--top-k", "8"]
    assert main(argv) == 0
    new = _records(run)[before:]
    assert [r["metric"] for r in new] == ["complete:top/fid", "complete:top/kid"]
    fid = new[0]
    assert fid["value"] > 0 and fid["num_fake"] == 6 and fid["num_real"] == 12 and fid["reference_split"] == "train"
    assert fid["extra"]["task"] == "complete:top" and fid["extra"]["sample_opts"] == {"top_k": 8}
    assert fid["checkpoint_sha256"] and fid["extra"]["model"] == "vqgan_prior_tiny"
    assert "complete:top/fid" in capsys.readouterr().out


def test_super_resolution_task_scores_against_the_ground_truth(tiny, tmp_path, capsys):
    run = tiny["sr"]
    assert main(["eval", str(run), "--task", "condition", "--num-fake", "4", "--num-real", "8", "--cache-dir",
                 str(tmp_path / "cache"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    records = {r["metric"]: r for r in _records(run)}
    assert set(records) == {"condition/fid", "condition/kid", "condition/psnr", "condition/ssim"}
    # By hand: the first 4 images of the split, their derived conditions, one draw each from seed 0.
    from omegaconf import OmegaConf

    from ganzoo.data import build_dataset
    from ganzoo.metrics.reconstruction import psnr, ssim
    from ganzoo.sampling.generate import load_generator

    bundle, modules, _ = load_generator(run, device="cpu")
    data = OmegaConf.to_container(OmegaConf.load(run / "config.yaml").data, resolve=True)
    ds = build_dataset({**data, "flip": False}, resolution=bundle.resolution, channels=bundle.channels)
    truth = torch.stack([ds[i][0] for i in range(4)])
    drawn = bundle.sample(modules, 4, cond_img=modules["cond_stage"].derive(truth),
                          generator=torch.Generator().manual_seed(0)).float().clamp(-1, 1)
    assert records["condition/psnr"]["value"] == pytest.approx(float(psnr(truth, drawn)), rel=1e-6)
    assert records["condition/ssim"]["value"] == pytest.approx(float(ssim(truth, drawn)), rel=1e-6)
    assert records["condition/psnr"]["num_fake"] == 4 and records["condition/psnr"]["extra"]["task"] == "condition"
    assert __import__("re").search(r"condition/lpips: skipped \(no LPIPS \(AlexNet\) weights", out)


def test_bad_task_requests_exit_2_and_write_nothing(tiny, capsys):
    cases = [
        (tiny["prior"], ["--task", "condition"], "code-conditioned prior"),
        (tiny["gan"], ["--task", "complete:top"], "needs a code prior"),
        (tiny["prior"], ["--task", "complete"], "kept region"),
        (tiny["prior"], ["--task", "complete:middle"], "neither a region"),
        (tiny["prior"], ["--task", "complete:top", "--metrics", "is"], "--task is scored with"),
        (tiny["prior"], ["--top-k", "5"], "add --task"),
    ]
    for run, argv, message in cases:
        before = (run / "eval.jsonl").read_bytes() if (run / "eval.jsonl").exists() else None
        assert main(["eval", str(run), *argv, "--num-fake", "4", "--device", "cpu"]) == 2, argv
        assert message in capsys.readouterr().err, argv
        after = (run / "eval.jsonl").read_bytes() if (run / "eval.jsonl").exists() else None
        assert after == before


def test_bench_scores_tasks_and_tables_them(tiny, tmp_path):
    from omegaconf import OmegaConf

    from ganzoo.benchmark import _score_tasks, _task_table, load_preset
    from ganzoo.errors import ConfigError

    cfg = OmegaConf.create({"tasks": {"vqgan_prior_tiny": ["complete:top"]},
                            "eval": {"num_fake": 4, "num_real": 8, "split": "train", "weights": None}})
    scores = _score_tasks(cfg, "vqgan_prior_tiny", tiny["prior"])
    assert set(scores) == {"complete:top"} and scores["complete:top"]["complete:top/fid"] > 0
    assert _records(tiny["prior"])[-2]["extra"]["task"] == "complete:top"  # appended like `ganzoo eval --task`
    lines = _task_table([{"model": "vqgan_prior_tiny", "tasks": scores}, {"model": "dcgan", "tasks": {}}])
    fid = scores["complete:top"]["complete:top/fid"]
    assert lines[2] == "| model | task | FID ↓ | KID ↓ |"
    cell = f"{fid:.3f}" if fid < 10 else f"{fid:.1f}"  # one seed: the value, 3 decimals below 10
    assert lines[4].startswith(f"| vqgan_prior_tiny | `complete:top` | {cell} | ") and len(lines) == 6
    assert _task_table([{"model": "dcgan", "tasks": {}}]) == []
    assert load_preset("cpu", ["tasks={vqgan_prior: [complete:top, condition]}"]).tasks.vqgan_prior[1] == "condition"
    with pytest.raises(ConfigError, match="belong to a code prior"):
        load_preset("cpu", ["tasks={dcgan: [complete:top]}"])
    with pytest.raises(ConfigError, match="complete:KEEP"):
        load_preset("cpu", ["tasks={vqgan_prior: [inpaint]}"])
