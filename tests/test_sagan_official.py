"""``sagan_cifar`` against PyTorch-StudioGAN's own CIFAR-10 SAGAN (``src/configs/CIFAR10/SAGAN.yaml``).

Runs only when a copy of the official code is given (skipped otherwise)::

    GANZOO_STUDIOGAN=/path/to/PyTorch-StudioGAN PYTHONPATH=/path/to/site-with-kornia \\
        .venv/bin/python -m pytest tests/test_sagan_official.py -v -s

``GANZOO_STUDIOGAN`` is the folder holding ``src/`` (checked at commit 947b35e); StudioGAN's config module
imports ``kornia`` (0.6.12, e.g. ``pip install --no-deps --target <site> kornia==0.6.12``). ``seaborn`` and
``pkg_resources`` are stubbed when missing: only plotting and a version check use them.

StudioGAN builds its G and D at full size (g/d_conv_dim 64: G 4,386,308 and D 1,075,586 parameters), its
state is perturbed (parameter noise, non-zero attention gains, two training-mode passes so that the
spectral-norm vectors are neither random nor converged, random BatchNorm statistics), and the same tensors
are loaded into ``build_model("sagan_cifar")``. Then G's images and D's logits, the gradients of a fixed
random projection of them with respect to every parameter (and, for D, its input), and the buffers the
passes update are compared, as ``max |ours - theirs| / max |theirs|`` per tensor, in three modes:

* ``train``: both networks in training mode, two passes (the power iteration and BN statistics advance);
* ``sampler``: StudioGAN's sampling mode (``utils/misc.py`` ``prepare_generator`` / ``make_GAN_untrainable``:
  ``.eval()``, then every conv, linear and embedding back in training mode, so spectral norm takes a power
  step) against the preset in ``.eval()``; one pass (StudioGAN stores its step, ganzoo does not);
* ``eval``: a plain ``.eval()`` on both, with ganzoo's ``sn_eval="stored"`` (torch's eval rule).

The optimiser settings and the step order are read from StudioGAN's own objects as well.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from ganzoo.layers.spectral import set_sn_eval
from ganzoo.registry import build_model

STUDIOGAN = os.environ.get("GANZOO_STUDIOGAN", "")
pytestmark = pytest.mark.skipif(
    not STUDIOGAN, reason="set GANZOO_STUDIOGAN=<PyTorch-StudioGAN checkout> to compare with the official code"
)
RTOL = 1e-4  # max |ours - theirs| / max |theirs|, per tensor
N = 8
MEASURED: dict[str, float] = {}  # printed at the end (-s): the numbers on docs/models/sagan.md

# StudioGAN's resnet.py names -> ganzoo's (blocks are mapped by position, see _rename)
TOP = {"linear0": "linear", "bn4": "out_bn", "conv2d5": "out_conv", "linear1": "head.linear",
       "embedding": "head.embed"}
PART = {"conv2d0": "conv_sc", "conv2d1": "conv1", "conv2d2": "conv2", "bn1": "norm1", "bn2": "norm2",
        "conv1x1_theta": "f", "conv1x1_phi": "g", "conv1x1_g": "h", "conv1x1_attn": "o", "sigma": "gamma"}


@contextlib.contextmanager
def _official_imports(src: Path):
    """StudioGAN's ``src/`` importable as top-level modules (config, models, utils) for the block only."""
    before_path, before_mods = list(sys.path), set(sys.modules)
    sys.path.insert(0, str(src))
    stubs = set()
    try:
        import seaborn  # noqa: F401
    except ImportError:
        sys.modules["seaborn"] = types.ModuleType("seaborn")
        stubs.add("seaborn")
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import packaging.version

        stub = types.ModuleType("pkg_resources")
        stub.parse_version = packaging.version.parse  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = stub
        stubs.add("pkg_resources")
    cwd = os.getcwd()
    os.chdir(src)
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = before_path
        for name in set(sys.modules) - before_mods:  # config, models, utils, ... are too generic to leave
            module = sys.modules[name]
            if name in stubs or str(getattr(module, "__file__", "") or "").startswith(str(src)):
                del sys.modules[name]


