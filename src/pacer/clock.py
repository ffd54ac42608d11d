"""The run's clock: wall time over resumes, and what in it was evaluation and what was held.

Training time is wall time less the time in which nothing trained: the workers held (`runtime.pause_for_eval`,
a confirming evaluation). Evaluations that run while the workers train stay in it, since training went on; their
time is still kept (`eval_time`) to say what they cost. `runtime.time_limit` and summary.json's steps/s both use
this session's training time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Clock:
    before: float = 0.0
    """Wall time of earlier sessions (resume)."""
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    """Epoch time of this session's start, so benchmarks can relate the run's times to the command's start."""
    eval_time: float = 0.0
    """Seconds of evaluations and videos, earlier sessions' included."""
    eval_cpu: float = 0.0
    """CPU seconds this process spent evaluating (kept apart from the parent's share of the training work)."""
    held: float = 0.0
    """Seconds of this session in which the workers were held: nothing trained."""

    def elapsed(self) -> float:
        """Wall time of the whole run (every session)."""
        return self.before + self.session()

    def session(self) -> float:
        return time.monotonic() - self.started

    def trained(self) -> float:
        """This session's training time: its wall time less the time the workers were held."""
        return self.session() - self.held

    def evaluating(self, work: Callable[[], T]) -> T:
        """Run evaluation work (an evaluation, a video), its time and CPU counted as evaluation."""
        tic, cpu = time.monotonic(), time.process_time()
        try:
            return work()
        finally:
            self.eval_time += time.monotonic() - tic
            self.eval_cpu += time.process_time() - cpu

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Count the time inside as held (the caller holds the workers)."""
        tic = time.monotonic()
        try:
            yield
        finally:
            self.held += time.monotonic() - tic
