"""The Ray backend: one Ray actor per worker, anywhere in a cluster; this process is the parameter server.

The driver keeps one call in flight per actor (`WorkerActor.iterate`, one rollout each). When a call returns, its
update is applied to the driver's parameters (a gradient through the driver's optimizer, or a parameter change),
the parameters are put in the object store once per version, and the next call goes out with them. Supervision
matches the local backend: a call that raises brings back the actor's own traceback, an actor whose process or
node died is reported as such, a call older than `runtime.heartbeat_timeout` counts as a hang; each is killed and
reported, and the supervisor restarts it (Ray places it on a live node).

Without `runtime.address`, a private Ray instance starts on this machine, on loopback only (num_cpus = workers, a
small object store, no dashboard, no usage stats) and is shut down at the end; with an address (or 'auto') the
run joins that cluster and leaves it running. Either way every actor of the run is killed before `stop` returns.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pacer.backends import user_code
from pacer.config import Config
from pacer.errors import PacerError
from pacer.reports import Report
from pacer.runtime import optim, signals
from pacer.runtime import preflight as checks
from pacer.runtime import shared as shared_state
from pacer.runtime.shared import SharedState
from pacer.usercode import ByValue, check_sendable
from pacer.worker import WorkerSpec, learning_rate

OBJECT_STORE_BYTES = 200 * 2**20
STARTUP_S = 180.0  # allowance for an actor's first rollout: a new worker process imports torch, maybe on a busy node
STOP_GRACE_S = 10.0
PAUSE_WAIT_S = 30.0
PRIVATE_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # the latter: loopback


def preflight(cfg: Config, model: nn.Module, log: Callable[[str], None]) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise PacerError("the ray backend needs Ray: pip install -e '.[ray]'") from None
    where = f"on Ray actors ({'cluster at ' + cfg.runtime.address if cfg.runtime.address else 'a private instance'})"
    checks.status(cfg, where, log)
    check_sendable(user_code(cfg))


def make_shared(cfg: Config, model: nn.Module) -> SharedState:
    """The driver's parameters and counters: plain memory, only this process touches them."""
    return shared_state.create(cfg, model, torch.multiprocessing.get_context("spawn"), in_shared_memory=False)


def create(specs: list[WorkerSpec], shared: SharedState, reseed: Callable[[int, int], int]) -> RayBackend:
    return RayBackend(specs, shared, reseed)


def connect(address: str | None, cpus: int) -> bool:
    """Join `address`, or start a private instance; True when this run started it (and must shut it down)."""
    if address is None:
        for key, value in PRIVATE_ENV.items():
            os.environ.setdefault(key, value)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():  # the caller's own session (a notebook): use it, leave it running
        return False
    try:
        if address is None:
            # "local": a new instance even when RAY_ADDRESS names a running cluster (joining one is --address's job)
            ray.init(address="local", num_cpus=cpus, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                     configure_logging=False, log_to_driver=True)
            return True
        ray.init(address=address, configure_logging=False, log_to_driver=True)
    except ConnectionError as exc:
        raise PacerError(f"cannot reach the Ray cluster at {address!r}: {str(exc).splitlines()[0]}") from None
    return False