@pytest.fixture(scope="module")
def official():
    src = Path(STUDIOGAN) / "src"
    if not (src / "models" / "resnet.py").exists():
        pytest.fail(f"GANZOO_STUDIOGAN={STUDIOGAN}: no src/models/resnet.py there")
    with _official_imports(src):
        import config
        from models import model as studio_model
        from utils import misc

        cfgs = config.Configurations("configs/CIFAR10/SAGAN.yaml")
        cfgs.RUN.mixed_precision = False
        cfgs.MODULES = cfgs.define_modules()
        torch.manual_seed(0)
        G, _, _, D, _, _, _, _ = studio_model.load_generator_discriminator(
            DATA=cfgs.DATA, OPTIMIZATION=cfgs.OPTIMIZATION, MODEL=cfgs.MODEL, STYLEGAN=cfgs.STYLEGAN,
            MODULES=cfgs.MODULES, RUN=cfgs.RUN, device="cpu", logger=None)
        cfgs.define_optimizer(G, D)
        untrainable = misc.set_deterministic_op_trainable
    _perturb(G, D, cfgs)
    yield types.SimpleNamespace(cfgs=cfgs, G=G, D=D, sampler_mode=untrainable)
    if MEASURED:
        print("\nsagan_cifar vs StudioGAN, max relative difference per mode:")
        for key in sorted(MEASURED):
            print(f"  {key}: {MEASURED[key]:.2e}")


def _perturb(G, D, cfgs) -> None:
    gen = torch.Generator().manual_seed(1)
    k, r = cfgs.DATA.num_classes, cfgs.DATA.img_size
    with torch.no_grad():
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith("sigma"):  # attention gain, 0 at init
                    p.copy_(0.3 + 0.4 * torch.rand(p.shape, generator=gen))
                else:
                    p.add_(0.02 * torch.randn(p.shape, generator=gen))
        for _ in range(2):  # power iterations move u and v away from their random start
            G.train()(torch.randn(N, cfgs.MODEL.z_dim, generator=gen), torch.randint(0, k, (N,), generator=gen))
            D.train()(torch.randn(N, 3, r, r, generator=gen), torch.randint(0, k, (N,), generator=gen))
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


