"""Regenerate tests/fixtures/pretrained/nvlabs_tf/: TF-era NVlabs network pickles and the official outputs.

Three families, each made by the OFFICIAL code at a tiny size with seeded random weights:

* ``stylegan2``: TensorFlow 1 cannot run NVlabs/stylegan2's custom-op networks here, so the pickle is built to
  the exact variable layout the official ``training/networks_stylegan2.py`` (NVlabs/stylegan2 @ bf0fe0b) and
  ``training/networks.py`` (NVlabs/stylegan2-ada @ 43eca51) create: ``(G, D, Gs)`` of objects pickled as
  ``dnnlib.tflib.network.Network`` whose state is the dict of ``Network.__getstate__`` (version 4, name,
  static_kwargs, components, build_module_src, build_func_name, variables). The official PyTorch converter,
  ``legacy.load_network_pkl`` of NVlabs/stylegan2-ada-pytorch @ d72cc7d, then reads it (it checks that every
  parameter of its networks finds its TF variable) and the official PyTorch networks give the outputs.
* ``stylegan`` (v1, NVlabs/stylegan @ 1e0d5c7) and ``progan`` (tkarras/progressive_growing_of_gans @ 2504c3f):
  the official TensorFlow networks themselves run under ``tf.compat.v1`` (tensorflow-cpu 2.21, graph mode, NCHW
  convolutions via oneDNN); the networks are pickled by their own ``Network.__getstate__`` and evaluated by TF.

Command (checkouts from ``git archive`` of the commits above; TF installed with
``pip install --target /tmp/tf-site tensorflow-cpu==2.21.0``)::

    .venv/bin/python scripts/make_pretrained_fixtures_nvlabs_tf.py --sg2ada-pytorch /tmp/sg2ada_pt \
        --stylegan2-tf /tmp/sg2tf --stylegan2-ada-tf /tmp/sg2ada_tf --stylegan /tmp/sgtf --progan /tmp/progan \
        --tf-site /tmp/tf-site

Files: ``stylegan2.pkl`` (unconditional, resnet D), ``stylegan2_ada.pkl`` (class-conditional, conv_clamp,
num_fp16_res), ``stylegan.pkl`` (outputs also with ``fused_scale=True`` for the same weights), ``progan.pkl``
(fused resampling) and ``progan_nofuse.pkl`` (``fused_scale=False``, as the networks converted from Theano), each
with ``<name>_outputs.safetensors``. Each family runs in its own subprocess (the repositories each ship a different
``dnnlib``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pretrained" / "nvlabs_tf"
N = 4  # images per batch (the minibatch-stddev group of the TF discriminators is 4)


def _numpy1_names(blob: bytes) -> bytes:
    """Published pickles were written with numpy 1.x, whose arrays name ``numpy.core.multiarray``."""
    return blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


# -- StyleGAN2 / StyleGAN2-ADA (TensorFlow layout, official PyTorch converter) -------------------------------
class Network:
    """Pickled as ``dnnlib.tflib.network.Network``: what ``Network.__getstate__`` of the TF code returns."""

    def __init__(self, state: dict) -> None:
        self._state = state

    def __getstate__(self) -> dict:
        return self._state


Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"


def _nf(stage: int, kw: dict) -> int:
    """``nf()`` of networks_stylegan2.py / networks.py."""
    return int(np.clip(int(kw["fmap_base"] / (2.0 ** stage)), 1, kw["fmap_max"]))


class _Vars:
    """Variables in creation order, with the initialisers of the TF code replaced by seeded random values."""

    def __init__(self, rng: np.random.RandomState) -> None:
        self.rng, self.items = rng, []

    def add(self, name: str, shape: list[int], scale: float = 1.0, offset: float = 0.0) -> None:
        value = (self.rng.standard_normal(shape) * scale + offset).astype(np.float32)
        self.items.append((name, value))


def _modconv_vars(v: _Vars, scope: str, cin: int, cout: int, k: int, w_dim: int, noise: bool) -> None:
    """modulated_conv2d_layer (weight, mod_weight, mod_bias), then noise_strength, then the bias."""
    v.add(f"{scope}/weight", [k, k, cin, cout])
    v.add(f"{scope}/mod_weight", [w_dim, cin])
    v.add(f"{scope}/mod_bias", [cin], 0.2)
    if noise:
        v.add(f"{scope}/noise_strength", [], 0.3)
    v.add(f"{scope}/bias", [cout], 0.2)


def _sg2_generator(kw: dict, rng: np.random.RandomState, ada: bool, src: str) -> Network:
    log2 = int(np.log2(kw["resolution"]))
    num_layers = 2 * log2 - 2
    syn = _Vars(rng)
    for i in range(num_layers - 1):
        r = 2 ** ((i + 5) // 2)
        syn.add(f"noise{i}", [1, 1, r, r])
    syn.add("4x4/Const/const", [1, _nf(1, kw), 4, 4])
    _modconv_vars(syn, "4x4/Conv", _nf(1, kw), _nf(1, kw), 3, kw["dlatent_size"], True)
    _modconv_vars(syn, "4x4/ToRGB", _nf(1, kw), kw["num_channels"], 1, kw["dlatent_size"], False)
    for res in range(3, log2 + 1):
        s = f"{2 ** res}x{2 ** res}"
        _modconv_vars(syn, f"{s}/Conv0_up", _nf(res - 2, kw), _nf(res - 1, kw), 3, kw["dlatent_size"], True)
        _modconv_vars(syn, f"{s}/Conv1", _nf(res - 1, kw), _nf(res - 1, kw), 3, kw["dlatent_size"], True)
        _modconv_vars(syn, f"{s}/ToRGB", _nf(res - 1, kw), kw["num_channels"], 1, kw["dlatent_size"], False)
    mapping = _Vars(rng)
    lrmul, fmaps = 0.01, kw.get("mapping_fmaps") or kw["dlatent_size"]  # ADA: None = dlatent_size
    if kw.get("label_size", 0) and ada:
        mapping.add("LabelEmbed/weight", [kw["label_size"], kw["latent_size"]])
        mapping.add("LabelEmbed/bias", [kw["latent_size"]], 0.2)
    for i in range(kw["mapping_layers"]):
        fin = kw["latent_size"] * (2 if kw.get("label_size", 0) else 1) if i == 0 else fmaps
        fout = kw["dlatent_size"] if i == kw["mapping_layers"] - 1 else fmaps
        mapping.add(f"Dense{i}/weight", [fin, fout], 1 / lrmul)  # get_weight: init_std = 1 / lrmul
        mapping.add(f"Dense{i}/bias", [fout], 0.2 / lrmul)
    top = _Vars(rng)
    if not ada:
        top.add("lod", [], 0.0)
    top.add("dlatent_avg", [kw["dlatent_size"]], 0.5)
    synth_name = "G_synthesis" if ada else "G_synthesis_stylegan2"

    def net(name: str, func: str, variables: list, components: dict, extra: dict) -> Network:
        return Network(dict(version=4, name=name, static_kwargs={**kw, **extra}, components=components,
                            build_module_src=src, build_func_name=func, variables=variables))

    g_syn = net("G_synthesis", synth_name, syn.items, {}, {})
    g_map = net("G_mapping", "G_mapping", mapping.items, {}, {"dlatent_broadcast": num_layers})
    return net("G", "G_main", top.items, {"synthesis": g_syn, "mapping": g_map}, {})


def _sg2_discriminator(kw: dict, rng: np.random.RandomState, ada: bool, src: str) -> Network:
    log2 = int(np.log2(kw["resolution"]))
    v = _Vars(rng)
    fmaps = kw.get("mapping_fmaps") or _nf(0, kw)  # D_main: None = nf(0)
    if kw.get("label_size", 0):
        v.add("LabelEmbed/weight", [kw["label_size"], fmaps])
        v.add("LabelEmbed/bias", [fmaps], 0.2)
        for i in range(kw.get("mapping_layers", 0)):
            v.add(f"Mapping{i}/weight", [fmaps, fmaps], 1 / 0.1)
            v.add(f"Mapping{i}/bias", [fmaps], 0.2 / 0.1)
    for res in range(log2, 2, -1):
        s = f"{2 ** res}x{2 ** res}"
        if res == log2:
            v.add(f"{s}/FromRGB/weight", [1, 1, kw["num_channels"], _nf(res - 1, kw)])
            v.add(f"{s}/FromRGB/bias", [_nf(res - 1, kw)], 0.2)
        v.add(f"{s}/Conv0/weight", [3, 3, _nf(res - 1, kw), _nf(res - 1, kw)])
        v.add(f"{s}/Conv0/bias", [_nf(res - 1, kw)], 0.2)
        v.add(f"{s}/Conv1_down/weight", [3, 3, _nf(res - 1, kw), _nf(res - 2, kw)])
        v.add(f"{s}/Conv1_down/bias", [_nf(res - 2, kw)], 0.2)
        v.add(f"{s}/Skip/weight", [1, 1, _nf(res - 1, kw), _nf(res - 2, kw)])
    v.add("4x4/Conv/weight", [3, 3, _nf(1, kw) + 1, _nf(1, kw)])
    v.add("4x4/Conv/bias", [_nf(1, kw)], 0.2)
    v.add("4x4/Dense0/weight", [_nf(1, kw) * 16, _nf(0, kw)])
    v.add("4x4/Dense0/bias", [_nf(0, kw)], 0.2)
    out = fmaps if kw.get("label_size", 0) else 1
    v.add("Output/weight", [_nf(0, kw), out])
    v.add("Output/bias", [out], 0.2)
    return Network(dict(version=4, name="D", static_kwargs=dict(kw), components={}, build_module_src=src,
                        build_func_name="D_main" if ada else "D_stylegan2", variables=v.items))


# Tiny configurations: 16x16, channels {4: 16, 8: 16, 16: 8}, z = w = 16. The ADA one is class-conditional (4
# classes) with D's label mapping as in ADA's cifar10.pkl (mapping_layers left at D_main's default 0).
SG2_KWARGS = dict(num_channels=3, resolution=16, label_size=0, fmap_base=64, fmap_max=16, latent_size=16,
                  dlatent_size=16, mapping_layers=2, mapping_fmaps=16)
SG2_KWARGS_D = dict(num_channels=3, resolution=16, label_size=0, fmap_base=64, fmap_max=16)
SG2ADA_KWARGS_G = dict(num_channels=3, resolution=16, label_size=4, fmap_base=64, fmap_max=16, latent_size=16,
                       dlatent_size=16, mapping_layers=2, num_fp16_res=4, conv_clamp=1.5)
SG2ADA_KWARGS_D = dict(num_channels=3, resolution=16, label_size=4, fmap_base=64, fmap_max=16, mbstd_group_size=4,
                       num_fp16_res=4, conv_clamp=1.5)


def make_stylegan2(args: argparse.Namespace) -> None:
    """Runs with PYTHONPATH=<stylegan2-ada-pytorch checkout>."""
    import legacy  # the official converter
    import torch
    from safetensors.torch import save_file

    sys.modules.setdefault("dnnlib.tflib", type(sys)("dnnlib.tflib"))
    sys.modules["dnnlib.tflib.network"] = mod = type(sys)("dnnlib.tflib.network")
    mod.Network = Network
    cases = {
        "stylegan2": (SG2_KWARGS, SG2_KWARGS_D, False, Path(args.stylegan2_tf) / "training" / "networks_stylegan2.py"),
        "stylegan2_ada": (SG2ADA_KWARGS_G, SG2ADA_KWARGS_D, True, Path(args.stylegan2_ada_tf) / "training" /
                          "networks.py"),
    }
    for seed, (name, (gkw, dkw, ada, src_path)) in enumerate(cases.items()):
        src = src_path.read_text()
        rng = np.random.RandomState(100 + seed)
        G = _sg2_generator(dict(gkw), rng, ada, src)
        D = _sg2_discriminator(dict(dkw), rng, ada, src)
        Gs = _sg2_generator(dict(gkw), rng, ada, src)
        blob = _numpy1_names(pickle.dumps((G, D, Gs), protocol=3))
        (OUT / f"{name}.pkl").write_bytes(blob)

        import io

        data = legacy.load_network_pkl(io.BytesIO(blob))  # official conversion
        torch.manual_seed(seed)
        z = torch.randn(N, gkw["latent_size"])
        img_in = torch.randn(N, 3, 16, 16)
        out = {"z": z, "img_in": img_in}
        c = None
        if gkw["label_size"]:
            out["c"] = c = torch.nn.functional.one_hot(torch.arange(N) % gkw["label_size"], gkw["label_size"]).float()
        with torch.no_grad():
            for key, tag in (("G_ema", "gema"), ("G", "g")):
                g = data[key].eval()
                out[f"{tag}_psi1"] = g(z, c, truncation_psi=1, noise_mode="const", force_fp32=True)
                out[f"{tag}_psi07"] = g(z, c, truncation_psi=0.7, noise_mode="const", force_fp32=True)
            out["d_logits"] = data["D"].eval()(img_in, c, force_fp32=True)
        save_file({k: v.contiguous().float() for k, v in out.items()}, str(OUT / f"{name}_outputs.safetensors"))
        print(name, {k: tuple(v.shape) for k, v in out.items()}, f"{len(blob)} bytes")


# -- StyleGAN v1 and ProGAN: the official TensorFlow networks ----------------------------------------------------
def _tf_compat() -> None:
    """Let the TF 1.x code run on tensorflow 2.x: ``import tensorflow`` gives ``tf.compat.v1`` in graph mode, an
    empty ``tensorboard`` (imported by dnnlib.tflib.autosummary, unused here), and ``get_variable`` accepts the
    boolean dimension ``use_noise`` of networks_stylegan.py (``[1, True, H, W]``) as TF 1.x did."""
    import types

    import tensorflow as tf

    tf.compat.v1.disable_v2_behavior()
    sys.modules["tensorflow"] = tf.compat.v1
    for name in ("tensorboard", "tensorboard.summary", "tensorboard.plugins", "tensorboard.plugins.custom_scalar",
                 "tensorboard.plugins.custom_scalar.layout_pb2"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["tensorboard"].summary = sys.modules["tensorboard.summary"]
    sys.modules["tensorboard.plugins.custom_scalar"].layout_pb2 = sys.modules[
        "tensorboard.plugins.custom_scalar.layout_pb2"]
    get_variable = tf.compat.v1.get_variable

    def get_variable_int_shape(name, shape=None, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if shape is not None:
            shape = [int(d) if isinstance(d, bool) else d for d in shape]
        return get_variable(name, shape, *args, **kwargs)

    tf.compat.v1.get_variable = get_variable_int_shape


def _randomize(net, rng: np.random.RandomState, set_vars) -> None:  # noqa: ANN001
    """Seeded random values for every variable (the TF initialisers give zero biases and noise strengths, which
    would test nothing); ``lod`` stays 0 (fully grown)."""
    values = {}
    for name, var in net.vars.items():
        shape = [int(d) for d in var.shape]
        leaf = name.rsplit("/", 1)[-1]
        if leaf == "lod":
            continue
        scale = 1.0
        if "G_mapping/Dense" in name or name.startswith("Dense") and "mapping" in net.name.lower():
            scale = 100.0 if leaf == "weight" else 20.0  # lrmul 0.01: stored N(0, 1) / 0.01
        elif leaf == "bias" or "Noise" in name or leaf == "dlatent_avg":
            scale = 0.3
        value = rng.standard_normal(shape) * scale
        if name.endswith("Const/const"):
            value += 1.0  # initialised to ones
        values[var] = value.astype(np.float32)
    set_vars(values)


V1_G = dict(num_channels=3, resolution=16, label_size=0, fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16,
            mapping_layers=2, mapping_fmaps=16)
V1_D = dict(num_channels=3, resolution=16, label_size=0, fmap_base=64, fmap_max=16)
PG_G = dict(num_channels=3, resolution=16, label_size=0, fmap_base=64, fmap_max=16)
PG_D = dict(num_channels=3, resolution=16, label_size=0, fmap_base=64, fmap_max=16)
PG_NOFUSE = dict(num_channels=3, resolution=8, label_size=0, fmap_base=32, fmap_max=16)


def make_tf(family: str) -> None:
    """Runs with PYTHONPATH=<official checkout>:<tf site>."""
    _tf_compat()
    from safetensors.numpy import save_file

    rng = np.random.RandomState({"stylegan": 200, "progan": 300}[family])
    z = rng.standard_normal([N, 16]).astype(np.float32)
    img_in = rng.standard_normal([N, 3, 16, 16]).astype(np.float32)
    no_labels = np.zeros([N, 0], np.float32)
    out = {"z": z, "img_in": img_in}
    config = {"allow_soft_placement": True, "graph_options.place_pruned_graph": True}
    if family == "stylegan":
        import dnnlib.tflib as tflib

        tflib.init_tf({**config, "rnd.np_random_seed": 1, "rnd.tf_random_seed": 1})
        G = tflib.Network("G", func_name="training.networks_stylegan.G_style", **V1_G)
        D = tflib.Network("D", func_name="training.networks_stylegan.D_basic", **V1_D)
        Gs = G.clone("Gs")
        for net in (G, D, Gs):
            _randomize(net, rng, tflib.set_vars)
        # The same weights with fused up/down-sampling convs (used from 128x128 up in the published networks).
        Gf = tflib.Network("Gf", func_name="training.networks_stylegan.G_style", fused_scale=True, **V1_G)
        Df = tflib.Network("Df", func_name="training.networks_stylegan.D_basic", fused_scale=True, **V1_D)
        Gf.copy_vars_from(Gs)
        Df.copy_vars_from(D)
        opts = dict(randomize_noise=False, truncation_cutoff=8)  # truncation_cutoff 8: G_style's default
        for tag, net in (("gema", Gs), ("g", G), ("gema_fused", Gf)):
            out[f"{tag}_psi1"] = net.run(z, no_labels, truncation_psi=1.0, **opts)
            out[f"{tag}_psi07"] = net.run(z, no_labels, truncation_psi=0.7, **opts)
        out["d_logits"] = D.run(img_in, no_labels)
        out["d_fused_logits"] = Df.run(img_in, no_labels)
    else:
        import tfutil

        tfutil.init_tf(config)
        G = tfutil.Network("G", func="networks.G_paper", **PG_G)
        D = tfutil.Network("D", func="networks.D_paper", **PG_D)
        Gs = G.clone("Gs")
        for net in (G, D, Gs):
            _randomize(net, rng, tfutil.set_vars)
        out["gema_psi1"] = Gs.run(z, no_labels)
        out["g_psi1"] = G.run(z, no_labels)
        out["d_logits"] = D.run(img_in)[0]  # (scores, labels)
        # Separate (not fused) resampling, as the published networks converted from Theano (legacy.py sets
        # fused_scale=False and mbstd_group_size=16); 8x8 to keep the fixture small.
        Gn = tfutil.Network("G", func="networks.G_paper", fused_scale=False, **PG_NOFUSE)
        Dn = tfutil.Network("D", func="networks.D_paper", fused_scale=False, mbstd_group_size=16, **PG_NOFUSE)
        Gns = Gn.clone("Gs")
        for net in (Gn, Dn, Gns):
            _randomize(net, rng, tfutil.set_vars)
        img8 = rng.standard_normal([N, 3, 8, 8]).astype(np.float32)
        nofuse = {"z": z, "img_in": img8, "gema_psi1": Gns.run(z, no_labels), "g_psi1": Gn.run(z, no_labels),
                  "d_logits": Dn.run(img8)[0]}
        (OUT / "progan_nofuse.pkl").write_bytes(_numpy1_names(pickle.dumps((Gn, Dn, Gns), protocol=3)))
        save_file(nofuse, str(OUT / "progan_nofuse_outputs.safetensors"))
    blob = _numpy1_names(pickle.dumps((G, D, Gs), protocol=3))
    (OUT / f"{family}.pkl").write_bytes(blob)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()},
              str(OUT / f"{family}_outputs.safetensors"))
    print(family, {k: v.shape for k, v in out.items()}, f"{len(blob)} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sg2ada-pytorch", default="/tmp/sg2ada_pt")
    parser.add_argument("--stylegan2-tf", default="/tmp/sg2tf")
    parser.add_argument("--stylegan2-ada-tf", default="/tmp/sg2ada_tf")
    parser.add_argument("--stylegan", default="/tmp/sgtf")
    parser.add_argument("--progan", default="/tmp/progan")
    parser.add_argument("--tf-site", default="/tmp/tf-site")
    parser.add_argument("--only", choices=["stylegan2", "stylegan", "progan"], default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.child == "stylegan2":
        return make_stylegan2(args)
    if args.child in ("stylegan", "progan"):
        return make_tf(args.child)
    paths = {"stylegan2": [args.sg2ada_pytorch], "stylegan": [args.stylegan, args.tf_site],
             "progan": [args.progan, args.tf_site]}
    for family, path in paths.items():
        if args.only and family != args.only:
            continue
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", family], check=True, env=env)


if __name__ == "__main__":
    main()
