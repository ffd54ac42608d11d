"""The supervisor: the parent's loop while workers run.

It drains reports into metrics, runs evaluations and checkpoints on their cadence, watches for dead workers, and
decides when the run ends (step budget, time limit, a target return confirmed by a longer evaluation). It never
touches the hot path: workers count their own steps and update the model without it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from pacer.backends import Backend
from pacer.config import Config
from pacer.errors import WorkerFailed
from pacer.metrics import Metrics
from pacer.runtime.shared import SharedState

POLL_S = 0.1
T = TypeVar("T")


@dataclass
class Clock:
    """Wall time of the run, carried over a resume; evaluation time is kept apart from training time."""

    before: float = 0.0
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    """Epoch time of this session's start, so benchmarks can relate the run's times to the command's start."""
    eval_time: float = 0.0
    eval_before: float = 0.0
    """Evaluation time of earlier sessions (resume)."""
    eval_cpu: float = 0.0
    """CPU seconds this process spent evaluating (kept apart from the parent's share of the training work)."""

    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.started


class Supervisor:
    def __init__(self, cfg: Config, shared: SharedState, backend: Backend, metrics: Metrics, clock: Clock,
                 evaluate: Callable[[int], NDArray[np.float64]], checkpoint: Callable[[str], object],
                 target: float | None = None, record: Callable[[str], object] | None = None) -> None:
        """`evaluate(episodes)` returns the greedy returns of the current parameters; `target` is the mean
        return that stops the run once confirmed (None: no early stop); `record(name)` films a greedy episode."""
        self.cfg, self.shared, self.backend, self.metrics, self.clock = cfg, shared, backend, metrics, clock
        self.evaluate, self.checkpoint, self.target, self.record = evaluate, checkpoint, target, record
        self.confirmed: NDArray[np.float64] | None = None
        """The confirming evaluation's returns, once the target is reached (the final parameters' score)."""
        steps = shared.counters()["env_steps"]
        rt, log = cfg.runtime, cfg.log
        self.next_eval = _next_multiple(steps, rt.eval_every)
        self.next_checkpoint = _next_multiple(steps, log.checkpoint_every)
        self.next_video = _next_multiple(steps, log.video_every if record is not None else 0)
        self.next_row = 0.0
        self.last_eval: float | None = None
        self.restarts = 0
        self.stop_requested: Callable[[], bool] = lambda: False

    def run(self) -> str:
        """Supervise until the run should end; returns why ('total_steps', 'time_limit', 'target_return')."""
        rt = self.cfg.runtime
        session_start, eval_before = time.monotonic(), self.clock.eval_time
        while True:
            if self.stop_requested():
                return "interrupted"
            for report in self.backend.poll(POLL_S):
                self.metrics.absorb(report)
            for rank, message in self.backend.failures():
                self.restart(rank, message)
            steps = self.shared.counters()["env_steps"]
            eval_mean = None
            if rt.eval_every and steps >= self.next_eval:
                eval_mean = self._evaluate()
                self.next_eval = _next_multiple(steps, rt.eval_every)
            if self.cfg.log.checkpoint_every and steps >= self.next_checkpoint:
                self.checkpoint(f"step_{steps}")
                self.next_checkpoint = _next_multiple(steps, self.cfg.log.checkpoint_every)
            # at the budget's end final.mp4 films these very parameters: no step_N.mp4 twin
            if self.record is not None and steps >= self.next_video and steps < rt.total_steps:
                self.timed(functools.partial(self.record, f"step_{steps}"))
                self.next_video = _next_multiple(steps, self.cfg.log.video_every)
            now = time.monotonic()
            if eval_mean is not None or now >= self.next_row:
                self.row(eval_mean)
                self.next_row = now + self.cfg.log.report_every
            if steps >= rt.total_steps:
                return "total_steps"
            if rt.total_episodes is not None and self.shared.counters()["episodes"] >= rt.total_episodes:
                return "total_episodes"
            # the limit is on training time: evaluations (and confirmations) do not use it up
            trained = now - session_start - (self.clock.eval_time - eval_before)
            if rt.time_limit is not None and trained >= rt.time_limit:
                return "time_limit"
            if self.target is not None and eval_mean is not None and eval_mean >= self.target and self._confirm():
                return "target_return"

    def restart(self, rank: int, message: str) -> None:
        """A worker died: show its own traceback, then restart it while the run's restart budget lasts."""
        budget = self.cfg.runtime.max_restarts
        if self.restarts >= budget:
            raise WorkerFailed(f"{message.rstrip()}\nthe restart budget (runtime.max_restarts = {budget}) is spent; "
                               "the run stops with its last parameters saved")
        self.restarts += 1
        self.metrics.log(f"pacer: {message.rstrip()}\npacer: restarting worker {rank} "
                         f"(restart {self.restarts} of {budget})")
        self.backend.restart(rank)

    def row(self, eval_mean: float | None = None) -> None:
        self.metrics.row(self.shared.counters(), self.clock.elapsed(), eval_mean, self.clock.eval_time)

    def _evaluate(self) -> float:
        pause = self.cfg.runtime.pause_for_eval
        if pause:  # workers finish their rollouts first: that time still counts as training
            self.backend.pause()
        try:
            mean = float(self._timed_evaluation(self.cfg.runtime.eval_episodes).mean())
        finally:
            if pause:
                self.backend.resume()
        self.last_eval = mean
        return mean

    def _confirm(self) -> bool:
        """An evaluation reached the target: check it on `confirm_episodes` episodes with the workers held, so that
        the parameters confirmed are the ones the run ends with (on success they are never resumed)."""
        episodes, target = self.cfg.runtime.confirm_episodes, self.target
        self.backend.pause()
        solved = False
        try:
            returns = self._timed_evaluation(episodes)
            steps = self.shared.counters()["env_steps"]
            solved = bool(returns.mean() >= target)
            if solved:
                self.confirmed = returns
                self.metrics.log(f"pacer: solved: {episodes}-episode greedy mean {returns.mean():.1f} >= {target:g} "
                                 f"at {steps:,} env steps; stopping")
            else:
                self.metrics.log(f"pacer: not yet solved: {episodes}-episode greedy mean {returns.mean():.1f} < "
                                 f"{target:g} at {steps:,} env steps; training on")
        finally:
            if not solved:
                self.backend.resume()
        return solved

    def _timed_evaluation(self, episodes: int) -> NDArray[np.float64]:
        return self.timed(lambda: self.evaluate(episodes))

    def timed(self, work: Callable[[], T]) -> T:
        """Run evaluation work (an evaluation, a video), its time and CPU kept apart from training's."""
        tic, cpu = time.monotonic(), time.process_time()
        try:
            return work()
        finally:
            self.clock.eval_time += time.monotonic() - tic
            self.clock.eval_cpu += time.process_time() - cpu


def _next_multiple(steps: int, every: int) -> int:
    return (steps // every + 1) * every if every else 2**62
