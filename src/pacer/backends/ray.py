"""The Ray backend: one Ray actor per worker, anywhere in a cluster, learning as one data-parallel group.

The driver (this process) runs rounds. In a round every live actor collects one rollout from the run's current
parameters, then the actors learn in lockstep: each minibatch's gradients are averaged over the group with an
all-reduce (DD-PPO, Wijmans et al. 2020; gloo through torch.distributed) and every actor takes the same step on
its replica (`backends/ray_actor.py`). So the update is large-batch PPO (or A2C) at any worker count, never a sum of
separate learners' steps. The driver keeps member 0's parameters and optimizer state (what it evaluates and
checkpoints) and counts the round's reports; the next round is already queued behind it, so that the actors go
from one round to the next without waiting for the driver. The members meet at a TCP store the driver
hosts; each change of membership (a worker lost, restarted or added) forms a new group, a new "generation".

Supervision matches the local backend: a call that raises brings back the actor's own traceback, an actor whose
process or node died is reported as such, a round older than `runtime.heartbeat_timeout` counts as a hang; each
lost actor is killed and reported, and the supervisor restarts it (Ray places it on a live node). A round that
loses a member is given up (an abort flag in the store releases the others; gloo's timeout bounds the rest) and
applies nothing.

Without `runtime.address`, a private Ray instance starts on this machine, on loopback only (num_cpus = workers, a
small object store, no dashboard, no usage stats; the group's store and gloo on 127.0.0.1) and is shut down at the
end; with an address (or 'auto') the run joins that cluster and leaves it running, and the store listens on this
node's address so that other nodes reach it. Either way every actor of the run is killed before `stop` returns.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pacer.backends import user_code
from pacer.backends.ray_actor import RoundResult, member_minibatches
from pacer.config import Config
from pacer.errors import PacerError, first_line
from pacer.reports import Failure, Report
from pacer.runtime import optim, processes, signals
from pacer.runtime import preflight as checks
from pacer.runtime import shared as shared_state
from pacer.runtime.shared import SharedState
from pacer.runtime.store import ParamStore
from pacer.usercode import ByValue, check_sendable
from pacer.worker import WorkerSpec

OBJECT_STORE_BYTES = 200 * 2**20
STOP_GRACE_S = 10.0
AHEAD = 1  # rounds queued behind the one running: an actor never waits for the driver between rounds
PAUSE_WAIT_S = 30.0
NODE_WAIT_S = 30.0  # how long an unreachable actor's node may stay alive before the actor counts as crashed
GROUP_TIMEOUT_S = 30.0  # gloo's bound on a collective whose peer died without the driver noticing first
PRIVATE_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # the latter: loopback


def preflight(cfg: Config, model: nn.Module, log: Callable[[str], None]) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise PacerError("the ray backend needs Ray: pip install 'pacer-rl[ray]'") from None
    where = f"on Ray actors ({'cluster at ' + cfg.runtime.address if cfg.runtime.address else 'a private instance'})"
    checks.status(cfg, where, log)
    if cfg.runtime.group_minibatch == "pooled" and cfg.runtime.workers > 1:
        log(f"pacer: note: runtime.group_minibatch 'pooled': each update averages one minibatch of every worker, so "
            f"{cfg.runtime.workers} Ray workers make 1/{cfg.runtime.workers} the updates per env step of as many local "
            "workers ('worker' makes as many)")
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
        raise PacerError(f"cannot reach the Ray cluster at {address!r}: {first_line(exc)}") from None
    return False


@dataclass
class Round:
    """One round in flight: the members' calls, and what came back."""

    id: int
    version: int
    members: list[int]
    calls: dict[int, Any]
    sent_at: float = field(default_factory=time.monotonic)
    """When the round was sent, or, for a round queued behind another, when that one finished (its start)."""
    results: dict[int, RoundResult | None] = field(default_factory=dict)
    """Each member's answer (None: the member was lost)."""
    lost: bool = False


