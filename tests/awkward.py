"""A test env whose state is awkward to store: NumPy scalars of several dtypes, a Generator and a RandomState of
its own, nested dicts, lists and tuples; optionally an object that cannot be stored at all (a lock)."""

from __future__ import annotations

import threading
from typing import Any

import gymnasium as gym
import numpy as np


class AwkwardEnv(gym.Env):
    """Every piece of its state feeds the next observation and reward, so a wrong restore changes the run."""

    def __init__(self, with_lock: bool = False) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.lock = threading.Lock() if with_lock else None
        self.t = np.int64(0)
        self.total = np.float32(0.0)
        self.flag = np.bool_(False)
        self.last = np.float64(0.0)
        self.noise = np.random.default_rng(0)
        self.legacy = np.random.RandomState(0)
        self.book: dict[str, Any] = {"hist": [np.float32(0.0)], "nested": {"pos": np.zeros(2), "span": (0, 1.5)}}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.noise = np.random.default_rng(self.np_random.integers(1 << 31))
        self.legacy = np.random.RandomState(int(self.np_random.integers(1 << 31)))
        self.t, self.total, self.flag, self.last = np.int64(0), np.float32(0.0), np.bool_(False), np.float64(0.0)
        self.book = {"hist": [np.float32(0.0)], "nested": {"pos": np.zeros(2), "span": (0, 1.5)}}
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += np.int64(1)
        self.last = np.float64(self.noise.normal()) + float(action)
        self.total += np.float32(self.legacy.uniform(-1, 1))
        self.flag = np.bool_(not self.flag)
        self.book["hist"].append(np.float32(self.last))
        self.book["nested"]["pos"] += self.last
        lo, hi = self.book["nested"]["span"]
        self.book["nested"]["span"] = (lo + 1, hi * 0.5)
        reward = float(self.total) + float(len(self.book["hist"]) % 3) + (1.0 if self.flag else 0.0)
        terminated = bool(abs(self.book["nested"]["pos"][0]) > 8.0)
        return self._obs(), reward, terminated, bool(self.t >= 40), {}

    def _obs(self) -> np.ndarray:
        pos = self.book["nested"]["pos"]
        return np.array([self.last, self.total, pos[0], self.book["nested"]["span"][1]], dtype=np.float32)


def make_awkward() -> gym.Env:
    return AwkwardEnv()


def make_awkward_with_lock() -> gym.Env:
    return AwkwardEnv(with_lock=True)
