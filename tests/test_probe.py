"""The parent makes the env once per run (`envs.probe`), whatever the run asks of it: the recipe for its kind of
actions, its spaces, time limit and stop target, a video frame; and the spec it returns reaches the workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import pacer
from pacer import envs
from pacer.backends.inline import InlineBackend
from pacer.cli import main
from pacer.config import EnvConfig


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Counts the envs made in this process, and how many there were when the workers started."""
    counts: dict[str, Any] = {"made": 0, "at_start": None}
    make = envs._make

    def counting(*args: Any, **kwargs: Any) -> gym.Env:
        counts["made"] += 1
        return make(*args, **kwargs)

    start = InlineBackend.start

    def noting_start(self: InlineBackend, stop_requested: Any) -> None:
        counts["at_start"] = counts["made"]
        start(self, stop_requested)

    monkeypatch.setattr(envs, "_make", counting)
    monkeypatch.setattr(envs, "_probed", None)  # nothing known yet, as in a new process
    monkeypatch.setattr(InlineBackend, "start", noting_start)
    return counts


def test_a_run_makes_one_env_before_its_workers(quiet: dict, made: dict[str, Any]) -> None:
    """A factory env (no preset: its kind of actions is asked), filmed (a frame is rendered), with a stop target:
    one env in the parent before the (inline) workers make theirs."""
    quiet["env"]["id"] = "helpers:make_rendering_cartpole"
    quiet["log"]["video_every"] = 10**6
    quiet["runtime"].update(eval_every=10**6, stop_at_return=400.0, final_eval_episodes=0)
    pytest.importorskip("imageio_ffmpeg")
    pacer.train(quiet, runtime__total_steps=100)
    assert made["at_start"] == 1


def test_the_command_makes_one_env_before_its_workers(quiet: dict, made: dict[str, Any], tmp_path: Path) -> None:
    """`pacer train` resolves the config (the recipe needs the env's actions) before it imports the rest: the same
    one env."""
    code = main(["train", "--env", "helpers:make_cartpole", "--backend", "inline", "--workers", "1",
                 "--total-steps", "100", "--run-dir", str(tmp_path / "cli"), "--no-progress",
                 "--set", "runtime.final_eval_episodes=0", "--set", "log.tensorboard=false"])
    assert code == 0 and made["at_start"] == 1


def test_another_env_is_probed_anew(made: dict[str, Any]) -> None:
    cartpole = envs.probe(EnvConfig())
    assert envs.probe(EnvConfig()) is cartpole and made["made"] == 1
    assert envs.probe(EnvConfig(kwargs={"sutton_barto_reward": True})) is not cartpole and made["made"] == 2
    assert envs.probe(EnvConfig(id="Acrobot-v1")).stop_target("auto") == -100.0
    assert cartpole.max_episode_steps == 500 and cartpole.action_kind == "discrete"
