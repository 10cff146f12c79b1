"""Metric sinks: ``metrics.jsonl`` always; Weights & Biases optionally (offline works without an account)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class JSONLLogger:
    """Appends one JSON object per log step to ``metrics.jsonl``."""

    def __init__(self, path: Path, *, resume_step: int | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self.drop_after(resume_step)

    def drop_after(self, step: int) -> None:
        """Forget records past ``step``: a resumed run repeats the steps after its snapshot, and their
        first records (from the run that was stopped or killed) would otherwise appear twice."""
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines()
        keep = [line for line in lines if line.strip() and _step_of(line) <= step]
        if len(keep) != len(lines):
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(line + "\n" for line in keep))
            tmp.replace(self.path)

    def log(self, record: Mapping[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(clean) + "\n")

    def close(self) -> None:
        pass


def _step_of(line: str) -> float:
    try:
        return float(json.loads(line).get("step", -1))
    except (ValueError, AttributeError):
        return math.inf  # a torn last line (the process was killed mid-write): dropped


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
