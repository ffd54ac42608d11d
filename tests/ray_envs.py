"""Envs for the Ray tests: CartPole that raises once inside a Ray actor (never in the driver, which evaluates)."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from pacer.algos import LossTerms


class CrashOnceInAnActor(gym.Wrapper):
    def __init__(self, marker: str, after: int = 200) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.marker, self.after, self.steps = marker, after, 0

    def step(self, action: Any) -> Any:
        import ray

        self.steps += 1
        if self.steps == self.after and ray.is_initialized() and \
                ray.get_runtime_context().get_actor_id() is not None:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))  # only the first actor to get here
            except FileExistsError:
                return self.env.step(action)
            raise RuntimeError("injected crash in an actor")
        return self.env.step(action)


def make_crashing_cartpole(marker: str) -> gym.Env:
    return CrashOnceInAnActor(marker)


class Scalar(nn.Module):
    """An actor-critic with one parameter: the value of every observation is w (5 at first); the policy is uniform."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(5.0))
        self.actions = int(action_space.n)  # type: ignore[attr-defined]

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(obs.shape[0], self.actions), self.w.expand(obs.shape[0])


def quadratic_loss(model: nn.Module, head: Any, batch: Any, cfg: Any) -> LossTerms:
    """(w - 1)^2: a problem whose optimum every learner agrees on, whatever its data."""
    _, value = model(batch.obs)
    zero = torch.zeros(())
    return LossTerms(policy=zero, value=(value - 1.0).pow(2).mean(), entropy=zero)


def tiny_quadratic_loss(model: nn.Module, head: Any, batch: Any, cfg: Any) -> LossTerms:
    """1e-8 (w - 1)^2: gradients of Adam's eps's size, so that a step depends on the gradient's scale."""
    _, value = model(batch.obs)
    zero = torch.zeros(())
    return LossTerms(policy=zero, value=1e-8 * (value - 1.0).pow(2).mean(), entropy=zero)
