"""A small custom env: a 6-cell corridor with a goal that moves. Train it with
`pacer train --env examples.corridor:Corridor` (from the project root) or `pacer.train({"env": {"id": Corridor}})`.

The agent steps left or right; every 4 steps the goal moves one cell at random. Reaching the goal ends the episode
with +1; every other step costs 0.02. Observations: the agent's cell and the goal's cell, one-hot (12 numbers).
A perfect policy scores about 0.96 (0.98 minus 0.02 per step of the shortest way)."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

CELLS = 6


class Corridor(gym.Env[np.ndarray, int]):
    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, max_steps: int = 50) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2 * CELLS,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.max_steps = max_steps
        self.agent = self.goal = self.steps = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(2 * CELLS, np.float32)
        obs[self.agent] = obs[CELLS + self.goal] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.agent, self.goal = (int(c) for c in self.np_random.choice(CELLS, 2, replace=False))
        self.steps = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.agent = int(np.clip(self.agent + (1 if action == 1 else -1), 0, CELLS - 1))
        self.steps += 1
        if self.agent == self.goal:
            return self._obs(), 1.0, True, False, {}
        if self.steps % 4 == 0:
            self.goal = int(np.clip(self.goal + self.np_random.choice((-1, 1)), 0, CELLS - 1))
        return self._obs(), -0.02, False, self.steps >= self.max_steps, {}