def _rename(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """StudioGAN resnet G / D tensors under ganzoo's names (``weight_orig`` -> ``weight``, attention -> ``attn``)."""
    where, n_blocks = {}, 0
    for k in sorted({int(key.split(".")[1]) for key in sd if key.startswith("blocks.")}):
        if f"blocks.{k}.0.sigma" in sd:
            where[k] = ["attn"]
        else:
            where[k], n_blocks = ["blocks", str(n_blocks)], n_blocks + 1
    out = {}
    for key, t in sd.items():
        parts = key.split(".")
        if parts[0] == "blocks":
            head, rest = where[int(parts[1])], parts[3:]
        else:
            head, rest = TOP[parts[0]].split("."), parts[1:]
        rest = [PART.get(p, p) for p in rest]
        rest[-1] = "weight" if rest[-1] == "weight_orig" else rest[-1]
        out[".".join(head + rest)] = t.reshape([]) if rest == ["gamma"] else t
    return out


def _state_for(ours: torch.nn.Module, theirs: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``theirs``'s state under ganzoo's names, with the ``weight_sigma`` buffers ganzoo keeps."""
    sd = _rename({k: v.detach().clone() for k, v in theirs.state_dict().items()})
    for key in [k for k in sd if k.endswith(".weight_u")]:
        prefix = key[: -len("weight_u")]
        w = sd[prefix + "weight"]
        sd[prefix + "weight_sigma"] = torch.dot(sd[key], w.reshape(w.shape[0], -1) @ sd[prefix + "weight_v"])
    want = ours.state_dict()
    return {k: v for k, v in sd.items() if k in want}  # weight_v only where sn_eval="stored" keeps it


def _pair(official, which: str, stored: bool = False):
    theirs = copy.deepcopy(getattr(official, which))
    ours = build_model("sagan_cifar").modules[which]
    if stored:
        set_sn_eval(ours, "stored")
    ours.load_state_dict(_state_for(ours, theirs), strict=True)
    return ours, theirs


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach() - b.detach()).abs().max() / b.detach().abs().max().clamp(min=1e-12))


def _record(key: str, value: float) -> float:
    MEASURED[key] = max(MEASURED.get(key, 0.0), value)
    return value


def _compare(mode: str, which: str, ours, theirs, passes: int, official) -> None:
    gen = torch.Generator().manual_seed(2)
    k, r, z_dim = official.cfgs.DATA.num_classes, official.cfgs.DATA.img_size, official.cfgs.MODEL.z_dim
    for i in range(passes):
        y = torch.randint(0, k, (N,), generator=gen)
        if which == "G":
            inputs = [torch.randn(N, z_dim, generator=gen)]
            out_o, out_t = ours(inputs[0], y), theirs(inputs[0].clone(), y)
        else:
            x = torch.randn(N, 3, r, r, generator=gen).clamp(-1, 1)
            inputs = [x.clone().requires_grad_(True), x.clone().requires_grad_(True)]
            out_o, out_t = ours(inputs[0], y), theirs(inputs[1], y)["adv_output"]
        assert _record(f"{mode} {which} output", _rel(out_o, out_t)) < RTOL, (mode, which, i)
        weights = torch.randn(out_t.shape, generator=gen)
        ours.zero_grad(set_to_none=True)
        theirs.zero_grad(set_to_none=True)
        (out_o * weights).sum().backward()
        (out_t * weights).sum().backward()
        grads_t = _rename({n: p.grad for n, p in theirs.named_parameters()})
        worst = max((_rel(p.grad, grads_t[n]), n) for n, p in ours.named_parameters())
        assert _record(f"{mode} {which} parameter gradients", worst[0]) < RTOL, (mode, which, i, worst)
        if which == "D":
            assert _record(f"{mode} D input gradient", _rel(inputs[0].grad, inputs[1].grad)) < RTOL
    if mode == "sampler":  # StudioGAN's sampler stores its power step, ganzoo's eval mode leaves u alone
        return
    # what the passes updated: u (and v, BN statistics) must have advanced alike
    state_t = _state_for(ours, theirs)
    worst = max((_rel(t, state_t[n]), n) for n, t in ours.state_dict().items() if t.is_floating_point())
    assert _record(f"{mode} {which} buffers after", worst[0]) < RTOL, (mode, which, worst)


@pytest.mark.parametrize("which", ["G", "D"])
def test_train_mode_matches_studiogan(official, which):
    ours, theirs = _pair(official, which)
    _compare("train", which, ours.train(), theirs.train(), passes=2, official=official)


@pytest.mark.parametrize("which", ["G", "D"])
def test_eval_mode_matches_studiogans_sampler(official, which):
    """The preset in ``.eval()`` computes what StudioGAN's evaluation and sampling compute (running BN statistics,
    one power step in every spectral-norm layer)."""
    ours, theirs = _pair(official, which)
    theirs.eval()
    theirs.apply(official.sampler_mode)
    _compare("sampler", which, ours.eval(), theirs, passes=1, official=official)


@pytest.mark.parametrize("which", ["G", "D"])
def test_plain_eval_matches_with_stored_sn(official, which):
    """``sn_eval="stored"`` gives torch's plain ``.eval()`` function (stored u and v, no step), twice in a row."""
    ours, theirs = _pair(official, which, stored=True)
    _compare("eval", which, ours.eval(), theirs.eval(), passes=2, official=official)


def test_optimiser_and_step_order_are_studiogans(official):
    opt = official.cfgs.OPTIMIZATION
    objective = build_model("sagan_cifar").objective
    for name, theirs in (("G", opt.g_optimizer), ("D", opt.d_optimizer)):
        group, ours = theirs.param_groups[0], objective.optimizers[name]
        assert isinstance(theirs, torch.optim.Adam) and ours.kind == "adam"
        assert (ours.lr, ours.betas, ours.eps, ours.weight_decay) == (
            group["lr"], tuple(group["betas"]), group["eps"], group["weight_decay"])
    assert opt.d_first and [p.name for p in objective.phases] == ["Dmain", "Gmain"]
    assert [p.repeats for p in objective.phases] == [opt.d_updates_per_step, opt.g_updates_per_step]
