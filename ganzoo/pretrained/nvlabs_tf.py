"""``ganzoo import`` of NVlabs' TensorFlow-era network pickles (StyleGAN2, StyleGAN2-ADA TF, StyleGAN, ProGAN).

A published ``.pkl`` is a tuple ``(G, D, Gs)`` of pickled network objects, ``dnnlib.tflib.network.Network``
(ProGAN: ``tfutil.Network``). Their pickled state is a dict (``Network.__getstate__`` of
``dnnlib/tflib/network.py`` / ``tfutil.py``): ``version``, ``name``, ``static_kwargs`` (the build function's
keyword arguments), ``components`` (sub-networks, e.g. the mapping and synthesis networks), ``build_module_src``
(the Python source of the networks, which the official loader executes), ``build_func_name`` and ``variables``
(``(name, numpy array)`` pairs). ganzoo rebuilds those objects as inert records
(:mod:`ganzoo.pretrained.safe_pickle`): the source text is never executed, only the numbers are read, and the
family is recognised from the build function's name. The per-family rules live in
:mod:`.nvlabs_tf_stylegan2` and :mod:`.nvlabs_tf_v1`; docs/pretrained/nvlabs_tf.md describes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from .base import Converted, register_format
from .safe_pickle import Record, load_pickle

__all__ = ["TFNet", "read_networks", "convert", "sniff"]

RECORDS = ("dnnlib.tflib.network.Network", "tfutil.Network")
_MARKERS = (b"dnnlib.tflib.network", b"tfutil")


@dataclass
class TFNet:
    """One network of the file: its name, build function, keyword arguments and all variables.

    ``params`` holds the network's own variables and those of its components, named ``component/variable``
    as the official converter (stylegan2-ada-pytorch ``legacy._collect_tf_params``) names them.
    """

    name: str
    func: str
    version: int
    kwargs: dict[str, Any]
    params: dict[str, np.ndarray]
    component_funcs: dict[str, str]
    component_kwargs: dict[str, dict[str, Any]]

    def merged_kwargs(self) -> dict[str, Any]:
        """The keyword arguments as the build functions see them (the main network passes its own on to its
        components, which add their defaults)."""
        kw = dict(self.kwargs)
        for ckw in self.component_kwargs.values():
            for k, v in ckw.items():
                kw.setdefault(k, v)
        return kw

    def take(self, name: str, used: set[str]) -> np.ndarray:
        """The variable ``name`` (marked as used), or a CheckpointError naming what is missing."""
        if name not in self.params:
            raise CheckpointError(f"network {self.name!r} ({self.func}) has no variable {name!r}, which this "
                                  "architecture needs: the file is damaged or of an unsupported configuration")
        used.add(name)
        return self.params[name]

    def check_all_used(self, used: set[str], ignored: tuple[str, ...] = ()) -> None:
        left = sorted(k for k in self.params if k not in used and k.rsplit("/", 1)[-1] not in ignored)
        if left:
            raise CheckpointError(f"network {self.name!r} ({self.func}) has variables ganzoo's model has no place "
                                  f"for: {left[:5]}{'...' if len(left) > 5 else ''}; this configuration is not "
                                  "supported")


def _state(rec: Any, where: str) -> dict[str, Any]:
    if not isinstance(rec, Record) or rec.qualname not in RECORDS or not isinstance(rec.state, dict):
        raise CheckpointError(f"{where} is not a pickled TensorFlow network (expected a {' or '.join(RECORDS)} "
                              f"object, found {type(rec).__name__})")
    missing = [k for k in ("name", "build_func_name", "variables") if k not in rec.state]
    if missing:
        raise CheckpointError(f"{where}: the pickled network lacks {missing}: the file is damaged")
    return rec.state


def _net(rec: Any, where: str) -> TFNet:
    params: dict[str, np.ndarray] = {}
    funcs: dict[str, str] = {}
    comp_kwargs: dict[str, dict[str, Any]] = {}

    def collect(prefix: str, r: Any, w: str) -> dict[str, Any]:
        st = _state(r, w)
        for item in st["variables"]:
            if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[1], np.ndarray | np.generic)):
                raise CheckpointError(f"{w}: a variable is not a (name, array) pair: the file is damaged")
            params[prefix + str(item[0])] = np.asarray(item[1])
        for cname, comp in dict(st.get("components") or {}).items():
            cst = collect(f"{prefix}{cname}/", comp, f"{w} component {cname!r}")
            funcs[prefix + cname] = str(cst["build_func_name"])
            comp_kwargs[prefix + cname] = dict(cst.get("static_kwargs") or {})
        return st

    st = collect("", rec, where)
    return TFNet(name=str(st["name"]), func=str(st["build_func_name"]), version=int(st.get("version", 0)),
                 kwargs=dict(st.get("static_kwargs") or {}), params=params, component_funcs=funcs,
                 component_kwargs=comp_kwargs)


def read_networks(path: Path) -> tuple[TFNet, TFNet, TFNet]:
    """``(G, D, Gs)`` of a TF-era NVlabs pickle, read without running anything in it."""
    data = load_pickle(path, records=RECORDS)
    if not (isinstance(data, tuple) and len(data) == 3):
        raise CheckpointError(f"{str(path)!r} is not an NVlabs TensorFlow network pickle: expected the tuple "
                              f"(G, D, Gs), found {type(data).__name__}")
    g, d, gs = (_net(rec, f"{str(path)!r} item {i} ({name})")
                for i, (rec, name) in enumerate(zip(data, ("G", "D", "Gs"))))
    return g, d, gs


def to_torch(a: np.ndarray) -> torch.Tensor:
    """A float32 copy (0-d arrays stay 0-d; ``np.ascontiguousarray`` would make them 1-d)."""
    return torch.from_numpy(np.array(a, dtype=np.float32, order="C", copy=True))


def sniff(path: Path) -> bool:
    """A pickle (protocol >= 2) naming ``dnnlib.tflib.network`` or ``tfutil`` among its first globals."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    return head[:1] == b"\x80" and any(m in head for m in _MARKERS) and b"Network" in head


@register_format("nvlabs_tf", description="NVlabs TensorFlow pickles (StyleGAN2, StyleGAN2-ADA TF, StyleGAN, ProGAN)",
                 sniff=sniff)
def convert(path: Path) -> Converted:
    """Recognise the family from the build functions and convert (see the module docstring)."""
    from . import nvlabs_tf_stylegan2, nvlabs_tf_v1

    g, d, gs = read_networks(path)
    if gs.func == "G_main" and gs.component_funcs.get("synthesis") in ("G_synthesis_stylegan2", "G_synthesis"):
        return nvlabs_tf_stylegan2.convert_networks(g, d, gs)
    if gs.func == "G_main":
        raise CheckpointError(f"{str(path)!r} is a StyleGAN2 TensorFlow pickle with synthesis network "
                              f"{gs.component_funcs.get('synthesis')!r} (configs A-D, progressive growing); ganzoo "
                              "imports configs E-F (G_synthesis_stylegan2) and StyleGAN2-ADA (G_synthesis)")
    if gs.func == "G_style":
        return nvlabs_tf_v1.convert_stylegan(g, d, gs)
    if gs.func == "G_paper":
        return nvlabs_tf_v1.convert_progan(g, d, gs)
    raise CheckpointError(f"{str(path)!r} holds TensorFlow networks built by {gs.func!r}, which ganzoo does not know; "
                          "supported: G_main (StyleGAN2, StyleGAN2-ADA), G_style (StyleGAN), G_paper (ProGAN)")
