"""Tasks pacer registers with Gymnasium (when pacer.envs is imported, so in workers too): classics made partially
observable, the standard first tests of a policy with memory."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class CartPoleNoVel(CartPoleEnv):
    """CartPole-v1 with the cart's and the pole's velocities hidden: the observation is [cart position, pole angle],
    so a policy must tell from its memory which way things move (the RL Zoo's CartPoleNoVel-v1). A feedforward
    policy cannot balance it for long."""

    KEEP = (0, 2)  # x and theta of [x, x_dot, theta, theta_dot]

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(render_mode=render_mode, **kwargs)
        high = np.array([self.x_threshold * 2, self.theta_threshold_radians * 2], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        return obs[list(self.KEEP)], info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        return obs[list(self.KEEP)], float(reward), terminated, truncated, info


def register() -> None:
    if "CartPoleNoVel-v1" not in gym.registry:
        gym.register("CartPoleNoVel-v1", entry_point="pacer.tasks:CartPoleNoVel", max_episode_steps=500,
                     reward_threshold=475.0)
