"""The local backend: one process per worker (torch.multiprocessing), watched from the parent.

Each worker sends reports through its own pipe (runtime/channel.py). A worker never blocks on it: without a free
credit it folds the report into the next one, so logging never slows learning and no episode is lost. The parent
waits on every pipe and every worker's process sentinel at once, so a death is seen the moment it happens; a
worker whose heartbeat goes stale (hung env, SIGSTOP) is killed and reported like a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

import torch
from torch import nn

from pacer.backends import user_code
from pacer.backends.hogwild import HogwildLink
from pacer.config import Config
from pacer.errors import PacerError
from pacer.reports import Failed, Failure, Finished, Report
from pacer.runtime import preflight as checks
from pacer.runtime import processes, signals
from pacer.runtime import shared as shared_state
from pacer.runtime.channel import Channel, Inbox, Sender
from pacer.runtime.shared import SharedState
from pacer.usercode import ByValue, check_sendable, unwrap
from pacer.worker import Worker, WorkerSpec

STOP_GRACE_S = 10.0
PAUSE_WAIT_S = 30.0  # longest wait for the workers to finish their rollouts before an evaluation


def preflight(cfg: Config, model: nn.Module, log: Callable[[str], None]) -> None:
    method = processes.resolve_start_method(cfg.runtime.start_method)
    processes.check_main_guard(method)  # before any process starts: a script that would train in every worker
    checks.status(cfg, f"on local processes (start method {method})", log)
    checks.check_shared_memory(cfg, model)
    check_sendable(user_code(cfg))


def make_shared(cfg: Config, model: nn.Module) -> SharedState:
    return shared_state.create(cfg, model, processes.context(cfg.runtime.start_method), in_shared_memory=True)


def create(specs: list[WorkerSpec], shared: SharedState, reseed: Callable[[int, int], int]) -> LocalBackend:
    rt = specs[0].config.runtime
    return LocalBackend(specs, shared, rt.start_method, rt.heartbeat_timeout, reseed)


def worker_process(spec: Any, shared: SharedState, channel: Sender, sharing_strategy: str) -> None:
    """Entry point of a worker process (top-level, so every start method can import it). `spec` arrives by value
    (cloudpickle: user code from a notebook too); `shared` by handle (torch's pickler: shared tensors)."""
    processes.die_with_parent()
    signals.child_signals()
    torch.multiprocessing.set_sharing_strategy(sharing_strategy)  # spawn children do not inherit it
    pending: Report | None = None
    rank = -1
    try:
        spec = unwrap(spec)
        rank = spec.rank
        processes.set_name(f"pacer-w{rank}")
        torch.set_num_threads(spec.config.runtime.threads_per_worker)
        rt = spec.config.runtime
        worker = Worker(spec, HogwildLink(shared, rank, spec.config))
        report_time = 0.0  # time spent sending reports, itself reported with the next one
        while not shared.stop.is_set() and not shared.budget_spent(rt.total_steps, rt.total_episodes):
            if shared.pause.is_set():
                shared.hold_while_paused(rank)
                continue
            report = worker.iterate()
            report.timings["report"] = report_time
            pending = report if pending is None else pending.merge(report)
            tic = time.perf_counter()
            if channel.try_send(pending):
                pending = None
            report_time = time.perf_counter() - tic
        worker.close()
        channel.send(Finished(rank, worker.get_state(), pending))
    except PacerError as exc:  # pacer's own one-line error (an env that cannot be made, a bad factory)
        channel.send(Failed(rank, f"worker {rank} failed: {exc}"))
        os._exit(1)
    except BaseException:
        channel.send(Failed(rank, f"worker {rank} failed:\n{traceback.format_exc()}"))
        os._exit(1)  # now: a half-built worker's threads or finalizers must not keep the process alive


class LocalBackend:
    def __init__(self, specs: list[WorkerSpec], shared: SharedState, start_method: str,
                 heartbeat_timeout: float = 60.0, reseed: Callable[[int, int], int] | None = None) -> None:
        self.specs, self.shared = specs, shared
        self.heartbeat_timeout = heartbeat_timeout
        self.reseed = reseed or (lambda rank, restarts: specs[rank].seed + 7919 * restarts)
        self.ctx = processes.context(start_method)
        self.strategy = torch.multiprocessing.get_sharing_strategy()
        self.procs: dict[int, Any] = {}
        self.inbox = Inbox()
        self.launched: dict[int, float] = {}
        self.restarts: dict[int, int] = {}
        self.errors: dict[int, str] = {}  # tracebacks received, waiting for the process's death to be seen
        self.dead: list[Failure] = []  # deaths not yet handed to the supervisor
        self.reported: set[int] = set()  # workers that sent a report since they were (re)started
        self.final_states: dict[int, Any] = {}
        self.held: list[Report] = []  # reports read while looking for a dead worker's traceback
        self.hung: dict[int, tuple[Any, float]] = {}  # rank -> (process the watchdog killed, seconds it was silent)
        self.pumps: list[threading.Thread] = []  # reader threads; each ends at its pipe's EOF
        self.watching = threading.Event()
        self.watchdog = threading.Thread(target=self._watch, name="pacer-heartbeats", daemon=True)
        self.pids: dict[int, int] = {}

    def start(self, stop_requested: Callable[[], bool]) -> None:
        self.watchdog.start()
        for spec in self.specs:
            if stop_requested():  # a launch can take seconds on a busy machine: a Ctrl-C should not wait for all
                break
            self._launch(spec)

    def _watch(self) -> None:
        """Kill workers whose heartbeat is stale. A thread of its own, so that it works even while the main
        thread is blocked (say, reading half a message from a worker that was stopped in the middle of it)."""
        while not self.watching.wait(0.25):
            now = time.monotonic()
            for rank, proc in list(self.procs.items()):
                if getattr(proc, "_popen", None) is None:  # not started yet
                    continue
                beat, launched = self.shared.heartbeats[rank], self.launched[rank]
                # starting (fork server still importing torch, a busy machine) gets a longer allowance
                limit = self.heartbeat_timeout if beat >= launched else max(self.heartbeat_timeout, processes.STARTUP_S)
                silent = now - max(beat, launched)
                if silent > limit and rank not in self.hung:
                    with contextlib.suppress(ValueError, OSError):  # closed or gone meanwhile: nothing to do
                        if proc.exitcode is None:
                            self.hung[rank] = (proc, silent)
                            proc.kill()

    def _launch(self, spec: WorkerSpec) -> None:
        channel = Channel(self.ctx, spec.rank, self.inbox)
        proc = self.ctx.Process(target=worker_process, name=f"pacer-worker-{spec.rank}", daemon=True,
                                args=(ByValue(spec), self.shared.for_worker(spec.rank), channel.sender(),
                                      self.strategy))
        self.launched[spec.rank] = time.monotonic()  # before the watchdog can see the process
        self.reported.discard(spec.rank)
        self.procs[spec.rank] = proc
        # Ctrl-C is held until the start is complete: half-started, the process would be neither joinable nor dead
        with signals.signals_deferred(), signals.children_ignore_sigint():
            try:
                proc.start()
            finally:
                if getattr(proc, "_popen", None) is not None:
                    self.pumps.append(channel.after_start())
                    self.pids[spec.rank] = proc.pid

    def poll(self, timeout: float) -> list[Report]:
        """Reports that arrived within `timeout`; returns early when a report arrives or a worker dies."""
        watched = [self.inbox.wake_r, *(p.sentinel for p in self.procs.values() if p.exitcode is None)]
        wait(watched, timeout)  # every report and every death, together
        out = self.held + self._read()
        self.held = []
        self._check_health()
        return out

    def _read(self) -> list[Report]:
        out = []
        for rank, message in self.inbox.take_all():
            if isinstance(message, Report):
                self.reported.add(rank)
                out.append(message)
            elif isinstance(message, Finished):
                self.final_states[rank] = message.state
                if message.pending is not None:
                    out.append(message.pending)
            elif isinstance(message, Failed):
                self.errors[rank] = message.traceback
            # else EOF_MARK: the pipe closed; the worker's exit is judged from the process itself
        return out

    def _check_health(self) -> None:
        for rank, proc in list(self.procs.items()):
            if proc.exitcode is None:
                continue
            killed, silent = self.hung.pop(rank, (None, 0.0))
            started = rank in self.reported
            if killed is proc:  # the watchdog killed this very process (not an earlier incarnation)
                self._forget(rank)
                self.dead.append(Failure(rank, f"worker {rank} gave no sign of life for {silent:.1f} s (runtime."
                                               f"heartbeat_timeout {self.heartbeat_timeout:g} s) and was killed",
                                         started))
            elif proc.exitcode != 0:
                if rank not in self.errors:  # its traceback may still be on its way through the pipe
                    time.sleep(0.05)
                    self.held.extend(self._read())
                exitcode = proc.exitcode
                self._forget(rank)
                message = self.errors.pop(rank, None) or (
                    f"worker {rank} died with {processes.describe_exit(exitcode)} and sent no traceback")
                self.dead.append(Failure(rank, message, started))

    def _forget(self, rank: int) -> None:
        self.procs.pop(rank).close()

    def failures(self) -> list[Failure]:
        """Each worker that died since the last call, with its own traceback."""
        dead, self.dead = self.dead, []
        return dead

    def pause(self) -> bool:
        """Hold every worker between rollouts; True once all live workers are waiting, False after PAUSE_WAIT_S
        (a worker that is dying or hung is the watchdog's business, not a reason to block)."""
        self.shared.pause.set()
        deadline = time.monotonic() + PAUSE_WAIT_S
        while time.monotonic() < deadline:
            live = [rank for rank, proc in self.procs.items() if proc.exitcode is None]
            if all(self.shared.waiting[rank] for rank in live):
                return True
            time.sleep(0.001)
        return False

    def resume(self) -> None:
        self.shared.pause.clear()

    def placement(self) -> dict[int, dict[str, Any]]:
        host = socket.gethostname()
        return {rank: {"host": host, "pid": pid} for rank, pid in sorted(self.pids.items())}

    def notices(self) -> list[str]:
        return []  # the workers are this machine's: no capacity comes or goes

    def restart(self, rank: int) -> None:
        """Start worker `rank` again: a new seed, parameters from shared memory, counters kept."""
        self.restarts[rank] = self.restarts.get(rank, 0) + 1
        spec = dataclasses.replace(self.specs[rank], seed=self.reseed(rank, self.restarts[rank]), state=None)
        self._launch(spec)

    def stop(self) -> list[Report]:
        self.shared.stop.set()
        self.watching.set()
        if self.watchdog.is_alive():
            self.watchdog.join(timeout=2.0)
        late: list[Report] = []
        processes.join_all(list(self.procs.values()), STOP_GRACE_S, drain=lambda: late.extend(self._read()))
        deadline = time.monotonic() + 2.0  # the readers end at EOF, right after the last message
        for pump in self.pumps:
            pump.join(timeout=max(0.0, deadline - time.monotonic()))
        late.extend(self.held + self._read())
        self.procs, self.held = {}, []
        self.inbox.close()
        return late
