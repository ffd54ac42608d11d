"""Experiment tracking (`log.track`): a run's config, library versions, metrics rows, evaluations and final video
sent to Weights & Biases and/or MLflow, beside the run's own files (which stay the record).

Metric names are grouped as CleanRL and SB3 users see them: `charts/…` (returns, episodes), `losses/…` (what the
learner reports), `perf/…` (throughput and time); the step is the run's env-step count. A tracker's failure to
log is a warning, never the end of a run: the run directory holds everything anyway.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pacer.errors import PacerError
from pacer.version import __version__

TRACKERS = ("wandb", "mlflow")
EXTRAS = {"wandb": "wandb", "mlflow": "mlflow"}
CHARTS = {"return_recent": "episodic_return", "eval_return": "eval_return", "episodes": "episodes",
          "updates": "updates"}
PERF = {"steps_per_s": "steps_per_s", "time": "time_s", "eval_time": "eval_time_s"}


def metric_name(key: str) -> str:
    """The grouped name of a metrics row's column: charts/…, perf/… or losses/… (all the learner's numbers)."""
    if key in CHARTS:
        return f"charts/{CHARTS[key]}"
    if key in PERF:
        return f"perf/{PERF[key]}"
    return f"losses/{key}"


def grouped(row: dict[str, Any]) -> dict[str, float]:
    """A metrics row as grouped names and numbers (the step, env_steps, is the x axis, not a metric)."""
    return {metric_name(key): float(value) for key, value in row.items()
            if key != "env_steps" and isinstance(value, (int, float)) and not isinstance(value, bool)}


def versions() -> dict[str, str]:
    """Versions of what the results depend on, for the tracker's record of the run."""
    out = {"pacer": __version__, "python": platform.python_version()}
    for name in ("torch", "gymnasium", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'algo': {'lr': 3e-4}} as {'algo.lr': 3e-4}: MLflow's parameters are flat."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class Tracker(Protocol):
    def log_row(self, row: dict[str, Any], step: int) -> None: ...
    def log_final(self, scores: dict[str, float], step: int) -> None: ...
    def log_video(self, path: Path, step: int) -> None: ...
    def close(self, ok: bool) -> None: ...


class Trackers:
    """The run's trackers behind one front: a call that fails warns once per tracker, the run goes on."""

    def __init__(self, trackers: dict[str, Tracker], warn: Callable[[str], None]) -> None:
        self.trackers, self.warn, self.failed = trackers, warn, set[str]()

    def _each(self, call: Callable[[Tracker], None]) -> None:
        for name, tracker in self.trackers.items():
            if name in self.failed:
                continue
            try:
                call(tracker)
            except Exception as exc:  # a tracker is a view of the run: its failure must not end the training
                self.failed.add(name)
                self.warn(f"pacer: warning: {name} stopped logging this run: {type(exc).__name__}: {exc}")

    def log_row(self, row: dict[str, Any]) -> None:
        self._each(lambda t: t.log_row(row, int(row["env_steps"])))

    def log_final(self, scores: dict[str, float], step: int) -> None:
        self._each(lambda t: t.log_final(scores, step))

    def log_video(self, path: Path, step: int) -> None:
        if path.exists():
            self._each(lambda t: t.log_video(path, step))

    def close(self, ok: bool) -> None:
        self._each(lambda t: t.close(ok))
        self.trackers = {}


def check_installed(names: tuple[str, ...]) -> None:
    """Before anything starts: every tracker asked for is installed (one line naming the extra otherwise)."""
    import importlib.util

    for name in names:
        if importlib.util.find_spec(name) is None:
            raise PacerError(f"log.track {name!r} needs the {EXTRAS[name]} package: pip install 'pacer-rl[{name}]'")


