"""The generic training loop. It knows the contracts in ``ganzoo.bundle`` and nothing of any family.

Per step: ask the schedule for the state at the current images-seen count, draw a real batch,
run every due phase (module, optimizer, interval, repeats, loss), update the EMA copy, then
log, draw sample grids and checkpoint on their intervals. See ``docs/architecture.md``.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from .. import __version__
from ..augment import attach_augment
from ..bundle import Batch, Phase, StepContext
from ..data import build_dataset, build_loader, device_batch_fit
from ..errors import ConfigError, DivergedError, GanzooError
from ..runtime import build_bundle, model_kwargs, resolve_geometry, select_device  # noqa: F401  (re-exported)
from ..sampling.images import save_grid
from . import distributed as dist
from .cadence import Cadence
from .checkpoint import (
    atomic_write,
    clean_temp_files,
    fault_point,
    find_resumable,
    newest_finite_snapshot,
    reset_fault_counts,
    rng_state,
    save_snapshot,
    set_rng_state,
)
from .compile import compile_phases
from .disk import WRITE_ERRORS, check_writable, write_failed
from .ema import make_ema, update_ema
from .grids import draw_grid, fixed_latents, grid_reals
from .guard import DivergenceGuard, GuardConfig, divergence_remedies
from .loggers import JSONLLogger, MultiLogger, WandbLogger
from .precision import Precision
from .progress import BudgetBar, seed_all
from .restore import restore_run
from .signals import StopRequest
from .validate import check_classes, report_empty_class_folders, validate_config

# config.yaml is a record, not an input: a resume takes the config stored in its checkpoint (issue 19.22).
CONFIG_HEADER = ("# The configuration this run was trained with, written by `ganzoo train` (a record: editing it\n"
                 "# changes nothing). A resume uses the copy stored in its checkpoint; change a setting on the\n"
                 "# command line: ganzoo train trainer.resume=<this folder> <key>=<value>\n")


class Trainer:
    """Runs one training job described by a composed Hydra config in ``run_dir``."""

    def __init__(self, cfg: DictConfig, run_dir: str | Path):
        validate_config(cfg)  # every value checked before anything is built (one message, no traceback)
        reset_fault_counts()  # $GANZOO_FAULT counts visits within this run
        fault_point("startup")
        self.cfg = cfg
        self.tcfg = cfg.trainer
        self.run_dir = Path(run_dir)
        self.device = select_device(str(self.tcfg.device))
        dist.init_from_env(self.device)
        self.is_main = dist.is_main()
        self.seed = int(cfg.seed)
        seed_all(self.seed)  # torch, Python and NumPy: identical runs save identical RNG states (issue 19.23)
        if self.tcfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        # Model first (its resolution and channels decide how the data is prepared). `auto` geometry
        # becomes numbers in cfg.model, so the saved config and checkpoints rebuild this very model.
        geometry_note = resolve_geometry(cfg.model, cfg.data)
        if geometry_note and self.is_main:
            print(geometry_note, flush=True)
        self.bundle = build_bundle(cfg.model, num_classes=self._peek_num_classes())
        if cfg.model.get("c_dim") == "auto":  # record the number: checkpoints rebuild G from the saved model config
            cfg.model.c_dim = self.bundle.c_dim
        if self.bundle.info.get("missing"):  # e.g. a code prior without its stage-1 tokenizer
            raise ConfigError(f"model={cfg.model.name} cannot train: {self.bundle.info['missing']}")
        attach_augment(self.bundle.objective, cfg.get("augment"))  # DiffAugment / ADA for any GAN (augment=...)
        with open_dict(cfg.model):  # what the builder pinned (a prior's tokenizer hash...) is saved with the run
            for key, value in self.bundle.info.get("resolved", {}).items():
                cfg.model[key] = value
        self.dataset = build_dataset(cfg.data, resolution=self.bundle.resolution, channels=self.bundle.channels)
        probe_classes = self.dataset.num_classes
        self.c_dim = self.bundle.c_dim
        report_empty_class_folders(self.dataset)
        check_classes(self.c_dim, probe_classes, str(cfg.data.name), force=bool(self.tcfg.get("force_c_dim", False)))

        self.modules: dict[str, nn.Module] = {k: m.to(self.device) for k, m in self.bundle.modules.items()}
        for m in self.modules.values():
            dist.broadcast_module(m)
            if dist.world_size() > 1:  # BN statistics over the global batch, as one process computes them
                dist.convert_sync_batchnorm(m)
        self.objective = self.bundle.objective.to(self.device)
        self.phases: list[Phase] = self.objective.phases
        self.optimizers = {
            name: spec.build_for(self.modules[name]) for name, spec in self.objective.optimizers.items()
        }
        ema_spec = self.bundle.ema if self.tcfg.ema else None
        self.ema_spec = ema_spec
        self.ema: dict[str, nn.Module] = {ema_spec.module: make_ema(self.modules[ema_spec.module])} if ema_spec else {}
        if cfg.model.get("init") and not (self.tcfg.resume and find_resumable(str(self.tcfg.resume))):
            from .init_weights import load_init  # fine-tuning: the weights of another run or a published file

            with open_dict(cfg):
                cfg.init_from = load_init(str(cfg.model.init), self.modules, self.ema)
            if self.is_main:
                print(f"model.init: loaded {', '.join(cfg.init_from.loaded)} from {cfg.model.init}", flush=True)
        # After the EMA copy (it stays float32): fp16 switches self-managed modules (set_fp16) to float16.
        self.precision = Precision(str(self.tcfg.precision), self.device, self.modules)
        self.autocast = self.precision.autocast
        if self.is_main:
            self.precision.warn_if_unused(str(cfg.model.name))
        if self.tcfg.get("compile", False):  # first-order phases compiled; double-backward ones, EMA, sampling eager
            self.phases, self.compiler = compile_phases(self.phases, self.objective, self.modules,
                                                        backend=str(self.tcfg.get("compile_backend", "inductor")))
        self.step = 0
        self._time_up_at: int | None = None  # step of the last rank-agreed time-budget test (several processes)
        self._time_up_flag = False
        self.time_bound = False
        self.images_seen = 0
        self.batch_size = int(self.tcfg.batch_size)
        if self.batch_size % max(int(self.tcfg.accumulate), 1) != 0:
            raise ConfigError(
                f"trainer.batch_size={self.batch_size} is not divisible by trainer.accumulate={self.tcfg.accumulate}"
            )
        dist.local_batch_size(self.batch_size, accumulate=int(self.tcfg.accumulate))  # the global batch splits evenly
        self._restored_rng: dict[str, Any] | None = None
        self.resumed_from: Path | None = None
        self.stopped: str | None = None  # the signal that stopped the last fit() early, if any
        self.guard = DivergenceGuard(GuardConfig.from_config(self.tcfg.get("guard")), self.device)
        self._t_start, self._eval_s = time.time(), 0.0
        # Training and wall seconds of earlier sessions of this run (restored on resume): trainer.minutes and the
        # logged time_s count across resumes.
        self._time_offset, self._wall_offset = 0.0, 0.0
        self.best: float | None = None
        self.evaluator = None
        ecfg = self.tcfg.get("eval")
        if ecfg is not None and (ecfg.get("every_kimg") is not None or ecfg.get("every_minutes") is not None):
            from ..evaluation import EvalProtocol, Evaluator, check_metrics_for

            proto_cfg = {k: v for k, v in OmegaConf.to_container(ecfg, resolve=True).items()
                         if k not in ("every_kimg", "every_minutes", "best_metric")}
            protocol = EvalProtocol.from_config(proto_cfg)
            check_metrics_for(self.bundle, protocol.metrics, where="trainer.eval.metrics")  # before any training
            self.evaluator = Evaluator(protocol, cfg.data, resolution=self.bundle.resolution,
                                       channels=self.bundle.channels, device=self.device)
            self.best_metric = ecfg.get("best_metric")
            if self.best_metric is not None and self.best_metric not in _METRIC_DIRECTION:
                raise ConfigError(f"trainer.eval.best_metric={self.best_metric!r}; choose from "
                                  f"{sorted(_METRIC_DIRECTION)} or null")
        if self.tcfg.resume:
            self._resume(str(self.tcfg.resume))

    # -- set-up helpers ------------------------------------------------------------------------
    def _peek_num_classes(self) -> int:
        """Classes of the data, needed before the model only when ``model.c_dim=auto``."""
        if self.cfg.model.get("c_dim") != "auto":
            return 0
        return build_dataset(self.cfg.data, resolution=8, channels=3).num_classes

    @property
    def train_time(self) -> float:
        """Seconds spent training by this run, earlier sessions included (wall time less periodic evaluation)."""
        return self._time_offset + time.time() - self._t_start - self._eval_s

    @property
    def wall_time(self) -> float:
        """Wall seconds of this run's training sessions (earlier ones included)."""
        return self._wall_offset + time.time() - self._t_start

    @property
    def total_images(self) -> int:
        if self.tcfg.steps is not None:
            return int(self.tcfg.steps) * self.batch_size  # batch_size is the global batch (all ranks)
        return int(round(float(self.tcfg.kimg) * 1000))

    def _done(self) -> bool:
        minutes = self.tcfg.get("minutes")
        if minutes is not None and self._time_up(60.0 * float(minutes)):
            self.time_bound = True  # the time budget ended the run (the final line names it)
            return True
        if self.tcfg.steps is not None:
            return self.step >= int(self.tcfg.steps)
        return self.images_seen >= self.total_images

    def _time_up(self, limit_s: float) -> bool:
        """Whether the time budget is spent; under several processes rank 0's clock decides, polled every
        ``log_every`` steps (a host sync), so every rank stops after the same step."""
        if dist.world_size() == 1:
            return self.train_time >= limit_s
        if self.step % int(self.tcfg.log_every):
            return False
        if self._time_up_at != self.step:  # one broadcast per polled step
            self._time_up_at, self._time_up_flag = self.step, dist.agree(self.train_time >= limit_s, self.device)
        return self._time_up_flag

    def _stop_agreed(self, stop: StopRequest) -> bool:
        """Whether a stop signal ends the run after this step. Under several processes a signal may reach one rank
        only, or the ranks at different steps: they agree (any rank's signal) every ``log_every`` steps, with the
        log's host sync, so every rank stops after the same step instead of one waiting alone in an all-reduce."""
        if dist.world_size() == 1:
            return stop.requested
        if self.step % int(self.tcfg.log_every):
            return False
        stop.adopt(dist.agree_max(stop.code, self.device))
        return stop.requested

    def _model_config_yaml(self) -> str:
        return OmegaConf.to_yaml(self.cfg.model, resolve=True)

    def _resume(self, path: str) -> None:
        restore_run(self, path)

    # -- checkpointing, sampling, logging ------------------------------------------------------
    def save_checkpoint(self, name: str | None = None) -> Path | None:
        self._check_health()  # never write a diverged snapshot
        if not self.is_main:
            return None
        state = {
            "format": 1,
            "step": self.step,
            "images_seen": self.images_seen,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "objective": self.objective.state_dict(),
            **({"scalers": self.precision.state_dict()} if self.precision.scaling else {}),
            "rng": rng_state(),
            "best": self.best,
            "train_time_s": self.train_time,  # budgets (trainer.minutes) and time_s go on from here on resume
            "wall_time_s": self.wall_time,
            "ganzoo_version": __version__,
        }
        metadata = {
            "model": str(self.cfg.model.name),
            "model_config": self._model_config_yaml(),
            "config": OmegaConf.to_yaml(self.cfg, resolve=True),
            "images_seen": str(self.images_seen),
            "step": str(self.step),
            "ganzoo_version": __version__,
        }
        try:
            return save_snapshot(self.run_dir / "checkpoints", modules=self.modules, ema=self.ema, state=state,
                                 metadata=metadata, keep=int(self.tcfg.keep_checkpoints), name=name)
        except WRITE_ERRORS as err:  # a full disk or a folder that stopped taking files: say so, keep the rest
            raise write_failed(err, self.run_dir / "checkpoints") from err

    def _fixed_latents(self) -> dict[str, torch.Tensor | None]:
        return fixed_latents(self.bundle, self.dataset, int(self.tcfg.grid), int(self.tcfg.grid_seed), self.c_dim)

    def save_samples(self, state: Mapping[str, Any]) -> Path | None:
        if not self.is_main or int(self.tcfg.grid) <= 0:
            return None
        opts = self.bundle.sample_opts(state) if self.bundle.sample_opts else {}
        path = self.run_dir / "samples" / f"fakes_{self.images_seen:010d}.png"  # one file per grid (images seen)
        return draw_grid(self.bundle, {**self.modules, **self.ema}, self._fixed_latents(), n=int(self.tcfg.grid),
                         batch_size=int(self.tcfg.batch_size), seed=int(self.tcfg.grid_seed), device=self.device,
                         opts=opts, path=path)

    def evaluate(self, state: Mapping[str, Any], logger: MultiLogger) -> dict[str, float]:
        """Score the EMA generator with the configured protocol; keep ``checkpoints/best.*``."""
        from ..metrics import write_metrics_jsonl

        modules = {**self.modules, **self.ema}
        train_s = self.train_time  # when the scored weights were reached (this evaluation's time excluded)
        result = self.evaluator(self.bundle, modules, state, images_seen=self.images_seen)
        if not self.is_main:
            return result.values
        write_metrics_jsonl(self.run_dir / "eval.jsonl", result.records)
        record = {"step": self.step, "kimg": round(self.images_seen / 1000, 3), "time_s": round(train_s, 3)}
        record.update({f"eval/{k}": v for k, v in result.values.items()})
        logger.log(record)
        if self.best_metric is not None:
            key, sign = _METRIC_DIRECTION[self.best_metric]
            value = result.values.get(key)
            if value is not None and (self.best is None or sign * value < sign * self.best):
                self.best = value
                self.save_checkpoint(name="best")
                best = json.dumps({"metric": key, "value": value, "images_seen": self.images_seen, "step": self.step})
                atomic_write(self.run_dir / "checkpoints" / "best.json", lambda tmp: Path(tmp).write_text(best))
        return result.values

    # -- the loop ------------------------------------------------------------------------------
    def _loader(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.batch_fit = device_batch_fit(self.cfg.data, self.dataset, self.device)  # None: CPU resizes each image
        return build_loader(
            self.dataset,
            batch_size=dist.local_batch_size(batch_size, accumulate=int(self.tcfg.accumulate)),
            seed=self.seed,
            start=self.images_seen,
            rank=dist.rank(),
            world_size=dist.world_size(),
            num_workers=int(self.tcfg.num_workers),
            flip=bool(self.cfg.data.get("flip", False)),
            native=self.batch_fit is not None,
        )

    def _next_batch(self, it: Iterator) -> Batch:
        img, label = next(it)
        img = img.to(self.device, non_blocking=True)
        img = self.batch_fit(img) if self.batch_fit is not None else img  # native uint8 -> [-1, 1] at R x R
        lab = label.to(self.device, non_blocking=True) if self.dataset.num_classes > 0 and self.c_dim > 0 else None
        self.images_seen += img.shape[0] * dist.world_size()
        return Batch(img, lab)

    def _set_trainable(self, name: str) -> None:
        for k, m in self.modules.items():
            m.requires_grad_(k == name)

    def _run_phase(self, phase: Phase, batch: Batch, ctx: StepContext, logs: dict[str, list]) -> None:
        module = self.modules[phase.module]
        opt = self.optimizers[phase.module]
        self._set_trainable(phase.module)
        opt.zero_grad(set_to_none=True)
        parts = max(int(self.tcfg.accumulate), 1)
        for micro in batch.split(parts):
            with self.autocast, dist.sharded_batch():  # this rank's shard of the global batch
                loss, phase_logs = phase.loss(micro, ctx)
            self.guard.observe(phase.name, loss)  # on-device flags: no sync here
            self.precision.backward(phase.module, loss.float() * (phase.interval / parts))  # scaled at fp16
            for k, v in phase_logs.items():
                logs[k].append(v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v)))
        dist.average_gradients(module)  # still scaled at fp16: the mean commutes with the scale
        self.precision.step(phase.module, opt)  # at fp16: unscale, skip on inf/NaN, update the scale

    def fit(self) -> dict[str, Any]:
        """Train until the budget is spent or a stop signal (Ctrl-C, SIGTERM, SIGUSR1), checkpointing on the
        way. Returns a summary; its ``stopped`` names the signal that ended the run early (None when done).
        Raises :class:`DivergedError` (nothing written after the last check) when training diverges."""
        from tqdm.auto import tqdm

        if self.is_main:
            check_writable(self.run_dir / "checkpoints")  # now, not at the first save after minutes of training
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            clean_temp_files(self.run_dir / "checkpoints")  # left by a write that was killed
            config_yaml = CONFIG_HEADER + OmegaConf.to_yaml(self.cfg, resolve=True)
            atomic_write(self.run_dir / "config.yaml", lambda tmp: Path(tmp).write_text(config_yaml))
        logger = self._make_logger()
        if self._restored_rng is not None:
            set_rng_state(self._restored_rng)
        schedule = self.bundle.schedule
        state = schedule.state(self.images_seen) if schedule else {}
        bs = int(state.get("batch_size", self.batch_size))
        it = self._loader(bs)
        if self.is_main and self.images_seen == 0 and int(self.tcfg.grid) > 0:
            save_grid(self._reals_for_grid(), self.run_dir / "samples" / "reals.png")
        self._t_start, self._eval_s = time.time(), 0.0
        t_resumed = self.train_time  # training seconds of earlier sessions: the time cadence goes on from there
        sampling = Cadence(kimg=self.tcfg.sample_every_kimg, minutes=None, images=self.images_seen, seconds=0.0)
        ckpts = Cadence(kimg=self.tcfg.checkpoint_every_kimg, minutes=None, images=self.images_seen, seconds=0.0)
        ev = self.tcfg.eval if self.evaluator is not None else {}
        evals = Cadence(kimg=ev.get("every_kimg"), minutes=ev.get("every_minutes"), images=self.images_seen,
                        seconds=t_resumed, device=self.device, poll=int(self.tcfg.log_every))
        logs: dict[str, list] = defaultdict(list)
        t_last, img_last = t_resumed, self.images_seen
        bar = tqdm(total=self.total_images, initial=min(self.images_seen, self.total_images), unit="img",
                   unit_scale=True, dynamic_ncols=True, disable=not (self.is_main and self.tcfg.progress),
                   desc=f"{self.cfg.model.name}")
        minutes = self.tcfg.get("minutes")  # the ETA follows the time budget when it binds first (issue 19.16)
        budget_bar = BudgetBar(bar, total_images=self.total_images, images=self.images_seen, seconds=t_resumed,
                               limit_s=None if minutes is None else 60.0 * float(minutes))
        last_ckpt: Path | None = None
        self.guard.reset_weights(self.modules)
        self._healthy_step = self.step
        stop = StopRequest()
        done = self._done()  # evaluated once per step: the step that ends the run is the one checkpointed
        stopping = False
        try:
            with stop:
                while not done:
                    state = schedule.state(self.images_seen) if schedule else {}
                    new_bs = int(state.get("batch_size", self.batch_size))
                    if new_bs != bs:
                        bs, it = new_bs, self._loader(new_bs)
                    ctx = StepContext(self.modules, state, self.step, self.images_seen, self.device, self.c_dim)
                    batch = self._next_batch(it)
                    for phase in self.phases:
                        if self.step % phase.interval != 0 or (phase.active is not None and not phase.active(ctx)):
                            continue
                        for r in range(phase.repeats):
                            b = self._next_batch(it) if (r > 0 and phase.needs_batch) else batch
                            self._run_phase(phase, b, ctx, logs)
                    self.step += 1
                    for name, ema in self.ema.items():
                        update_ema(ema, self.modules[name], self.ema_spec.beta(bs, self.images_seen))
                    fault_point("step")
                    budget_bar.update(self.images_seen, self.train_time)

                    done = self._done()
                    stopping = self._stop_agreed(stop)
                    log_due = self.step % int(self.tcfg.log_every) == 0 or done
                    sample_due = sampling.due(self.images_seen, self.train_time) or done
                    eval_due = self.evaluator is not None and (evals.due(self.images_seen, self.train_time) or done)
                    ckpt_due = ckpts.due(self.images_seen, self.train_time) or done or stopping
                    if log_due or sample_due or eval_due or ckpt_due:
                        self._check_health()  # the one host sync of the guard: before anything is written
                    if log_due:
                        now = self.train_time
                        record = self._summarise(logs, state, (self.images_seen - img_last) / max(now - t_last, 1e-9))
                        record["time_s"] = round(now, 3)
                        record["wall_s"] = round(self.wall_time, 3)
                        t_last, img_last = now, self.images_seen
                        logs.clear()
                        if self.is_main:
                            logger.log(record)
                            bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in record.items()
                                             if k.startswith("loss/")} | {"img/s": f"{record['img_per_s']:.0f}"})
                    if sample_due:
                        path = self.save_samples(state)
                        if path is not None:
                            logger.log_image("samples", path, self.step)
                        sampling.advance(self.images_seen, self.train_time)
                    if eval_due:
                        t_eval = time.time()
                        self.evaluate(state, logger)
                        self._eval_s += time.time() - t_eval
                        evals.advance(self.images_seen, self.train_time)
                    if ckpt_due:
                        last_ckpt = self.save_checkpoint()
                        ckpts.advance(self.images_seen, self.train_time)
                    if stopping:
                        break
        except torch.OutOfMemoryError as err:
            raise GanzooError(
                f"out of memory at step {self.step} with batch size {bs}: lower trainer.batch_size, or keep it and "
                f"set trainer.accumulate=2 (or more). The last checkpoint ({last_ckpt or 'none yet'}) is intact; "
                "resume with trainer.resume=<run folder>."
            ) from err
        finally:
            budget_bar.finish(self.images_seen, time_up=self.time_bound)
            bar.close()
            logger.close()
            self._time_offset, self._wall_offset = self.train_time, self.wall_time  # a later fit() goes on from here
            self._t_start, self._eval_s = time.time(), 0.0
        self.stopped = stop.reason if stopping and not done else None
        time_limit = float(minutes) if self.time_bound and not self.stopped else None  # minutes that ended the run
        return {"step": self.step, "images_seen": self.images_seen, "checkpoint": str(last_ckpt) if last_ckpt else None,
                "run_dir": str(self.run_dir), "stopped": self.stopped, "total_images": self.total_images,
                "time_limit_minutes": time_limit}

    def _check_health(self) -> None:
        """Raise :class:`DivergedError` naming the last good checkpoint if the guard saw a divergence."""
        problem = self.guard.check({**self.modules, **{f"EMA {k}": m for k, m in self.ema.items()}})  # all ranks
        if problem is None:
            self._healthy_step = self.step
            return
        good = newest_finite_snapshot(self.run_dir / "checkpoints") or self.resumed_from
        where = f"The last good checkpoint is {str(good)!r}. " if good is not None else \
            "No checkpoint had been written yet. "
        raise DivergedError(
            f"training diverged between step {self._healthy_step} and step {self.step} ({self.images_seen} images): "
            f"{problem}. Nothing was written after step {self._healthy_step}. {where}"
            + divergence_remedies(str(self.tcfg.precision), str(good) if good is not None else None)
        )

    def _reals_for_grid(self) -> torch.Tensor:
        return grid_reals(self.dataset, int(self.tcfg.grid), int(self.tcfg.grid_seed))

    def _summarise(self, logs: Mapping[str, list], state: Mapping[str, Any], img_per_s: float) -> dict[str, Any]:
        record: dict[str, Any] = {
            "step": self.step,
            "kimg": round(self.images_seen / 1000, 3),
            "img_per_s": round(img_per_s, 2),
        }
        record.update(dist.global_means(logs, self.device))  # over the global batch: one all-reduce per log line
        for k, v in dict(state.get("log", {})).items():
            record[f"schedule/{k}"] = float(v)
        if self.device.type == "cuda":
            record["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3)
        bad = [k for k, v in record.items() if k.startswith("loss/") and not math.isfinite(v)]
        if bad:
            raise GanzooError(
                f"training diverged at step {self.step}: {', '.join(bad)} is not finite. The last checkpoint is "
                "intact; try a lower learning rate (model.optim.G.lr / model.optim.D.lr) or trainer.precision=fp32."
            )
        return record

    def _make_logger(self) -> MultiLogger:
        loggers: list[Any] = []
        if self.is_main:
            resume_step = self.step if self.resumed_from is not None else None
            loggers.append(JSONLLogger(self.run_dir / "metrics.jsonl", resume_step=resume_step))
            lcfg = self.cfg.logger
            if lcfg.get("wandb", False):
                loggers.append(
                    WandbLogger(self.run_dir, OmegaConf.to_container(self.cfg, resolve=True), project=str(lcfg.project),
                                mode=str(lcfg.mode), entity=lcfg.get("entity"), name=lcfg.get("name"),
                                tags=list(lcfg.get("tags") or []))
                )
        return MultiLogger(loggers)


# metric -> (key in MetricsResult.values, +1 if lower is better else -1)
_METRIC_DIRECTION = {
    "fid": ("fid", 1),
    "kid": ("kid_mean", 1),
    "precision": ("precision", -1),
    "recall": ("recall", -1),
    "is": ("is_mean", -1),
    "rfid": ("rfid", 1),  # autoencoders (ganzoo.evaluation: reconstruction metrics)
    "psnr": ("psnr", -1),
}
