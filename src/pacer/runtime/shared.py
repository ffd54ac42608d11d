"""State shared by the supervisor and every worker: parameters, optimizer state, counters, the stop event.

Everything is allocated once, in the parent, before any worker starts. Counters are ctypes values under their
own lock: a worker adds to them once per rollout, never per step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pacer.config import Config
from pacer.runtime import optim


@dataclass
class SharedState:
    model: nn.Module
    """The shared model; its parameters are in shared memory when workers are processes."""
    optimizer_states: list[optim.OptimizerState]
    """One state for a shared optimizer, or one per worker."""
    env_steps: Any
    """Environment transitions collected so far, over all workers (multiprocessing.Value 'q')."""
    episodes: Any
    """Episodes finished so far."""
    updates: Any
    """Optimizer steps applied so far."""
    stop: Any
    """Set by the supervisor to ask every worker to finish its rollout and exit."""

    def add(self, steps: int, episodes: int, updates: int) -> None:
        for counter, n in ((self.env_steps, steps), (self.episodes, episodes), (self.updates, updates)):
            if n:
                with counter.get_lock():
                    counter.value += n

    def counters(self) -> dict[str, int]:
        """Read without the locks: an aligned 64-bit read is atomic, and a worker killed while holding a lock
        must not hang the supervisor."""
        return {"env_steps": int(self.env_steps.get_obj().value), "episodes": int(self.episodes.get_obj().value),
                "updates": int(self.updates.get_obj().value)}

    def set_counters(self, values: dict[str, int]) -> None:
        self.env_steps.value = int(values["env_steps"])
        self.episodes.value = int(values["episodes"])
        self.updates.value = int(values["updates"])

    def budget_spent(self, total_steps: int, total_episodes: int | None) -> bool:
        counts = self.counters()
        return counts["env_steps"] >= total_steps or (
            total_episodes is not None and counts["episodes"] >= total_episodes)

    def optimizer_slot(self, rank: int) -> optim.OptimizerState:
        return self.optimizer_states[0 if len(self.optimizer_states) == 1 else rank]

    def for_worker(self, rank: int) -> SharedState:
        """What worker `rank` needs: everything but the other workers' optimizer states."""
        return dataclasses.replace(self, optimizer_states=[self.optimizer_slot(rank)])

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A private copy of the parameters, for evaluation and checkpoints while workers keep writing."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def create(cfg: Config, model: nn.Module, ctx: Any, in_shared_memory: bool) -> SharedState:
    slots = 1 if cfg.algo.shared_optimizer else cfg.runtime.workers
    params = list(model.parameters())
    states = [optim.new_state(cfg.algo.optimizer, params) for _ in range(slots)]
    if in_shared_memory:
        model.share_memory()
        for state in states:
            optim.share_state(state)
    return SharedState(model=model, optimizer_states=states, env_steps=ctx.Value("q", 0), episodes=ctx.Value("q", 0),
                       updates=ctx.Value("q", 0), stop=ctx.Event())
