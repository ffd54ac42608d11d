"""`pacer tune`: search an env's hyperparameters with Optuna (TPE sampler, median pruner).

Each trial is one `pacer train` run in a subprocess of its own (its workers local processes, inline, or Ray actors),
with `parallel` trials at a time. The tuner follows each trial's metrics file: every greedy evaluation is reported
to Optuna as an intermediate value, and a trial the pruner gives up on is stopped with SIGTERM (a clean shutdown).
A trial's score is its final greedy evaluation. Trials train to their budget (no stop-when-solved: an early stop
would hide a later collapse). The study lives in SQLite (`<dir>/study.db`): the same command run again continues
it up to `trials` trials. The best trial's settings are written as a YAML config for `pacer train --config`.

The tuner itself imports neither torch nor gymnasium; it needs the tune extra (`pip install 'pacer-rl[tune]'`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pacer.config import Config, merge, nest
from pacer.errors import PacerError
from pacer.runtime.processes import terminate_with_parent

Log = Callable[[str], None]
POLL_S = 0.5
STOP_GRACE_S = 30.0

# Hidden layer choices by name: Optuna's categorical values must be plain scalars.
NETS = {"64x64": [64, 64], "128x128": [128, 128], "256x256": [256, 256]}


def sample(trial: Any, algo: str, continuous: bool, memory: bool = False) -> dict[str, Any]:
    """One trial's settings (dotted keys). The ranges are those of rl-baselines3-zoo's PPO/A2C searches, narrowed to
    what trains on a few CPU cores; PPO's own settings only for PPO, the Gaussian policy's only for Box actions, the
    recurrent core's size only when the base config has one (`model.memory`)."""
    s: dict[str, Any] = {
        "algo.lr": trial.suggest_float("lr", 1e-5, 3e-3, log=True),
        "algo.lr_schedule": trial.suggest_categorical("lr_schedule", ["constant", "linear"]),
        "env.envs_per_worker": trial.suggest_categorical("envs_per_worker", [4, 8, 16, 32, 64]),
        "algo.n_steps": trial.suggest_categorical("n_steps", [8, 16, 32, 64, 128, 256, 512]),
        "algo.gamma": trial.suggest_categorical("gamma", [0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]),
        "algo.gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]),
        "algo.entropy_coef": trial.suggest_float("entropy_coef", 1e-8, 0.05, log=True),
        "algo.max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 0.8, 1.0, 2.0, 5.0]),
        "model.hidden": NETS[trial.suggest_categorical("net", list(NETS))],
        "model.activation": trial.suggest_categorical("activation", ["tanh", "relu"]),
        "model.normalize_input": trial.suggest_categorical("normalize_input", ["none", "running"]),
    }
    if algo == "ppo":
        s["algo.epochs"] = trial.suggest_categorical("epochs", [1, 3, 5, 10, 20])
        s["algo.clip_range"] = trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3, 0.4])
        # a minibatch of at least 16 rows (a recurrent model's: of at least one env's whole rollout, its sequences
        # being whole rollouts): the sampled count is capped, not the trial thrown away
        units = s["env.envs_per_worker"] if memory else s["env.envs_per_worker"] * s["algo.n_steps"] // 16
        s["algo.minibatches"] = min(trial.suggest_categorical("minibatches", [1, 2, 4, 8, 16, 32]), max(1, units))
    if memory:
        s["model.memory_size"] = trial.suggest_categorical("memory_size", [32, 64, 128, 256])
        s["algo.sequence_length"] = None  # the whole rollout, whatever n_steps was drawn
    if continuous:
        s["model.log_std_init"] = trial.suggest_categorical("log_std_init", [-2.0, -1.0, -0.5, 0.0])
        s["algo.scale_rewards"] = trial.suggest_categorical("scale_rewards", [False, True])
    return s


@dataclass
class Running:
    """A trial being trained: its Optuna trial, process and metrics file (read on from `offset`)."""

    trial: Any
    process: subprocess.Popen[bytes]
    run_dir: Path
    eval_every: int
    offset: int = 0
    reported: list[tuple[int, float]] = field(default_factory=list)
    pruned: bool = False


