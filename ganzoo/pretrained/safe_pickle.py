"""Reading foreign pickles and ``torch.save`` files without running anything they name.

A pickle is a small program: every ``GLOBAL`` opcode imports a name and ``REDUCE`` calls it. The
published checkpoints ganzoo imports (NVlabs network pickles, Lightning ``.ckpt``, BigGAN-PyTorch
``.pth``) are pickles, and NVlabs' pickles even carry the Python source of their networks, which their
own loader executes. Here every global goes through an allow-list:

* tensors, parameters and storages are rebuilt by ganzoo's own functions from the file's bytes;
* containers, dtypes, ``torch.Size`` and numpy arrays are allowed as themselves;
* a format names extra safe callables (``allow``) and classes whose objects it only wants to read
  (``records``): those become inert :class:`Record` objects (constructor arguments and state kept as
  data), the real class is never imported;
* anything else (``os.system``, ``builtins.eval``, an unknown class) stops the load with
  :class:`UnsafeFileError` before it is called.

Both ``torch.save`` layouts are read by hand: the zip archive (``data.pkl`` + ``data/<key>`` storages,
torch >= 1.6) and the legacy stream (magic number, protocol, sys info, the object, the storage keys,
then each storage as an int64 element count and raw bytes), which older published files and pickled
storages (``torch.storage._load_from_bytes``) use.
"""

from __future__ import annotations

import collections
import copyreg
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ..errors import CheckpointError

__all__ = ["Record", "UnsafeFileError", "load_pickle", "load_torch", "AttrDict", "is_zip", "pickle_head",
           "TORCH_LEGACY_MAGIC"]

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001


class UnsafeFileError(CheckpointError):
    """The file asks to import or call something that is not on the allow-list; nothing was run."""


class AttrDict(dict):
    """``dnnlib.util.EasyDict`` and similar: a dict whose keys read as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err


class Record:
    """An inert stand-in for an object of a class the file names but ganzoo never imports.

    ``qualname`` is the class's ``module.name``; ``args`` what its constructor (or ``__new__``) got,
    ``state`` what ``__setstate__`` got, ``items`` / ``dict_items`` what a list or dict subclass held.
    """

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        self._init_rest()

    def _init_rest(self) -> None:
        if not hasattr(self, "state"):
            self.state: Any = None
            self.items: list[Any] = []
            self.dict_items: dict[Any, Any] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> Record:  # NEWOBJ calls cls.__new__(cls, *args)
        obj = super().__new__(cls)
        obj.args, obj.kwargs = args, kwargs
        obj.state, obj.items, obj.dict_items = None, [], {}
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Iterable[Any]) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.dict_items[key] = value

    def __repr__(self) -> str:
        return f"Record({self.qualname})"


_record_classes: dict[str, type[Record]] = {}


def record_class(qualname: str) -> type[Record]:
    if qualname not in _record_classes:
        _record_classes[qualname] = type(qualname.rsplit(".", 1)[-1], (Record,), {"qualname": qualname})
    return _record_classes[qualname]


# -- tensors ------------------------------------------------------------------------------------
class _StorageType:
    """What ``torch.FloatStorage`` and friends stand for in a file: a dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __call__(self, *args: Any) -> Any:
        raise UnsafeFileError("the file constructs a torch storage directly, which checkpoints never do")


_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
}


class _Storage:
    """A storage read from the file: its bytes (an untyped torch storage) and element type."""

    def __init__(self, data: bytes | bytearray, dtype: torch.dtype) -> None:
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8) if len(data) else torch.empty(0, dtype=torch.uint8)
        self.untyped, self.dtype = raw.untyped_storage(), dtype
        self.itemsize = torch.empty((), dtype=dtype).element_size()

    def size(self) -> int:
        return self.untyped.nbytes() // self.itemsize

    def view(self, offset: int, size: int) -> _Storage:
        return _Storage(bytes(self.untyped)[offset * self.itemsize:(offset + size) * self.itemsize], self.dtype)


