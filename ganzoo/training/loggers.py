"""Metric sinks: ``metrics.jsonl`` always; Weights & Biases optionally (offline works without an account)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class JSONLLogger:
    """Appends one JSON object per log step to ``metrics.jsonl``."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, record: Mapping[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(clean) + "\n")

    def close(self) -> None:
        pass


class WandbLogger:
    """Logs to Weights & Biases. ``mode="offline"`` writes under the run folder, no account needed."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], *, project: str, mode: str, entity: str | None,
                 name: str | None = None, tags: list[str] | None = None):
        import wandb

        self._run = wandb.init(project=project, entity=entity, mode=mode, dir=str(run_dir), config=dict(config),
                               name=name, tags=tags, reinit="finish_previous")

    def log(self, record: Mapping[str, Any]) -> None:
        step = record.get("step")
        self._run.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=step)

    def log_image(self, key: str, path: Path, step: int) -> None:
        import wandb

        self._run.log({key: wandb.Image(str(path))}, step=step)

    def close(self) -> None:
        self._run.finish()


class MultiLogger:
    def __init__(self, loggers: list[Any]):
        self.loggers = loggers

    def log(self, record: Mapping[str, Any]) -> None:
        for lg in self.loggers:
            lg.log(record)

    def log_image(self, key: str, path: Path, step: int) -> None:
        for lg in self.loggers:
            if hasattr(lg, "log_image"):
                lg.log_image(key, path, step)

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()
