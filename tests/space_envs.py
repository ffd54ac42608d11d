"""Small envs of every space pacer reads: structured observations, MultiDiscrete actions, action masks from each
source. Each masked env raises on an illegal action, so a mask that does not reach sampling fails the run loudly."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np


class Match(gym.Env):
    """Dict observation {target: Discrete(4), parity: MultiBinary(1), noise: Box(2), mission: Text, action_mask};
    MultiDiscrete([4, 2]) actions, scored 0.5 for the target and 0.5 for the parity, 8 steps an episode (best
    return 8). One wrong choice of the first component is illegal at each step (never the target)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode: str | None = None, masked: bool = True) -> None:
        self.masked, self.render_mode = masked, render_mode
        spaces: dict[str, gym.Space[Any]] = {
            "target": gym.spaces.Discrete(4), "parity": gym.spaces.MultiBinary(1),
            "noise": gym.spaces.Box(-1.0, 1.0, (2,), np.float32), "mission": gym.spaces.Text(8)}
        if masked:
            spaces["action_mask"] = gym.spaces.MultiBinary(6)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.MultiDiscrete([4, 2])

    def _obs(self) -> dict[str, Any]:
        self.target, self.parity = int(self.np_random.integers(4)), int(self.np_random.integers(2))
        wrong = [a for a in range(4) if a != self.target]
        self.illegal = int(self.np_random.choice(wrong))
        obs: dict[str, Any] = {"target": self.target, "parity": np.array([self.parity], np.int8),
                               "noise": self.np_random.uniform(-1, 1, 2).astype(np.float32), "mission": "match"}
        if self.masked:
            mask = np.ones(6, np.int8)
            mask[self.illegal] = 0
            obs["action_mask"] = mask
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        a0, a1 = int(action[0]), int(action[1])
        if self.masked and a0 == self.illegal:
            raise RuntimeError(f"illegal action {a0} taken: the action mask was not applied")
        reward = 0.5 * (a0 == self.target) + 0.5 * (a1 == self.parity)
        self.t += 1
        return self._obs(), reward, False, self.t >= 8, {}

    def render(self) -> np.ndarray:
        return np.full((16, 16, 3), 40 * self.target, np.uint8)


class Legal(gym.Env):
    """Box observation, Discrete(3) actions: a random one of them illegal at each step, said in `info` or by
    `action_masks()`; +1 a step, 10 steps an episode. With `dead_end_at`, that step's mask leaves no legal action."""

    def __init__(self, source: str = "info", dead_end_at: int | None = None) -> None:
        self.source, self.dead_end_at = source, dead_end_at
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(3)

    def _next(self) -> tuple[Any, dict]:
        self.mask = np.ones(3, np.int8)
        self.mask[int(self.np_random.integers(3))] = 0
        if self.t == self.dead_end_at:
            self.mask[:] = 0
        obs = (self.mask - 0.5).astype(np.float32)
        return obs, ({"action_mask": self.mask.copy()} if self.source == "info" else {})

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._next()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if not self.mask[int(action)]:
            raise RuntimeError(f"illegal action {int(action)} taken: the action mask was not applied")
        self.t += 1
        obs, info = self._next()
        return obs, 1.0, False, self.t >= 10, info


def make_match(render_mode: str | None = None) -> gym.Env:
    return Match(render_mode)


def make_unmasked_match() -> gym.Env:
    return Match(masked=False)


def make_info_masked() -> gym.Env:
    return Legal("info")


def make_method_masked() -> Legal:
    return MethodLegal("method")


def make_dead_end() -> gym.Env:
    return Legal("info", dead_end_at=3)


class MethodLegal(Legal):
    """`Legal` whose masks come only from `action_masks()` (sb3-contrib's convention)."""

    def action_masks(self) -> np.ndarray:
        return self.mask.astype(bool)
