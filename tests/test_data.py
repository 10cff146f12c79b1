"""Tests of ganzoo.data: embedded sets, image folders, fitting, torchvision errors, the resumable loader."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image, features

from ganzoo.data import DATASET_NAMES, build_dataset, build_loader
from ganzoo.data.base import ImageDataset
from ganzoo.data.folder import ImageFolderDataset
from ganzoo.data.loader import StreamBatchSampler
from ganzoo.data.transforms import convert_channels, prepare_image, to_tensor
from ganzoo.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "build_embedded_data.py"
CONF_DATA = REPO / "conf" / "data"


def _png(path: Path, color, size=(8, 8), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def _take(it, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(itertools.islice(it, n))


def _same_batches(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))


class _IndexDataset(ImageDataset):
    """Image i is filled with value i (up to 255) and labelled i: makes sample identity visible."""

    def __init__(self, n: int) -> None:
        super().__init__(name="index", resolution=4, channels=1, class_names=[str(i) for i in range(n)])
        self.n = n

    def _source_len(self) -> int:
        return self.n

    def _load(self, index: int) -> Image.Image:
        arr = np.full((4, 4), index, dtype=np.uint8)
        arr[:, 0] = 255  # a marked left column shows flips
        return Image.fromarray(arr)

    def _label(self, index: int) -> int:
        return index


# --------------------------------------------------------------------------------------------------
# embedded datasets


@pytest.mark.parametrize("name, classes", [("fashion", 10), ("emoji", 9)])
@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_embedded_shapes_ranges_labels(name, classes, resolution, channels):
    ds = build_dataset({"name": name, "max_images": 40}, resolution=resolution, channels=channels)
    assert len(ds) == 40 and ds.name == name
    assert ds.num_classes == classes and len(ds.class_names) == classes
    assert (ds.resolution, ds.channels) == (resolution, channels)
    for i in (0, 17, 39):
        img, label = ds[i]
        assert img.shape == (channels, resolution, resolution) and img.dtype == torch.float32
        assert img.min() >= -1.0 and img.max() <= 1.0 and img.max() > img.min()
        assert label.dtype == torch.int64 and label.ndim == 0 and 0 <= int(label) < classes


def test_embedded_full_sizes_and_balance():
    fashion = build_dataset({"name": "fashion"}, resolution=28, channels=1)
    labels = np.array([fashion._label(i) for i in range(len(fashion))])
    assert len(fashion) == 9000 and np.bincount(labels).tolist() == [900] * 10
    emoji = build_dataset({"name": "emoji"}, resolution=32, channels=3)
    assert 1200 <= len(emoji) <= 3600
    assert emoji.class_names[-1] == "flags"


def test_emoji_is_coloured():
    ds = build_dataset({"name": "emoji", "max_images": 200}, resolution=32, channels=3)
    imgs = torch.stack([ds[i][0] for i in range(0, 200, 5)])  # [40, 3, 32, 32]
    spread = (imgs.max(dim=1).values - imgs.min(dim=1).values).mean(dim=(1, 2))  # per-image channel spread
    assert (spread > 0.05).float().mean() > 0.5


def test_max_images_keeps_dataset_order():
    full = build_dataset({"name": "emoji"}, resolution=32, channels=3)
    head = build_dataset({"name": "emoji", "max_images": 5}, resolution=32, channels=3)
    assert len(head) == 5
    for i in range(5):
        assert torch.equal(full[i][0], head[i][0])


def test_embedded_fashion_test_split_is_held_out_and_balanced():
    """data.split=test: 1,000 Fashion-MNIST test-set images, 100 per class, none of them a training image."""
    test = build_dataset({"name": "fashion", "split": "test"}, resolution=28, channels=1)
    train = build_dataset({"name": "fashion"}, resolution=28, channels=1)
    assert len(test) == 1000 and test.class_names == train.class_names
    labels = torch.tensor([int(test[i][1]) for i in range(len(test))])
    assert torch.equal(torch.bincount(labels, minlength=10), torch.full((10,), 100))
    train_bytes = {train[i][0].numpy().tobytes() for i in range(len(train))}
    assert not any(test[i][0].numpy().tobytes() in train_bytes for i in range(len(test)))


def test_embedded_rejects_splits_it_lacks():
    with pytest.raises(ConfigError, match="has no split 'val'.*train, test"):
        build_dataset({"name": "fashion", "split": "val"}, resolution=32, channels=1)
    with pytest.raises(ConfigError, match="has no split 'test'.*it has train"):
        build_dataset({"name": "emoji", "split": "test"}, resolution=32, channels=3)


# --------------------------------------------------------------------------------------------------
# config handling


def test_unknown_name_lists_close_matches():
    with pytest.raises(ConfigError) as err:
        build_dataset({"name": "fashon"}, resolution=32, channels=1)
    msg = str(err.value)
    assert "Did you mean fashion" in msg and "fashion_mnist" in msg
    for known in DATASET_NAMES:
        assert known in msg


@pytest.mark.parametrize(
    "cfg, resolution, match",
    [
        ({"name": "fashion", "fit": "squash"}, 32, "crop, pad, stretch"),
        ({"name": "fashion"}, 2, "resolution"),
        ({"name": "fashion", "max_images": 0}, 32, "max_images"),
        ({"name": "fashion", "colour": True}, 32, "Allowed keys"),
        ({"name": "folder"}, 32, "data.root"),
    ],
)
def test_bad_config_values(cfg, resolution, match):
    with pytest.raises(ConfigError, match=match):
        build_dataset(cfg, resolution=resolution, channels=1)


def test_conf_files_have_every_key_and_known_names():
    files = sorted(CONF_DATA.glob("*.yaml"))
    assert {f.stem for f in files} >= {
        "fashion",
        "emoji",
        "folder",
        "cifar10",
        "mnist",
        "fashion_mnist",
        "celeba",
        "lsun",
    }
    keys = {"name", "root", "split", "fit", "pad_color", "flip", "max_images", "download", "lsun_classes", "verify",
            "resize_on_device"}
    for f in files:
        cfg = OmegaConf.load(f)
        assert set(cfg.keys()) == keys, f.name
        assert cfg.name in DATASET_NAMES
    ds = build_dataset(
        OmegaConf.merge(OmegaConf.load(CONF_DATA / "emoji.yaml"), {"max_images": 3}),
        resolution=16,
        channels=3,
    )
    assert len(ds) == 3


# --------------------------------------------------------------------------------------------------
# image folders


def test_folder_labels_from_subfolders(tmp_path):
    _png(tmp_path / "dogs" / "a.png", (200, 0, 0))
    _png(tmp_path / "dogs" / "deep" / "b.JPG", (0, 200, 0))
    _png(tmp_path / "cats" / "c.webp", (0, 0, 200))
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    ds = build_dataset({"name": "folder", "root": str(tmp_path)}, resolution=8, channels=3)
    assert ds.class_names == ["cats", "dogs"] and ds.num_classes == 2
    assert len(ds) == 3
    assert [int(ds[i][1]) for i in range(3)] == [0, 1, 1]  # sorted paths: cats/c, dogs/a, dogs/deep/b


def test_folder_unlabelled_flat(tmp_path):
    for i in range(3):
        _png(tmp_path / f"img{i}.png", (i * 50, 0, 0), size=(10, 6))
    _png(tmp_path / "grey.bmp", 128, mode="L")
    ds = build_dataset({"name": "folder", "root": str(tmp_path)}, resolution=8, channels=3)
    assert len(ds) == 4 and ds.num_classes == 0 and ds.class_names is None
    img, label = ds[0]
    assert img.shape == (3, 8, 8) and int(label) == -1


def test_folder_loose_files_next_to_class_folders_are_left_out(tmp_path):
    _png(tmp_path / "a" / "x.png", (1, 2, 3))
    _png(tmp_path / "loose.png", (1, 2, 3))
    with pytest.warns(UserWarning, match="1 image file.*loose.png"):
        ds = build_dataset({"name": "folder", "root": str(tmp_path)}, resolution=8, channels=3)
    assert len(ds) == 1 and ds.class_names == ["a"]


def test_folder_corrupt_files_skipped_with_one_warning(tmp_path):
    good = _png(tmp_path / "good.png", (10, 20, 30), size=(16, 16))
    _png(tmp_path / "good2.png", (30, 20, 10), size=(16, 16))
    (tmp_path / "garbage.png").write_bytes(b"definitely not a png")
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:40])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = build_dataset({"name": "folder", "root": str(tmp_path)}, resolution=8, channels=3)
    ours = [w for w in caught if "unreadable" in str(w.message)]
    assert len(ours) == 1
    assert "skipped 2 unreadable" in str(ours[0].message) and "garbage.png" in str(ours[0].message)
    assert len(ds) == 2 and all(p.name.startswith("good") for p in ds.files)


def test_folder_without_verify_never_returns_corrupt_files(tmp_path):
    _png(tmp_path / "a.png", (255, 0, 0))
    (tmp_path / "b.png").write_bytes(b"broken")
    _png(tmp_path / "c.png", (0, 0, 255))
    ds = ImageFolderDataset(tmp_path, resolution=8, channels=3, verify=False)
    assert len(ds) == 3
    with pytest.warns(UserWarning, match="b.png"):
        img, _ = ds[1]  # the corrupt one: replaced by the next readable image
    assert torch.equal(img, ds[2][0])


def test_folder_missing_and_empty_dirs(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="data.root=") as err:
        build_dataset({"name": "folder", "root": str(missing)}, resolution=8, channels=3)
    assert str(missing) in str(err.value)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match="no images") as err:
        build_dataset({"name": "folder", "root": str(empty)}, resolution=8, channels=3)
    assert str(empty) in str(err.value)


# --------------------------------------------------------------------------------------------------
# fitting and channel conversion


def _wide_black() -> Image.Image:
    return Image.new("RGB", (64, 32), (0, 0, 0))  # 2:1, black


def test_fit_pad_keeps_whole_image_on_white():
    img = to_tensor(prepare_image(_wide_black(), resolution=32, channels=3, fit="pad", pad_color="white"))
    assert torch.all(img[:, :8] == 1.0) and torch.all(img[:, 24:] == 1.0)  # white bands top and bottom
    assert torch.all(img[:, 8:24] == -1.0)  # the whole (black) image in the middle


def test_fit_crop_fills_frame_with_centre():
    arr = np.zeros((32, 64, 3), dtype=np.uint8)
    arr[:, :16] = (255, 0, 0)  # red left quarter, cut away by the centre crop
    arr[:, 48:] = (0, 0, 255)  # blue right quarter, cut away
    arr[:, 16:48] = (0, 255, 0)
    out = prepare_image(Image.fromarray(arr), resolution=16, channels=3, fit="crop")
    assert out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - (0, 255, 0)).max() <= 2


def test_fit_stretch_keeps_everything_distorted():
    arr = np.zeros((32, 64, 3), dtype=np.uint8)
    arr[:, :16] = (255, 0, 0)
    out = prepare_image(Image.fromarray(arr), resolution=16, channels=3, fit="stretch")
    assert out.shape == (16, 16, 3)
    assert out[:, :2, 0].min() > 200 and out[:, -4:, 0].max() < 10  # red left edge kept, right side dark


def test_fit_tall_image_pad():
    img = Image.new("L", (10, 40), 0)  # tall, black
    out = prepare_image(img, resolution=20, channels=1, fit="pad", pad_color=255)[:, :, 0]
    assert (out[:, :7] == 255).all() and (out[:, 13:] == 255).all() and (out[:, 8:12] == 0).all()


def test_channel_conversions():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red -> white
    assert convert_channels(rgba, 3).getpixel((0, 0)) == (255, 255, 255)
    grey = Image.new("L", (4, 4), 77)
    arr = prepare_image(grey, resolution=4, channels=3, fit="crop")
    assert arr.shape == (4, 4, 3) and (arr == 77).all()
    rgb = Image.new("RGB", (4, 4), (200, 100, 50))
    lum = prepare_image(rgb, resolution=4, channels=1, fit="crop")
    assert lum.shape == (4, 4, 1) and int(lum[0, 0, 0]) == rgb.convert("L").getpixel((0, 0))
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert (prepare_image(deep, resolution=4, channels=1, fit="crop") == 255).all()


# --------------------------------------------------------------------------------------------------
# loader


def test_loader_same_seed_same_batches_and_each_epoch_a_permutation():
    ds = _IndexDataset(12)
    a = _take(build_loader(ds, batch_size=4, seed=3), 6)
    b = _take(build_loader(ds, batch_size=4, seed=3), 6)
    c = _take(build_loader(ds, batch_size=4, seed=4), 6)
    assert _same_batches(a, b) and not _same_batches(a, c)
    labels = torch.cat([y for _, y in a])  # [24] = two epochs
    assert sorted(labels[:12].tolist()) == list(range(12)) and sorted(labels[12:].tolist()) == list(range(12))
    assert labels[:12].tolist() != labels[12:].tolist()  # a fresh permutation per epoch
    img, label = a[0]
    assert img.shape == (4, 1, 4, 4) and img.dtype == torch.float32 and label.dtype == torch.int64


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("k", [1, 2, 5])  # dataset of 10, batch 4: k=2 and k=5 start mid-epoch
def test_loader_resume_matches_uninterrupted_stream(flip, k):
    ds = _IndexDataset(10)
    full = _take(build_loader(ds, batch_size=4, seed=7, flip=flip), k + 4)
    resumed = _take(build_loader(ds, batch_size=4, seed=7, flip=flip, start=k * 4), 4)
    assert _same_batches(full[k:], resumed)


def test_loader_flips_are_mirrors_and_do_not_change_order():
    ds = _IndexDataset(10)
    plain = _take(build_loader(ds, batch_size=5, seed=1), 4)
    flipped = _take(build_loader(ds, batch_size=5, seed=1, flip=True), 4)
    mirrored = 0
    for (x, y), (fx, fy) in zip(plain, flipped):
        assert torch.equal(y, fy)
        for a, b in zip(x, fx):
            assert torch.equal(a, b) or torch.equal(a.flip(-1), b)
            mirrored += not torch.equal(a, b)
    assert 0 < mirrored < 20


def test_loader_resume_with_workers():
    ds = build_dataset({"name": "emoji", "max_images": 50}, resolution=16, channels=3)
    full = _take(build_loader(ds, batch_size=8, seed=0, flip=True), 9)
    it = build_loader(ds, batch_size=8, seed=0, flip=True, start=5 * 8, num_workers=2)
    resumed = _take(it, 4)
    assert _same_batches(full[5:], resumed)
    assert it.images_seen == 5 * 8 + 4 * 8


def test_ranks_take_disjoint_interleaved_shares_of_the_global_batch():
    ds = _IndexDataset(9)
    whole = _take(build_loader(ds, batch_size=6, seed=2, start=3), 3)
    r0 = _take(build_loader(ds, batch_size=3, seed=2, start=3, rank=0, world_size=2), 3)
    r1 = _take(build_loader(ds, batch_size=3, seed=2, start=3, rank=1, world_size=2), 3)
    for (_, y), (_, y0), (_, y1) in zip(whole, r0, r1):
        assert torch.equal(y[0::2], y0) and torch.equal(y[1::2], y1)
    sampler = StreamBatchSampler(9, batch_size=3, seed=2, rank=1, world_size=3)
    assert sampler.positions(0).tolist() == [1, 4, 7] and sampler.positions(1).tolist() == [10, 13, 16]
    ranks = [StreamBatchSampler(9, batch_size=3, seed=2, rank=r, world_size=3) for r in range(3)]
    first = [next(iter(s)) for s in ranks]
    indices = [i for keys in first for i, _ in keys]
    assert sorted(indices) == list(range(9))  # one global batch = one epoch here: disjoint and complete


def test_loader_rejects_bad_arguments():
    ds = _IndexDataset(4)
    with pytest.raises(ConfigError):
        build_loader(ds, batch_size=0, seed=0)
    with pytest.raises(ConfigError):
        build_loader(ds, batch_size=2, seed=0, rank=2, world_size=2)


# --------------------------------------------------------------------------------------------------
# torchvision datasets (never touch the network)


@pytest.mark.parametrize("name", ["cifar10", "mnist", "fashion_mnist", "celeba", "lsun"])
def test_torchvision_missing_files_give_data_error(tmp_path, name):
    cfg = {"name": name, "root": str(tmp_path), "download": False}
    with pytest.raises(DataError) as err:
        build_dataset(cfg, resolution=32, channels=3)
    msg = str(err.value)
    assert str(tmp_path) in msg and "data=fashion" in msg and "manually" in msg


def test_torchvision_fashion_mnist_from_local_files(tmp_path):
    src = Path("/usr/share/datasets/fashion-mnist")
    if not (src / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / stem).write_bytes(gzip.decompress((src / f"{stem}.gz").read_bytes()))
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / stem).touch()  # torchvision only checks that they exist; the test split does not read them
    cfg = {
        "name": "fashion_mnist",
        "root": str(tmp_path),
        "split": "test",
        "download": False,
        "max_images": 10,
    }
    ds = build_dataset(cfg, resolution=32, channels=3)
    assert len(ds) == 10 and ds.num_classes == 10 and ds.class_names[0] == "T-shirt/top"
    img, label = ds[3]
    assert img.shape == (3, 32, 32) and label.dtype == torch.int64 and 0 <= int(label) < 10
    assert torch.equal(img[0], img[1])  # grey replicated to RGB
    batch = next(build_loader(ds, batch_size=4, seed=0))
    assert batch[0].shape == (4, 3, 32, 32) and batch[1].shape == (4,)


def test_torchvision_download_failure_gives_data_error(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match="downloading the cifar10 dataset") as err:
        build_dataset({"name": "cifar10", "root": str(tmp_path)}, resolution=32, channels=3)
    assert "cifar-10-python.tar.gz" in str(err.value) and "data=emoji" in str(err.value)


def test_torchvision_bad_split_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train or test"):
        build_dataset({"name": "mnist", "root": str(tmp_path), "split": "valid"}, resolution=32, channels=1)
    with pytest.raises(ConfigError, match="LSUN category"):
        build_dataset(
            {"name": "lsun", "root": str(tmp_path), "lsun_classes": ["castle"]}, resolution=32, channels=3
        )


# --------------------------------------------------------------------------------------------------
# the build script reproduces the shipped files


def _load_script():
    spec = importlib.util.spec_from_file_location("build_embedded_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shipped(name: str):
    return np.load(REPO / "ganzoo" / "data" / "embedded" / name, allow_pickle=False)


def test_build_script_reproduces_fashion_prefix():
    script = _load_script()
    if not (script.FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    rebuilt = script.build_fashion()
    shipped = _shipped("fashion_mnist.npz")
    for key in ("images", "labels", "source_index"):
        assert np.array_equal(rebuilt[key][:20], shipped[key][:20]), key
    assert list(shipped["class_names"]) == list(script.FASHION_CLASSES)


def test_build_script_reproduces_emoji_prefix():
    script = _load_script()
    if not script.EMOJI_FONT.exists():
        pytest.skip("Debian package fonts-noto-color-emoji is not installed")
    if not features.check("raqm"):
        pytest.skip("Pillow without libraqm cannot shape emoji sequences")
    rebuilt = script.build_emoji(limit=10)
    shipped = _shipped("emoji32.npz")
    assert list(rebuilt["codepoints"]) == list(shipped["codepoints"][:10])
    assert np.array_equal(rebuilt["labels"], shipped["labels"][:10])
    assert np.abs(rebuilt["images"].astype(int) - shipped["images"][:10]).max() <= 2


def test_emoji_classes_from_code_points():
    script = _load_script()
    cls = {name: i for i, name in enumerate(script.EMOJI_CLASSES)}
    assert script.emoji_class((0x1F600,)) == cls["smileys"]
    assert script.emoji_class((0x1F436,)) == cls["animals_nature"]
    assert script.emoji_class((0x1F355,)) == cls["food_drink"]
    assert script.emoji_class((0x1F680,)) == cls["travel_places"]
    assert script.emoji_class((0x26BD,)) == cls["activities"]
    assert script.emoji_class((0x1F4BB,)) == cls["objects"]
    assert script.emoji_class((0x2B06,)) == cls["symbols"]
    assert script.emoji_class((0x1F1EB, 0x1F1F7)) == cls["flags"]
    assert script.emoji_class((0x1F468, 0x200D, 0x1F373)) == cls["people"]
    # of a ZWJ sequence and its reverse (both map to one glyph) the standard order is preferred
    forward, backward = (0x1F468, 0x200D, 0x1F373), (0x1F373, 0x200D, 0x1F468)
    assert min([backward, forward], key=script.sequence_preference) == forward


def test_fit_pad_default_uses_the_border_colour():
    """Black-background data (Fashion-MNIST) pads with black, white-background data with white."""
    dark = np.zeros((40, 10), dtype=np.uint8)
    dark[5:35, 3:7] = 200  # a bright garment on black
    out = prepare_image(Image.fromarray(dark), resolution=20, channels=1, fit="pad")[:, :, 0]
    assert (out[:, :6] == 0).all() and (out[:, 14:] == 0).all()
    light = np.full((10, 40, 3), 255, dtype=np.uint8)
    light[3:7, 5:35] = (200, 30, 30)  # a red object on white
    out = prepare_image(Image.fromarray(light), resolution=20, channels=3, fit="pad")
    assert (out[:6] == 255).all() and (out[14:] == 255).all()


def test_fit_pad_colour_options():
    img = Image.new("L", (10, 40), 128)
    assert (prepare_image(img, resolution=20, channels=1, fit="pad", pad_color="black")[:, 0] == 0).all()
    rgb = prepare_image(img, resolution=20, channels=3, fit="pad", pad_color=[10, 20, 30])
    assert tuple(rgb[0, 0]) == (10, 20, 30) and tuple(rgb[10, 10]) == (128, 128, 128)
    grey = prepare_image(img, resolution=20, channels=1, fit="pad", pad_color=[255, 0, 0])
    assert grey[0, 0, 0] == round(0.299 * 255)  # luma of pure red
    for bad in ("grey", 300, [1, 2], True):
        with pytest.raises(ConfigError, match="data.pad_color"):
            prepare_image(img, resolution=20, channels=1, fit="pad", pad_color=bad)


def test_pad_color_reaches_the_dataset():
    from ganzoo.data import build_dataset

    cfg = {"name": "fashion", "fit": "pad", "pad_color": "white", "max_images": 2}
    ds = build_dataset(cfg, resolution=32, channels=1)
    assert ds.pad_color == "white"
    with pytest.raises(ConfigError, match="data.pad_color"):
        build_dataset({"name": "fashion", "pad_color": "mauve"}, resolution=32, channels=1)
