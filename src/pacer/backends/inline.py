"""The inline backend: the very same Worker code, run round-robin in the calling process."""

from __future__ import annotations

from typing import Any

from pacer.runtime.shared import SharedState
from pacer.worker import Report, Worker, WorkerSpec


class InlineBackend:
    def __init__(self, specs: list[WorkerSpec], shared: SharedState) -> None:
        self.specs, self.shared = specs, shared
        self.workers: list[Worker] = []
        self.final_states: dict[int, Any] = {}

    def start(self) -> None:
        self.workers = [Worker(spec, self.shared) for spec in self.specs]

    def poll(self, timeout: float) -> list[Report]:
        rt = self.specs[0].config.runtime
        reports = []
        for worker in self.workers:
            if self.shared.stop.is_set() or self.shared.budget_spent(rt.total_steps, rt.total_episodes):
                break
            reports.append(worker.iterate())
        return reports

    def pause(self) -> None:
        pass  # inline workers only run inside poll(): they are idle whenever the supervisor evaluates

    def resume(self) -> None:
        pass

    def failures(self) -> list[tuple[int, str]]:
        return []  # an exception in an inline worker propagates with its traceback

    def restart(self, rank: int) -> None:
        raise NotImplementedError("inline workers are never restarted: their exceptions propagate")

    def stop(self) -> list[Report]:
        self.shared.stop.set()
        for worker in self.workers:
            self.final_states[worker.spec.rank] = worker.get_state()
            worker.close()
        self.workers = []
        return []
