"""ganzoo.pretrained's core: the allow-list reader, the run-folder writer, `ganzoo import`, downloads and
fine-tuning through model.init (with a test format, so that no converter is needed here)."""

from __future__ import annotations

import collections
import hashlib
import os
import pickle
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ganzoo.cli import main
from ganzoo.errors import CheckpointError
from ganzoo.pretrained import base
from ganzoo.pretrained.download import cache_path, fetch
from ganzoo.pretrained.importer import import_checkpoint
from ganzoo.pretrained.safe_pickle import Record, UnsafeFileError, load_pickle, load_torch
from ganzoo.registry import build_model
from ganzoo.training.checkpoint import load_snapshot

from .conftest import SMOKE, compose

MARKER = "ganzoo_pwned_marker"


class _Shell:
    """An object whose unpickling would run a shell command (the classic pickle payload)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# -- the reader ---------------------------------------------------------------------------------
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_torch_files_round_trip_through_the_allow_list(tmp_path, zipped):
    g = torch.Generator().manual_seed(0)
    base_t = torch.randn(6, 5, generator=g)
    sd = collections.OrderedDict(w=base_t, view=base_t[1:4, 2:], t=base_t.t(), half=torch.randn(3, generator=g).half(),
                                 idx=torch.arange(7), p=torch.nn.Parameter(torch.randn(2, generator=g)),
                                 flag=torch.tensor(True))
    obj = {"sd": sd, "meta": {"step": 3, "name": "x", "sizes": (1, 2), "arr": np.arange(4.0)}}
    torch.save(obj, tmp_path / "f.pt", _use_new_zipfile_serialization=zipped)
    out = load_torch(tmp_path / "f.pt")
    for k, v in sd.items():
        assert torch.equal(out["sd"][k], v.detach()) and out["sd"][k].dtype == v.dtype, k
    assert isinstance(out["sd"]["p"], torch.nn.Parameter)
    assert out["meta"]["step"] == 3 and out["meta"]["sizes"] == (1, 2)
    np.testing.assert_array_equal(out["meta"]["arr"], np.arange(4.0))


def test_plain_pickles_of_tensors_and_records(tmp_path):
    payload = {"w": torch.randn(3, 2), "p": torch.nn.Parameter(torch.ones(2))}
    assert torch.equal(load_pickle(pickle.dumps(payload))["w"], payload["w"])
    assert load_pickle(pickle.dumps(collections.OrderedDict(a=1))) == {"a": 1}
    # A class the format names as a record is never imported: its arguments are kept as data.
    blob = pickle.dumps(_Shell(tmp_path / "x"), protocol=2).replace(b"posix", b"mypkg").replace(b"system", b"Thing")
    with pytest.raises(UnsafeFileError, match="mypkg.Thing"):
        load_pickle(blob)
    rec = load_pickle(blob, records=["mypkg.*"])
    assert isinstance(rec, Record) and rec.qualname == "mypkg.Thing" and "touch" in rec.args[0]


@pytest.mark.parametrize("kind", ["pickle", "zip", "legacy"])
def test_code_payloads_are_refused_and_nothing_runs(tmp_path, kind):
    marker = tmp_path / MARKER
    path = tmp_path / "evil.bin"
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"G": _Shell(marker)}))
        loader = load_pickle
    else:
        torch.save({"state_dict": {"w": torch.ones(1)}, "x": _Shell(marker)}, path,
                   _use_new_zipfile_serialization=kind == "zip")
        loader = load_torch
    with pytest.raises(UnsafeFileError, match="system.*refused and nothing in the file was run"):
        loader(path)
    assert not marker.exists()


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_truncated_files_give_a_clear_error(tmp_path, zipped):
    torch.save({"w": torch.randn(64, 64)}, tmp_path / "f.pt", _use_new_zipfile_serialization=zipped)
    data = (tmp_path / "f.pt").read_bytes()
    for cut in (7, len(data) // 3, len(data) - 40):
        (tmp_path / "cut.pt").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated|damaged|corrupt"):
            load_torch(tmp_path / "cut.pt")


# -- a test format: a torch.save of ganzoo dcgan_tiny state dicts -------------------------------
def _sniff(path: Path) -> bool:
    return path.is_file() and path.suffix == ".testfmt"


def _convert(path: Path) -> base.Converted:
    obj = load_torch(path)
    return base.Converted(model="dcgan_tiny", model_config={"resolution": 16, "img_channels": 1},
                          weights={"G": obj["G"], "D": obj["D"]} if "D" in obj else {"G": obj["G"]},
                          found=["G", *(["D"] if "D" in obj else [])], notes=["test format"],
                          source_info={"kimg": 1})


@pytest.fixture
def test_format(monkeypatch):
    monkeypatch.setitem(base._FORMATS, "testfmt",
                        base.FormatSpec("testfmt", "a test format (ganzoo state dicts)", _sniff, _convert))


def _source_file(tmp_path: Path, with_d: bool = True) -> tuple[Path, dict]:
    torch.manual_seed(3)
    bundle = build_model("dcgan_tiny", resolution=16, img_channels=1)
    sd = {k: m.state_dict() for k, m in bundle.modules.items()}
    path = tmp_path / "model.testfmt"
    torch.save(sd if with_d else {"G": sd["G"]}, path)
    return path, sd


def test_import_writes_an_ordinary_run_with_provenance(tmp_path, test_format, capsys):
    src, sd = _source_file(tmp_path)
    out = tmp_path / "imported"
    assert main(["import", str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model=dcgan_tiny" in printed and "model.init=" in printed and "ganzoo generate" in printed
    cfg = OmegaConf.load(out / "config.yaml")
    info = cfg["import"]
    assert info.format == "testfmt" and info.source == "model.testfmt"
    assert info.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert any("EMA of G" in x for x in info.not_found) and list(info.notes) == ["test format"]
    snap = load_snapshot(out, with_state=False)
    for k, v in sd["G"].items():
        assert torch.equal(snap.weights["G"][k], v) and torch.equal(snap.ema["G"][k], v)
    # generate works on it unchanged
    assert main(["generate", str(out), "--n", "4", "--seed", "1", "--out", str(tmp_path / "gen.png")]) == 0
    assert (tmp_path / "gen.png").stat().st_size > 0
    # it cannot be resumed (no optimizer state), and says what to do instead
    assert main(["train", f"trainer.resume={out}", "trainer.steps=1"]) == 2
    assert "model.init" in capsys.readouterr().err


def test_import_refuses_to_overwrite_and_names_unknown_formats(tmp_path, test_format, capsys):
    src, _ = _source_file(tmp_path)
    out = tmp_path / "imported"
    import_checkpoint(str(src), out=str(out))
    with pytest.raises(CheckpointError, match="not empty"):
        import_checkpoint(str(src), out=str(out))
    import_checkpoint(str(src), out=str(out), force=True)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert main(["import", str(other), "--out", str(tmp_path / "o2")]) == 2
    assert "not a checkpoint format ganzoo can import" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
    with pytest.raises(CheckpointError, match="SHA-256"):
        import_checkpoint(str(src), out=str(tmp_path / "o3"), sha256="0" * 64)


def test_missing_modules_are_initialised_and_listed(tmp_path, test_format):
    src, _ = _source_file(tmp_path, with_d=False)
    run = import_checkpoint(str(src), out=str(tmp_path / "run"))
    info = OmegaConf.load(run / "config.yaml")["import"]
    assert any(x.startswith("D: not in the file") for x in info.not_found)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    snap = load_snapshot(run)
    out = {f"{m}.{k}": v for m, sd in snap.weights.items() for k, v in sd.items()}
    out.update({f"ema.{m}.{k}": v for m, sd in snap.ema.items() for k, v in sd.items()})
    return out


def test_finetune_from_an_imported_run_starts_there_and_resumes_exactly(tmp_path, test_format):
    from ganzoo.training.trainer import Trainer

    src, sd = _source_file(tmp_path)
    imported = import_checkpoint(str(src), out=str(tmp_path / "imported"))
    args = [*SMOKE, "model.resolution=16", "model.img_channels=1", f"model.init={imported}", "trainer.steps=4",
            "trainer.checkpoint_every_kimg=0.032", "trainer.grid=0"]
    trainer = Trainer(compose(args), tmp_path / "ft")
    for k, v in sd["D"].items():  # before any step the run holds the imported weights
        assert torch.equal(trainer.modules["D"].state_dict()[k], v)
    trainer.fit()
    saved = OmegaConf.load(tmp_path / "ft" / "config.yaml")
    assert saved.init_from["import"]["format"] == "testfmt" and saved.init_from["import"]["sha256"]
    assert "G" in saved.init_from.loaded and saved.init_from.optimizers == "fresh"
    # interrupted after 2 steps, then resumed: the same weights as the uninterrupted run
    Trainer(compose([*args[:-3], "trainer.steps=2", "trainer.checkpoint_every_kimg=0.032",
                     "trainer.grid=0"]), tmp_path / "ft2").fit()
    Trainer(compose([*args, f"trainer.resume={tmp_path / 'ft2'}"]), tmp_path / "ft2").fit()
    a, b = _weights(tmp_path / "ft"), _weights(tmp_path / "ft2")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[f"D.{k}"], v) for k, v in sd["D"].items())  # and it did train


def test_finetune_with_another_architecture_names_the_source_settings(tmp_path, test_format):
    from ganzoo.training.trainer import Trainer

    src, _ = _source_file(tmp_path)
    imported = import_checkpoint(str(src), out=str(tmp_path / "imported"))
    with pytest.raises(CheckpointError, match="model.resolution=16"):
        Trainer(compose([*SMOKE, "model.resolution=32", "model.img_channels=1", f"model.init={imported}"]),
                tmp_path / "ft")


def test_model_init_of_a_published_file_converts_in_memory(tmp_path, test_format):
    from ganzoo.training.trainer import Trainer

    src, sd = _source_file(tmp_path)
    trainer = Trainer(compose([*SMOKE, "model.resolution=16", "model.img_channels=1", f"model.init={src}"]),
                      tmp_path / "ft")
    for k, v in sd["G"].items():
        assert torch.equal(trainer.modules["G"].state_dict()[k], v)
        assert torch.equal(trainer.ema["G"].state_dict()[k], v)
    assert trainer.cfg.init_from.format == "testfmt"


# -- downloads ----------------------------------------------------------------------------------
def test_download_caches_checks_and_says_where_to_put_a_file_offline(tmp_path, test_format):
    src, _ = _source_file(tmp_path)
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{src.name}"
        cache = tmp_path / "cache"
        got = fetch(url, cache_dir=cache)
        assert got == cache_path(url, cache) and got.read_bytes() == src.read_bytes()
        assert got.with_name(got.name + ".sha256").read_text().strip() == hashlib.sha256(src.read_bytes()).hexdigest()
        run = import_checkpoint(url, out=str(tmp_path / "run"), cache_dir=str(cache))
        assert OmegaConf.load(run / "config.yaml")["import"].url == url
        got.write_bytes(got.read_bytes()[:-1] + b"x")  # a damaged cache is noticed
        with pytest.raises(CheckpointError, match="no longer has the SHA-256"):
            fetch(url, cache_dir=cache)
        with pytest.raises(CheckpointError, match="not the expected"):
            fetch(url.replace(src.name, src.name + "?v=2"), cache_dir=cache, sha256="ab" * 32)
    finally:
        server.shutdown()
    missing = "http://127.0.0.1:9/ffhq.pkl"  # nothing listens on the discard port: as offline
    with pytest.raises(CheckpointError, match="put it at .*ffhq.pkl"):
        fetch(missing, cache_dir=tmp_path / "cache", timeout=5)


def test_legacy_module_references_are_records_or_refused(tmp_path):
    """Legacy torch.save stores nn.Module classes by reference (BigGAN-PyTorch's state_dict.pth config)."""
    torch.save({"activation": torch.nn.ReLU(), "w": torch.ones(2)}, tmp_path / "s.pth",
               _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeFileError, match="torch.nn.modules.activation.ReLU"):
        load_torch(tmp_path / "s.pth")
    out = load_torch(tmp_path / "s.pth", records=["torch.nn.modules.*"])
    assert isinstance(out["activation"], Record) and torch.equal(out["w"], torch.ones(2))
