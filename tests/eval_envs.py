"""Envs that misbehave only inside evaluation processes (named pacer-eval): training and in-process evaluation
run normally, so a run can be trained and then evaluated with a faulty evaluation process."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import gymnasium as gym


class FaultyInEval(gym.Wrapper):
    def __init__(self, fault: str, after: int = 5) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.fault, self.after, self.steps = fault, after, 0

    def step(self, action: Any) -> Any:
        self.steps += 1
        if self.steps == self.after and multiprocessing.current_process().name == "pacer-eval":
            if self.fault == "crash":
                raise RuntimeError("injected evaluation crash")
            if self.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)  # hang
        return self.env.step(action)


def make_crashing() -> gym.Env:
    return FaultyInEval("crash")


def make_killed() -> gym.Env:
    return FaultyInEval("kill")


def make_hanging() -> gym.Env:
    return FaultyInEval("hang")
