"""The inline backend: the very same Worker code, run round-robin in the calling process (debugging, fast tests).

Workers share the run's parameters through Hogwild links, as on local processes, but nothing runs in parallel:
an exception in a worker propagates with its traceback, and a debugger can step into it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pacer.backends.hogwild import HogwildLink
from pacer.config import Config
from pacer.reports import Failure, Report
from pacer.runtime import preflight as checks
from pacer.runtime import shared as shared_state
from pacer.runtime.shared import SharedState
from pacer.worker import Worker, WorkerSpec


def preflight(cfg: Config, model: nn.Module, log: Callable[[str], None]) -> None:
    checks.status(cfg, "in this process (inline backend)", log)


def make_shared(cfg: Config, model: nn.Module) -> SharedState:
    return shared_state.create(cfg, model, torch.multiprocessing.get_context("spawn"), in_shared_memory=False)


def create(specs: list[WorkerSpec], shared: SharedState, reseed: Callable[[int, int], int]) -> InlineBackend:
    return InlineBackend(specs, shared)


class InlineBackend:
    def __init__(self, specs: list[WorkerSpec], shared: SharedState) -> None:
        self.specs, self.shared = specs, shared
        self.workers: list[Worker] = []
        self.final_states: dict[int, Any] = {}

    def start(self, stop_requested: Callable[[], bool]) -> None:
        self.workers = [Worker(spec, HogwildLink(self.shared, spec.rank, spec.config)) for spec in self.specs]

    def poll(self, timeout: float) -> list[Report]:
        rt = self.specs[0].config.runtime
        reports = []
        for worker in self.workers:
            if self.shared.stop.is_set() or self.shared.budget_spent(rt.total_steps, rt.total_episodes):
                break
            reports.append(worker.iterate())
        return reports

    def pause(self) -> bool:
        return True  # inline workers only run inside poll(): they are idle whenever the supervisor evaluates

    def resume(self) -> None:
        pass

    def failures(self) -> list[Failure]:
        return []  # an exception in an inline worker propagates with its traceback

    def notices(self) -> list[str]:
        return []  # the workers are this machine's: no capacity comes or goes

    def restart(self, rank: int) -> None:
        raise NotImplementedError("inline workers are never restarted: their exceptions propagate")

    def placement(self) -> dict[int, dict[str, Any]]:
        return {spec.rank: {"host": socket.gethostname(), "pid": os.getpid()} for spec in self.specs}

    def stop(self) -> list[Report]:
        self.shared.stop.set()
        for worker in self.workers:
            self.final_states[worker.spec.rank] = worker.get_state()
            worker.close()
        self.workers = []
        return []
