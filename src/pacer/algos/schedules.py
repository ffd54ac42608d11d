"""Update schedules: how one rollout's batch becomes optimizer steps (epochs, minibatches, early stop).

A schedule belongs to its algorithm, not to the worker: `schedule(batch, cfg, rng, update) -> (stats, updates)`.
`update(minibatch)` is the worker's side: the loss, one optimizer step wherever the parameters live, and the
loss's stats. Changing how an algorithm learns from a rollout is a new schedule, never a worker change.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pacer.algos.losses import Batch
from pacer.config import AlgoConfig

Update = Callable[[Batch], dict[str, float]]
Schedule = Callable[[Batch, AlgoConfig, int, int, torch.Generator, Update], tuple[dict[str, float], int]]

KL_MARGIN = 1.5  # stop once approx-KL exceeds 1.5 x target_kl, as Stable-Baselines3 does


def epochs_of_minibatches(batch: Batch, cfg: AlgoConfig, epochs: int, minibatches: int, rng: torch.Generator,
                          update: Update) -> tuple[dict[str, float], int]:
    """`epochs` passes over the batch, each in `minibatches` shuffled minibatches (one step each). With
    `cfg.target_kl` set, the rollout's remaining updates are skipped once a minibatch's approx-KL to the
    collecting policy exceeds 1.5 x target_kl. Returns the stats averaged over the updates made."""
    n = batch.obs.shape[0]
    if n == 0:
        return {}, 0
    size = max(1, n // minibatches)
    totals: dict[str, float] = {}
    updates = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=rng) if minibatches > 1 else torch.arange(n)
        for start in range(0, n - size + 1, size):
            minibatch = batch if minibatches == 1 else Batch(*(x[order[start:start + size]] for x in batch))
            stats = update(minibatch)
            updates += 1
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value
            if cfg.target_kl is not None and stats.get("approx_kl", 0.0) > KL_MARGIN * cfg.target_kl:
                return _mean(totals, updates, stopped_early=1.0), updates
    return _mean(totals, updates, stopped_early=0.0 if cfg.target_kl is not None else None), updates


def _mean(totals: dict[str, float], updates: int, stopped_early: float | None) -> dict[str, float]:
    out = {key: value / updates for key, value in totals.items()}
    if stopped_early is not None:
        out["kl_early_stop"] = stopped_early
    return out