def open_trackers(names: tuple[str, ...], project: str, run_dir: Path, config: dict[str, Any], command: str,
                  warn: Callable[[str], None]) -> Trackers:
    """Start a run in each tracker, before any worker starts, and say where each is; a tracker that cannot start
    (W&B online without a login, a setting it refuses, MLflow 3 given a `file:` store) ends the run there in one
    line: the user asked for tracking and would otherwise find none."""
    check_installed(names)
    openers: dict[str, Callable[..., Tracker]] = {"wandb": WandbTracker, "mlflow": MlflowTracker}
    started: dict[str, Tracker] = {}
    for name in names:
        try:
            started[name] = openers[name](project, run_dir, config, command)
        except Exception as exc:
            for tracker in started.values():
                tracker.close(ok=False)
            raise PacerError(f"log.track {name}: cannot start a run: {type(exc).__name__}: {_tracker_error(exc)}"
                             f"{HINTS.get(name, '')}") from None
        warn(f"pacer: tracking to {getattr(started[name], 'where', name)}")
    return Trackers(started, warn)


HINTS = {"wandb": " (W&B's own settings: WANDB_MODE=offline works without a login or a network)",
         "mlflow": " (MLFLOW_TRACKING_URI; unset, MLflow writes ./mlflow.db)"}


def _tracker_error(exc: BaseException) -> str:
    """A tracker's error in one line: its first line that says something (pydantic's first line only counts)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and "validation error" in lines[0]:  # W&B's settings: '1 validation error', 'mode', 'Input..'
        return f"{lines[0]}: {lines[1]}: {lines[2].split(' [')[0]}" if len(lines) > 2 else lines[0]
    return lines[0] if lines else ""


class WandbTracker:
    """A W&B run named after the run directory; its files go under RUN_DIR/wandb. Offline or online as W&B's own
    settings say (WANDB_MODE=offline, `wandb login`), so nothing leaves the machine unless the user set it up."""

    def __init__(self, project: str, run_dir: Path, config: dict[str, Any], command: str) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", project), name=run_dir.name,
                              dir=str(run_dir), config={**config, "versions": versions(), "command": command},
                              reinit="create_new", settings=wandb.Settings(console="off", silent=True))
        url = getattr(self.run, "url", None)
        self.where = f"W&B run {url}" if url else f"W&B ({self.run.settings.mode}, in {self.run.dir})"

    def log_row(self, row: dict[str, Any], step: int) -> None:
        self.run.log({**grouped(row), "charts/env_steps": step}, step=step)

    def log_final(self, scores: dict[str, float], step: int) -> None:
        self.run.log({f"charts/{key}": value for key, value in scores.items()}, step=step)
        for key, value in scores.items():
            self.run.summary[f"charts/{key}"] = value

    def log_video(self, path: Path, step: int) -> None:
        self.run.log({"videos/final": self.wandb.Video(str(path), format="mp4")}, step=step)

    def close(self, ok: bool) -> None:
        self.run.finish(exit_code=0 if ok else 1)


class MlflowTracker:
    """An MLflow run in the experiment `project`, wherever MLflow's own settings say (MLFLOW_TRACKING_URI):
    parameters are the flattened config, tags the versions and the command."""

    def __init__(self, project: str, run_dir: Path, config: dict[str, Any], command: str) -> None:
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()  # MLFLOW_TRACKING_URI, else MLflow's own default (3.x: ./mlflow.db)
        experiment = self.client.get_experiment_by_name(project)
        self.where = f"MLflow at {self.client.tracking_uri}, experiment {project!r}"
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(project)
        self.run_id = self.client.create_run(experiment_id, run_name=run_dir.name).info.run_id
        tags = {f"versions.{k}": v for k, v in versions().items()} | {"command": command, "run_dir": str(run_dir)}
        params = [Param(key, _param_text(value)) for key, value in sorted(flatten(config).items())]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.where += f", run {self.run_id}"

    def log_row(self, row: dict[str, Any], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in grouped(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_final(self, scores: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(f"charts/{k}", v, now, step) for k, v in scores.items()])

    def log_video(self, path: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path="videos")

    def close(self, ok: bool) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")


def _param_text(value: Any) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."  # MLflow's limit on a parameter's value


def command_line() -> str:
    """How this process was started, for the record (the `pacer` command, or the Python script)."""
    if not sys.argv or not sys.argv[0]:
        return "python"
    first = Path(sys.argv[0])
    name = first.parent.name if first.name == "__main__.py" else first.name  # `python -m pacer` is `pacer`
    return " ".join([name, *sys.argv[1:]])
