"""State shared by the supervisor and every worker: parameters, optimizer state, counters, heartbeats, stop event.

Everything is allocated once, in the parent, before any worker starts, and nothing here takes a lock: a process
SIGKILLed (or SIGSTOPped) while holding a cross-process lock never releases it, and everyone else then blocks
forever. Counters hold one slot per worker, written only by that worker, once per rollout, and summed by readers;
heartbeats likewise; the stop and pause requests are plain shared flags.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pacer import normalize
from pacer.config import Config
from pacer.runtime import flat, optim

COUNTERS = ("env_steps", "episodes", "updates")


PAUSE_POLL_S = 0.001


@dataclass
class Rows:
    """float64 rows, each written by one process only and read whole by any: a sequence number per row is odd while
    its writer rewrites it, and a reader keeps its copy only if the number was even and unchanged across the copy (a
    seqlock, without a lock to hold). A torn read would mix two writes (a count from one, moments from another)."""

    values: torch.Tensor
    versions: torch.Tensor

    @classmethod
    def zeros(cls, rows: int, width: int) -> Rows:
        return cls(torch.zeros(rows, width, dtype=torch.float64), torch.zeros(rows, dtype=torch.int64))

    def share_memory_(self) -> None:
        self.values.share_memory_()
        self.versions.share_memory_()

    def write(self, row: int, data: Any) -> None:
        """Called only by the row's writer."""
        values, versions = self.values[row].numpy(), self.versions.numpy()
        versions[row] += 1  # odd: a write is under way
        values[:] = data
        versions[row] += 1

    def own(self, row: int) -> Any:
        """The writer's view of its own row (no one else writes it)."""
        return self.values[row].numpy()

    def read(self) -> Any:
        """A consistent copy of every row."""
        values, versions = self.values.numpy(), self.versions.numpy()
        out = np.empty_like(values)
        for row in range(len(values)):
            while True:
                before = int(versions[row])
                out[row] = values[row]
                if before % 2 == 0 and int(versions[row]) == before:
                    break
                time.sleep(0)  # the writer is inside its few microseconds of writing: let it finish
        return out


class Flag:
    """A flag in shared memory, without the lock a multiprocessing.Event takes even to read it: a worker killed
    (or stopped) inside `Event.is_set()` would hold that lock forever, and the supervisor's `set()` would hang."""

    def __init__(self, ctx: Any) -> None:
        self.flag = ctx.RawValue("b", 0)

    def set(self) -> None:
        self.flag.value = 1

    def clear(self) -> None:
        self.flag.value = 0

    def is_set(self) -> bool:
        return bool(self.flag.value)


