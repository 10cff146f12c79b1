"""taming-transformers Lightning checkpoints -> ganzoo runs reproduce the official outputs.

The fixtures (scripts/make_pretrained_fixtures_taming.py) are real ``Trainer.save_checkpoint`` files of a tiny
``VQModel`` (with its PatchGAN and LPIPS loss), a tiny class-conditional ``Net2NetTransformer`` and a tiny
depth-conditioned one (D-RIN's layout: a one-channel ``VQModel`` cond stage), laid out as
taming's log folders (``checkpoints/last.ckpt`` + ``configs/<time>-project.yaml``), with the outputs of the
official code on fixed inputs.
"""

from __future__ import annotations

import lzma
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from ganzoo.cli import main
from ganzoo.errors import CheckpointError
from ganzoo.models.vq_prior import build_prefix, prefix_tokens
from ganzoo.pretrained import base, taming
from ganzoo.pretrained.run_folder import write_run
from ganzoo.pretrained.safe_pickle import UnsafeFileError, load_torch
from ganzoo.runtime import build_bundle
from ganzoo.sampling.completion import load_label_map
from ganzoo.training.checkpoint import load_module_weights, load_snapshot

from .conftest import compose

FIXTURES = Path(__file__).parent / "fixtures" / "pretrained" / "taming"
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The fixture runs, with their checkpoints decompressed (kept as .xz in the repository)."""
    root = tmp_path_factory.mktemp("taming")
    out = {}
    for run in ("vqgan", "cin_transformer", "depth_transformer", "coord_transformer", "seg_transformer"):
        shutil.copytree(FIXTURES / run / "configs", root / run / "configs")
        (root / run / "checkpoints").mkdir(parents=True)
        ckpt = root / run / "checkpoints" / "last.ckpt"
        with lzma.open(FIXTURES / run / "checkpoints" / "last.ckpt.xz") as src, open(ckpt, "wb") as dst:
            shutil.copyfileobj(src, dst)
        out[run] = ckpt
    return out


@pytest.fixture(scope="module")
def ref() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / "outputs.safetensors"))


def _built(conv: base.Converted):
    """Build the converted preset as the writer does (the converter's numbers over conf/model/<preset>.yaml)."""
    cfg = compose([f"model={conv.model}", "data=folder"]).model
    cfg = OmegaConf.to_container(OmegaConf.merge(cfg, OmegaConf.create(conv.model_config)), resolve=True)
    bundle = build_bundle(cfg)
    for name, sd in conv.weights.items():
        load_module_weights(bundle.modules[name], sd, what=name)
    return bundle


def _check_vq(G, D, ref: dict[str, torch.Tensor]) -> None:
    G.eval()
    with torch.no_grad():
        q = G.encode(ref["vq.x"])
        assert torch.equal(q.indices, ref["vq.indices"])
        rec = G.decode(q.z_q)
        torch.testing.assert_close(rec, ref["vq.rec"], **TOL)
        torch.testing.assert_close(q.loss.reshape(1), ref["vq.qloss"], **TOL)
        torch.testing.assert_close(G.decode_indices(ref["vq.codes"]), ref["vq.dec"], **TOL)
        if D is not None:
            D.eval()
            torch.testing.assert_close(D(ref["vq.x"]), ref["vq.d_real"], **TOL)
            torch.testing.assert_close(D(rec), ref["vq.d_rec"], **TOL)


def test_vqmodel_run_reproduces_taming(files, ref, tmp_path):
    spec, conv = base.convert_file(files["vqgan"])  # auto-detected
    assert spec.name == "taming" and conv.model == "vqgan"
    g = conv.model_config["G"]
    assert (conv.model_config["resolution"], g["ch"], g["ch_mult"], g["attn_resolutions"], g["z_channels"],
            g["embed_dim"], g["n_embed"]) == (16, 32, [1, 2], [8], 16, 8, 32)
    assert conv.model_config["D"] == {"ndf": 8, "n_layers": 2}
    assert any("perceptual_loss" in f and "dropped" in f for f in conv.found)
    run = write_run(conv, tmp_path / "run", spec=spec, source=files["vqgan"], sha256="0" * 64)
    snap = load_snapshot(run)
    bundle = build_bundle(OmegaConf.to_container(OmegaConf.create(snap.metadata["model_config"]), resolve=True))
    for name in ("G", "D"):
        load_module_weights(bundle.modules[name], snap.weights[name], what=name)
    _check_vq(bundle.modules["G"], bundle.modules["D"], ref)


def test_vqmodel_without_config_reads_the_numbers_from_the_weights(files, ref, tmp_path):
    bare = tmp_path / "alone" / "ckpts" / "last.ckpt"  # no config beside it, nor one folder up
    bare.parent.mkdir(parents=True)
    shutil.copy(files["vqgan"], bare)
    conv = base.convert_file(bare, "taming")[1]
    assert conv.model_config["resolution"] == 256 and conv.model_config["G"]["attn_resolutions"] == [128]
    assert any("assumed 256" in n for n in conv.notes)
    bundle = _built(conv)
    _check_vq(bundle.modules["G"], bundle.modules["D"], ref)


def test_hyper_parameters_with_omegaconf_objects_are_read(files, tmp_path, monkeypatch):
    """A checkpoint whose module saved its hyper-parameters (omegaconf objects) needs no separate config, and
    Lightning classes in it are read as inert records (the module named in the file does not exist here)."""
    sd = load_torch(files["vqgan"])["state_dict"]
    params = OmegaConf.load(next((files["vqgan"].parents[1] / "configs").glob("*.yaml"))).model.params
    # pytorch_lightning 1.0 keyed ``callbacks`` by the callback's class: a stand-in class under Lightning's name,
    # importable only while the file is written.
    names = ("pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint")
    old_cb = type("ModelCheckpoint", (), {"__module__": names[-1]})
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules[names[-1]].ModelCheckpoint = old_cb
    path = tmp_path / "hp.ckpt"
    torch.save({"state_dict": sd, "hyper_parameters": params, "pytorch-lightning_version": "1.0.8",
                "callbacks": {old_cb: {"best_model_score": torch.tensor(0.5)}}}, path)
    for name in names:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(UnsafeFileError, match="pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"):
        load_torch(path, records=["omegaconf.*", "typing.*"], allow=taming.ALLOW)  # not named as a record: refused
    conv = base.convert_file(path, "taming")[1]
    assert conv.model_config["resolution"] == 16 and conv.model_config["G"]["attn_resolutions"] == [8]
    assert conv.model_config["loss"]["disc_start"] == 10001 and conv.source_info["config"] == "hyper_parameters"
    assert conv.source_info["pytorch_lightning_version"] == "1.0.8"


def test_transformer_run_reproduces_taming(files, ref, tmp_path):
    spec, conv = base.convert_file(files["cin_transformer"])
    assert spec.name == "taming" and conv.model == "vqgan_prior" and conv.stage1.model == "vqgan"
    assert conv.model_config["c_dim"] == 10 and conv.model_config["cond_tokens"] == "shared"
    assert not any(k.endswith("attn.mask") for k in conv.weights["prior"])
    run = write_run(conv, tmp_path / "run", spec=spec, source=files["cin_transformer"], sha256="0" * 64)
    assert (run / "stage1" / "config.yaml").exists()
    snap = load_snapshot(run)
    bundle = build_bundle(OmegaConf.to_container(OmegaConf.create(snap.metadata["model_config"]), resolve=True))
    for name in ("prior", "tokenizer"):
        load_module_weights(bundle.modules[name], snap.weights[name], what=name)
    gpt, tok = bundle.modules["prior"].eval(), bundle.modules["tokenizer"]
    with torch.no_grad():
        codes = tok.encode(ref["tr.x"]).flatten(1)
        assert torch.equal(codes, ref["tr.indices"])
        prefix = prefix_tokens(ref["tr.c"], 2, cond_tokens="shared", n_embed=32)
        torch.testing.assert_close(gpt(torch.cat([prefix, codes[:, :-1]], 1)), ref["tr.logits_img"], **TOL)
        seq = ref["tr.seq"]
        torch.testing.assert_close(gpt(torch.cat([prefix, seq[:, :-1]], 1)), ref["tr.logits_seq"], **TOL)


def _imported(run):
    snap = load_snapshot(run)
    bundle = build_bundle(OmegaConf.to_container(OmegaConf.create(snap.metadata["model_config"]), resolve=True))
    for name, sd in snap.weights.items():
        load_module_weights(bundle.modules[name], sd, what=name)
    return bundle


def test_depth_conditioned_transformer_reproduces_taming(files, ref, tmp_path):
    """D-RIN's layout: the condition's own VQModel becomes a pinned cond-stage run, its 64 codes precede the image's
    in the shared vocabulary, and the logits equal Net2NetTransformer.forward's on the same depth map and image."""
    spec, conv = base.convert_file(files["depth_transformer"])
    assert conv.model == "vqgan_prior" and conv.cond_stage.model == "vqgan" and conv.stage1.model == "vqgan"
    assert (conv.cond_stage.model_config["img_channels"], conv.cond_stage.model_config["G"]["n_embed"]) == (1, 24)
    assert conv.model_config["c_dim"] == 0 and conv.model_config["prior"]["block_size"] == 128
    run = write_run(conv, tmp_path / "run", spec=spec, source=files["depth_transformer"], sha256="0" * 64)
    cfg = OmegaConf.load(run / "config.yaml").model
    assert cfg.cond_stage.startswith(str((run / "cond_stage").resolve())) and cfg.cond_stage_hash
    assert OmegaConf.load(run / "cond_stage" / "config.yaml")["import"]["part"] == "condition tokenizer (cond stage)"
    bundle = _imported(run)
    gpt, tok = bundle.modules["prior"].eval(), bundle.modules["tokenizer"]
    with torch.no_grad():
        codes = tok.encode(ref["dr.x"]).flatten(1)
        assert torch.equal(codes, ref["dr.indices"])
        prefix = build_prefix(bundle.modules, 2, cond_img=ref["dr.c"], cond_tokens="shared", n_embed=32)
        assert torch.equal(prefix, ref["dr.c_indices"])
        logits = gpt(torch.cat([prefix, codes[:, :-1]], 1))[:, prefix.shape[1] - 1:]
        torch.testing.assert_close(logits, ref["dr.logits_img"], **TOL)
        seq = ref["dr.seq"]
        torch.testing.assert_close(gpt(torch.cat([prefix, seq[:, :-1]], 1)), ref["dr.logits_seq"], **TOL)
        # Sampling keeps the condition and draws image codes only.
        out = bundle.sample(bundle.modules, 2, cond_img=ref["dr.c"], generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()


def test_imported_depth_prior_samples_from_a_depth_map_file(files, tmp_path, capsys):
    from PIL import Image

    run = tmp_path / "run"
    assert main(["import", str(files["depth_transformer"]), "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "--mode condition --image" in printed and "cond_stage_model." in printed
    depth = tmp_path / "depth.png"
    Image.fromarray((torch.linspace(0, 255, 16).round().byte().repeat(16, 1)).numpy(), mode="L").save(depth)
    grid = tmp_path / "grid.png"
    assert main(["generate", str(run), "--mode", "condition", "--image", str(depth), "--n", "2", "--seed", "0",
                 "--out", str(grid)]) == 0
    assert grid.exists()
    # The cond stage is pinned like the tokenizer: a valid run of other weights in its place is refused.
    spec, conv = base.convert_file(files["depth_transformer"])
    other = conv.cond_stage
    other.weights["G"]["quantize.embedding.weight"] = other.weights["G"]["quantize.embedding.weight"] + 1
    write_run(other, run / "cond_stage", spec=spec, source=files["depth_transformer"], sha256="0" * 64, force=True)
    capsys.readouterr()
    assert main(["generate", str(run), "--mode", "condition", "--image", str(depth), "--n", "2",
                 "--out", str(tmp_path / "again.png")]) != 0
    assert "model.cond_stage=" in (err := capsys.readouterr().err) and "but this prior was trained on hash" in err


def test_coordinate_conditioned_transformer_reproduces_taming(files, ref, tmp_path, capsys):
    """FacesHQ's layout: taming's CoordStage becomes model.cond_stage={kind: coord}; the coordinate tokens of the
    frame and the logits equal the official ones, and plain sampling needs no condition image."""
    spec, conv = base.convert_file(files["coord_transformer"])
    assert conv.model == "vqgan_prior" and conv.cond_stage is None
    assert conv.model_config["cond_stage"] == {"kind": "coord", "n_embed": 32, "down_factor": 2}
    run = tmp_path / "run"
    assert main(["import", str(files["coord_transformer"]), "--out", str(run)]) == 0
    assert f"ganzoo generate {run} --n 16" in capsys.readouterr().out
    bundle = _imported(run)
    gpt, tok, stage = bundle.modules["prior"].eval(), bundle.modules["tokenizer"], bundle.modules["cond_stage"]
    with torch.no_grad():
        codes = tok.encode(ref["co.x"]).flatten(1)
        assert torch.equal(codes, ref["co.indices"])
        # taming's coordinate map in [0, 1] is ganzoo's condition image 2u - 1, and what the stage derives itself.
        cond_img = ref["co.c"] * 2 - 1
        torch.testing.assert_close(stage.derive(ref["co.x"]), cond_img, rtol=0, atol=1e-7)
        prefix = build_prefix(bundle.modules, 2, cond_img=stage.derive(ref["co.x"]), cond_tokens="shared", n_embed=32)
        assert torch.equal(prefix, ref["co.c_indices"])
        logits = gpt(torch.cat([prefix, codes[:, :-1]], 1))[:, prefix.shape[1] - 1:]
        torch.testing.assert_close(logits, ref["co.logits_img"], **TOL)
    grid = tmp_path / "grid.png"
    assert main(["generate", str(run), "--n", "4", "--seed", "0", "--out", str(grid)]) == 0 and grid.exists()


def test_label_map_conditioned_transformer_reproduces_taming(files, ref, tmp_path, capsys):
    """S-FLCKR's layout: the VQSegmentationModel becomes a pinned cond-stage run read with model.cond_input=labels; a
    label-map PNG becomes taming's one-hot condition, whose codes and the logits equal the official ones."""
    from PIL import Image

    spec, conv = base.convert_file(files["seg_transformer"])
    assert conv.model_config["cond_input"] == "labels" and conv.cond_stage.model_config["img_channels"] == 5
    assert any("colorize" in f for f in conv.found)  # taming's random preview projection: listed, dropped
    run = tmp_path / "run"
    assert main(["import", str(files["seg_transformer"]), "--out", str(run)]) == 0
    assert "<label map PNG: pixel value = label>" in capsys.readouterr().out
    bundle = _imported(run)
    gpt, tok, stage = bundle.modules["prior"].eval(), bundle.modules["tokenizer"], bundle.modules["cond_stage"]
    assert stage.kind == "labels" and stage.grid_cond.shape[0] == 0
    maps = [tmp_path / f"labels{i}.png" for i in range(2)]
    for path, lab in zip(maps, ref["sg.labels"]):
        Image.fromarray(lab.numpy(), mode="L").save(path)
    onehot = torch.cat([load_label_map(p, n_labels=5, resolution=16) for p in maps])
    assert torch.equal(onehot, ref["sg.c"])
    with torch.no_grad():
        codes = tok.encode(ref["sg.x"]).flatten(1)
        assert torch.equal(codes, ref["sg.indices"])
        prefix = build_prefix(bundle.modules, 2, cond_img=onehot, cond_tokens="shared", n_embed=32)
        assert torch.equal(prefix, ref["sg.c_indices"])
        logits = gpt(torch.cat([prefix, codes[:, :-1]], 1))[:, prefix.shape[1] - 1:]
        torch.testing.assert_close(logits, ref["sg.logits_img"], **TOL)
    grid = tmp_path / "grid.png"
    assert main(["generate", str(run), "--mode", "condition", "--image", str(maps[0]), "--n", "2",
                 "--out", str(grid)]) == 0 and grid.exists()
    # Label maps cannot come from images: wrong files, --from-data and training say what to do instead.
    Image.fromarray((ref["sg.labels"][0] + 3).numpy(), mode="L").save(tmp_path / "bad.png")
    Image.new("RGB", (16, 16)).save(tmp_path / "rgb.png")
    capsys.readouterr()
    for extra, message in ((["--image", str(tmp_path / "bad.png")], "holds label 7, but this prior knows 5 labels"),
                           (["--image", str(tmp_path / "rgb.png")], "a label map is a grey or palette PNG"),
                           (["--from-data", "test"], "conditioned on label maps")):
        assert main(["generate", str(run), "--mode", "condition", *extra, "--out", str(tmp_path / "x.png")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    assert "label maps" in bundle.info["missing"]  # the trainer refuses it with this reason


def test_vq_cond_stage_configs_that_cannot_be_imported_are_refused(files, tmp_path):
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    shutil.copy(files["depth_transformer"], ckpt)
    cfg = OmegaConf.load(next((files["depth_transformer"].parents[1] / "configs").glob("*.yaml")))
    cfg.model.params.downsample_cond_size = 8
    OmegaConf.save(cfg, tmp_path / "run" / "checkpoints" / "last.ckpt.yaml")
    with pytest.raises(CheckpointError, match="downsample_cond_size=8"):
        base.convert_file(ckpt, "taming")
    cfg.model.params.downsample_cond_size = -1
    depth_stage = OmegaConf.to_container(cfg.model.params.cond_stage_config)
    cfg.model.params.cond_stage_config = {"target": "taming.modules.util.Labelator", "params": {"n_classes": 10}}
    OmegaConf.save(cfg, tmp_path / "run" / "checkpoints" / "last.ckpt.yaml")
    with pytest.raises(CheckpointError, match="names no VQModel cond stage"):
        base.convert_file(ckpt, "taming")
    seg = dict(depth_stage, target="taming.models.vqgan.VQSegmentationModel")
    seg["params"]["n_labels"] = 182
    cfg.model.params.cond_stage_config = seg
    OmegaConf.save(cfg, tmp_path / "run" / "checkpoints" / "last.ckpt.yaml")
    with pytest.raises(CheckpointError, match="n_labels=182 but reads 1 channels"):
        base.convert_file(ckpt, "taming")
    cfg.model.params.cond_stage_config = {"target": "taming.modules.util.LayoutStage", "params": {}}
    OmegaConf.save(cfg, tmp_path / "run" / "checkpoints" / "last.ckpt.yaml")
    with pytest.raises(CheckpointError, match="scene layouts are not supported"):
        base.convert_file(ckpt, "taming")


def test_transformer_needs_its_config(files, tmp_path):
    bare = tmp_path / "alone" / "ckpts" / "last.ckpt"  # no config beside it, nor one folder up
    bare.parent.mkdir(parents=True)
    shutil.copy(files["cin_transformer"], bare)
    with pytest.raises(CheckpointError, match="needs its config"):
        base.convert_file(bare, "taming")


def test_a_config_of_another_model_is_refused(files, tmp_path):
    ckpt = tmp_path / "last.ckpt"
    shutil.copy(files["vqgan"], ckpt)
    cfg = OmegaConf.load(next((files["vqgan"].parents[1] / "configs").glob("*.yaml")))
    cfg.model.params.ddconfig.ch = 128
    OmegaConf.save(cfg, tmp_path / "last.ckpt.yaml")
    with pytest.raises(CheckpointError, match="ch=128"):
        base.convert_file(ckpt, "taming")


def test_truncated_and_wrong_files_are_refused(files, tmp_path):
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(files["vqgan"].read_bytes()[:200_000])
    with pytest.raises(CheckpointError, match="cut short"):
        base.convert_file(cut, "taming")
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2)}}, wrong)
    assert not base.formats()["taming"].sniff(wrong)
    with pytest.raises(CheckpointError, match="neither a taming VQModel"):
        base.convert_file(wrong, "taming")
    other = tmp_path / "other.ckpt"
    torch.save([1, 2, 3], other)
    with pytest.raises(CheckpointError, match="expected a PyTorch Lightning checkpoint"):
        base.convert_file(other, "taming")
