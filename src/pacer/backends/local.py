"""The local backend: one process per worker (torch.multiprocessing), supervised from the parent.

Workers send reports through one bounded queue. A worker never blocks on it: when the queue is full it folds the
report into the next one, so logging never slows learning and no episode is lost.
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import sys
import time
import traceback
from typing import Any

import numpy as np
import torch

from pacer.errors import PacerError
from pacer.runtime import processes
from pacer.runtime.shared import SharedState
from pacer.worker import Report, Worker, WorkerSpec

QUEUE_SIZE = 64
STOP_GRACE_S = 10.0


def merge_reports(old: Report | None, new: Report) -> Report:
    """Fold `new` into `old`: counts and times add up, episodes concatenate, the latest losses win."""
    if old is None:
        return new
    out = dict(new)
    for key, value in old.items():
        if key in ("env_steps", "updates") or key.startswith("time_"):
            out[key] = value + new.get(key, 0)
        elif isinstance(value, np.ndarray):
            out[key] = np.concatenate([value, new[key]])
    return out


def worker_process(spec: WorkerSpec, shared: SharedState, reports: Any) -> None:
    """Entry point of a worker process (top-level, so every start method can import it)."""
    processes.die_with_parent()
    processes.child_signals()
    torch.set_num_threads(spec.config.runtime.threads_per_worker)
    torch.multiprocessing.set_sharing_strategy(torch.multiprocessing.get_sharing_strategy())
    rt = spec.config.runtime
    pending: Report | None = None
    try:
        worker = Worker(spec, shared)
        while not shared.stop.is_set() and not shared.budget_spent(rt.total_steps, rt.total_episodes):
            pending = merge_reports(pending, worker.iterate())
            try:
                reports.put_nowait(pending)
                pending = None
            except queue.Full:
                pass
        worker.close()
        if pending is not None:
            reports.put(pending, timeout=STOP_GRACE_S / 2)
    except BaseException:
        message = f"worker {spec.rank} failed:\n{traceback.format_exc()}"
        try:
            reports.put({"worker": spec.rank, "error": message}, timeout=2.0)
        finally:
            sys.exit(1)


class LocalBackend:
    def __init__(self, specs: list[WorkerSpec], shared: SharedState, start_method: str) -> None:
        self.specs, self.shared = specs, shared
        self.ctx = processes.context(start_method)
        self.reports: Any = self.ctx.Queue(maxsize=QUEUE_SIZE)
        self.procs: list[Any] = []
        self.errors: dict[int, str] = {}
        self.held: list[Report] = []  # reports read while looking for errors, handed out by the next poll
        if self.ctx.get_start_method() != "fork":
            _check_picklable(specs[0])

    def start(self) -> None:
        for spec in self.specs:
            proc = self.ctx.Process(target=worker_process, args=(spec, self.shared.for_worker(spec.rank), self.reports),
                                    name=f"pacer-worker-{spec.rank}", daemon=True)
            proc.start()
            self.procs.append(proc)

    def poll(self, timeout: float) -> list[Report]:
        out, self.held = self.held, []
        try:
            if not out:
                out.append(self.reports.get(timeout=timeout))
            while True:
                out.append(self.reports.get_nowait())
        except queue.Empty:
            pass
        reports = []
        for report in out:
            if "error" in report:
                self.errors[report["worker"]] = report["error"]
            else:
                reports.append(report)
        return reports

    def failures(self) -> list[str]:
        dead = [rank for rank, p in enumerate(self.procs) if p.exitcode not in (None, 0)]
        if any(rank not in self.errors for rank in dead):  # maybe its traceback is still in the queue
            time.sleep(0.2)
            self.held.extend(self.poll(0.0))
        for rank in dead:  # killed without a word (SIGKILL, OOM): say so
            if rank not in self.errors:
                proc = self.procs[rank]
                self.errors[rank] = f"{proc.name} died with exit code {proc.exitcode} and sent no traceback"
        return [self.errors[rank] for rank in sorted(self.errors)]

    def alive(self) -> int:
        return sum(p.is_alive() for p in self.procs)

    def stop(self) -> list[Report]:
        self.shared.stop.set()
        late: list[Report] = []

        def drain() -> None:
            # a worker killed mid-write leaves a torn message: skip it and keep stopping
            with contextlib.suppress(Exception):
                late.extend(self.poll(0.0))

        processes.join_all(self.procs, STOP_GRACE_S, drain=drain)
        drain()
        self.procs = []
        self.reports.close()
        self.reports.join_thread()
        return late


def _check_picklable(spec: WorkerSpec) -> None:
    """Spawn and forkserver children receive the worker spec pickled and re-import what it names: catch what
    cannot travel here, with a fix, instead of an obscure error inside a child."""
    fix = ("define env/model factories and loss functions in an importable module (not a notebook cell), "
           "or use --backend inline")
    main_is_a_file = hasattr(sys.modules.get("__main__"), "__file__")
    for what, obj in (("env factory", spec.config.env.id), ("model factory", spec.config.model.factory),
                      ("loss function", spec.algorithm.loss)):
        if callable(obj) and getattr(obj, "__module__", None) == "__main__" and not main_is_a_file:
            raise PacerError(f"the {what} {obj.__qualname__!r} is defined in an interactive __main__ that worker "
                             f"processes cannot import: {fix}")
    try:
        pickle.dumps(spec)
    except Exception as exc:  # pickling raises several types (PicklingError, AttributeError, TypeError)
        raise PacerError(f"the run cannot be sent to worker processes ({exc}): {fix}") from None
