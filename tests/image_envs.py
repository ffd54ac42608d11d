"""Tiny pixel envs made by the tests (no download): what a CNN learns in seconds on the inline backend."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

SIZE = 36  # the Nature CNN's smallest input


class LitQuadrant(gym.Env[np.ndarray, np.int64]):
    """One quadrant of a 36x36 grey frame is lit; the action names a quadrant; reward 1 when it is the lit one.
    One step per episode: a greedy policy that reads the frame scores 1.0, a guess 0.25."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, channels: int | None = 1) -> None:
        shape = (SIZE, SIZE) if channels is None else (channels, SIZE, SIZE)
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self.render_mode = render_mode
        self.lit = 0

    def _plane(self) -> np.ndarray:
        half = SIZE // 2
        plane = np.zeros((SIZE, SIZE), np.uint8)
        row, col = divmod(self.lit, 2)
        plane[row * half:(row + 1) * half, col * half:(col + 1) * half] = 255
        return plane

    def _frame(self) -> np.ndarray:
        return np.broadcast_to(self._plane(), self.observation_space.shape).copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.lit = int(self.np_random.integers(4))
        return self._frame(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(int(action) == self.lit)
        return self._frame(), reward, True, False, {}

    def render(self) -> np.ndarray:
        return np.repeat(self._plane()[..., None], 3, axis=2)


def make_lit_quadrant(**kwargs: Any) -> gym.Env:
    return LitQuadrant(**kwargs)


def make_flat_lit_quadrant(**kwargs: Any) -> gym.Env:
    """HxW frames without a channel: what FrameStackObservation stacks into CxHxW."""
    return LitQuadrant(channels=None, **kwargs)