class RayBackend:
    def __init__(self, specs: list[WorkerSpec], shared: SharedState, reseed: Callable[[int, int], int]) -> None:
        import ray

        from pacer.backends.ray_actor import WorkerActor

        self.ray = ray
        self.specs, self.shared, self.reseed = specs, shared, reseed
        self.cfg = specs[0].config
        rt = self.cfg.runtime
        self.remote_class = ray.remote(WorkerActor).options(num_cpus=rt.cpus_per_worker, max_restarts=0,
                                                            scheduling_strategy="SPREAD")
        self.params = shared.params
        self.optimizers = [optim.bind(self.cfg.algo.optimizer, self.params, state, self.cfg.algo.lr)
                           for state in shared.optimizer_states]
        self.actors: dict[int, Any] = {}
        self.calls: dict[int, tuple[Any, float]] = {}  # rank -> (object ref of the rollout in flight, sent at)
        self.answered: set[int] = set()  # actors that finished a rollout (past start-up)
        self.params_ref: Any = None
        self.version, self.params_version = 0, -1
        self.dead: list[tuple[int, str]] = []
        self.held: list[Report] = []
        self.final_states: dict[int, Any] = {}
        self.placements: dict[int, Any] = {}  # rank -> object ref of its actor's where()
        self.where: dict[int, dict[str, Any]] = {}  # rank -> its answer
        self.restarts: dict[int, int] = {}
        self.paused = self.stopping = False
        self.started_ray = False

    def start(self, stop_requested: Callable[[], bool]) -> None:
        rt = self.cfg.runtime
        self.started_ray = connect(rt.address, math.ceil(rt.workers * rt.cpus_per_worker))
        for spec in self.specs:
            if stop_requested():
                break
            self._launch(spec)

    def _launch(self, spec: WorkerSpec) -> None:
        actor: Any = self.remote_class.remote(ByValue(spec))
        self.actors[spec.rank] = actor
        self.placements[spec.rank] = actor.where.remote()
        self.where.pop(spec.rank, None)
        self.answered.discard(spec.rank)
        self._send(spec.rank)

    def _send(self, rank: int) -> None:
        rt = self.cfg.runtime
        if self.paused or self.stopping or rank not in self.actors or self.shared.budget_spent(
                rt.total_steps, rt.total_episodes):
            return
        if self.params_version != self.version:  # once per version, whoever asks
            self.params_ref = self.ray.put([p.detach().numpy().copy() for p in self.params])
            self.params_version = self.version
        ref = self.actors[rank].iterate.remote(self.version, [self.params_ref], self.shared.counters()["env_steps"],
                                               self.shared.obs_stats())
        self.calls[rank] = (ref, time.monotonic())

    def poll(self, timeout: float) -> list[Report]:
        out, self.held = self.held, []
        refs = {ref: rank for rank, (ref, _) in self.calls.items()}
        if refs:
            ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=timeout, fetch_local=True)
            for ref in ready:
                report = self._finish(refs[ref], ref)
                if report is not None:
                    out.append(report)
                    self._send(refs[ref])
        else:
            time.sleep(timeout)
        self._check_hangs()
        return out

    def _finish(self, rank: int, ref: Any) -> Report | None:
        """Take a returned rollout: apply its update and count it; or record the actor's failure."""
        from ray import exceptions as errors

        del self.calls[rank]
        try:
            (mode, update, moments), report = self.ray.get(ref)
        except errors.RayTaskError as exc:  # the actor's own code raised: its traceback comes with it
            self._lose(rank, f"worker {rank} failed:\n{str(exc).rstrip()}")
            return None
        except (errors.RayActorError, errors.ActorUnavailableError, errors.ObjectLostError) as exc:
            self._lose(rank, f"worker {rank}'s actor died ({type(exc).__name__}: its process or node is gone)")
            return None
        self._apply(rank, mode, update)
        if moments is not None and self.shared.obs_moments is not None:
            self.shared.observe(rank, moments)
        self.answered.add(rank)
        self.shared.add(rank, report.env_steps, len(report.episode_returns), report.updates)
        self.shared.beat(rank)
        return report

    def _apply(self, rank: int, mode: str, update: list[Any]) -> None:
        with torch.no_grad():
            if mode == "delta":
                for param, change in zip(self.params, update, strict=True):
                    param.add_(torch.tensor(change))  # a copy: object-store arrays are read-only
            else:
                for param, grad in zip(self.params, update, strict=True):
                    param.grad = None if grad is None else torch.tensor(grad)
                optimizer = self.optimizers[0 if len(self.optimizers) == 1 else rank]
                lr = learning_rate(self.cfg, self.shared.counters()["env_steps"])
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.step()
        self.version += 1

    def _check_hangs(self) -> None:
        now, limit = time.monotonic(), self.cfg.runtime.heartbeat_timeout
        for rank, (_, sent) in list(self.calls.items()):
            allowed = limit if rank in self.answered else max(limit, STARTUP_S)
            if now - sent > allowed:
                del self.calls[rank]
                self._lose(rank, f"worker {rank} gave no sign of life for {now - sent:.1f} s "
                                 f"(runtime.heartbeat_timeout {limit:g} s) and was killed")

    def _lose(self, rank: int, message: str) -> None:
        actor = self.actors.pop(rank, None)
        if actor is not None:
            self.ray.kill(actor, no_restart=True)
        self.dead.append((rank, message))

    def failures(self) -> list[tuple[int, str]]:
        dead, self.dead = self.dead, []
        return dead

    def restart(self, rank: int) -> None:
        self.restarts[rank] = self.restarts.get(rank, 0) + 1
        self._launch(dataclasses.replace(self.specs[rank], seed=self.reseed(rank, self.restarts[rank]), state=None))

    def _drain(self, seconds: float) -> bool:
        """Let the rollouts in flight finish (their updates count), within `seconds`; True when none is left."""
        deadline = time.monotonic() + seconds
        while self.calls and time.monotonic() < deadline and not signals.FORCE.is_set():
            self.held.extend(self.poll(min(0.1, max(0.0, deadline - time.monotonic()))))
        return not self.calls

    def pause(self) -> bool:
        self.paused = True
        return self._drain(PAUSE_WAIT_S)

    def resume(self) -> None:
        self.paused = False
        for rank in self.actors:
            if rank not in self.calls:
                self._send(rank)

    def placement(self) -> dict[int, Any]:
        """Where each worker's latest actor ran: node id, host, pid (known once it answered)."""
        self._locate(0.0)
        return dict(self.where)

    def _locate(self, timeout: float) -> None:
        pending = {rank: ref for rank, ref in self.placements.items() if rank not in self.where}
        if not pending:
            return
        ready, _ = self.ray.wait(list(pending.values()), num_returns=len(pending), timeout=timeout)
        for rank, ref in pending.items():
            if ref in ready:
                try:
                    self.where[rank] = self.ray.get(ref)
                except Exception:  # an actor that died before answering: its place stays unknown
                    self.placements.pop(rank)

    def stop(self) -> list[Report]:
        self.stopping = True
        try:
            self._drain(STOP_GRACE_S)
            states = {rank: actor.get_state.remote() for rank, actor in self.actors.items()}
            if states and not signals.FORCE.is_set():
                ready, _ = self.ray.wait(list(states.values()), num_returns=len(states), timeout=5.0)
                for rank, ref in states.items():
                    if ref in ready:
                        state = self.ray.get(ref)
                        if state is not None:
                            self.final_states[rank] = state
            self._locate(2.0)
        finally:
            for actor in self.actors.values():
                self.ray.kill(actor, no_restart=True)
            self.actors, self.calls = {}, {}
            if self.started_ray:
                self.ray.shutdown()
        late, self.held = self.held, []
        return late

