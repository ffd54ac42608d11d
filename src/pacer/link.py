"""The worker's only way to the rest of the run, wherever it runs (pacer/worker.py uses nothing else).

Two implementations: `backends/hogwild.py` (inline and local backends: the parameters and optimizer state
live in shared memory, updates are applied at once, lock-free: Hogwild) and `backends/ray_actor.py` (Ray: the
parameters arrive with each rollout's call, the update leaves with its result, the driver applies it).
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor, nn


class Link(Protocol):
    def pull(self, params: list[nn.Parameter]) -> int:
        """Copy the latest parameters of the run into `params` (the local model's); returns their version."""

    def minibatches(self, minibatches: int) -> int:
        """How many minibatches this worker splits a rollout into, for `algo.minibatches` (what a local worker
        uses): as many alone; in a data-parallel group, as `runtime.group_minibatch` says."""

    def reduce(self, grad: Tensor) -> None:
        """Combine this update's flat gradient with those of the worker's group, in place, before it is clipped and
        pushed: the mean over a data-parallel group; nothing for a worker that updates alone."""

    def agree(self, stats: dict[str, float]) -> dict[str, float]:
        """The statistics a schedule decides on (approx-KL for `algo.target_kl`), the same on every worker of a
        group; as they are for a worker that updates alone."""

    def push(self, grad: Tensor, lr: float) -> None:
        """Hand in one update: the flat gradient of every parameter (in `model.parameters()` order), to be applied
        with learning rate `lr`."""

    def observe(self, moments: Any) -> None:
        """Add a rollout's observation moments (pacer/normalize.py) to the run's statistics."""

    def obs_stats(self) -> Any:
        """The run's observation moments as last seen (None when observations are not normalized)."""

    def reward_stats(self) -> Any:
        """This worker's reward-scaling moments as the run kept them (a restart, a resume), or None."""

    def keep_reward_stats(self, stats: Any) -> None:
        """Keep this worker's reward-scaling moments with the run, so that nothing learned is lost with it."""

    def add(self, steps: int, episodes: int, updates: int) -> None:
        """Count a finished rollout's env steps, episodes and updates towards the run's totals."""

    def env_steps(self) -> int:
        """The run's env steps so far, as last seen (for the learning-rate schedule)."""

    def beat(self) -> None:
        """A sign of life, for the supervisor's hang detection."""
