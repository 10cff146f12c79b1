"""Reliability, round 2 (issue 19, items 7, 8, 10, 11, 14, 15, 18, 20; issue 23 item 7): the command line refuses
what cannot work with a message and exit 2, says what it does, and the code prior follows taming's pkeep and
transformers' top-p rule."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganzoo.cli import COMMANDS, main
from ganzoo.errors import ConfigError
from ganzoo.registry import build_model
from ganzoo.sampling.autoregressive import filter_logits
from ganzoo.training.trainer import Trainer

from .conftest import SMOKE, compose
from .test_evaluation import tiny_extractor  # noqa: F401  (the injected feature net of the bench tests)

VQ = ["trainer=smoke", "trainer.device=cpu", "trainer.grid=4", "trainer.batch_size=8"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny run of each kind: a GAN, a GAN with self-attention, a tokenizer and a code prior on it."""
    root = tmp_path_factory.mktemp("runs")
    out = {"gan": root / "gan", "sagan": root / "sagan", "vq": root / "vq", "prior": root / "prior"}
    Trainer(compose([*SMOKE, "trainer.steps=1"]), out["gan"]).fit()
    Trainer(compose(["model=sagan_tiny", *SMOKE[1:], "trainer.steps=1", "trainer.batch_size=4"]), out["sagan"]).fit()
    Trainer(compose(["model=vqgan_tiny", *VQ, "trainer.steps=1"]), out["vq"]).fit()
    Trainer(compose(["model=vqgan_prior_tiny", f"model.stage1={out['vq']}", *VQ, "trainer.steps=1"]),
            out["prior"]).fit()
    return out


# -- 19.7: eval refuses metrics a run's kind cannot have ------------------------------------------------------------
def test_eval_refuses_metrics_the_runs_kind_cannot_have(runs, capsys):
    cases = [("gan", "psnr", "fid, kid, pr, is, ppl, lpips_diversity"),
             ("prior", "psnr,ssim,codebook", "fid, kid, pr, is, lpips_diversity"),
             ("vq", "is", "rfid, fid, kid, pr, psnr, ssim, lpips, codebook")]
    for kind, metrics, allowed in cases:
        assert main(["eval", str(runs[kind]), "--metrics", metrics, "--device", "cpu", "--no-download"]) == 2, kind
        captured = capsys.readouterr()
        assert f"--metrics {metrics}" in captured.err and f"it can have {allowed}" in captured.err
        assert "written to" not in captured.out
        assert not (runs[kind] / "eval.jsonl").exists()  # nothing computed, nothing written


# -- 19.8: bench without an evaluation interval scores at the end, or says scoring is off -------------------------
BENCH = ["bench", "cpu", "models=[dcgan_tiny]", "seeds=[0]", "kimg=0.032", "minutes=null", "eval.num_fake=16",
         "eval.num_real=16", "overrides=[trainer.batch_size=16,trainer.grid=4,trainer.device=cpu]"]


def test_bench_without_an_eval_interval_scores_every_run_at_its_end(tmp_path, tiny_extractor, monkeypatch,  # noqa: F811
                                                                   capsys):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    assert main([*BENCH, "eval.every_kimg=null", "--out", str(out)]) == 0
    assert "scored once, at its end" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert float(rows[0]["fid"]) > 0  # the preset's promise: a score at the end of every run
    table = (out / "table.md").read_text()
    assert "once, at the end of training" in table
    for curve in ("curves_kimg.png", "curves_time.png"):
        assert (out / curve).exists() and curve in table


def test_bench_with_scoring_off_says_so_and_links_no_curves(tmp_path, capsys):
    out = tmp_path / "bench"
    (out).mkdir()
    (out / "curves_kimg.png").write_bytes(b"an older bench's plot")
    assert main([*BENCH, "eval.metrics=[]", "--out", str(out)]) == 0
    assert "scoring is off" in capsys.readouterr().out
    table = (out / "table.md").read_text()
    assert "Scoring is off" in table and "ranked by the first score" not in table
    assert "curves_" not in table and not (out / "curves_kimg.png").exists()
    assert not (out / "runs" / "dcgan_tiny_s0" / "eval.jsonl").exists()


