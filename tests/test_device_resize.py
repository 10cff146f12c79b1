"""data.resize_on_device: native images fitted in batches (BatchFit) equal the per-image PIL path.

Tolerance: none. PIL's 8-bit resampling is integer arithmetic, and BatchFit reproduces it exactly in
float64 on the CPU (and CUDA), so every pixel of every fit mode must be bit-identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.data import BatchFit, build_dataset, build_loader, device_batch_fit
from ganzoo.data.device_resize import pil_coefficients
from ganzoo.errors import ConfigError

from .conftest import compose


def _batch_path(dataset, keys) -> torch.Tensor:
    imgs = torch.stack([img for img, _ in dataset.native_items(keys)])  # uint8 [B, C, h, w]
    assert imgs.dtype == torch.uint8
    return BatchFit(dataset.resolution, dataset.fit, dataset.pad_color)(imgs)


def _image_path(dataset, keys) -> torch.Tensor:
    return torch.stack([dataset[k][0] for k in keys])


def _assert_same(dataset, keys) -> None:
    a, b = _batch_path(dataset, keys), _image_path(dataset, keys)
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
    diff = (a - b).abs()
    assert torch.equal(a, b), f"{int((diff > 0).sum())} pixels differ, at most {float(diff.max()) * 127.5:.1f} levels"


@pytest.mark.parametrize("name,resolution,channels", [
    ("fashion", 64, 1),   # 28 -> 64: BICUBIC
    ("fashion", 256, 3),  # the StyleGAN2 paper256 case, grey replicated to RGB
    ("fashion", 16, 1),   # 28 -> 16: LANCZOS
    ("emoji", 24, 3),     # colour, shrinking by a non-integer factor
    ("emoji", 32, 1),     # native size: no resampling, only the luma conversion
])
@pytest.mark.parametrize("fit", ["crop", "pad", "stretch"])
def test_embedded_batches_equal_per_image_path(name, resolution, channels, fit):
    dataset = build_dataset({"name": name, "fit": fit, "max_images": 64}, resolution=resolution, channels=channels)
    keys = [(i, bool(i % 3 == 0)) for i in range(0, 64, 3 if resolution < 256 else 9)]  # some flipped
    _assert_same(dataset, keys)


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    """Non-square images of one size (37 x 23) with structure, random colours and a non-uniform border."""
    rng = np.random.default_rng(0)
    for i in range(6):
        arr = rng.integers(0, 256, (23, 37, 3), dtype=np.uint8)
        arr[:, :5] = rng.integers(0, 256, 3, dtype=np.uint8)  # a flat band, as photos have
        Image.fromarray(arr).save(tmp_path / f"img{i}.png")
    return tmp_path


@pytest.mark.parametrize("resolution", [16, 64])
@pytest.mark.parametrize("fit,pad_color", [("crop", "border"), ("stretch", "border"), ("pad", "border"),
                                           ("pad", "white"), ("pad", 77), ("pad", [200, 10, 90])])
@pytest.mark.parametrize("channels", [1, 3])
def test_non_square_fit_modes_equal_per_image_path(odd_folder, resolution, fit, pad_color, channels):
    """crop cuts the centre square before the batch; stretch and pad resample each axis (and pad fills)."""
    dataset = build_dataset({"name": "folder", "root": str(odd_folder), "fit": fit, "pad_color": pad_color},
                            resolution=resolution, channels=channels)
    keys = [(i, bool(i % 2)) for i in range(len(dataset))]
    _assert_same(dataset, keys)


def test_coefficients_are_pils():
    """Rows sum to one in fixed point (up to PIL's rounding), and a point image resizes like PIL does."""
    k = pil_coefficients(28, 256, "bicubic")
    assert k.shape == (256, 28) and np.all(np.abs(k.sum(1) - (1 << 22)) <= 28)
    arr = np.zeros((7, 11), dtype=np.uint8)
    arr[3, 5] = 255
    ref = np.asarray(Image.fromarray(arr).resize((29, 5), Image.Resampling.BICUBIC), dtype=np.float64)  # area grows
    out = BatchFit(8, "stretch").resize(torch.from_numpy(arr).double()[None, None], 29, 5)[0, 0].numpy()
    assert np.array_equal(out, ref)


def test_loader_yields_native_batches():
    dataset = build_dataset({"name": "fashion", "max_images": 32}, resolution=64, channels=3)
    img, label = next(build_loader(dataset, batch_size=8, seed=0, native=True, flip=True))
    assert img.dtype == torch.uint8 and img.shape == (8, 3, 28, 28) and label.shape == (8,)
    ref, ref_label = next(build_loader(dataset, batch_size=8, seed=0, flip=True))
    assert torch.equal(BatchFit(64, "crop")(img), ref) and torch.equal(label, ref_label)


def test_resize_on_device_setting():
    fashion = build_dataset({"name": "fashion", "max_images": 8}, resolution=32, channels=1)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert device_batch_fit({"resize_on_device": "auto"}, fashion, cpu) is None
    assert device_batch_fit({"resize_on_device": "auto"}, fashion, cuda) is not None
    assert device_batch_fit({"resize_on_device": True}, fashion, cpu) is not None
    assert device_batch_fit({"resize_on_device": False}, fashion, cuda) is None


def test_resize_on_device_true_refuses_mixed_sizes(odd_folder):
    folder = build_dataset({"name": "folder", "root": str(odd_folder)}, resolution=16, channels=3)
    assert device_batch_fit({"resize_on_device": "auto"}, folder, torch.device("cuda")) is None
    with pytest.raises(ConfigError, match="resize_on_device"):
        device_batch_fit({"resize_on_device": True}, folder, torch.device("cpu"))


def test_trainer_with_resize_on_device_trains_like_the_cpu_path(tmp_path):
    """Same images, same steps: the weights after training are identical."""
    from ganzoo.training.trainer import Trainer

    base = ["model=dcgan_tiny", "trainer=smoke", "trainer.device=cpu", "trainer.steps=3", "trainer.grid=0",
            "trainer.batch_size=8", "data.flip=true"]
    a = Trainer(compose(base + ["data.resize_on_device=true"]), tmp_path / "device")
    a.fit()
    assert a.batch_fit is not None
    b = Trainer(compose(base + ["data.resize_on_device=false"]), tmp_path / "cpu")
    b.fit()
    assert b.batch_fit is None
    for k, v in a.modules["G"].state_dict().items():
        assert torch.equal(v, b.modules["G"].state_dict()[k]), k
