"""The Ray actor side: a worker, the very same Worker code, as one member of a data-parallel group (DD-PPO).

Every actor holds a replica of the run's parameters and optimizer state. The driver runs rounds: in each, every
member collects one rollout from the same parameters, then the members learn in lockstep, as one learner on
their pooled batch would: each minibatch's gradients are averaged over the group with an all-reduce (gloo, through
torch.distributed), and every member takes the same optimizer step on its replica (`ParamStore`, the code the
Hogwild link uses). The update is large-batch PPO (or A2C) whatever the group's size, never a sum of separate
learners' steps. Member 0 returns the new parameters and optimizer state, which the driver keeps and checkpoints.

A member that dies breaks its group's collectives: the others notice (an abort flag the driver sets in the
group's store, or gloo's timeout) and raise `GroupBroken`; the driver drops the round and forms a new group.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pacer import normalize
from pacer.config import Config
from pacer.errors import first_line
from pacer.reports import Report
from pacer.runtime import optim
from pacer.runtime.store import Dump, ParamStore
from pacer.usercode import unwrap
from pacer.worker import Worker, WorkerSpec

BARRIER_POLL_S = 0.005


def member_minibatches(cfg: Config, size: int) -> int:
    """How many minibatches a member of a group of `size` splits its rollout into, for `algo.minibatches` of a local
    worker. 'worker' (the default): `size` times as many, so that a pooled minibatch (one from each member) is as
    large as a local worker's and the group makes as many updates per env step as `size` local workers. 'pooled':
    as many, so that the group learns like one worker holding every env (fewer, larger updates)."""
    minibatches = cfg.algo.minibatches or 1
    return minibatches * size if cfg.runtime.group_minibatch == "worker" else minibatches


@dataclass
class RoundResult:
    """What a member sends back from a round."""

    ok: bool
    why: str = ""
    """Why the round was given up (ok false): the group broke, or the replica was not where the round began."""
    moments: Any = None
    """This rollout's observation moments (running normalization), for the driver's statistics."""
    state: Dump | None = None
    """Member 0's parameters and optimizer state after the round (ParamStore.dump): the run's next version."""
    report: Report | None = None
    rewards: Any = None
    """This worker's reward-scaling moments, for the driver to keep."""


class GroupBroken(RuntimeError):
    """A member of the group died or the driver gave the round up: the round's update is void."""


class Group:
    """This actor's place in the driver's current group: rank, size, and the store the members meet at."""

    def __init__(self, host: str, port: int, generation: int, rank: int, size: int, timeout_s: float) -> None:
        import torch.distributed as dist

        self.generation, self.rank, self.size = generation, rank, size
        self.store = dist.TCPStore(host, port, is_master=False, timeout=datetime.timedelta(seconds=timeout_s))
        self.prefix = f"g{generation}/"
        if size > 1:
            if dist.is_initialized():
                dist.destroy_process_group()
            dist.init_process_group("gloo", store=dist.PrefixStore(self.prefix + "pg", self.store), rank=rank,
                                    world_size=size, timeout=datetime.timedelta(seconds=timeout_s))

    def aborted(self) -> bool:
        return self.store.check([self.prefix + "abort"])

    def barrier(self, round_id: int) -> None:
        """Wait until every member has collected its rollout (the slowest sets the pace), or the driver gives the
        round up: a wait that the driver can cut short, where a collective could only time out."""
        key = f"{self.prefix}r{round_id}/ready"
        arrived = self.store.add(key, 1)
        while arrived < self.size:
            if self.aborted():
                raise GroupBroken(f"the driver gave round {round_id} up (a member of the group was lost)")
            time.sleep(BARRIER_POLL_S)
            arrived = self.store.add(key, 0)