def _typed(data: bytes | bytearray, dtype: torch.dtype) -> _Storage:
    return _Storage(data, dtype)


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode``: how protocol-2 pickles store bytes (numpy arrays' data) as latin-1 text."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafeFileError("the file calls _codecs.encode with arguments no checkpoint uses")
    return text.encode(encoding)


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, requires_grad: bool = False,
                    backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if storage is _PLACEHOLDER:
        return _PLACEHOLDER  # type: ignore[return-value]
    if not isinstance(storage, _Storage):
        raise UnsafeFileError(f"a tensor in the file is built from {type(storage).__name__}, not from a storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    need = int(offset) + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else 0
    if need > storage.size():
        raise CheckpointError(f"a tensor of shape {size} reaches past the end of its storage ({storage.size()} "
                              "elements): the file is corrupt or truncated")
    t = torch.empty((0,), dtype=storage.dtype).set_(storage.untyped, int(offset), size, stride)
    t.requires_grad_(bool(requires_grad) and t.is_floating_point())
    return t


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool = True, backward_hooks: Any = None,
                       state: Any = None) -> torch.nn.Parameter:
    if data is _PLACEHOLDER:
        return data  # type: ignore[return-value]
    if not isinstance(data, torch.Tensor):
        raise UnsafeFileError("a parameter in the file is not built from a tensor")
    return torch.nn.Parameter(data.detach(), requires_grad=bool(requires_grad) and data.is_floating_point())


def _rebuild_from_type(func: Any, new_type: Any, args: tuple, state: Any) -> torch.Tensor:
    if func not in (_rebuild_tensor, _rebuild_parameter) or new_type not in (torch.Tensor, torch.nn.Parameter):
        raise UnsafeFileError(f"the file rebuilds a tensor of type {new_type!r}, which is not allowed")
    return func(*args)


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafeFileError(f"the file rebuilds an array of type {subtype!r}, which is not allowed")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype: np.dtype, data: bytes | None = None) -> Any:
    if dtype.hasobject:
        raise UnsafeFileError("the file holds a numpy object scalar, which is not allowed")
    return np.frombuffer(data or b"", dtype=dtype, count=1)[0]


def _load_from_bytes(data: bytes) -> Any:
    """``torch.storage._load_from_bytes``: a storage pickled inside a pickle, as a legacy torch.save stream."""
    return _read_legacy(io.BytesIO(data), allow={}, records=(), where="a pickled storage")


def _base_allow() -> dict[tuple[str, str], Any]:
    allow: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): _codecs_encode,
        ("collections", "defaultdict"): collections.defaultdict,
        ("copyreg", "_reconstructor"): copyreg._reconstructor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch.storage", "_load_from_bytes"): _load_from_bytes,
        ("dnnlib.util", "EasyDict"): AttrDict,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allow[(mod, "_reconstruct")] = _np_reconstruct
        allow[(mod, "scalar")] = _np_scalar
    for name in ("dict", "list", "tuple", "set", "frozenset", "bytearray", "slice", "complex", "bytes", "str",
                 "int", "float", "bool", "object"):
        allow[("builtins", name)] = allow[("__builtin__", name)] = getattr(__import__("builtins"), name)
    allow[("__builtin__", "long")], allow[("__builtin__", "unicode")] = int, str
    for name, dtype in _STORAGE_DTYPES.items():
        allow[("torch", name)] = _StorageType(dtype)
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allow[("torch", name)] = getattr(torch, name)
    for name in ("dtype", "float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool_"):
        allow[("numpy", name)] = getattr(np, name)
    return allow


