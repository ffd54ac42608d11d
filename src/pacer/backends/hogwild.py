"""The Hogwild link, for the inline and local backends: lock-free updates of parameters every worker shares.

`pull` copies the shared parameters into the worker's local model; `push` copies (never aliases) the local gradients
onto the shared parameters and steps the (shared or per-worker) optimizer on them, lock-free. Copying matters:
aliasing the shared `.grad` to the local one, as older A3C code does, makes gradients accumulate across updates
on torch >= 2, where `zero_grad()` sets them to None instead of zeroing in place.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pacer.config import Config
from pacer.runtime.shared import SharedState
from pacer.runtime.store import ParamStore


class HogwildLink:
    def __init__(self, shared: SharedState, rank: int, cfg: Config) -> None:
        self.shared, self.rank = shared, rank
        self.shared_params = shared.params
        for p in self.shared_params:
            if p.grad is None:  # this process's own gradient buffer (not shared), written by copy every update
                p.grad = torch.zeros_like(p)
        self.store = ParamStore(self.shared_params, shared.optimizer_slot(rank), cfg.algo.optimizer, cfg.algo.lr)

    def pull(self, params: list[nn.Parameter]) -> int:
        with torch.no_grad():
            for local, shared in zip(params, self.shared_params, strict=True):
                local.copy_(shared)
        return 0  # Hogwild parameters change continuously: there are no versions to tell apart

    def reduce(self, params: list[nn.Parameter]) -> None:
        pass  # each worker updates on its own gradients: nothing to combine

    def agree(self, stats: dict[str, float]) -> dict[str, float]:
        return stats

    def push(self, params: list[nn.Parameter], lr: float) -> None:
        self.store.apply([p.grad for p in params], lr)

    def observe(self, moments: Any) -> None:
        self.shared.observe(self.rank, moments)  # this worker's own row: it is the only writer

    def obs_stats(self) -> Any:
        return self.shared.obs_stats()

    def reward_stats(self) -> Any:
        return self.shared.reward_stats(self.rank)

    def keep_reward_stats(self, stats: Any) -> None:
        assert self.shared.rewards is not None
        self.shared.rewards.write(self.rank, stats)  # this worker's own row

    def add(self, steps: int, episodes: int, updates: int) -> None:
        self.shared.add(self.rank, steps, episodes, updates)

    def env_steps(self) -> int:
        return self.shared.counters()["env_steps"]

    def beat(self) -> None:
        self.shared.beat(self.rank)