@dataclass(frozen=True)
class TuneSpec:
    """What to tune: the base config (a nested dict, as for `pacer train --config`, env included) and the budget."""

    base: dict[str, Any]
    trials: int
    parallel: int
    steps: int
    directory: Path
    seed: int = 100
    evaluations: int = 10
    eval_episodes: int = 10
    final_episodes: int = 20
    study_name: str | None = None
    seconds: float | None = None
    """Also a trial's training-time budget (`runtime.time_limit`): for tasks judged by the return after a time."""

    @property
    def memory(self) -> bool:
        """Whether the base config has a recurrent core, whose size the search then includes."""
        return (self.base.get("model") or {}).get("memory", "none") != "none"

    @property
    def eval_every(self) -> int:
        return max(1, self.steps // self.evaluations)


def trial_config(spec: TuneSpec, params: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The config a trial trains with: the base, the sampled settings, then the tuner's own run settings."""
    runtime = {"total_steps": spec.steps, "time_limit": spec.seconds, "seed": spec.seed, "stop_at_return": None,
               "eval_every": spec.eval_every, "eval_episodes": spec.eval_episodes,
               "final_eval_episodes": spec.final_episodes, "eval_share": 1.0}
    return merge(merge(spec.base, nest(params)), {"runtime": runtime,
                                                  "log": {"run_dir": str(run_dir), "progress": False,
                                                          "tensorboard": False, "checkpoint_every": 0}})


def _launch(config: dict[str, Any], run_dir: Path) -> subprocess.Popen[bytes]:
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    path = run_dir.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with run_dir.with_suffix(".log").open("wb") as log:
        # its own session, so a Ctrl-C at the tuner's terminal reaches the tuner, which stops the trials itself;
        # and SIGTERM if the tuner dies without stopping them
        return subprocess.Popen([sys.executable, "-m", "pacer", "train", "--config", str(path), "--preset", "none"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=terminate_with_parent)


def new_evaluations(running: Running) -> list[tuple[int, float]]:
    """The greedy evaluations the trial's metrics file gained since the last read: (env steps, mean return)."""
    path = running.run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(running.offset)
        data = f.read()
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
    running.offset += end
    out = []
    for line in data[:end].splitlines():
        row = json.loads(line)
        if row.get("eval_return") is not None:
            out.append((int(row["env_steps"]), float(row["eval_return"])))
    return out


def score(running: Running) -> float | None:
    """The trial's final greedy evaluation (summary.json), else its last intermediate one; None if it has none."""
    summary = running.run_dir / "summary.json"
    if summary.exists():
        value = json.loads(summary.read_text()).get("eval_mean")
        if value is not None:
            return float(value)
    return running.reported[-1][1] if running.reported else None


def stop(process: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM (the run shuts its workers down and saves), then SIGKILL to the session if it does not end."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def follow(running: Running, log: Log) -> None:
    """Report the trial's new evaluations; stop it if the pruner says so."""
    for steps, value in new_evaluations(running):
        running.reported.append((steps, value))
        # Optuna's pruners compare trials at equal steps: the evaluation's index, not the env steps (which differ
        # from trial to trial by a rollout's length)
        running.trial.report(value, steps // running.eval_every)
        if not running.pruned and running.trial.should_prune():
            running.pruned = True
            log(f"trial {running.trial.number}: pruned at {steps:,} env steps (greedy return {value:.1f})")
            stop(running.process)
            return


def make_study(spec: TuneSpec, log: Log) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec.directory.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(spec.directory / 'study.db').resolve()}"
    name = spec.study_name or str(nest(spec.base).get("env", {}).get("id", "CartPole-v1"))
    study = optuna.create_study(
        study_name=name, storage=storage, load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=min(10, max(1, spec.trials // 4))),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, spec.trials // 4)),
                                           n_warmup_steps=spec.evaluations // 4))
    # a tuner stopped hard left these running: they ended with it
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        log(f"trial {t.number}: left unfinished by an earlier tuner, marked failed")
    return study


def tune(spec: TuneSpec, algo: str, continuous: bool, log: Log = print) -> dict[str, Any]:
    """Run the study to `spec.trials` trials (counting those of an earlier run of it); returns the best's record."""
    import optuna

    study = make_study(spec, log)
    done = len(study.trials)
    if done:
        log(f"continuing study {study.study_name!r}: {done} trial(s) already in {spec.directory / 'study.db'}")
    running: list[Running] = []
    try:
        while done < spec.trials or running:
            while done < spec.trials and len(running) < spec.parallel:
                trial = study.ask()
                params = sample(trial, algo, continuous, spec.memory)
                run_dir = spec.directory / "trials" / f"trial-{trial.number:03d}"
                process = _launch(trial_config(spec, params, run_dir), run_dir)
                trial.set_user_attr("run_dir", str(run_dir))
                running.append(Running(trial, process, run_dir, spec.eval_every))
                done += 1
            time.sleep(POLL_S)
            for r in list(running):
                follow(r, log)
                if r.process.poll() is None:
                    continue
                running.remove(r)
                follow(r, log)  # evaluations written just before it ended
                value = score(r)
                if r.pruned:
                    study.tell(r.trial, state=optuna.trial.TrialState.PRUNED)
                elif r.process.returncode != 0 or value is None or not math.isfinite(value):
                    study.tell(r.trial, state=optuna.trial.TrialState.FAIL)
                    log(f"trial {r.trial.number}: failed (exit {r.process.returncode}; see {r.run_dir}.log)")
                else:
                    study.tell(r.trial, value)
                    log(f"trial {r.trial.number}: {value:.1f}")
    finally:
        for r in running:  # Ctrl-C, or an error in the tuner: no trial outlives it
            stop(r.process)
            with contextlib.suppress(Exception):
                study.tell(r.trial, state=optuna.trial.TrialState.FAIL)
    return summarize(study, spec, algo, continuous)


def summarize(study: Any, spec: TuneSpec, algo: str, continuous: bool) -> dict[str, Any]:
    import optuna

    states = [t.state for t in study.trials]
    counts = {s.name.lower(): states.count(s) for s in optuna.trial.TrialState if states.count(s)}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise PacerError(f"no trial of study {study.study_name!r} finished; see the logs in {spec.directory}/trials")
    best = study.best_trial
    params = sample(optuna.trial.FixedTrial(best.params), algo, continuous, spec.memory)
    tuned = merge(spec.base, nest(params))
    # the trials' worker count and budget stay (the settings were found with them); where they ran does not
    workers = tuned["runtime"]["workers"]
    config = {**{key: tuned[key] for key in ("env", "model", "algo")},
              "runtime": {"workers": workers, "total_steps": spec.steps, "time_limit": spec.seconds}}
    Config.from_dict(config)  # what we write must load
    out = spec.directory / "best.yaml"
    header = (f"# pacer tune: best of {len(complete)} finished trial(s) of study {study.study_name!r} "
              f"(trial {best.number}, final greedy return {best.value:.1f} after {spec.steps:,} env steps"
              f"{'' if spec.seconds is None else f' or {spec.seconds:g} s'} with {workers} worker(s), seed "
              f"{spec.seed}).\n# Train with: pacer train --config {out}\n")
    out.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return {"study": study.study_name, "trials": counts, "best_trial": best.number, "best_value": best.value,
            "best_params": best.params, "config": str(out)}
