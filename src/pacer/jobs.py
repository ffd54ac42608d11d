"""Periodic jobs and stop rules: what the supervisor does now and then while workers train, and when it stops.

A job is one entry in a list: a function of the env steps, run every so many env steps or seconds (as Sample
Factory's periodic callbacks and SB3's `EveryNTimesteps` do), optionally within a share of the wall time. A stop
rule is one entry in another list: a function of the run's progress that names a reason to stop, or None. The
supervisor runs both lists; `standard_jobs` and `standard_stops` are what `pacer.train` gives it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pacer import checkpoint
from pacer.agent import Agent
from pacer.backends import Backend
from pacer.clock import Clock
from pacer.config import Config
from pacer.envs import EnvSpec
from pacer.errors import first_line
from pacer.evaluation import Played, run_episodes
from pacer.metrics import Metrics
from pacer.model import make_model
from pacer.runtime.shared import SharedState

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse training seeds


@dataclass
class Job:
    """`run(env_steps)` every `every` env steps (unit 'steps') or seconds of wall time (unit 'seconds'; 0: at
    every turn of the supervisor's loop). With `share` < 1, a run that took d seconds is followed by at least
    d x (1 - share) / share seconds without one, so the job takes at most that share of the wall time. No run
    once the env steps reach `until`."""

    name: str
    run: Callable[[int], object]
    every: float
    unit: Literal["steps", "seconds"] = "steps"
    share: float = 1.0
    until: int | None = None
    next_at: float = field(default=0.0, init=False)
    """The env steps (or monotonic time) at which the job is next due."""
    ready_at: float = field(default=0.0, init=False)
    """Monotonic time before which the job waits (its share of the wall time)."""

    def start(self, steps: int) -> None:
        self.next_at = _next_multiple(steps, self.every) if self.unit == "steps" else time.monotonic() + self.every

    def tick(self, steps: int) -> bool:
        """Run the job if it is due; True when it ran."""
        tic = time.monotonic()
        if (steps if self.unit == "steps" else tic) < self.next_at or tic < self.ready_at:
            return False
        if self.until is not None and steps >= self.until:
            return False
        self.run(steps)
        toc = time.monotonic()
        self.next_at = _next_multiple(steps, self.every) if self.unit == "steps" else toc + self.every
        if self.share < 1.0:
            self.ready_at = toc + (toc - tic) * (1.0 - self.share) / self.share
        return True


@dataclass(frozen=True)
class Progress:
    env_steps: int
    episodes: int
    trained: float
    """Seconds of training in this session (Clock.trained)."""


StopRule = Callable[[Progress], "str | None"]


class Greedy:
    """Greedy play of the run's current parameters, on a private snapshot, while the workers go on: evaluation
    returns and training videos."""

    def __init__(self, cfg: Config, shared: SharedState, spec: EnvSpec, run_dir: Path, log: Callable[[str], None]
                 ) -> None:
        self.cfg, self.shared, self.run_dir, self.log = cfg, shared, run_dir, log
        self.model = make_model(cfg.model, spec.kept_space, spec.action_space)
        self.agent = Agent(self.model, cfg, spec)
        self.seed = cfg.runtime.seed + EVAL_SEED_OFFSET
        rt, env = cfg.runtime, cfg.env
        limits = [n for n in (env.max_episode_steps, rt.eval_max_episode_steps) if n is not None]
        self.env = dataclasses.replace(env, max_episode_steps=min(limits) if limits else None)

    def returns(self, episodes: int, first: int = 0) -> Played:
        """`episodes` greedy episodes, the run's evaluation episodes `first`, `first` + 1, ... (each its own seed),
        within `runtime.eval_max_seconds` (a line says when episodes were cut)."""
        self.model.load_state_dict(self.shared.snapshot())
        rt = self.cfg.runtime
        # the env's NumPy-vectorized form where it has one: an evaluation costs the run a core while it lasts
        played = run_episodes(self.model, self.env, episodes, self.seed + first, greedy=True, numpy_vectorized=True,
                              max_seconds=rt.eval_max_seconds)
        if played.cut:
            self.log(f"pacer: note: {played.cut} of {episodes} evaluation episodes still running after "
                     f"runtime.eval_max_seconds ({rt.eval_max_seconds:g} s) were cut, scored with their return so far "
                     "(raise it to play them out)")
        return played

    def video(self, name: str) -> None:
        """videos/<name>.mp4: one greedy episode. A video is a view of the run: a full disk or a renderer's bug is
        a warning, not the run's end."""
        from pacer.video import record

        self.model.load_state_dict(self.shared.snapshot())
        try:
            record(self.agent, self.run_dir / "videos", 1, self.seed, names=[name])
        except Exception as exc:
            _warn(f"pacer: warning: video {name} not written: {type(exc).__name__}: {first_line(exc)}")


class Evaluation:
    """The evaluation job: greedy episodes, a metrics row with their mean, and, once the mean reaches the target
    (`runtime.stop_at_return`), a longer evaluation with the workers held that confirms it (`confirmed`: its
    returns, on the very parameters the run then ends with)."""

    def __init__(self, cfg: Config, returns: Callable[[int, int], Played], backend: Backend,
                 shared: SharedState, metrics: Metrics, clock: Clock) -> None:
        rt = cfg.runtime
        self.returns, self.backend, self.shared, self.metrics, self.clock = returns, backend, shared, metrics, clock
        self.episodes, self.confirm_episodes, self.pause = rt.eval_episodes, rt.confirm_episodes, rt.pause_for_eval
        target = rt.stop_at_return
        self.target = float(target) if isinstance(target, (int, float)) else None
        self.confirmed: Played | None = None

    def __call__(self, steps: int) -> None:
        # New episodes each time (numbered from the step count, past the confirming ones): a fixed few would make
        # the target unreachable wherever their own best mean falls short of it, however good the policy (a
        # Taxi-v4 run's 10 fixed episodes scored 6.1 for 1M steps; the optimum is 7.93 on average).
        first = self.confirm_episodes + steps
        if self.pause:  # workers finish their rollouts first: that time still counts as training
            held = self.backend.pause()
            try:
                with self.clock.holding() if held else nullcontext():
                    played = self.clock.evaluating(lambda: self.returns(self.episodes, first))
            finally:
                self.backend.resume()
        else:
            played = self.clock.evaluating(lambda: self.returns(self.episodes, first))
        mean = float(played.returns.mean())
        write_row(self.metrics, self.shared, self.clock, mean, played.cut)
        if self.target is not None and mean >= self.target:
            self.confirm(self.target)

    def confirm(self, target: float) -> None:
        """Check the target on `confirm_episodes` episodes with the workers held, so that the parameters confirmed
        are the ones the run ends with: on success the workers are never let go. A pause that could not hold every
        worker confirms nothing (the parameters could still change under the evaluation)."""
        episodes, solved = self.confirm_episodes, False
        held = self.backend.pause()
        tic = time.monotonic()
        try:
            if not held:
                self.metrics.log("pacer: not every worker could be held for the confirming evaluation; training on")
                return
            played = self.clock.evaluating(lambda: self.returns(episodes, 0))  # the run's fixed episodes
            steps, mean = self.shared.counters()["env_steps"], played.returns.mean()
            solved = bool(mean >= target) and not played.cut  # a cut episode's score is not its whole game's
            if solved:
                self.confirmed = played
            why = f", {played.cut} episodes cut" if played.cut else ""
            self.metrics.log(f"pacer: solved: {episodes}-episode greedy mean {mean:.1f} >= {target:g} at {steps:,} "
                             "env steps; stopping" if solved else f"pacer: not yet solved: {episodes}-episode greedy "
                             f"mean {mean:.1f}{why} (target {target:g}) at {steps:,} env steps; training on")
        finally:
            if held:
                self.clock.held += time.monotonic() - tic
            if not solved:
                self.backend.resume()


def standard_jobs(cfg: Config, shared: SharedState, metrics: Metrics, clock: Clock, evaluation: Evaluation | None,
                  save: Callable[[str], Path], video: Callable[[str], None]) -> list[Job]:
    """What a run does while it trains: evaluations, periodic checkpoints (`save(name)`), training videos
    (`video(name)`), metric rows."""
    rt, log = cfg.runtime, cfg.log
    jobs = []
    if evaluation is not None:
        jobs.append(Job("evaluation", evaluation, rt.eval_every, share=rt.eval_share))
    if log.checkpoint_every:
        jobs.append(Job("checkpoint", lambda steps: save_periodic(save, f"step_{steps}", log.keep_checkpoints),
                        log.checkpoint_every))
    if log.video_every:  # at the budget's end final.mp4 films these very parameters: no step_N.mp4 twin
        jobs.append(Job("video", lambda steps: clock.evaluating(lambda: video(f"step_{steps}")),
                        log.video_every, share=rt.eval_share, until=rt.total_steps))
    jobs.append(Job("row", lambda steps: write_row(metrics, shared, clock), log.report_every, unit="seconds"))
    return jobs


def standard_stops(cfg: Config, evaluation: Evaluation | None) -> list[StopRule]:
    """When a run ends: its step budget, episode budget, time limit, or a target return confirmed."""
    rt = cfg.runtime
    rules: list[StopRule] = [lambda p: "total_steps" if p.env_steps >= rt.total_steps else None]
    if rt.total_episodes is not None:
        episodes = rt.total_episodes
        rules.append(lambda p: "total_episodes" if p.episodes >= episodes else None)
    if rt.time_limit is not None:
        limit = rt.time_limit
        rules.append(lambda p: "time_limit" if p.trained >= limit else None)
    if evaluation is not None and evaluation.target is not None:
        rules.append(lambda p: "target_return" if evaluation.confirmed is not None else None)
    return rules


def write_row(metrics: Metrics, shared: SharedState, clock: Clock, eval_mean: float | None = None,
              eval_cut: int = 0) -> None:
    metrics.row(shared.counters(), clock.elapsed(), eval_mean, clock.eval_time, eval_cut)


def save_periodic(save: Callable[[str], Path], name: str, keep: int) -> None:
    try:
        checkpoint.rotate(save(name).parent, keep)
    except OSError as exc:  # a full disk should not end the run; the final save will try again
        _warn(f"pacer: warning: checkpoint {name} not written: {exc}")


def _next_multiple(steps: int, every: float) -> float:
    return (steps // every + 1) * every if every else math.inf


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
