"""Update schedules: how one rollout's batch becomes optimizer steps (epochs, minibatches, early stop).

A schedule belongs to its algorithm, not to the worker: `schedule(batch, cfg, rng, learner) -> (stats, updates)`.
The learner is the worker's side: `loss(minibatch)` on the latest parameters gives a `Step`, and `step(step)`
applies it, one optimizer step wherever the parameters live. Keeping the two apart lets a schedule look at a
minibatch's statistics before it decides to apply it; a step carries its own gradient (or the graph it comes from),
so whatever else the schedule computed meanwhile, `step(s)` applies the update of the minibatch `s` came from.
Changing how an algorithm learns from a rollout is a new schedule, never a worker change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from pacer.algos.losses import Batch, rows, sequences
from pacer.config import AlgoConfig

KL_MARGIN = 1.5  # stop once approx-KL exceeds 1.5 x target_kl, as Stable-Baselines3 does


@dataclass
class Step:
    """One minibatch's update, not yet applied: the loss as a graph to back-propagate, or, where the gradient was
    computed by hand (algos/analytic.py), its value and the finished flat gradient."""

    loss: Tensor
    """The total loss: a graph on the local model's parameters (autograd), or a plain number (with `grad`)."""
    stats: dict[str, float] = field(default_factory=dict)
    """The loss's statistics (what the schedule may decide on, e.g. approx_kl)."""
    grad: Tensor | None = None
    """The flat gradient of every parameter, in `model.parameters()` order, when it is already computed."""


class Learner(Protocol):
    def loss(self, minibatch: Batch) -> Step:
        """The minibatch's update on the latest parameters, with its statistics."""

    def step(self, step: Step) -> dict[str, float]:
        """Apply one update (back-propagating `step.loss` if its gradient is not computed yet); returns the step's
        own statistics (e.g. grad_norm)."""


Schedule = Callable[[Batch, AlgoConfig, torch.Generator, Learner], tuple[dict[str, float], int]]


def epochs_of_minibatches(batch: Batch, cfg: AlgoConfig, rng: torch.Generator, learner: Learner
                          ) -> tuple[dict[str, float], int]:
    """`cfg.epochs` passes over the batch, each in exactly `cfg.minibatches` shuffled minibatches of n // minibatches
    units, rows or (for a recurrent model) sequences (one step each; the n mod minibatches units left over sit out
    that pass; a batch of fewer units than minibatches repeats units). A fixed count keeps the workers of a
    data-parallel group in step. With `cfg.target_kl` set, a minibatch whose approx-KL to the collecting policy
    exceeds 1.5 x target_kl is not applied, and neither is the rest of the rollout (as SB3 does). Returns the stats
    averaged over the updates made."""
    if cfg.epochs is None or cfg.minibatches is None:
        raise ValueError("algo.epochs and algo.minibatches must be resolved (pacer.runconfig.complete)")
    n = batch.actions.shape[0] if batch.memory is None else batch.memory.mask.shape[1]
    if n == 0:
        return {}, 0
    size = max(1, n // cfg.minibatches)
    totals: dict[str, float] = {}
    updates = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=rng) if cfg.minibatches > 1 else torch.arange(n)
        if n < cfg.minibatches:
            order = order.repeat(cfg.minibatches // n + 1)
        # rows are shuffled once an epoch, and each minibatch is then a slice (a view), not a gather of its own
        shuffled = batch if cfg.minibatches == 1 or batch.memory is not None else rows(batch, order)
        for start in range(0, cfg.minibatches * size, size):
            if batch.memory is not None:
                minibatch = sequences(batch, order[start:start + size])
            elif cfg.minibatches == 1:
                minibatch = shuffled
            else:
                minibatch = rows(shuffled, slice(start, start + size))
            step = learner.loss(minibatch)
            stats = dict(step.stats)
            if cfg.target_kl is not None and stats.get("approx_kl", 0.0) > KL_MARGIN * cfg.target_kl:
                return _mean(totals, updates, stopped_early=1.0), updates
            stats.update(learner.step(step))
            updates += 1
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value
    return _mean(totals, updates, stopped_early=0.0 if cfg.target_kl is not None else None), updates


def _mean(totals: dict[str, float], updates: int, stopped_early: float | None) -> dict[str, float]:
    out = {key: value / max(updates, 1) for key, value in totals.items()}
    if stopped_early is not None:
        out["kl_early_stop"] = stopped_early
    return out
