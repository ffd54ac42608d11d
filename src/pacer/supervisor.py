"""The supervisor: the parent's loop while workers run.

Each turn it drains reports into metrics, restarts workers that died (within the run's restart budget), runs the
periodic jobs that are due (evaluations, checkpoints, videos, metric rows: pacer/jobs.py) and asks the stop rules
whether the run is over. It never touches the hot path: workers count their own steps and update the model
without it.
"""

from __future__ import annotations

from collections.abc import Callable

from pacer.backends import Backend
from pacer.clock import Clock
from pacer.errors import WorkerFailed
from pacer.jobs import Job, Progress, StopRule
from pacer.metrics import Metrics
from pacer.reports import Failure
from pacer.runtime.shared import SharedState

POLL_S = 0.1


class Supervisor:
    def __init__(self, shared: SharedState, backend: Backend, metrics: Metrics, clock: Clock, jobs: list[Job],
                 stops: list[StopRule], max_restarts: int) -> None:
        self.shared, self.backend, self.metrics, self.clock = shared, backend, metrics, clock
        self.jobs, self.stops, self.max_restarts = jobs, stops, max_restarts
        self.restarts = 0
        self.stop_requested: Callable[[], bool] = lambda: False
        steps = shared.counters()["env_steps"]
        for job in jobs:
            job.start(steps)

    def run(self) -> str:
        """Supervise until a stop rule names a reason to end (or a stop is requested: 'interrupted')."""
        while True:
            if self.stop_requested():
                return "interrupted"
            for report in self.backend.poll(POLL_S):
                self.metrics.absorb(report)
            for failure in self.backend.failures():
                self.restart(failure)
            for line in self.backend.notices():
                self.metrics.log(line)
            steps = self.shared.counters()["env_steps"]
            for job in self.jobs:
                job.tick(steps)
            counters = self.shared.counters()
            progress = Progress(counters["env_steps"], counters["episodes"], self.clock.trained())
            for rule in self.stops:
                reason = rule(progress)
                if reason is not None:
                    return reason

    def restart(self, failure: Failure) -> None:
        """A worker died: show its own traceback, then restart it while the run's restart budget lasts. One that
        failed before its first rollout is not restarted: its start-up would fail the same way again."""
        rank, message, budget = failure.worker, failure.message, self.max_restarts
        if not failure.started:
            raise WorkerFailed(f"{message.rstrip()}\nworker {rank} failed at start-up, before its first rollout: "
                               "a restart would meet the same error, so the run stops")
        if self.restarts >= budget:
            raise WorkerFailed(f"{message.rstrip()}\nthe restart budget (runtime.max_restarts = {budget}) is spent; "
                               "the run stops with its last parameters saved")
        self.restarts += 1
        self.metrics.log(f"pacer: {message.rstrip()}\npacer: restarting worker {rank} "
                         f"(restart {self.restarts} of {budget})")
        self.backend.restart(rank)