class GroupLink:
    """The worker's link inside an actor: parameters arrive with a round (when the replica is not at the driver's
    version), gradients are averaged over the group, updates are applied to the replica."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.cfg, self.algo = spec.config, spec.config.algo
        self.group: Group | None = None
        self.round_id = -1
        self.waited = False  # whether this round's barrier was passed
        self.version = -1  # the driver's version the replica holds; -1: load the driver's before the next rollout
        self.received: tuple[int, list[np.ndarray], list[dict[str, Any]]] | None = None
        self.store: ParamStore | None = None
        self.steps_seen = 0
        self.behind = False  # whether `steps_seen` misses the round before this one (this one was queued behind it)
        self.last = (-1, 0)  # this member's last round: its id and env steps
        self.stats: Any = None  # the run's observation moments, as the driver sent them
        self.moments: Any = None  # this rollout's, for the driver
        self.kept_rewards: Any = None  # this worker's reward-scaling moments, to and from the driver

    def receive(self, round_id: int, version: int, payload: Any, env_steps: int, stats: Any, behind: bool) -> None:
        self.round_id, self.waited = round_id, False
        # sent only to replicas not at the driver's version: nothing sent means this replica is at it
        self.received = None if payload is None else (version, payload[0], payload[1])
        self.steps_seen, self.stats, self.behind = env_steps, stats, behind

    def finished(self, steps: int) -> None:
        """This member's round is done: its env steps go to the group's tally, which the next round reads when
        the driver had not counted this one yet."""
        self.last = (self.round_id, steps)
        group = self.group
        if group is not None and group.size > 1:
            group.store.add(f"{group.prefix}r{self.round_id}/steps", steps)
            if group.rank == 0:  # rounds long read by every member: dropped, so that the store stays small
                for key in ("ready", "steps"):
                    group.store.delete_key(f"{group.prefix}r{self.round_id - 3}/{key}")

    def pull(self, params: list[nn.Parameter]) -> int:
        """At a rollout's start, load the driver's parameters and optimizer state if the replica is not at its
        version; later in the rollout the replica is the learner's own, and nothing is loaded."""
        if self.store is None:
            self.store = ParamStore(params, optim.new_state(self.algo.optimizer, params), self.algo.optimizer,
                                    self.algo.lr)
        if self.received is not None and self.received[0] != self.version:
            version, values, state = self.received
            self.store.load((values, state))
            self.version = version
        return self.version

    def minibatches(self, minibatches: int) -> int:
        return member_minibatches(self.cfg, 1 if self.group is None else self.group.size)

    def _sync(self) -> None:
        if self.group is not None and self.group.size > 1 and not self.waited:
            self.group.barrier(self.round_id)
            self.waited = True

    def reduce(self, grad: Tensor) -> None:
        if self.group is None or self.group.size == 1:
            return
        self._sync()
        self._all_reduce(grad)
        grad /= self.group.size

    def agree(self, stats: dict[str, float]) -> dict[str, float]:
        if self.group is None or self.group.size == 1 or "approx_kl" not in stats:
            return stats
        self._sync()
        kl = torch.tensor([stats["approx_kl"]], dtype=torch.float64)
        self._all_reduce(kl)
        return {**stats, "approx_kl": float(kl[0]) / self.group.size}

    def _all_reduce(self, tensor: Tensor) -> None:
        import torch.distributed as dist

        try:
            dist.all_reduce(tensor)
        except RuntimeError as exc:  # a peer's connection closed, or gloo's timeout: the group is gone
            raise GroupBroken(f"the group's all-reduce failed: {first_line(exc)}") from None

    def push(self, grad: Tensor, lr: float) -> None:
        assert self.store is not None
        self.store.apply(grad, lr)  # to the replica, in place

    def observe(self, moments: Any) -> None:
        self.moments = moments if self.moments is None else normalize.combine(self.moments, moments)

    def obs_stats(self) -> Any:
        return self.stats

    def take_moments(self) -> Any:
        moments, self.moments = self.moments, None
        return moments

    def state(self) -> Dump:
        """The replica's parameters and optimizer state, as plain data for the driver."""
        assert self.store is not None
        return self.store.dump()

    def reward_stats(self) -> Any:
        return self.kept_rewards

    def keep_reward_stats(self, stats: Any) -> None:
        self.kept_rewards = np.array(stats)  # goes back to the driver with the round's result

    def add(self, steps: int, episodes: int, updates: int) -> None:
        pass  # the driver counts, from the report

    def env_steps(self) -> int:
        """The run's env steps before this rollout, the same on every member (they take the same step): the
        driver's count, plus the group's tally of the round before when this round was queued behind it."""
        if self.behind:
            before, steps = self.last
            if before != self.round_id - 1:
                raise GroupBroken(f"round {self.round_id} was queued behind a round this replica did not finish")
            if self.group is not None and self.group.size > 1:
                self._sync()  # every member is past the round before: its tally is complete
                steps = self.group.store.add(f"{self.group.prefix}r{before}/steps", 0)
            self.steps_seen, self.behind = self.steps_seen + steps, False
        return self.steps_seen

    def beat(self) -> None:
        pass  # the driver watches its calls' age instead


