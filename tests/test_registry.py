"""Registry behaviour, and shapes + gradients for every registered model."""

from __future__ import annotations

import pytest
import torch

from ganzoo.bundle import Batch, StepContext, count_params
from ganzoo.errors import ConfigError
from ganzoo.registry import build_model, build_model_shapes, get_entry, list_models, register_model

SMALL = 8_000_000  # models above this many parameters are exercised in the slow suite only


def test_list_contains_baseline():
    names = list_models()
    assert {"dcgan", "dcgan_tiny"} <= set(names)
    assert get_entry("dcgan").family == "baseline"


def test_unknown_model_suggests_close_names():
    with pytest.raises(ConfigError) as err:
        build_model("dcgna")
    msg = str(err.value)
    assert "Did you mean 'dcgan'" in msg and "Known models:" in msg and "ganzoo list" in msg


def test_unknown_option_lists_allowed():
    with pytest.raises(ConfigError, match=r"has no option\(s\) \['colour'\]"):
        build_model("dcgan", colour=1)
    with pytest.raises(ConfigError, match=r"model.G \(dcgan\) has no option\(s\) \['depth'\]. Allowed"):
        build_model("dcgan", G={"depth": 3})


def test_duplicate_registration_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register_model("dcgan", family="baseline", builder=lambda: None)


def test_dcgan_official_parameter_counts():
    """PyTorch DCGAN example / paper configuration at 64x64 (nz=100, ngf=ndf=64, nc=3)."""
    b = build_model("dcgan")
    assert count_params(b.modules["G"]) == 3_576_704
    assert count_params(b.modules["D"]) == 2_765_568


def test_meta_build_has_the_real_shapes():
    for name in ("dcgan", "sagan_tiny", "vqgan_tiny"):
        real, meta = build_model(name), build_model_shapes(name)
        for key, module in real.modules.items():
            shapes = [tuple(p.shape) for p in module.parameters()]
            assert shapes == [tuple(p.shape) for p in meta.modules[key].parameters()]
            assert all(p.is_meta for p in meta.modules[key].parameters())


@pytest.mark.parametrize("res", [12, 4, 100])
def test_impossible_resolution(res):
    with pytest.raises(ConfigError, match=f"cannot produce resolution {res}"):
        build_model("dcgan", resolution=res)


def _exercise_prior(bundle) -> None:
    """A code prior: sampling gives images; its loss gives the prior (and only the prior) gradients."""
    n = 2
    c = torch.tensor([0, 1]) % bundle.c_dim if bundle.c_dim > 0 else None
    extra = {}
    if "cond_stage" in bundle.modules:  # a code-conditioned prior draws under one condition image per sample
        reals = torch.rand(n, bundle.channels, bundle.resolution, bundle.resolution) * 2 - 1
        extra["cond_img"] = bundle.modules["cond_stage"].derive(reals)
    img = bundle.sample(bundle.modules, n, c=c, generator=torch.Generator().manual_seed(0), **extra)
    assert img.shape == (n, bundle.channels, bundle.resolution, bundle.resolution) and torch.isfinite(img).all()
    assert img.min() >= -1 and img.max() <= 1
    ctx = StepContext(bundle.modules, {}, 0, 0, torch.device("cpu"), bundle.c_dim)
    loss, _ = bundle.objective.phases[0].loss(Batch(img, c), ctx)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in bundle.modules["prior"].parameters())
    assert all(p.grad is None for p in bundle.modules["tokenizer"].parameters())


def _exercise(name: str) -> None:
    torch.manual_seed(0)
    bundle = build_model(name)
    if bundle.info.get("kind") == "prior":
        return _exercise_prior(bundle)
    G, D = bundle.modules["G"], bundle.modules["D"]
    n, c = 2, None
    if bundle.c_dim > 0:
        c = torch.tensor([0, 1]) % bundle.c_dim
    opts = bundle.sample_opts(bundle.schedule.state(10**9)) if bundle.sample_opts and bundle.schedule else {}
    img = bundle.sample(bundle.modules, n, c=c, **opts)
    assert img.shape == (n, bundle.channels, bundle.resolution, bundle.resolution)
    assert torch.isfinite(img).all()
    logits = D(img, c, **opts)
    assert logits.shape[0] == n and torch.isfinite(logits).all()
    logits.float().mean().backward()
    for mod_name, mod in (("G", G), ("D", D)):
        grads = [p.grad for p in mod.parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}.{mod_name} got no gradient"


def _names(small: bool) -> list[str]:
    out = []
    for name in list_models():
        b = build_model_shapes(name)  # meta device: collection stays fast with 200M-parameter presets
        total = sum(count_params(m) for m in b.modules.values())
        if (total <= SMALL) == small:
            out.append(name)
    return out


@pytest.mark.parametrize("name", _names(small=True))
def test_small_models_shapes_and_gradients(name):
    _exercise(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", _names(small=False))
def test_large_models_shapes_and_gradients(name):
    _exercise(name)
