"""Envs for the Ray tests: CartPole that raises once inside a Ray actor (never in the driver, which evaluates)."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym


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