class WorkerActor:
    """Wrapped with `ray.remote` by the backend (so that importing this module needs no Ray)."""

    def __init__(self, spec: Any) -> None:
        spec = unwrap(spec)
        torch.set_num_threads(spec.config.runtime.threads_per_worker)
        self.rank = spec.rank
        self.worker: Worker | None = None
        self.spec = spec  # the config as config.yaml has it: the link says how finely a member splits its rollout
        self.link = GroupLink(spec)
        self.join_error: str | None = None

    def where(self) -> dict[str, Any]:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}

    def join(self, host: str, port: int, generation: int, rank: int, size: int, timeout_s: float,
             loopback: bool) -> None:
        """Become member `rank` of a group of `size` (a new generation each time the membership changes)."""
        if loopback:
            os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # the driver is on loopback: so is every socket of the group
        self.link.group, self.link.version = None, -1  # a new group starts from the driver's parameters
        self.join_error = None
        try:
            self.link.group = Group(host, port, generation, rank, size, timeout_s)
        except Exception as exc:  # a member that never came (lost meanwhile): this group's rounds are void
            self.join_error = f"joining group {generation} failed: {type(exc).__name__}: {first_line(exc)}"

    def round(self, round_id: int, version: int, payload: list[Any], env_steps: int, stats: Any,
              reward_stats: Any = None, behind: bool = False) -> RoundResult:
        """One rollout and the group's updates. Returns member 0's parameters and optimizer state with the report,
        or a result that is not ok when the group broke or the round was queued behind one that was void (the
        replica then reloads from the driver). The driver sends parameters only to a replica that is not at
        `version`; a round queued behind another finds its replica there, and starts at once. `reward_stats` is
        what the run kept of this worker's (for a new actor: a restart, a resume)."""
        import ray

        link = self.link
        link.kept_rewards = reward_stats
        if self.worker is None:  # built on the first call, so that a failure comes back as that call's error
            self.worker = Worker(self.spec, link)
        if self.join_error is not None:
            return RoundResult(False, self.join_error)
        if payload[0] is None and version != link.version:  # queued behind a round that was given up
            return RoundResult(False, f"the replica is not at version {version} (the round before was void)")
        fresh = payload[0] is not None and version != link.version
        link.receive(round_id, version, ray.get(payload[0]) if fresh else None, env_steps, stats, behind)
        try:
            report = self.worker.iterate()
        except GroupBroken as exc:
            link.version, link.moments = -1, None
            return RoundResult(False, str(exc))
        link.version = version + 1  # every member took the same steps: the replica is the driver's next version
        link.finished(report.env_steps)
        state = link.state() if link.group is None or link.group.rank == 0 else None
        return RoundResult(True, moments=link.take_moments(), state=state, report=report, rewards=link.kept_rewards)

    def get_state(self) -> dict[str, Any] | None:
        return None if self.worker is None else self.worker.get_state()
