"""The Hogwild link, for the inline and local backends: lock-free updates of parameters every worker shares.

`pull` copies the shared parameters into the worker's local model (one copy when both are flat buffers:
`runtime/flat.py`); `push` hands the update's flat gradient, a tensor of its own, to the shared parameters and steps
the (shared or per-worker) optimizer on them, lock-free (`runtime/store.py`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pacer.config import Config
from pacer.runtime import flat
from pacer.runtime.shared import SharedState
from pacer.runtime.store import ParamStore


class HogwildLink:
    def __init__(self, shared: SharedState, rank: int, cfg: Config) -> None:
        self.shared, self.rank = shared, rank
        self.shared_params = shared.params
        self.store = ParamStore(self.shared_params, shared.optimizer_slot(rank), cfg.algo.optimizer, cfg.algo.lr)
        self.local: tuple[list[nn.Parameter], Tensor | None] | None = None  # the worker's parameters, and their flat

    def pull(self, params: list[nn.Parameter]) -> int:
        if self.local is None or self.local[0] is not params:
            self.local = (params, flat.view_of(list(params)))
        local_flat = self.local[1]
        with torch.no_grad():
            if local_flat is not None and self.store.flat is not None:
                local_flat.copy_(self.store.flat)
            else:
                for local, shared in zip(params, self.shared_params, strict=True):
                    local.copy_(shared)
        return 0  # Hogwild parameters change continuously: there are no versions to tell apart

    def minibatches(self, minibatches: int) -> int:
        return minibatches  # each worker learns alone

    def reduce(self, grad: Tensor) -> None:
        pass  # each worker updates on its own gradients: nothing to combine

    def agree(self, stats: dict[str, float]) -> dict[str, float]:
        return stats

    def push(self, grad: Tensor, lr: float) -> None:
        self.store.apply(grad, lr)

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
