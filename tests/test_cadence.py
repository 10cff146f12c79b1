"""Periodic actions by images and by training time; the bench's ranking and curve times."""
from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from ganzoo.benchmark import _ranked, _train_overrides, _train_time_at
from ganzoo.training.cadence import Cadence, next_multiple
from ganzoo.training.validate import config_problems


def test_next_multiple() -> None:
    assert next_multiple(0, 1000) == 1000
    assert next_multiple(1000, 1000) == 2000  # strictly above: the action at 1000 just happened
    assert next_multiple(2500, 1000) == 3000
    assert next_multiple(5, 0) == math.inf


def test_cadence_by_images() -> None:
    c = Cadence(kimg=2, minutes=None, images=0, seconds=0.0)
    assert not c.due(1999, 1e9)  # no time rule: time never makes it due
    assert c.due(2000, 0.0)
    c.advance(2048, 0.0)
    assert not c.due(3999, 0.0) and c.due(4000, 0.0)


def test_cadence_by_minutes_and_both() -> None:
    c = Cadence(kimg=None, minutes=2, images=0, seconds=0.0)
    assert not c.due(0, 119.9) and c.due(0, 120.0)
    c.advance(0, 125.0)  # late by 5 s: the next one stays on the 2-minute grid
    assert not c.due(0, 239.0) and c.due(0, 240.0)
    both = Cadence(kimg=1, minutes=1, images=0, seconds=0.0)
    assert both.due(1000, 0.0) and both.due(0, 60.0) and not both.due(999, 59.0)
    never = Cadence(kimg=0, minutes=None, images=0, seconds=0.0)
    assert not never.active and not never.due(10**9, 1e9)


def test_cadence_after_resume_continues_from_images_seen() -> None:
    c = Cadence(kimg=5, minutes=None, images=12_345, seconds=0.0)
    assert not c.due(14_999, 0.0) and c.due(15_000, 0.0)


def test_eval_every_minutes_validated() -> None:
    problems = config_problems({"seed": 0, "trainer": {"eval": {"every_minutes": -1}}})
    assert any("trainer.eval.every_minutes" in p for p in problems)
    ok = config_problems({"seed": 0, "trainer": {"eval": {"every_minutes": 2.5}}})
    assert not any("every_minutes" in p for p in ok)


def test_bench_ranks_by_first_metric_and_interpolates_curve_time() -> None:
    rows = [{"model": "a", "final": {"fid": 90.0}}, {"model": "b", "final": {"fid": 50.0}},
            {"model": "c", "final": {}}, {"model": "d", "final": {"fid": 70.0}}]
    assert _ranked(rows, "fid") == ["b", "d", "a", "c"]  # lower FID first; unscored last
    rows_p = [{"model": "a", "final": {"precision": 0.1}}, {"model": "b", "final": {"precision": 0.3}}]
    assert _ranked(rows_p, "precision") == ["b", "a"]  # higher is better
    train = [{"kimg": 10.0, "time_s": 100.0}, {"kimg": 20.0, "time_s": 150.0}]
    assert _train_time_at(train, 15.0) == pytest.approx(125.0)
    assert _train_time_at(train, 5.0) == pytest.approx(50.0)  # from the start (0 kimg at 0 s)
    assert _train_time_at(train, 20.0) == pytest.approx(150.0)


def test_bench_time_schedule_scales_with_a_stage_share(tmp_path) -> None:
    cfg = OmegaConf.create({"data": "fashion", "kimg": 100, "minutes": 8, "overrides": [], "model_overrides": {},
                            "eval": {"every_kimg": None, "every_minutes": 2, "metrics": ["fid"], "num_fake": 10,
                                     "num_real": 10, "split": "train", "weights": None}})
    full = _train_overrides(cfg, "dcgan", 0, tmp_path)
    half = _train_overrides(cfg, "dcgan", 0, tmp_path, share=0.5)
    assert "trainer.eval.every_kimg=null" in full
    assert "trainer.eval.every_minutes=2" in full and "trainer.minutes=8" in full
    assert "trainer.eval.every_minutes=1" in half and "trainer.minutes=4" in half
    tokenizer = _train_overrides(cfg, "vqgan", 0, tmp_path, share=0.5, evaluate=False)
    assert not any(o.startswith("trainer.eval.") for o in tokenizer)
