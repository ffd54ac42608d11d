"""The algorithm registry: a name maps to a loss function, how its batch is prepared and its update schedule.

Register your own training step with `register_algo("name", my_loss)`; the function must live in an importable
module (not a notebook's `__main__`) so that worker processes can load it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from pacer.algos import analytic
from pacer.algos.analytic import FastGrad, FastGradFactory
from pacer.algos.losses import Batch, LossTerms, a2c_loss, explained_variance, mc_loss, ppo_loss, prepare
from pacer.algos.schedules import Learner, Schedule, Step, epochs_of_minibatches
from pacer.config import AlgoConfig, ModelConfig
from pacer.errors import PacerError, did_you_mean
from pacer.heads import ActionHead
from pacer.spaces import ObsLayout

LossFn = Callable[[nn.Module, ActionHead, Batch, AlgoConfig], LossTerms]


@dataclass(frozen=True)
class Algorithm:
    loss: LossFn
    """Called on each (mini)batch; returns the loss's terms by name (LossTerms)."""
    targets: Literal["mc", "gae"] = "gae"
    """'mc': whole episodes and Monte-Carlo returns; 'gae': n-step rollouts and GAE advantages."""
    epochs: int = 1
    """Passes over each rollout: the value of `algo.epochs` when the config leaves it out."""
    minibatches: int = 1
    """Minibatches per pass: the value of `algo.minibatches` when the config leaves it out."""
    schedule: Schedule = epochs_of_minibatches
    """How a rollout's batch becomes optimizer steps (pacer/algos/schedules.py)."""
    fast_grad: FastGradFactory | None = None
    """The loss's gradient computed without autograd, where it covers the run (algos/analytic.py); None: autograd."""

    def fast_grad_refusal(self, mcfg: ModelConfig, acfg: AlgoConfig, head: ActionHead,
                          layout: ObsLayout | None = None) -> str | None:
        """Why this algorithm's fast gradient does not cover the run (None when it does)."""
        if self.fast_grad is None:
            return f"algorithm {acfg.name!r} has no hand-written gradient"
        return analytic.refusal(mcfg, acfg, head, layout)


ALGOS: dict[str, Algorithm] = {
    "mc": Algorithm(mc_loss, targets="mc"),
    "a2c": Algorithm(a2c_loss, fast_grad=analytic.a2c),
    # A3C is a2c's loss on the Hogwild runtime: lock-free updates through a shared optimizer (the default).
    "a3c": Algorithm(a2c_loss, fast_grad=analytic.a2c),
    "ppo": Algorithm(ppo_loss, epochs=4, minibatches=8, fast_grad=analytic.ppo),
}


def register_algo(name: str, loss: LossFn, targets: Literal["mc", "gae"] = "gae", epochs: int = 1,
                  minibatches: int = 1, schedule: Schedule = epochs_of_minibatches,
                  fast_grad: FastGradFactory | None = None) -> None:
    """Make `loss` selectable as `algo.name: <name>`. `fast_grad` is for a loss whose gradient you also wrote by
    hand (algos/analytic.py shows the contract); leave it out and autograd differentiates `loss`."""
    if targets not in ("mc", "gae"):
        raise PacerError(f"targets must be 'mc' or 'gae', got {targets!r}")
    ALGOS[name] = Algorithm(loss, targets=targets, epochs=epochs, minibatches=minibatches, schedule=schedule,
                            fast_grad=fast_grad)


def get_algo(name: str) -> Algorithm:
    if name not in ALGOS:
        raise PacerError(f"unknown algorithm {name!r}{did_you_mean(name, ALGOS)}; choose from {', '.join(ALGOS)}")
    return ALGOS[name]


__all__ = ["ALGOS", "Algorithm", "Batch", "FastGrad", "FastGradFactory", "Learner", "LossFn", "LossTerms", "Schedule",
           "Step", "explained_variance", "get_algo", "prepare", "register_algo"]
