"""`train(config) -> TrainResult`: the story of a run, top to bottom: prepare -> supervise -> finish.

prepare: the config (runconfig.py: preset, file, overrides, resume; every value written down), the model, the
backend's shared state and workers, metrics, the periodic jobs and stop rules. supervise: start the workers, run
the supervisor until a stop rule fires, stop the workers, write the final checkpoint. finish: the final video and
evaluation, summary.json.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pacer import checkpoint, jobs, runconfig
from pacer.algos import get_algo
from pacer.backends import Backend, backend_module
from pacer.clock import Clock
from pacer.config import Config, save_yaml
from pacer.envs import EnvSpec, probe
from pacer.metrics import Metrics
from pacer.model import make_model
from pacer.recurrence import state_size
from pacer.resume import check_resume, left_out_of, restore_run, save
from pacer.runtime.preflight import check_rollout_memory
from pacer.runtime.processes import inheriting
from pacer.runtime.shared import SharedState
from pacer.runtime.signals import StopSignals
from pacer.supervisor import Supervisor
from pacer.tracking import Trackers, check_installed, command_line, open_trackers
from pacer.version import __version__
from pacer.video import check_can_record
from pacer.worker import WorkerSpec


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    env_steps: int
    episodes: int
    wall_time: float
    """Seconds of the whole run (over resumes), evaluation included."""
    steps_per_s: float
    """Env steps per second of this session's training time (`train_time`)."""
    eval_mean: float | None
    eval_std: float | None
    stop_reason: str
    checkpoint: Path
    train_time: float = 0.0
    """Seconds of training in this session: its wall time until the workers stopped, less the time they were held
    (what `runtime.time_limit` counts)."""
    session_time: float = 0.0
    """Wall seconds of this session, start-up to the end of the final evaluation."""
    eval_cut: int = 0
    """Episodes of the final evaluation that `runtime.eval_max_seconds` cut short."""


