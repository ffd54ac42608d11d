"""`train(config) -> TrainResult`: the story of a run, top to bottom.

config -> shared state (model, optimizer state, counters) -> backend starts workers -> supervisor drains reports,
evaluates, checkpoints -> workers stop -> final checkpoint, final evaluation, summary.json.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pacer import checkpoint
from pacer.agent import Agent
from pacer.algos import get_algo
from pacer.backends import Backend, backend_module
from pacer.config import Config, load_yaml, merge, nest, save_yaml
from pacer.envs import check_env_id, spaces_of, stop_target
from pacer.errors import PacerError, first_line
from pacer.evaluation import run_episodes
from pacer.metrics import Metrics
from pacer.model import action_kind, make_model
from pacer.presets import announce, resolve
from pacer.resume import check_resume, checkpoint_payload, restore_run
from pacer.runtime.signals import StopSignals
from pacer.supervisor import Clock, Supervisor
from pacer.video import check_can_record, record
from pacer.worker import WorkerSpec

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse training seeds


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    env_steps: int
    episodes: int
    wall_time: float
    """Seconds of the whole run (over resumes), evaluation included."""
    steps_per_s: float
    """Env steps per second of training time (wall time minus evaluation time)."""
    eval_mean: float | None
    eval_std: float | None
    stop_reason: str
    checkpoint: Path


def train(config: Config | dict[str, Any] | None = None, *, preset: str | None = "auto",
          resume: str | Path | None = None, **overrides: Any) -> TrainResult:
    """Train an agent. `config` is a Config or nested dict (on top of `preset`: by default the one tuned for its
    env and algorithm, if any; 'none' for the plain defaults); `overrides` use '__' for '.', e.g.
    `train(runtime__workers=2)`. With `resume=RUN_DIR` the saved run continues where it stopped."""
    dotted = {k.replace("__", "."): v for k, v in overrides.items()}
    saved: dict[str, Any] | None = None
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file():
            raise PacerError(f"cannot resume {str(run_dir)!r}: it holds no config.yaml from an earlier run")
        saved = checkpoint.load(checkpoint.find(run_dir))
        cfg = Config.from_dict(load_yaml(run_dir / "config.yaml")).replace(dotted)
        check_resume(saved, cfg, run_dir)
    else:
        if isinstance(config, Config):
            cfg = resolve(config, preset).replace(dotted)
        else:  # the preset is chosen for the env and algorithm the config and overrides ask for
            wanted = merge(nest(config or {}), nest(dotted))
            line = announce(wanted, preset)
            if line is not None:
                _stderr(line)
            cfg = resolve(wanted, preset)
        run_dir = _new_run_dir(cfg)
    check_env_id(cfg.env.id)
    if cfg.log.video_every:
        check_can_record(cfg.env.id, cfg.env.max_episode_steps, cfg.env.kwargs)
    algorithm = get_algo(cfg.algo.name)
    obs_space, act_space = spaces_of(cfg.env.id, cfg.env.max_episode_steps, cfg.env.kwargs)
    kind = action_kind(act_space)
    torch.manual_seed(cfg.runtime.seed)
    model = make_model(cfg.model, obs_space, act_space)
    where = backend_module(cfg.runtime.backend)  # only backends/ knows where workers run
    where.preflight(cfg, model, _stderr)
    shared = where.make_shared(cfg, model)
    clock = Clock()
    worker_states: list[Any] = [None] * cfg.runtime.workers
    if saved is not None:
        worker_states = restore_run(saved, shared, cfg, clock)
    left_out = _left_out(worker_states)
    if left_out:
        _stderr(f"pacer: note: this resume is not bit-exact: the checkpoint left out objects of {cfg.env.id}'s "
                f"state ({left_out}), so workers start fresh episodes")
    start_steps = shared.counters()["env_steps"]
    specs = [WorkerSpec(cfg, rank, worker_seed(cfg.runtime.seed, rank, start_steps), algorithm, worker_states[rank])
             for rank in range(cfg.runtime.workers)]
    backend: Backend = where.create(specs, shared, lambda rank, restarts: worker_seed(cfg.runtime.seed, rank,
                                                                                       start_steps, restarts))
    run_dir.mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, run_dir / "config.yaml")
    eval_model = make_model(cfg.model, obs_space, act_space)

    def evaluate(episodes: int) -> np.ndarray:
        eval_model.load_state_dict(shared.snapshot())
        return run_episodes(eval_model, kind, cfg.env.id, episodes, cfg.runtime.seed + EVAL_SEED_OFFSET,
                            greedy=True, max_episode_steps=cfg.env.max_episode_steps, env_kwargs=cfg.env.kwargs)

    def record_video(name: str) -> None:
        eval_model.load_state_dict(shared.snapshot())
        agent = Agent(eval_model, cfg, kind, act_space, tuple(obs_space.shape or ()))
        try:
            record(agent, run_dir / "videos", 1, cfg.runtime.seed + EVAL_SEED_OFFSET, names=[name])
        except Exception as exc:  # a video is a view of the run: a full disk or a renderer's bug does not end it
            _stderr(f"pacer: warning: video {name} not written: {type(exc).__name__}: {first_line(exc)}")

    def save(name: str) -> Path:
        path = run_dir / "checkpoints" / f"{name}.pt"
        workers = [backend.final_states.get(rank) for rank in range(cfg.runtime.workers)] if name == "final" else []
        left_out = _left_out(workers)
        if left_out:
            _stderr(f"pacer: note: {cfg.env.id}'s state holds objects that are not plain data ({left_out}): "
                    "left out of the checkpoint, so a resume starts fresh episodes (not bit-exact)")
        checkpoint.save(path, checkpoint_payload(cfg, shared, clock, workers))
        return path

    def save_periodic(name: str) -> None:
        try:
            checkpoint.rotate(save(name).parent, cfg.log.keep_checkpoints)
        except OSError as exc:  # a full disk should not end the run; the final save will try again
            print(f"pacer: warning: checkpoint {name} not written: {exc}", file=sys.stderr)

    metrics = Metrics(run_dir, cfg.log.metrics_format, cfg.log.tensorboard, cfg.log.progress,
                      cfg.runtime.total_steps, start_steps)
    target = stop_target(cfg.env.id, cfg.runtime.stop_at_return)
    if target is not None and cfg.runtime.eval_every:
        source = "its reward_threshold" if cfg.runtime.stop_at_return == "auto" else "runtime.stop_at_return"
        _stderr(f"pacer: stops once a greedy evaluation of {cfg.env.id} reaches {target:g} ({source}), confirmed on "
                f"{cfg.runtime.confirm_episodes} episodes; runtime.stop_at_return=null trains to the budget")
    supervisor = Supervisor(cfg, shared, backend, metrics, clock, evaluate, save_periodic,
                            target if cfg.runtime.eval_every else None, record_video if cfg.log.video_every else None)
    user_threads = torch.get_num_threads()
    # The parent evaluates while workers run: more threads here only fight the workers for cores.
    torch.set_num_threads(cfg.runtime.threads_per_worker)
    stopped_by: KeyboardInterrupt | None = None
    with StopSignals() as signals:  # Ctrl-C / SIGTERM now ask for a stop; a second one forces it
        supervisor.stop_requested = lambda: signals.received is not None
        parent_cpu = time.process_time()
        try:
            try:
                backend.start(supervisor.stop_requested)
                reason = supervisor.run()
            except KeyboardInterrupt as exc:  # outside the main thread, signals still raise
                reason, stopped_by = "interrupted", exc
            finally:
                for report in backend.stop():
                    metrics.absorb(report)
                placement = backend.placement()
                supervisor.row()
                parent_cpu = time.process_time() - parent_cpu - clock.eval_cpu
                final = save("final")
        finally:
            metrics.close()
            torch.set_num_threads(user_threads)
    if stopped_by is not None:
        raise stopped_by
    signals.raise_if_received()  # after a clean stop and a final checkpoint: the caller decides what it means

    if cfg.log.video_every:
        supervisor.timed(lambda: record_video("final"))
    eval_returns = supervisor.confirmed  # a run that stopped solved was just scored, on these very parameters
    if eval_returns is None and cfg.runtime.final_eval_episodes:
        tic = time.monotonic()
        eval_returns = evaluate(cfg.runtime.final_eval_episodes)
        clock.eval_time += time.monotonic() - tic
    counters = shared.counters()
    wall = clock.elapsed()
    session_train_time = wall - clock.before - (clock.eval_time - clock.eval_before)
    result = TrainResult(
        run_dir=run_dir, env_steps=counters["env_steps"], episodes=counters["episodes"], wall_time=wall,
        steps_per_s=(counters["env_steps"] - start_steps) / max(session_train_time, 1e-9),
        eval_mean=None if eval_returns is None else float(eval_returns.mean()),
        eval_std=None if eval_returns is None else float(eval_returns.std()),
        stop_reason=reason, checkpoint=final)
    _write_summary(result, clock, metrics, parent_cpu, placement)
    return result


def _new_run_dir(cfg: Config) -> Path:
    if cfg.log.run_dir is not None:
        path = Path(cfg.log.run_dir)
        if path.exists() and any(path.iterdir()):
            raise PacerError(f"run directory {str(path)!r} already exists; continue it with --resume {path} "
                             "or choose another --run-dir")
        return path
    env_name = str(cfg.env.id).replace(":", "_").replace("/", "_")
    base = Path("runs") / f"{env_name}-{cfg.algo.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():  # two runs started in the same second
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def worker_seed(seed: int, rank: int, start_steps: int, restarts: int = 0) -> int:
    """Independent streams per worker (a vector env seeds its sub-envs seed, seed+1, ...: consecutive base seeds
    would make workers replay each other's episodes), and new ones after a resume or a restart."""
    return int(np.random.SeedSequence([seed, rank, start_steps, restarts]).generate_state(1)[0] & 0x7FFFFFFF)


def _left_out(worker_states: list[Any]) -> str:
    """What the env state capture could not store (the same for every worker: report one), for a note."""
    from pacer.envstate import opaque_items

    for state in worker_states:
        if state is not None:
            # every sub-env holds the same kinds of objects: name each attribute once
            names = dict.fromkeys(item.rsplit(".", 1)[-1] for item in opaque_items(state["collector"]["env"]))
            if names:
                more = f" and {len(names) - 3} more" if len(names) > 3 else ""
                return ", ".join(list(names)[:3]) + more
    return ""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write_summary(result: TrainResult, clock: Clock, metrics: Metrics, parent_cpu: float,
                   placement: dict[int, dict[str, Any]]) -> None:
    first_steps = metrics.first_env_step_at
    summary = {
        "env_steps": result.env_steps, "episodes": result.episodes, "wall_time_s": round(result.wall_time, 3),
        "eval_time_s": round(clock.eval_time, 3), "steps_per_s": round(result.steps_per_s, 1),
        "eval_mean": result.eval_mean, "eval_std": result.eval_std, "stop_reason": result.stop_reason,
        "checkpoint": str(result.checkpoint),
        "started_at": clock.started_at, "first_env_step_at": [first_steps[k] for k in sorted(first_steps)],
        # where the time went: summed over workers by phase, and the parent's CPU outside evaluations
        "worker_time_s": {k.removeprefix("time_"): round(v, 3) for k, v in sorted(metrics.timings.items())},
        "parent_cpu_s": round(parent_cpu, 3),
        "workers": [{"rank": rank, **where} for rank, where in sorted(placement.items())],  # host (node) of each
    }
    (result.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