# -- 19.10, 19.14: unknown bench keys and bad values are messages -------------------------------------------------
def test_unknown_bench_keys_and_bad_values_are_refused_before_training(tmp_path, capsys):
    # (models=[nope] after the unknown key: where unknown keys were ignored, the command stops instead of training)
    assert main(["bench", "cpu", "modelz=[dcgan]", "models=[nope]", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "no key 'modelz'" in err and "did you mean 'models'" in err and "known keys:" in err and "seeds" in err
    assert main(["bench", "cpu", "eval.num_fakes=8", "models=[nope]", "--out", str(tmp_path / "b")]) == 2
    assert "eval.num_fakes" in (err := capsys.readouterr().err) and "num_fake" in err
    assert main(["bench", "cpu", "kimg=abc", "--out", str(tmp_path / "b")]) == 2
    assert "kimg='abc' must be a number > 0" in capsys.readouterr().err
    assert main(["bench", "cpu", "seeds=[a", "--out", str(tmp_path / "b")]) == 2
    assert "not a valid value" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


# -- 19.11: a prior refuses a tokenizer of the other family ----------------------------------------------------------
def test_a_prior_refuses_a_stage1_run_of_the_other_tokenizer_family(runs):
    with pytest.raises(ConfigError, match="vqgan_tiny run") as info:
        build_model("vit_vqgan_prior_tiny", stage1=str(runs["vq"]))
    assert "model=vqgan_prior_tiny" in str(info.value) and "model.tokenizer=vqgan_tiny" in str(info.value)
    # Named truly, the same sizes train on it, and the config says which tokenizer it holds.
    bundle = build_model("vit_vqgan_prior_tiny", stage1=str(runs["vq"]), tokenizer="vqgan_tiny")
    assert bundle.info["resolved"]["stage1_model"]["name"] == "vqgan_tiny"


# -- 23.7: pkeep draws from the vocabulary, top-p keeps the token at exactly top_p ----------------------------------
def test_pkeep_replaces_codes_with_tokens_of_the_whole_vocabulary(runs):
    """taming's Net2NetTransformer.forward: torch.randint_like(z_indices, self.transformer.config.vocab_size)."""
    trainer = Trainer(compose(["model=vqgan_prior_tiny", f"model.stage1={runs['vq']}", *VQ, "trainer.steps=1",
                               "model.pkeep=0.0", "+model.prior.vocab_size=1024"]), runs["vq"].parent / "pkeep")
    n_embed = trainer.modules["tokenizer"].n_embed
    seen: list[torch.Tensor] = []
    trainer.modules["prior"].register_forward_pre_hook(lambda m, args: seen.append(args[0][:, 1:].clone()))
    trainer.fit()
    replaced = torch.cat([s.flatten() for s in seen])
    assert replaced.max() >= n_embed  # tokens beyond the codes: the GPT's vocabulary of 1024, not only the codes
    assert replaced.max() < 1024


def test_top_p_keeps_the_token_at_exactly_top_p():
    """transformers' TopPLogitsWarper (4.3, which taming's sample_with_past used): cumulative mass > top_p, shifted
    right by one, so a token whose more likely tokens hold exactly top_p stays."""
    logits = torch.tensor([[0.5, 0.25, 0.25, 0.0]], dtype=torch.float64).log()
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.75)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.4)).tolist() == [[True, False, False, False]]


