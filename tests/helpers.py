"""Importable helpers for the tests (worker processes must be able to import them)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from pacer.algos import LossTerms


def make_cartpole() -> gym.Env:
    """An env factory, named as 'helpers:make_cartpole'."""
    return gym.make("CartPole-v1")


def make_not_an_env() -> object:
    return object()


def make_not_a_model(observation_space: gym.Space, action_space: gym.Space) -> str:
    return "a model"


class TinyActorCritic(nn.Module):
    """A user model following the actor-critic interface: forward(obs) -> (logits, value[B])."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__()
        obs_dim = observation_space.shape[0]
        self.body = nn.Sequential(nn.Linear(obs_dim, 16), nn.Tanh())
        self.pi = nn.Linear(16, action_space.n)
        self.v = nn.Linear(16, 1)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(obs)
        return self.pi(h), self.v(h).squeeze(-1)


def make_tiny(observation_space: gym.Space, action_space: gym.Space) -> nn.Module:
    """A model factory, named as 'helpers:make_tiny'."""
    return TinyActorCritic(observation_space, action_space)


def make_broken_model(observation_space: gym.Space, action_space: gym.Space) -> nn.Module:
    """Raises only in a worker process: the parent builds its model with the layer spec first."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        raise RuntimeError("boom in the worker")
    return TinyActorCritic(observation_space, action_space)


def constant_loss(model: nn.Module, head: object, batch: object, cfg: object) -> LossTerms:
    """A registered 'hand-written training step': pushes the value of every observation towards 1."""
    _, value = model(batch.obs)  # type: ignore[attr-defined]
    loss = (value - torch.ones_like(value)).pow(2).mean()
    zero = torch.zeros(())
    return LossTerms(policy=zero, value=loss, entropy=zero, stats={"value_loss": loss.item()})


class FaultyCartPole(gym.Wrapper):
    """CartPole that misbehaves after `after` steps, once per marker file: the first incarnation that takes the
    marker crashes (or hangs); restarted workers find it taken and behave."""

    def __init__(self, fault: str, after: int = 300) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.fault, self.after, self.steps = fault, after, 0

    def step(self, action):  # type: ignore[no-untyped-def]
        import multiprocessing
        import os
        import time

        self.steps += 1
        marker = os.environ.get("PACER_TEST_FAULT_MARKER")
        in_worker = multiprocessing.current_process().name.startswith("pacer-worker")
        if self.steps == self.after and marker and in_worker:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL)  # only one process ever takes it
                os.close(fd)
            except FileExistsError:
                return self.env.step(action)
            if self.fault == "crash":
                raise RuntimeError("injected crash")
            time.sleep(3600)  # hang
        return self.env.step(action)


def make_crashing_cartpole() -> gym.Env:
    return FaultyCartPole("crash")


def make_hanging_cartpole() -> gym.Env:
    return FaultyCartPole("hang")


class Blind(gym.Env):
    """An env with no render modes at all."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):  # type: ignore[no-untyped-def]
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):  # type: ignore[no-untyped-def]
        self.t += 1
        return self.observation_space.sample(), 1.0, self.t >= 10, False, {}


def make_blind() -> gym.Env:
    return Blind()


def make_rendering_cartpole(render_mode: str | None = None) -> gym.Env:
    """A factory that passes the render mode on, as docs/models.md asks."""
    return gym.make("CartPole-v1", render_mode=render_mode)


class BrokenRenderer(gym.Wrapper):  # type: ignore[type-arg]
    """CartPole whose render() fails: at its `fail_at`-th call with a bug, or always for a missing package."""

    def __init__(self, render_mode: str | None, fail_at: int | None) -> None:
        super().__init__(gym.make("CartPole-v1", render_mode=render_mode))
        self.fail_at, self.calls = fail_at, 0

    def render(self) -> Any:
        self.calls += 1
        if self.fail_at is None:
            raise gym.error.DependencyNotInstalled("pygame is not installed, run `pip install pygame`")
        if self.calls >= self.fail_at:
            raise RuntimeError("renderer bug")
        return super().render()


def make_buggy_renderer(render_mode: str | None = None) -> gym.Env:
    """Renders four frames, then raises: a bug in a user's renderer."""
    return BrokenRenderer(render_mode, fail_at=5)


def make_renderer_without_pygame(render_mode: str | None = None) -> gym.Env:
    """Renders nothing: the package its renderer imports is missing."""
    return BrokenRenderer(render_mode, fail_at=None)


class EpisodesOfKnownLength(gym.Env):
    """Episodes of `2 + seed % 3` steps (the first reset's seed: sub-env i of a vector env gets seed + i); the
    observation is the step within the episode."""

    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.length, self.t = 2, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self.length = 2 + seed % 3
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        return np.array([float(self.t)], np.float32), 1.0, self.t >= self.length, False, {}


class CountingMemory(nn.Module):
    """A recurrent model whose state counts the steps since it was last reset, and whose value is that count."""

    state_size = 1

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))

    def initial_state(self, batch: int) -> Tensor:
        return torch.zeros(batch, 1)

    def forward(self, obs: Tensor, state: Tensor, starts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        values = []
        for t in range(obs.shape[0]):
            state = state * (~starts[t]).float().unsqueeze(-1) + 1.0
            values.append(state[:, 0])
        value = torch.stack(values) + self.bias
        return torch.zeros(*value.shape, 2), value, state
