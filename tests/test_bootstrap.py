"""Through the real Collector and vector env: a truncated step bootstraps with V(final observation), never with
V(reset observation), and a terminated step does not bootstrap at all."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from pacer.algos import prepare
from pacer.config import AlgoConfig, EnvConfig
from pacer.envs import make_vector_env
from pacer.heads import head_for
from pacer.rollout import Collector


class Counter(gym.Env[np.ndarray, np.int64]):
    """Observes how many steps its episode has taken (0 after a reset), pays 1 per step, whatever the action;
    terminates after `terminate_at` steps if set (a time limit may truncate it first)."""

    observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminate_at: int | None = None) -> None:
        self.terminate_at, self.count = terminate_at, 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.count = 0
        return np.array([0.0], np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.count += 1
        return np.array([self.count], np.float32), 1.0, self.count == self.terminate_at, False, {}


class ValueIsTenTimesCount(nn.Module):
    """V(obs) = 1 + 10 * count: V(reset obs) = 1, V(obs after 3 steps) = 31. Uniform policy."""

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return torch.zeros(obs.shape[0], 2), 1.0 + 10.0 * obs[:, 0]


def collect(env_factory: Any, max_episode_steps: int | None, steps: int) -> Any:
    # pacer's own construction: NEXT_STEP autoreset
    env = make_vector_env(EnvConfig(id=env_factory, max_episode_steps=max_episode_steps), 1)
    try:
        return Collector(env, ValueIsTenTimesCount(), head_for(env.single_action_space), seed=0).collect(steps)
    finally:
        env.close()


def test_truncated_steps_bootstrap_with_the_final_observation() -> None:
    # time limit 3: steps t0-t2 see counts 0, 1, 2; t2 is truncated (its next obs is the final one, count 3); t3
    # is the reset step, fed that final obs; t4-t6 replay t0-t2 and the rollout ends on a truncation
    r = collect(Counter, max_episode_steps=3, steps=7)
    np.testing.assert_array_equal(r.obs[:, 0, 0], [0, 1, 2, 3, 0, 1, 2])
    np.testing.assert_array_equal(r.truncated[:, 0], [0, 0, 1, 0, 0, 0, 1])
    assert not r.terminated.any()
    np.testing.assert_array_equal(r.valid[:, 0], [1, 1, 1, 0, 1, 1, 1])
    np.testing.assert_array_equal(r.last_values, [31.0])  # the rollout's last step truncated: V(final obs)
    # at both truncations V(count 3) = 31, not V(reset obs) = 1
    np.testing.assert_array_equal(r.next_values[:, 0], [11, 21, 31, 1, 11, 21, 31])

    batch = prepare(r, AlgoConfig(gamma=0.5, gae_lambda=0.5, normalize_advantages=False), "gae")
    # d2 = 1 + .5*31 - 21 = -4.5 and the recursion stops (truncated); d1 = 1 + .5*21 - 11 = .5, A1 = .5 + .25*-4.5
    # = -.625; d0 = 1 + .5*11 - 1 = 5.5, A0 = 5.5 + .25*-.625 = 5.34375. The second episode is the same.
    # (V(reset obs) would give d2 = 1 + .5*1 - 21 = -19.5.)
    np.testing.assert_allclose(batch.advantages.numpy(), [5.34375, -0.625, -4.5] * 2)


def test_terminated_steps_do_not_bootstrap() -> None:
    r = collect(functools.partial(Counter, terminate_at=3), max_episode_steps=None, steps=4)
    np.testing.assert_array_equal(r.terminated[:, 0], [0, 0, 1, 0])
    assert not r.truncated.any()
    np.testing.assert_array_equal(r.next_values[:, 0], [11, 21, 31, 1])  # recorded, but must go unused at t2
    batch = prepare(r, AlgoConfig(gamma=0.5, gae_lambda=0.5, normalize_advantages=False), "gae")
    # A2 = 1 - 21 = -20 (no future); d1 = .5, A1 = .5 + .25*-20 = -4.5; d0 = 5.5, A0 = 5.5 + .25*-4.5 = 4.375
    np.testing.assert_allclose(batch.advantages.numpy(), [4.375, -4.5, -20.0])