@dataclass
class Run:
    """What a run holds while it trains."""

    cfg: Config
    run_dir: Path
    shared: SharedState
    backend: Backend
    clock: Clock
    start_steps: int
    trackers: Trackers | None = None
    """W&B / MLflow (`log.track`), fed every metrics row, the evaluations and the final video."""
    final_video: bool = False
    """Film one greedy episode at the end (`log.video_every`, or for the trackers)."""
    metrics: Metrics = field(init=False)
    greedy: jobs.Greedy = field(init=False)
    evaluation: jobs.Evaluation | None = field(init=False)
    supervisor: Supervisor = field(init=False)
    placement: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Where each worker ran (summary.json), once they stopped."""
    parent_cpu: float = 0.0
    """CPU seconds of this process while the workers ran, evaluations left out."""


def train(config: runconfig.ConfigSource = None, *, preset: str | None = "auto", resume: str | Path | None = None,
          **overrides: Any) -> TrainResult:
    """Train an agent. `config` is a Config, a nested dict or a YAML file's path (on top of `preset`: by default
    the one tuned for its env and algorithm, if any; 'none' for the plain defaults); `overrides` use '__' for '.',
    e.g. `train(runtime__workers=2)`. With `resume=RUN_DIR` the saved run continues where it stopped."""
    if inheriting():  # a worker importing a script that trains at import time (local.preflight names the line)
        raise SystemExit("pacer: error: this script trains when it is imported, as each worker process does: put "
                         "the training under `if __name__ == \"__main__\":`")
    run = prepare(config, preset, resume, {key.replace("__", "."): value for key, value in overrides.items()})
    try:
        reason, final = supervise(run)
        result = finish(run, reason, final)
    except BaseException:
        if run.trackers is not None:
            run.trackers.close(ok=False)
        raise
    if run.trackers is not None:
        run.trackers.close(ok=True)
    return result


def prepare(config: runconfig.ConfigSource, preset: str | None, resume: str | Path | None,
            overrides: dict[str, Any]) -> Run:
    """Everything before the first worker starts; fails early, in one line, on what it can check."""
    cfg, notes = runconfig.resolve(config, preset=preset, overrides=overrides, resume=resume)
    for line in notes:
        _stderr(line)
    run_dir = runconfig.run_dir_for(cfg, resume)
    spec = probe(cfg.env, frames=runconfig.wants_frames(cfg))  # the one env the parent makes
    cfg = runconfig.complete(cfg, run_dir, spec)
    saved = None if resume is None else checkpoint.load(checkpoint.find(run_dir))
    if saved is not None:
        check_resume(saved, cfg, run_dir)
    torch.manual_seed(cfg.runtime.seed)
    model = make_model(cfg.model, spec.kept_space, spec.action_space)
    final_video = _preflight(cfg, spec, model)
    where = backend_module(cfg.runtime.backend)  # only backends/ knows where workers run
    where.preflight(cfg, model, _stderr)
    with _run_dir(run_dir, new=resume is None):  # a start that fails here leaves no run directory behind
        save_yaml(cfg, run_dir / "config.yaml")
        trackers = _open_trackers(cfg, run_dir)  # before any worker starts: a tracker that fails is one line
        shared, clock = where.make_shared(cfg, model), Clock()
        worker_states = _restored(saved, shared, cfg, clock)
        start_steps = shared.counters()["env_steps"]
        algorithm = get_algo(cfg.algo.name)
        specs = [WorkerSpec(cfg, rank, worker_seed(cfg.runtime.seed, rank, start_steps), algorithm,
                            worker_states[rank], spec) for rank in range(cfg.runtime.workers)]
        backend: Backend = where.create(specs, shared, lambda rank, restarts: worker_seed(cfg.runtime.seed, rank,
                                                                                           start_steps, restarts))
        run = Run(cfg, run_dir, shared, backend, clock, start_steps, trackers, final_video)
        _supervision(run, spec)
    return run


@contextlib.contextmanager
def _run_dir(run_dir: Path, new: bool) -> Iterator[None]:
    """The run directory, made for a new run; removed again if what follows fails (a resumed run's stays)."""
    made = new and not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if made:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _restored(saved: dict[str, Any] | None, shared: SharedState, cfg: Config, clock: Clock) -> list[Any]:
    """Each worker's state to start from: none for a new run, the checkpoint's for a resume (a note when the
    checkpoint could not hold all of the envs' state)."""
    if saved is None:
        return [None] * cfg.runtime.workers
    states = restore_run(saved, shared, cfg, clock)
    if left_out := left_out_of(states):
        _stderr(f"pacer: note: this resume is not bit-exact: the checkpoint left out objects of {cfg.env.id}'s "
                f"state ({left_out}), so workers start fresh episodes")
    return states


def _preflight(cfg: Config, spec: EnvSpec, model: torch.nn.Module) -> bool:
    """What can fail before anything starts, checked on the probe's answers; returns whether the run films a final
    video."""
    if cfg.env.vector == "ale":
        from pacer import atari_vector

        atari_vector.arguments(cfg.env)
    if cfg.log.video_every:
        check_can_record(spec)
    if cfg.log.track:
        check_installed(cfg.log.track)
    check_rollout_memory(cfg, spec.layout.nbytes, spec.layout.describe(), state_size(model))
    if spec.layout.dropped:
        _stderr(f"pacer: note: {cfg.env.id}'s observation {', '.join(map(repr, spec.layout.dropped))} left out (no "
                "network reads it; env.observation_keys chooses the keys)")
    if cfg.log.track and not cfg.log.video_every and spec.render_error is not None:
        _stderr(f"pacer: note: no final video for {', '.join(cfg.log.track)}: {spec.render_error}")
    return bool(cfg.log.video_every) or (bool(cfg.log.track) and spec.render_error is None)


def _open_trackers(cfg: Config, run_dir: Path) -> Trackers | None:
    if not cfg.log.track:
        return None
    return open_trackers(cfg.log.track, cfg.log.project, run_dir, cfg.to_dict(), command_line(), _stderr)


def _supervision(run: Run, spec: EnvSpec) -> None:
    """The run's metrics, greedy player, evaluation job and supervisor, with the jobs and stop rules it runs."""
    cfg, shared, clock = run.cfg, run.shared, run.clock
    run.metrics = metrics = Metrics(run.run_dir, cfg.log.metrics_format, cfg.log.tensorboard, cfg.log.progress,
                                    cfg.runtime.total_steps, run.start_steps)
    if run.trackers is not None:
        metrics.listeners.append(run.trackers.log_row)
    run.greedy = greedy = jobs.Greedy(cfg, shared, spec, run.run_dir, metrics.log)
    evaluation = None
    if cfg.runtime.eval_every:
        evaluation = jobs.Evaluation(cfg, greedy.returns, run.backend, shared, metrics, clock)
        if evaluation.target is not None:
            _stderr(f"pacer: stops once a greedy evaluation of {cfg.env.id} reaches {evaluation.target:g}, confirmed "
                    f"on {cfg.runtime.confirm_episodes} episodes; runtime.stop_at_return=null trains to the budget")
    run.evaluation = evaluation

    def save_periodic(name: str) -> Path:
        return save(run.run_dir / "checkpoints" / f"{name}.pt", cfg, shared, clock, [])

    run.supervisor = Supervisor(shared, run.backend, metrics, clock,
                                jobs.standard_jobs(cfg, shared, metrics, clock, evaluation, save_periodic,
                                                   greedy.video),
                                jobs.standard_stops(cfg, evaluation), cfg.runtime.max_restarts)


def supervise(run: Run) -> tuple[str, Path]:
    """Start the workers, supervise until a stop rule fires (or Ctrl-C / SIGTERM), stop them and write the final
    checkpoint, whatever ended the run. Returns why it ended and the final checkpoint."""
    cfg, backend, supervisor = run.cfg, run.backend, run.supervisor
    user_threads = torch.get_num_threads()
    # The parent evaluates while workers run: more threads here only fight the workers for cores.
    torch.set_num_threads(cfg.runtime.threads_per_worker)
    stopped_by: KeyboardInterrupt | None = None
    with StopSignals() as signals:  # Ctrl-C / SIGTERM now ask for a stop; a second one forces it
        supervisor.stop_requested = lambda: signals.received is not None
        cpu = time.process_time()
        try:
            try:
                backend.start(supervisor.stop_requested)
                reason = supervisor.run()
            except KeyboardInterrupt as exc:  # outside the main thread, signals still raise
                reason, stopped_by = "interrupted", exc
            finally:
                for report in backend.stop():
                    run.metrics.absorb(report)
                run.placement = backend.placement()
                jobs.write_row(run.metrics, run.shared, run.clock)
                run.parent_cpu = time.process_time() - cpu - run.clock.eval_cpu
                workers = [backend.final_states.get(rank) for rank in range(cfg.runtime.workers)]
                final = save(run.run_dir / "checkpoints" / "final.pt", cfg, run.shared, run.clock, workers)
        finally:
            run.metrics.close()
            torch.set_num_threads(user_threads)
    if stopped_by is not None:
        raise stopped_by
    signals.raise_if_received()  # after a clean stop and a final checkpoint: the caller decides what it means
    return reason, final


def finish(run: Run, reason: str, final: Path) -> TrainResult:
    """The final video and evaluation (a run that stopped solved was just scored, on these very parameters), and
    summary.json."""
    cfg, clock = run.cfg, run.clock
    trained = clock.trained()  # the workers have stopped: nothing after this trains
    steps = run.shared.counters()["env_steps"]
    if run.final_video:
        clock.evaluating(lambda: run.greedy.video("final"))
        if run.trackers is not None:
            run.trackers.log_video(run.run_dir / "videos" / "final.mp4", steps)
    played = None if run.evaluation is None else run.evaluation.confirmed
    if played is None and cfg.runtime.final_eval_episodes:
        played = clock.evaluating(lambda: run.greedy.returns(cfg.runtime.final_eval_episodes))
    counters = run.shared.counters()
    result = TrainResult(
        run_dir=run.run_dir, env_steps=counters["env_steps"], episodes=counters["episodes"], wall_time=clock.elapsed(),
        steps_per_s=(counters["env_steps"] - run.start_steps) / max(trained, 1e-9),
        eval_mean=None if played is None else float(played.returns.mean()),
        eval_std=None if played is None else float(played.returns.std()),
        stop_reason=reason, checkpoint=final, train_time=trained, session_time=clock.session(),
        eval_cut=0 if played is None else played.cut)
    _write_summary(result, run, trained, None if played is None else played.returns)
    if run.trackers is not None and result.eval_mean is not None:
        run.trackers.log_final({"final_eval_mean": result.eval_mean, "final_eval_std": float(result.eval_std or 0)},
                               steps)
    return result


def worker_seed(seed: int, rank: int, start_steps: int, restarts: int = 0) -> int:
    """Independent streams per worker (a vector env seeds its sub-envs seed, seed+1, ...: consecutive base seeds
    would make workers replay each other's episodes), and new ones after a resume or a restart."""
    return int(np.random.SeedSequence([seed, rank, start_steps, restarts]).generate_state(1)[0] & 0x7FFFFFFF)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write_summary(result: TrainResult, run: Run, trained: float, returns: np.ndarray | None = None) -> None:
    clock, metrics = run.clock, run.metrics
    first_steps = metrics.first_env_step_at
    summary = {
        "env_steps": result.env_steps, "episodes": result.episodes, "wall_time_s": round(result.wall_time, 3),
        "session_time_s": round(result.session_time, 3), "train_time_s": round(trained, 3),
        "held_time_s": round(clock.held, 3), "eval_time_s": round(clock.eval_time, 3),
        "steps_per_s": round(result.steps_per_s, 1), "eval_mean": result.eval_mean, "eval_std": result.eval_std,
        "eval_cut": result.eval_cut, "stop_reason": result.stop_reason,
        # each final episode's return: what a mean hides (a success rate, the spread)
        "eval_returns": None if returns is None else [round(float(r), 6) for r in returns],
        "checkpoint": str(result.checkpoint),
        "command": command_line(), "pacer_version": __version__,  # for the model card (`pacer package`)
        "started_at": clock.started_at, "first_env_step_at": [first_steps[k] for k in sorted(first_steps)],
        # where the time went: summed over workers by phase, and the parent's CPU outside evaluations
        "worker_time_s": {k.removeprefix("time_"): round(v, 3) for k, v in sorted(metrics.timings.items())},
        "parent_cpu_s": round(run.parent_cpu, 3),
        "workers": [{"rank": rank, **where} for rank, where in sorted(run.placement.items())],  # host of each
    }
    (result.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