class Membership:
    """The run's actors: which exist, where they run, which were lost and why, and the group they form. Every change
    of membership (a worker lost, restarted or added) forms a new group, a new "generation"."""

    def __init__(self, ray: Any, specs: list[WorkerSpec], reseed: Callable[[int, int], int]) -> None:
        from pacer.backends.ray_actor import WorkerActor

        rt = specs[0].config.runtime
        self.ray, self.specs, self.reseed = ray, specs, reseed
        self.remote_class = ray.remote(WorkerActor).options(num_cpus=rt.cpus_per_worker, max_restarts=0,
                                                            scheduling_strategy="SPREAD")
        self.actors: dict[int, Any] = {}
        self.answered: set[int] = set()  # actors that finished a round (past start-up)
        self.placements: dict[int, Any] = {}  # rank -> object ref of its actor's where()
        self.where: dict[int, dict[str, Any]] = {}  # rank -> its answer: started, and where
        self.history: list[dict[str, Any]] = []  # every actor's place when it started: rank, node, host, pid, at
        self.restarts: dict[int, int] = {}
        # lost actors: (node, until when to wait for Ray's verdict on it (-1: its node died; 0: a crash), message)
        self.suspects: dict[int, tuple[str | None, float, str]] = {}
        self.dead: list[Failure] = []  # crashes and hangs, for the supervisor (a restart each)
        self.notes: list[str] = []
        self.room = 0  # workers the cluster has had room for
        self.members: list[int] = []  # the current group, by rank ([]: none formed yet, or broken)
        self.generation = 0
        self.groups: list[dict[str, Any]] = []  # each group formed: generation, members, each member's minibatches

    def launch(self, spec: WorkerSpec) -> None:
        actor: Any = self.remote_class.remote(ByValue(spec))
        self.actors[spec.rank] = actor
        self.placements[spec.rank] = actor.where.remote()
        self.where.pop(spec.rank, None)
        self.answered.discard(spec.rank)
        self.members = []  # a new actor (a restart too): the next round forms a new group

    def relaunch(self, rank: int) -> None:
        """Start worker `rank` again, with a new seed (the supervisor's restart, or after its node was lost)."""
        self.restarts[rank] = self.restarts.get(rank, 0) + 1
        self.launch(dataclasses.replace(self.specs[rank], seed=self.reseed(rank, self.restarts[rank]), state=None))

    def running(self) -> list[int]:
        """The ranks whose actors have started (placed, and answering), in order."""
        self.locate(0.0)
        return [rank for rank in sorted(self.actors) if rank in self.where]

    def form(self, members: list[int], host: str, port: int) -> None:
        """A new group of `members`: each (re)joins it at the driver's store."""
        cfg = self.specs[0].config
        self.generation += 1
        self.members = members
        for index, rank in enumerate(members):
            self.actors[rank].join.remote(host, port, self.generation, index, len(members), GROUP_TIMEOUT_S,
                                          host.startswith("127."))
        self.groups.append({"generation": self.generation, "members": members,
                            "minibatches": member_minibatches(cfg, len(members)), "at": round(time.time(), 3)})

    def lose(self, rank: int, message: str, capacity: bool = False) -> None:
        """Kill worker `rank`'s actor; a crash or a hang goes to the supervisor (a restart), lost capacity not."""
        self.members = []  # the group is broken: the next round forms a new one
        if self.where.pop(rank, None) is not None:
            self.room -= 1
        actor = self.actors.pop(rank, None)
        if actor is not None:
            self.ray.kill(actor, no_restart=True)
        if not capacity:
            self.dead.append(Failure(rank, message, rank in self.answered))

    def suspect(self, rank: int, exc: Exception) -> None:
        """Worker `rank`'s actor is gone: wait for Ray's verdict on whether its node died (capacity) or it crashed."""
        from ray import exceptions as errors

        node = self.where.get(rank, {}).get("node_id")
        message = f"worker {rank}'s actor died ({type(exc).__name__}: its process is gone)"
        self.lose(rank, message, capacity=True)
        if "its node has died" in str(exc):
            self.suspects[rank] = (node, -1.0, message)  # Ray's word: the node died
        elif isinstance(exc, errors.ActorUnavailableError) and node is not None:
            self.suspects[rank] = (node, time.monotonic() + NODE_WAIT_S, message)
        else:
            self.suspects[rank] = (None, 0.0, message)  # the process died on a live node: a crash
        self.judge()

    def judge(self) -> None:
        """Each lost actor: lost with its node (started again where there is room, no restart spent), or crashed
        (handed to the supervisor, which spends a restart)."""
        for rank, (node, deadline, message) in list(self.suspects.items()):
            node_died = deadline < 0 or (node is not None and deadline > 0 and not self._node_alive(node))
            if not node_died and deadline > 0 and time.monotonic() < deadline:
                continue  # unreachable, on a node Ray still counts alive: wait for its verdict
            del self.suspects[rank]
            if not node_died or node is None:
                self.dead.append(Failure(rank, message, rank in self.answered))
            else:
                self.notes.append(f"pacer: worker {rank} was lost with its node {node[:12]}; it starts again where "
                                  "there is room (not counted against runtime.max_restarts)")
                self.relaunch(rank)

    def _node_alive(self, node_id: str) -> bool:
        """Whether Ray still counts the node alive (a node that died is marked so before its actors' calls fail)."""
        return any(node["NodeID"] == node_id and node["Alive"] for node in self.ray.nodes())

    def locate(self, timeout: float) -> None:
        """Learn where the actors that started since the last call run (a note when one more fits than before)."""
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
                    continue
                self.history.append({"rank": rank, **self.where[rank], "at": round(time.time(), 3)})
                if len(self.where) > self.room:  # one more than the cluster had room for: a node joined
                    self.room = len(self.where)
                    self.notes.append(f"pacer: worker {rank} started on node {self.where[rank]['node_id'][:12]} "
                                      f"({self.where[rank]['host']}): {self.room} workers train")

    def placement(self) -> dict[int, Any]:
        """Where each worker's latest actor ran (node id, host, pid), `places`: where each of its actors started,
        and when (epoch seconds), and `groups`: each group it was a member of, with the minibatches it split its
        rollouts into there."""
        self.locate(0.0)
        return {rank: {**where,
                       "places": [{k: v for k, v in place.items() if k != "rank"} for place in self.history
                                  if place["rank"] == rank],
                       "groups": [{k: v for k, v in group.items() if k != "members"} | {"size": len(group["members"])}
                                  for group in self.groups if rank in group["members"]]}
                for rank, where in self.where.items()}

    def kill_all(self) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor, no_restart=True)
        self.actors, self.placements = {}, {}  # what has not answered by now never will


