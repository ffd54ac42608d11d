"""What workers tell the supervisor: one typed report per rollout (numbers and NumPy arrays only, so it can
travel through a pipe or Ray's object store), and the two messages that end a worker's life.

A worker that cannot send a report right away (no credit on its pipe) folds it into the next one with `merge`, so
no episode and no step is ever lost, and logging never waits on the parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray


def _no_returns() -> NDArray[np.float64]:
    return np.zeros(0, dtype=np.float64)


def _no_lengths() -> NDArray[np.int64]:
    return np.zeros(0, dtype=np.int64)


@dataclass
class Report:
    worker: int
    env_steps: int = 0
    updates: int = 0
    episode_returns: NDArray[np.float64] = field(default_factory=_no_returns)
    episode_lengths: NDArray[np.int64] = field(default_factory=_no_lengths)
    stats: dict[str, float] = field(default_factory=dict)
    """The algorithm's latest numbers (losses, entropy, gradient norm, ...)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase since the last report: env, inference, returns, learn, optimizer, sync, report."""
    first_env_step_at: float | None = None
    """Epoch time of this worker's first env step, sent once (cold-start benchmarks)."""

    def merge(self, newer: Report) -> Report:
        """This report followed by `newer`, as one: counts and times add up, episodes concatenate, the newer
        statistics win, a one-off time is kept from whichever carried it."""
        timings = dict(self.timings)
        for key, seconds in newer.timings.items():
            timings[key] = timings.get(key, 0.0) + seconds
        return Report(
            worker=newer.worker, env_steps=self.env_steps + newer.env_steps, updates=self.updates + newer.updates,
            episode_returns=np.concatenate([self.episode_returns, newer.episode_returns]),
            episode_lengths=np.concatenate([self.episode_lengths, newer.episode_lengths]),
            stats={**self.stats, **newer.stats}, timings=timings,
            first_env_step_at=self.first_env_step_at if self.first_env_step_at is not None
            else newer.first_env_step_at)


@dataclass
class Finished:
    """A worker's last message after a clean stop: its state for an exact resume, and what it had not yet sent."""

    worker: int
    state: dict[str, Any]
    pending: Report | None = None


@dataclass
class Failed:
    """A worker's last message when it raised: its own traceback, formatted where it happened (or, for a
    PacerError, its one line)."""

    worker: int
    traceback: str


@dataclass(frozen=True)
class Failure:
    """A worker the backend lost (it raised, died or hung), for the supervisor."""

    worker: int
    message: str
    """What happened, with the worker's own traceback."""
    started: bool = True
    """Whether it had finished a rollout since it was (re)started; False: it failed at start-up, where a restart
    would meet the same error (an env that cannot be made, a factory that raises, a script re-run by the start
    method), so the run stops instead."""