_BASE_ALLOW = _base_allow()


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: IO[bytes], *, allow: Mapping[tuple[str, str], Any], records: Iterable[str],
                 persistent: Callable[[Any], Any] | None, where: str) -> None:
        super().__init__(fh)
        self._allow = {**_BASE_ALLOW, **allow}
        self._records = tuple(records)
        self._persistent = persistent
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self._allow:
            return self._allow[key]
        qual = f"{module}.{name}"
        for rec in self._records:
            if qual == rec or (rec.endswith(".*") and (module == rec[:-2] or module.startswith(rec[:-1]))):
                return record_class(qual)
        raise UnsafeFileError(
            f"{self._where} asks to import {qual!r}, which is not on ganzoo's allow-list for this format, so it was "
            "refused and nothing in the file was run. Checkpoints hold tensors and plain data; a file naming other "
            "code may be malicious. If it is a genuine checkpoint of a supported project, please report it."
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafeFileError(f"{self._where} holds a persistent reference ({pid!r:.60}), which a plain pickle "
                                  "never does")
        return self._persistent(pid)


def _unpickle(fh: IO[bytes], *, allow: Mapping[tuple[str, str], Any], records: Iterable[str],
              persistent: Callable[[Any], Any] | None, where: str) -> Any:
    try:
        return _Unpickler(fh, allow=allow, records=records, persistent=persistent, where=where).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, RuntimeError, MemoryError) as err:
        raise CheckpointError(f"{where} cannot be read as a pickle ({type(err).__name__}: {err}): it is truncated, "
                              "corrupt or of another format") from err


def _where(path: str | os.PathLike | bytes) -> str:
    return "the given bytes" if isinstance(path, bytes | bytearray) else f"{str(path)!r}"


def _open(path: str | os.PathLike | bytes) -> IO[bytes]:
    if isinstance(path, bytes | bytearray):
        return io.BytesIO(path)
    try:
        return open(Path(path).expanduser(), "rb")
    except OSError as err:
        raise CheckpointError(f"cannot open {str(path)!r}: {err.strerror or err}") from err


def load_pickle(path: str | os.PathLike | bytes, *, allow: Mapping[tuple[str, str], Any] | None = None,
                records: Iterable[str] = ()) -> Any:
    """A plain pickle (``pickle.dump``), read through the allow-list; see the module docstring."""
    with _open(path) as fh:
        return _unpickle(fh, allow=allow or {}, records=records, persistent=None, where=_where(path))


def pickle_head(path: str | os.PathLike, limit: int = 1 << 24) -> bytes:
    """The pickle part of a torch file, unread (zip: ``<name>/data.pkl``; legacy or plain pickle: the first
    ``limit`` bytes): what a format's sniff searches for its key names without unpickling anything."""
    if is_zip(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("data.pkl")]
                if not names:
                    return b""
                with zf.open(names[0]) as fh:
                    return fh.read(limit)
        except (zipfile.BadZipFile, OSError):
            return b""
    with _open(path) as fh:
        return fh.read(limit)


def is_zip(path: str | os.PathLike) -> bool:
    with _open(path) as fh:
        return fh.read(4) == b"PK\x03\x04"


def load_torch(path: str | os.PathLike | bytes, *, allow: Mapping[tuple[str, str], Any] | None = None,
               records: Iterable[str] = ()) -> Any:
    """A ``torch.save`` file (zip or legacy), tensors rebuilt on the CPU; see the module docstring."""
    where = _where(path)
    with _open(path) as fh:
        head = fh.read(4)
        fh.seek(0)
        if head == b"PK\x03\x04":
            return _read_zip(fh, allow=allow or {}, records=records, where=where)
        return _read_legacy(fh, allow=allow or {}, records=records, where=where)