class Rounds:
    """The rounds in flight and the driver's copy of the run's parameters: what each round starts from, and what
    the run holds once a round is applied (member 0's parameters and optimizer state)."""

    def __init__(self, ray: Any, shared: SharedState, cfg: Config) -> None:
        self.ray, self.shared = ray, shared
        # the run's parameters and (first) optimizer state, which the driver only loads and dumps: it never steps
        self.store = ParamStore(shared.params, shared.optimizer_states[0], cfg.algo.optimizer, cfg.algo.lr)
        self.flight: list[Round] = []  # rounds sent, oldest first: at most AHEAD + 1
        self.last: tuple[int, int] | None = None  # env steps and episodes of the last round applied
        self.sent = 0  # rounds sent (their ids)
        self.version = 0  # rounds applied to the driver's parameters
        self.synced: dict[int, int] = {}  # rank -> the version its replica holds once its calls in flight are done
        self.payload: tuple[int, Any] | None = None  # (version, object ref of parameters and optimizer state)

    def next_version(self) -> int:
        return self.version + len(self.flight)  # what the rounds in flight will have made it

    def payload_for(self, members: list[int]) -> tuple[bool, Any]:
        """(whether the round may be sent now, the parameters to send with it or None): replicas not at the version
        the round starts from load the driver's, which exist only once nothing is in flight."""
        version = self.next_version()
        if all(self.synced.get(rank) == version for rank in members):
            return True, None
        if self.flight:
            return False, None
        if self.payload is None or self.payload[0] != version:
            self.payload = (version, self.ray.put(self.store.dump()))
        return True, self.payload[1]

    def send(self, members: list[int], actors: dict[int, Any], payload: Any) -> None:
        version = self.next_version()
        counters, stats = self.shared.counters(), self.shared.obs_stats()
        # a round queued behind another: the driver's count misses that one, whose steps the group tallies itself
        behind = bool(self.flight)
        calls = {rank: actors[rank].round.remote(self.sent, version, [payload], counters["env_steps"], stats,
                                                 self.shared.reward_stats(rank), behind)
                 for rank in members}
        for rank in members:
            self.synced[rank] = version + 1
        self.flight.append(Round(self.sent, version, members, calls))
        self.sent += 1

    def room_ahead(self, total_steps: int, total_episodes: int | None) -> bool:
        """Whether the budget has room for one more round beyond those in flight (each as large as the last one
        finished): a round queued ahead must not run past the budget that a round sent later would respect."""
        if not self.flight:
            return True
        if self.last is None:
            return False
        counters = self.shared.counters()
        steps, episodes = (count * len(self.flight) for count in self.last)
        return counters["env_steps"] + steps < total_steps and (
            total_episodes is None or counters["episodes"] + episodes < total_episodes)

    def forget(self, members: list[int]) -> None:
        """These replicas' versions are unknown: they reload from the driver."""
        for rank in members:
            self.synced.pop(rank, None)

    def lose(self, rank: int) -> bool:
        """Worker `rank` was lost: every round in flight it is a member of is void. True if there was one."""
        hit = False
        for current in self.flight:
            if rank in current.members:
                current.results[rank] = None
                current.lost = hit = True
        return hit

    def finish(self, current: Round) -> list[Report]:
        """Every member answered: apply the round (member 0's parameters and optimizer state) unless a member was
        lost, the group broke or the round before it was void, in which case nothing is applied and every replica
        reloads from the driver next round."""
        answers = {rank: result for rank, result in current.results.items() if result is not None}
        if current.lost or current.version != self.version or not all(r.ok for r in answers.values()):
            self.forget(current.members)
            return []
        leader = answers[current.members[0]].state
        assert leader is not None, "member 0 returns the group's parameters"
        self.store.load(leader)
        for slot in self.shared.optimizer_states[1:]:  # one learner: every slot holds its state (checkpoint, resume)
            optim.load_state(slot, leader[1])
        self.version = current.version + 1
        reports = []
        for rank in current.members:
            answer = answers[rank]
            assert answer.report is not None
            if answer.moments is not None and self.shared.obs is not None:
                self.shared.observe(rank, answer.moments)
            if answer.rewards is not None and self.shared.rewards is not None:
                self.shared.rewards.write(rank, answer.rewards)
            # the members took the same steps on their replicas: the run's parameters changed by the leader's count
            report = answer.report
            self.shared.add(rank, report.env_steps, len(report.episode_returns),
                            report.updates if rank == current.members[0] else 0)
            self.shared.beat(rank)
            reports.append(report)
        self.last = (sum(r.env_steps for r in reports), sum(len(r.episode_returns) for r in reports))
        return reports