@dataclass
class SharedState:
    model: nn.Module | None
    """The run's model, in the parent only; its parameters are in shared memory when workers are processes."""
    params: list[nn.Parameter]
    """The model's parameters (in `parameters()` order): what workers get, by handle, never the module itself,
    whose class may live in a notebook's __main__ that a worker cannot import."""
    optimizer_states: list[optim.OptimizerState]
    """One state for a shared optimizer, or one per worker."""
    counts: Any
    """int64 array [3, workers + 1]: env steps, episodes, updates; column w is worker w's, the last column holds
    what earlier sessions of a resumed run counted."""
    heartbeats: Any
    """float64 array [workers]: time.monotonic() of each worker's last sign of life (0: not started yet)."""
    stop: Flag
    """Set by the supervisor to ask every worker to finish its rollout and exit."""
    pause: Flag
    """Set by the supervisor to hold every worker between rollouts (evaluation with `runtime.pause_for_eval`)."""
    waiting: Any
    """int8 array [workers]: 1 while worker w is held by `pause`."""
    obs: Rows | None = None
    """With `model.normalize_input: running`, [workers + 1, 1 + 2 * obs_dim]: row w is worker w's observation moments
    (pacer/normalize.py), the last row those of earlier sessions; None otherwise."""
    rewards: Rows | None = None
    """With `algo.scale_rewards`, [workers, 3]: row w holds the moments of worker w's discounted returns, which its
    reward scaler divides by, kept here so that a restarted worker and a resumed run go on with them."""

    def add(self, rank: int, steps: int, episodes: int, updates: int) -> None:
        width = len(self.counts) // len(COUNTERS)
        for row, n in enumerate((steps, episodes, updates)):
            self.counts[row * width + rank] += n  # this worker is the only writer of its slot

    def counters(self) -> dict[str, int]:
        width = len(self.counts) // len(COUNTERS)
        values = self.counts[:]
        return {name: int(sum(values[row * width:(row + 1) * width])) for row, name in enumerate(COUNTERS)}

    def set_counters(self, values: dict[str, int]) -> None:
        """Restore the totals of a resumed run into the 'earlier sessions' slot."""
        width = len(self.counts) // len(COUNTERS)
        for row, name in enumerate(COUNTERS):
            for col in range(width):
                self.counts[row * width + col] = 0
            self.counts[row * width + width - 1] = int(values[name])

    def budget_spent(self, total_steps: int, total_episodes: int | None) -> bool:
        counts = self.counters()
        return counts["env_steps"] >= total_steps or (
            total_episodes is not None and counts["episodes"] >= total_episodes)

    def beat(self, rank: int) -> None:
        self.heartbeats[rank] = time.monotonic()

    def hold_while_paused(self, rank: int) -> None:
        """Called by a worker between rollouts: wait while the pause flag is up (or until a stop). A short sleep
        loop rather than a cross-process lock, for the reason in the module docstring; it runs only during an
        evaluation, never on the hot path."""
        self.waiting[rank] = 1
        try:
            while self.pause.is_set() and not self.stop.is_set():
                self.beat(rank)
                time.sleep(PAUSE_POLL_S)
        finally:
            self.waiting[rank] = 0

    def optimizer_slot(self, rank: int) -> optim.OptimizerState:
        return self.optimizer_states[0 if len(self.optimizer_states) == 1 else rank]

    def for_worker(self, rank: int) -> SharedState:
        """What worker `rank` needs: the parameters, its optimizer state, the counters and flags."""
        return dataclasses.replace(self, model=None, optimizer_states=[self.optimizer_slot(rank)])

    def observe(self, rank: int, moments: Any) -> None:
        """Add observation moments to row `rank`, whose only writer is the caller."""
        assert self.obs is not None
        self.obs.write(rank, normalize.combine(self.obs.own(rank), moments))

    def obs_stats(self) -> Any:
        """The run's observation moments: every worker's row combined (None without running normalization)."""
        return None if self.obs is None else normalize.total(self.obs.read())

    def reward_stats(self, rank: int) -> Any:
        """Worker `rank`'s reward-scaling moments, or None (no scaling, or nothing counted yet)."""
        if self.rewards is None:
            return None
        row = self.rewards.read()[rank]
        return row if row[0] > 0 else None

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A private copy of the parameters (and the observation statistics as of now), for evaluation and
        checkpoints while workers keep writing."""
        assert self.model is not None, "the model is the parent's"
        norm = normalize.norm_of(self.model)
        if norm is not None and self.obs is not None:
            norm.load(self.obs_stats())
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def create(cfg: Config, model: nn.Module, ctx: Any, in_shared_memory: bool) -> SharedState:
    workers = cfg.runtime.workers
    slots = 1 if cfg.algo.shared_optimizer else workers
    params = list(model.parameters())
    flat.flatten_(params)  # views of one buffer, shared as one: a worker's pull is one copy, its step one tensor
    states = [optim.new_state(cfg.algo.optimizer, params) for _ in range(slots)]
    norm = normalize.norm_of(model)
    obs = None if norm is None else Rows.zeros(workers + 1, 1 + 2 * norm.mean.numel())
    rewards = Rows.zeros(workers, 3) if cfg.algo.scale_rewards else None
    if in_shared_memory:
        model.share_memory()
        for state in states:
            optim.share_state(state)
        for rows in (obs, rewards):
            if rows is not None:
                rows.share_memory_()
    return SharedState(model=model, params=params, optimizer_states=states,
                       counts=ctx.Array("q", len(COUNTERS) * (workers + 1), lock=False),
                       heartbeats=ctx.Array("d", workers, lock=False), stop=Flag(ctx), pause=Flag(ctx),
                       waiting=ctx.Array("b", workers, lock=False), obs=obs, rewards=rewards)