def _read_zip(fh: IO[bytes], *, allow: Mapping[tuple[str, str], Any], records: Iterable[str], where: str) -> Any:
    try:
        archive = zipfile.ZipFile(fh)
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"{where} is a damaged zip archive ({err}); a torch.save zip archive was expected: the "
                              "download or copy was cut short") from err
    pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if not pkl:
        raise CheckpointError(f"{where} is a zip archive but not a torch.save file (no <name>/data.pkl inside)")
    prefix = pkl[0][: -len("data.pkl")]
    order = archive.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else "little"
    if order != "little":
        raise CheckpointError(f"{where} was written on a big-endian machine, which ganzoo does not read")
    cache: dict[str, _Storage] = {}

    def persistent(pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeFileError(f"{where} holds an unknown persistent reference {pid!r:.80}")
        stype, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        dtype = stype.dtype if isinstance(stype, _StorageType) else None
        if dtype is None:
            raise UnsafeFileError(f"{where} names storage type {stype!r}, which is not a torch storage")
        if key not in cache:
            try:
                data = archive.read(f"{prefix}data/{key}")
            except (KeyError, zipfile.BadZipFile, OSError, EOFError) as err:
                raise CheckpointError(f"{where}: storage {key} is missing or damaged ({err}): the file is "
                                      "truncated or corrupt") from err
            itemsize = torch.empty((), dtype=dtype).element_size()
            if len(data) < numel * itemsize:
                raise CheckpointError(f"{where}: storage {key} holds {len(data)} bytes, {numel * itemsize} expected; "
                                      "the file is truncated or corrupt")
            cache[key] = _typed(data[: numel * itemsize], dtype)
        return cache[key]

    try:
        with archive.open(pkl[0]) as data_pkl:
            return _unpickle(io.BytesIO(data_pkl.read()), allow=allow, records=records, persistent=persistent,
                             where=where)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise CheckpointError(f"{where}: its data.pkl is damaged ({err}); the file is truncated or corrupt") from err


def _read_legacy(fh: IO[bytes], *, allow: Mapping[tuple[str, str], Any], records: Iterable[str], where: str) -> Any:
    """torch.save(_use_new_zipfile_serialization=False), torch/serialization.py ``_legacy_save``: pickles of the
    magic number, the protocol, the writer's sys info, the object, the storage keys; then each storage as an
    int64 element count and its bytes. The storages follow the object, so the object is read twice: once to
    find where it ends (tensors as placeholders), once more with the storages in hand."""
    header: dict[str, Any] = dict(allow={}, records=(), persistent=None, where=where)
    if _unpickle(fh, **header) != TORCH_LEGACY_MAGIC:
        raise CheckpointError(f"{where} is not a torch.save file (neither a zip archive nor the legacy format)")
    if _unpickle(fh, **header) != _LEGACY_PROTOCOL:
        raise CheckpointError(f"{where} is a torch.save file of an unknown legacy protocol")
    _unpickle(fh, **header)  # sys info: byte order and type sizes of the writer
    start = fh.tell()
    found: dict[str, tuple[torch.dtype, int]] = {}

    def placeholder(pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":
            return pid[1]  # a module class saved by reference: it already went through find_class (record or refusal)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise UnsafeFileError(f"{where} holds an unknown persistent reference {pid!r:.80}")
        stype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(stype, _StorageType):
            raise UnsafeFileError(f"{where} names storage type {stype!r}, which is not a torch storage")
        found.setdefault(key, (stype.dtype, numel))
        return _PLACEHOLDER

    _unpickle(fh, allow=allow, records=records, persistent=placeholder, where=where)
    keys = _unpickle(fh, **header)
    data: dict[str, _Storage] = {}
    for key in keys:
        dtype, _ = found.get(str(key), (torch.uint8, 0))
        raw = fh.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{where} ends before storage {key}: the file is truncated")
        count = struct.unpack("<q", raw)[0]
        itemsize = torch.empty((), dtype=dtype).element_size()
        body = fh.read(max(count, 0) * itemsize)
        if count < 0 or len(body) < count * itemsize:
            raise CheckpointError(f"{where} ends inside storage {key}: the file is truncated")
        data[str(key)] = _typed(body, dtype)
    end = fh.tell()

    def storage(pid: Any) -> Any:
        if pid[0] == "module":
            return pid[1]
        key, view = str(pid[2]), pid[5]
        if key not in data:
            raise CheckpointError(f"{where} refers to storage {key}, which the file does not hold: it is corrupt")
        base = data[key]
        if not view:
            return base
        offset, size = int(view[1]), int(view[2])
        return base.view(offset, size)

    fh.seek(start)
    obj = _unpickle(fh, allow=allow, records=records, persistent=storage, where=where)
    fh.seek(end)
    return obj


class _Placeholder:
    """A legacy-format storage on the first reading, before its bytes are known."""


_PLACEHOLDER = _Placeholder()