# -- 19.14: generate into an existing folder; a closed output pipe ------------------------------------------------
def test_generate_out_an_existing_folder_writes_into_it(runs, tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    assert main(["generate", str(runs["gan"]), "--n", "4", "--out", str(folder), "--device", "cpu"]) == 0
    written = list(folder.glob("*.png"))
    assert [p.name for p in written] == ["grid_n4_seed0.png"] and str(written[0]) in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--help"], ["eval", "--help"]])
def test_a_closed_output_pipe_exits_quietly(argv):
    code = f"import sys; from ganzoo.cli import main; sys.exit(main({argv!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "PYTHONUNBUFFERED": "0"})
    proc.stdout.close()  # `| head -0`: the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err


# -- 19.15: config mistakes name the closest valid names and the real key ------------------------------------------
@pytest.mark.parametrize(("override", "expected"), [
    ("model=sagan_tin", "Closest: sagan_tiny"),
    ("model.lr=1e-3", "Did you mean model.optim.G.lr or model.optim.D.lr?"),
    ("data=fashon", "Closest: fashion"),
    ("trainer.kimgg=1", "Did you mean trainer.kimg?"),
    ("modle=dcgan", "Did you mean model?"),
])
def test_config_mistakes_exit_2_with_the_closest_names(override, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", override, "trainer.steps=1"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "HYDRA_FULL_ERROR" not in err and "+model" not in err
    assert not list(tmp_path.iterdir())  # nothing written: no run folder, no outputs/


# -- 19.18: help text ----------------------------------------------------------------------------------------------
def test_help_lists_every_command_with_a_summary_and_version(capsys):
    from ganzoo import __version__

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(command + " "))
        assert len(line.split()) > 3, line  # a one-line summary after the name
    assert "--version" in out and "``" not in out
    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"ganzoo {__version__}"
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for metric in ("fid", "kid", "pr", "is", "ppl", "lpips_diversity", "rfid", "psnr", "ssim", "lpips", "codebook"):
        assert f" {metric}," in out or f" {metric}." in out or f" {metric};" in out, metric
    for command in ("eval", "generate", "reconstruct"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "--batch BATCH images per forward pass" in out and "--device DEVICE auto (CUDA" in out, command


# -- 19.20: generate from a tokenizer says what it draws; impossible sampling options are refused ------------------
def test_generate_from_a_tokenizer_says_it_decodes_random_codes(runs, tmp_path, capsys):
    assert main(["generate", str(runs["vq"]), "--n", "4", "--out", str(tmp_path / "a.png"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "uniformly random codes" in err and "ganzoo reconstruct" in err and "model=vqgan_prior_tiny" in err
    assert main(["generate", str(runs["vq"]), "--mode", "interp", "--seeds", "1,2", "--device", "cpu"]) == 2
    assert "VQ tokenizer" in capsys.readouterr().err


@pytest.mark.parametrize(("run", "args", "expected"), [
    ("prior", ["--temperature", "inf"], "--temperature must be a finite number > 0"),
    ("prior", ["--top-k", "100000"], "is above the"),
    ("sagan", ["--mode", "attention", "--layer", "-1"], "--layer must be >= 0"),
])
def test_impossible_sampling_options_are_refused(runs, run, args, expected, tmp_path, capsys):
    assert main(["generate", str(runs[run]), *args, "--n", "2", "--out", str(tmp_path / "x.png"),
                 "--device", "cpu"]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_training_refuses_eval_metrics_its_kind_cannot_have(tmp_path):
    """19.7 for trainer.eval.metrics: refused at start, before any training step."""
    from ganzoo.errors import ConfigError
    from ganzoo.training.trainer import Trainer

    cfg = compose([*SMOKE, "trainer.eval.every_kimg=1", "trainer.eval.metrics=[psnr]"])
    with pytest.raises(ConfigError, match="trainer.eval.metrics psnr"):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


# -- 19.16: a time budget that binds drives the progress bar's ETA, and the final line names it --------------------
def _seconds(clock: str) -> int:
    total = 0
    for part in clock.split(":"):
        total = 60 * total + int(part)
    return total


def test_a_binding_time_budget_drives_the_eta_and_names_itself_at_the_end(tmp_path, capsys):
    import re

    run = tmp_path / "run"
    # 1000 kimg would take many minutes at CPU speed; the 1.2-second budget binds first.
    assert main(["train", *SMOKE, "trainer.kimg=1000", "trainer.minutes=0.02", "trainer.progress=true",
                 "trainer.grid=4", "trainer.checkpoint_every_kimg=1000", f"hydra.run.dir={run}"]) == 0
    out, err = capsys.readouterr()
    assert "stopped at the 0.02-minute budget (trainer.minutes=0.02)" in out and "done:" not in out
    etas = [_seconds(m) for m in re.findall(r"<(\d+(?::\d\d)+)", err)]  # tqdm's [elapsed<remaining, ...]
    assert etas and etas[-1] == 0 and max(etas) < 30, etas  # the minutes left, not the images of trainer.kimg


# -- 19.23: default output names never collide; identical runs save identical RNG states ----------------------------
def test_generate_default_names_carry_what_distinguishes_them(tmp_path, capsys):
    run = tmp_path / "cond"
    Trainer(compose([*SMOKE, "model.c_dim=auto", "trainer.steps=1", "trainer.grid=4"]), run).fit()
    requests = [
        ["--n", "16", "--seed", "1"], ["--n", "64", "--seed", "1"], ["--n", "16", "--seed", "2"],
        ["--n", "16", "--seed", "1", "--class", "3"], ["--n", "16", "--seed", "1", "--class", "4"],
        ["--n", "16", "--seed", "1", "--truncation", "0.5"], ["--n", "16", "--seed", "1", "--raw"],
        ["--seeds", "0-3"], ["--seeds", "0-3", "--class", "2"],
        ["--mode", "classes", "--n", "4"], ["--mode", "classes", "--n", "6"],
        ["--mode", "classes", "--n", "4", "--class", "1,2"],
        ["--mode", "truncation-sweep", "--thresholds", "1,0.5", "--n", "2"],
        ["--mode", "truncation-sweep", "--thresholds", "1,0.5", "--n", "3"],
        ["--mode", "truncation-sweep", "--thresholds", "1,0.5", "--n", "2", "--class", "5"],
        ["--mode", "interp", "--seeds", "1,2", "--class", "3"], ["--mode", "interp", "--seeds", "1,2", "--class", "4"],
        ["--mode", "interp", "--seeds", "1,2", "--class", "3", "--steps", "4"],
        ["--mode", "class-interp", "--classes", "3,5", "--n", "2"],
        ["--mode", "class-interp", "--classes", "3,5", "--n", "3"],
        ["--mode", "class-interp", "--classes", "3,5", "--n", "2", "--steps", "4"],
    ]
    for extra in requests:
        assert main(["generate", str(run), *extra, "--device", "cpu"]) == 0, extra
    capsys.readouterr()
    written = sorted(p.name for p in (run / "generated").glob("*.png"))
    assert len(written) == len(requests), written  # one file per request: none overwrote another
    for name in ("grid_n16_seed1.png", "grid_n64_seed1.png", "grid_n16_seed1_class3.png",
                 "grid_n16_seed1_trunc0.5.png", "grid_seeds0-3_class2.png", "classes_n4_seed0_class1_2.png",
                 "truncation_sweep_n2_seed0_T1_0.5_class5.png", "interp_z_seeds1_2_steps4_class3.png",
                 "class_interp_3to5_n2_seed0_steps4.png"):
        assert name in written, (name, written)


def test_identical_runs_save_identical_rng_states(tmp_path):
    import random

    import numpy as np

    from ganzoo.training.checkpoint import load_snapshot

    states = []
    for i, name in enumerate(("a", "b")):
        random.seed(100 + i)  # what other work in the process (or another process's start) left behind
        np.random.seed(100 + i)
        torch.manual_seed(100 + i)
        Trainer(compose([*SMOKE, "trainer.steps=1", "trainer.grid=4"]), tmp_path / name).fit()
        states.append(load_snapshot(tmp_path / name).state["rng"])
    a, b = states
    assert (a["python"], a["python_pos"]) == (b["python"], b["python_pos"])
    assert torch.equal(a["numpy"], b["numpy"]) and a["numpy_pos"] == b["numpy_pos"]
    assert torch.equal(a["torch"], b["torch"])


# -- 19.20: a prior's --grid far beyond the training grid is estimated, bounded, and shows progress when forced ------
def test_a_huge_prior_grid_is_estimated_and_refused_unless_forced(runs, tmp_path, capsys, monkeypatch):
    import ganzoo.models.vq_prior as vq_prior
    import ganzoo.sampling.generate as generate_mod
    import ganzoo.sampling.prior_modes as prior_modes

    def never(*args, **kwargs):
        raise AssertionError("sampled a huge --grid without estimating its work first")

    monkeypatch.setattr(vq_prior, "sample_sliding_window", never)
    out = tmp_path / "big.png"
    assert main(["generate", str(runs["prior"]), "--grid", "4000x4000", "--n", "2", "--out", str(out),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--grid 4000x4000 needs about 16,000,000 forward passes" in err and "add --force" in err
    assert "the bound is 100,000" in err and not out.exists()
    assert main(["generate", str(runs["gan"]), "--force", "--n", "2", "--out", str(out), "--device", "cpu"]) == 2
    assert "--force only lifts" in capsys.readouterr().err
    monkeypatch.undo()
    # Forced (a small bound here): it runs, with a progress bar counting the estimated passes.
    monkeypatch.setattr(prior_modes, "MAX_WINDOW_PASSES", 10)
    monkeypatch.setattr(generate_mod, "GRID_PROGRESS_FROM", 1)
    h, w = generate_mod.load_generator(str(runs["prior"]), device="cpu")[0].info["code_shape"]
    grid = f"{h + 1}x{w + 1}"
    passes = (h + 1) * (w + 1)
    assert main(["generate", str(runs["prior"]), "--grid", grid, "--n", "2", "--out", str(out), "--device", "cpu"]) == 2
    assert f"about {passes:,} forward passes" in capsys.readouterr().err and not out.exists()
    assert main(["generate", str(runs["prior"]), "--grid", grid, "--n", "2", "--out", str(out), "--device", "cpu",
                 "--force"]) == 0
    assert f"{passes}/{passes}" in capsys.readouterr().err and out.exists()
