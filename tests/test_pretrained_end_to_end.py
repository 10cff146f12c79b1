"""Imported runs work unchanged downstream: every `generate` mode, `eval`, `reconstruct`, and fine-tuning
through model.init that resumes exactly (files written by the official codes, tests/fixtures/pretrained)."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from ganzoo.cli import main
from ganzoo.pretrained.importer import import_checkpoint
from ganzoo.pretrained.run_folder import finetune_overrides
from ganzoo.training.checkpoint import load_snapshot

FIX = Path(__file__).parent / "fixtures" / "pretrained"

# source (relative to FIX), format, the generate modes that must work on it
CASES = {
    "stylegan2_ada": ("nvlabs_pytorch/ada_uncond.pkl", "nvlabs_pytorch", {"grid", "interp", "mix"}),
    "stylegan2_cond": ("nvlabs_pytorch/sg3_cond.pkl", "nvlabs_pytorch",
                       {"grid", "interp", "mix", "classes", "truncation-sweep"}),
    "stylegan2_tf": ("nvlabs_tf/stylegan2.pkl", "nvlabs_tf", {"grid", "interp", "mix"}),
    "stylegan_v1": ("nvlabs_tf/stylegan.pkl", "nvlabs_tf", {"grid", "interp", "mix"}),
    "progan": ("nvlabs_tf/progan.pkl", "nvlabs_tf", {"grid", "interp"}),
    "biggan": ("biggan_pytorch/biggan", "biggan_pytorch",
               {"grid", "interp", "classes", "truncation-sweep", "class-interp", "attention"}),
    "biggan_deep": ("biggan_pytorch/biggan_deep", "biggan_pytorch", {"grid", "classes", "class-interp"}),
    "studiogan_sagan": ("studiogan/sagan/model=G-best-weights-step=123.pth", "studiogan",
                        {"grid", "classes", "attention"}),
}

MODES = {
    "grid": ["--n", "4", "--seed", "1"],
    "interp": ["--mode", "interp", "--seeds", "1,2", "--steps", "2", "--gif"],
    "mix": ["--mode", "mix", "--rows", "1,2", "--cols", "3"],
    "classes": ["--mode", "classes", "--n", "2"],
    "truncation-sweep": ["--mode", "truncation-sweep", "--thresholds", "2,0.5", "--seeds", "0-1"],
    "class-interp": ["--mode", "class-interp", "--classes", "0,1", "--steps", "2", "--n", "1"],
    "attention": ["--mode", "attention", "--seeds", "0", "--query", "4,4"],
}


def _unpack(src: Path, dest: Path) -> Path:
    """Fixtures stored xz-compressed, decompressed with the folder they sit in (taming reads configs/ beside it)."""
    if src.suffix != ".xz":
        return src
    root = dest / src.parent.parent.name if src.parent.name == "checkpoints" else dest
    if src.parent.name == "checkpoints":
        shutil.copytree(src.parent.parent, root, ignore=shutil.ignore_patterns("*.xz"), dirs_exist_ok=True)
        out = root / "checkpoints" / src.stem
    else:
        out = dest / src.stem
    out.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(src) as fh_in, open(out, "wb") as fh_out:
        shutil.copyfileobj(fh_in, fh_out)
    return out


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imported")
    runs = {}
    for name, (src, fmt, _) in CASES.items():
        runs[name] = import_checkpoint(str(FIX / src), out=str(root / name))
        assert OmegaConf.load(runs[name] / "config.yaml")["import"].format == fmt
    return runs


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_generate_mode_runs_or_says_why_not(imported, name, tmp_path, capsys):
    run, must = imported[name], CASES[name][2]
    conditional = int(OmegaConf.load(run / "config.yaml").model.get("c_dim") or 0) > 0
    for mode, args in MODES.items():
        if conditional and mode in ("grid", "interp", "mix"):
            args = [*args, "--class", "1"]
        rc = main(["generate", str(run), *args, "--out", str(tmp_path / f"{mode}.png")])
        err = capsys.readouterr().err
        if mode in must:
            assert rc == 0, f"{name} --mode {mode}: {err}"
            assert (tmp_path / f"{mode}.png").exists()
        else:  # a mode the model cannot have: one clear line, never a traceback
            assert rc in (0, 2) and "Traceback" not in err, f"{name} --mode {mode}: {err}"
            assert rc == 0 or err.startswith("error:")


def _real_folder(path: Path, n: int, size: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path / f"{i:03d}.png")
    return path


def test_eval_scores_an_imported_run_against_a_folder(imported, tmp_path, capsys):
    run = imported["stylegan2_ada"]
    reals = _real_folder(tmp_path / "reals", 80, 16)
    assert main(["eval", str(run), "--metrics", "kid", "--num-fake", "64", "--data", f"root={reals}",
                 "--no-download", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "kid_mean" in capsys.readouterr().out and (run / "eval.jsonl").exists()
    assert main(["eval", str(run), "--metrics", "kid", "--num-fake", "64", "--no-download"]) == 2
    assert "--data root=DIR" in capsys.readouterr().err


@pytest.mark.parametrize("src", ["taming/vqgan/checkpoints/last.ckpt.xz", "enhancing/vitvq_tiny.ckpt.xz"])
def test_reconstruct_works_on_imported_tokenizers(src, tmp_path, capsys):
    path = _unpack(FIX / src, tmp_path / "src")
    run = import_checkpoint(str(path), out=str(tmp_path / "run"))
    res = int(OmegaConf.load(run / "config.yaml").model.resolution)
    images = _real_folder(tmp_path / "imgs", 4, res)
    assert main(["reconstruct", str(run), "--images", str(images), "--n", "4", "--out", str(tmp_path / "rec")]) == 0
    assert "psnr" in capsys.readouterr().out


def test_an_imported_prior_samples_classes(tmp_path, capsys):
    path = _unpack(FIX / "taming/cin_transformer/checkpoints/last.ckpt.xz", tmp_path / "src")
    run = import_checkpoint(str(path), out=str(tmp_path / "run"))
    assert (run / "stage1" / "checkpoints").is_dir()
    assert main(["generate", str(run), "--mode", "classes", "--n", "2", "--out", str(tmp_path / "c.png")]) == 0
    assert main(["generate", str(run), "--n", "2", "--top-k", "5", "--out", str(tmp_path / "g.png")]) == 0


def _flat(run: Path) -> dict[str, torch.Tensor]:
    snap = load_snapshot(run)
    out = {f"{m}.{k}": v for m, sd in snap.weights.items() for k, v in sd.items()}
    out.update({f"ema.{m}.{k}": v for m, sd in snap.ema.items() for k, v in sd.items()})
    for name, opt in snap.state["optimizers"].items():
        for i, st in opt["state"].items():
            out.update({f"opt.{name}.{i}.{k}": torch.as_tensor(v) for k, v in st.items()})
    return out


def test_finetune_an_imported_stylegan2_with_ada_and_resume_exactly(imported, tmp_path, capsys):
    """StyleGAN2-ADA transfer learning: the imported G, D and G_ema on a small folder, augment=ada."""
    run = imported["stylegan2_ada"]
    model = OmegaConf.to_container(OmegaConf.load(run / "config.yaml").model, resolve=True)
    reals = _real_folder(tmp_path / "reals", 64, 16)
    base = [f"model={model['name']}", *finetune_overrides(model), f"model.init={run}", "data=folder",
            f"data.root={reals}", "augment=ada", "trainer=smoke", "trainer.device=cpu", "trainer.batch_size=8",
            "trainer.grid=0", "trainer.checkpoint_every_kimg=0.016", "trainer.progress=false"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", *base, "trainer.steps=4", f"hydra.run.dir={straight}"]) == 0
    assert "model.init: loaded G, D, EMA of G" in capsys.readouterr().out
    saved = OmegaConf.load(straight / "config.yaml")
    assert saved.init_from["import"]["format"] == "nvlabs_pytorch" and saved.init_from.optimizers == "fresh"
    assert main(["train", *base, "trainer.steps=2", f"hydra.run.dir={split}"]) == 0
    assert main(["train", f"trainer.resume={split}", "trainer.steps=4"]) == 0
    a, b = _flat(straight), _flat(split)
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    source = load_snapshot(run, with_state=False)
    assert any(not torch.equal(a[f"D.{k}"], v) for k, v in source.weights["D"].items())  # it trained from there


def test_an_imported_progressive_model_fine_tunes_at_its_final_resolution(imported, tmp_path, capsys):
    """docs/pretrained.md: a fully grown import trains at its own size when the schedule starts there."""
    run = imported["progan"]
    model = OmegaConf.to_container(OmegaConf.load(run / "config.yaml").model, resolve=True)
    res = int(model["resolution"])
    reals = _real_folder(tmp_path / "reals", 32, res)
    out = tmp_path / "ft"
    assert main(["train", f"model={model['name']}", *finetune_overrides(model), f"model.init={run}", "data=folder",
                 f"data.root={reals}", "trainer=smoke", "trainer.device=cpu", "trainer.steps=2", "trainer.grid=0",
                 f"model.schedule.start_resolution={res}", f"hydra.run.dir={out}"]) == 0
    rows = [line for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert rows and all(f'"schedule/resolution": {float(res)}' in r for r in rows)