class RayBackend:
    def __init__(self, specs: list[WorkerSpec], shared: SharedState, reseed: Callable[[int, int], int]) -> None:
        import ray

        self.ray, self.shared, self.cfg = ray, shared, specs[0].config
        self.membership = Membership(ray, specs, reseed)
        self.rounds = Rounds(ray, shared, self.cfg)
        self.store: Any = None  # the group's meeting point (torch.distributed's TCP store), hosted here
        self.host = "127.0.0.1"
        self.held: list[Report] = []  # reports of rounds finished while pausing or stopping
        self.final_states: dict[int, Any] = {}
        self.paused = self.stopping = False
        self.started_ray = False
        self.started_at = 0.0

    def start(self, stop_requested: Callable[[], bool]) -> None:
        import torch.distributed as dist

        rt = self.cfg.runtime
        self.started_ray = connect(rt.address, math.ceil(rt.workers * rt.cpus_per_worker))
        self.started_at = time.monotonic()
        # the group's meeting point: loopback for a private instance; this node's address when other nodes must
        # reach it (joining a cluster is what asks for that)
        self.host = "127.0.0.1" if self.started_ray else self.ray.util.get_node_ip_address()
        self.store = dist.TCPStore(self.host, 0, is_master=True, wait_for_workers=False,
                                   timeout=datetime.timedelta(seconds=GROUP_TIMEOUT_S))
        free = float(self.ray.available_resources().get("CPU", 0.0))
        room = self.membership.room = int(free / rt.cpus_per_worker + 1e-9)
        if room < rt.workers:  # Ray keeps the other actors pending, and places them when a node with room joins
            self.membership.notes.append(
                f"pacer: the cluster has room for {room} of {rt.workers} workers ({free:g} CPUs free, "
                f"runtime.cpus_per_worker {rt.cpus_per_worker:g}): training with {room}; the others start when a "
                "node with room joins")
        for spec in self.membership.specs:
            if stop_requested():
                break
            self.membership.launch(spec)

    def _begin_round(self) -> bool:
        """Send the next round, if one may start: True when one was sent. A round may be queued behind the one in
        flight (the same group, nothing lost), so that each actor starts its next rollout the moment it finishes a
        round instead of waiting for the driver (the next round's parameters are the replica's own)."""
        rt, rounds, membership = self.cfg.runtime, self.rounds, self.membership
        if self.paused or self.stopping or not membership.actors or len(rounds.flight) > AHEAD:
            return False
        if self.shared.budget_spent(rt.total_steps, rt.total_episodes) or \
                not rounds.room_ahead(rt.total_steps, rt.total_episodes):
            return False
        members = membership.running()
        if not members:
            return False
        if not rounds.sent and len(members) < min(membership.room, len(membership.actors)) and \
                time.monotonic() - self.started_at < processes.STARTUP_S:
            return False  # the first round waits for every worker there is room for: the run starts as one group
        if rounds.flight and (members != rounds.flight[-1].members or rounds.flight[-1].lost):
            return False  # a new group, or a broken one: only once the round in flight is settled
        if members != membership.members:  # a new group (an actor lost, restarted or added): every member joins it
            membership.form(members, self.host, self.store.port)
            rounds.forget(members)
        ready, payload = rounds.payload_for(members)
        if not ready:
            return False
        rounds.send(members, membership.actors, payload)
        return True

    def poll(self, timeout: float) -> list[Report]:
        out, self.held = self.held, []
        self.membership.judge()
        while self._begin_round():
            pass
        flight = self.rounds.flight
        if not flight:
            time.sleep(timeout)
            return out
        current = flight[0]
        pending = {ref: rank for rank, ref in current.calls.items() if rank not in current.results}
        if pending:
            ready, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=timeout, fetch_local=True)
            for ref in ready:
                self._answer(pending[ref], ref)
        self._check_hang(current)
        while flight and len(flight[0].results) == len(flight[0].members):
            done = flight.pop(0)
            out.extend(self.rounds.finish(done))
            self.membership.answered.update(rank for rank, result in done.results.items() if result is not None)
            if flight:
                flight[0].sent_at = time.monotonic()  # it starts now: its age counts from here
        while self._begin_round():
            pass
        return out

    def _answer(self, rank: int, ref: Any) -> None:
        from ray import exceptions as errors

        try:
            self.rounds.flight[0].results[rank] = self.ray.get(ref)
        except errors.RayTaskError as exc:  # the actor's own code raised: its traceback comes with it
            self._lose(rank, f"worker {rank} failed:\n{str(exc).rstrip()}")
        except (errors.RayActorError, errors.ActorUnavailableError, errors.ObjectLostError) as exc:
            # A lost node is lost capacity, not a crash: no restart is spent on it. Ray says which it was when the
            # actor is known dead; an unreachable one waits until its node is declared dead or alive.
            self.membership.suspect(rank, exc)
            self._void(rank)

    def _lose(self, rank: int, message: str) -> None:
        self.membership.lose(rank, message)
        self._void(rank)

    def _void(self, rank: int) -> None:
        """The rounds worker `rank` was in are given up: the abort flag releases the members waiting for it."""
        if self.rounds.lose(rank):
            self.store.set(f"g{self.membership.generation}/abort", "1")

    def _check_hang(self, current: Round) -> None:
        limit = self.cfg.runtime.heartbeat_timeout
        started = all(rank in self.membership.answered for rank in current.members)
        allowed = limit if started else max(limit, processes.STARTUP_S)
        silent = time.monotonic() - current.sent_at
        if silent > allowed:
            for rank in current.members:
                if rank not in current.results:
                    self._lose(rank, f"worker {rank} gave no sign of life for {silent:.1f} s "
                                     f"(runtime.heartbeat_timeout {limit:g} s) and was killed")

    def failures(self) -> list[Failure]:
        dead, self.membership.dead = self.membership.dead, []
        return dead

    def notices(self) -> list[str]:
        notes, self.membership.notes = self.membership.notes, []
        return notes

    def restart(self, rank: int) -> None:
        self.membership.relaunch(rank)

    def _drain(self, seconds: float) -> bool:
        """Let the rounds in flight finish (their updates count), within `seconds`; True when none is left."""
        deadline = time.monotonic() + seconds
        while self.rounds.flight and time.monotonic() < deadline and not signals.FORCE.is_set():
            self.held.extend(self.poll(min(0.1, max(0.0, deadline - time.monotonic()))))
        return not self.rounds.flight

    def pause(self) -> bool:
        self.paused = True
        return self._drain(PAUSE_WAIT_S)

    def resume(self) -> None:
        self.paused = False

    def placement(self) -> dict[int, Any]:
        return self.membership.placement()

    def stop(self) -> list[Report]:
        self.stopping = True
        try:
            self._drain(STOP_GRACE_S)
            states = {rank: actor.get_state.remote() for rank, actor in self.membership.actors.items()}
            if states and not signals.FORCE.is_set():
                ready, _ = self.ray.wait(list(states.values()), num_returns=len(states), timeout=5.0)
                for rank, ref in states.items():
                    if ref in ready:
                        state = self.ray.get(ref)
                        if state is not None:
                            self.final_states[rank] = state
            self.membership.locate(2.0)
        finally:
            self.membership.kill_all()
            self.rounds.flight = []
            self.store = None
            if self.started_ray:
                self.ray.shutdown()
        late, self.held = self.held, []
        return late
