"""Presets picked for the env and algorithm a run asks for; the stop-when-solved target; env kwargs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from pacer import runconfig
from pacer.config import Config, EnvConfig
from pacer.envs import probe
from pacer.errors import PacerError
from pacer.presets import CONTINUOUS, announce, choose, resolve


@pytest.mark.parametrize(("config", "picked"), [
    (None, "cartpole"),  # CartPole with PPO: the defaults, named so that no env is made to choose
    ({"env": {"id": "LunarLander-v3"}}, "lunarlander"),
    ({"env.id": "LunarLander-v3", "env.kwargs.continuous": True}, "lunarlander-continuous"),
    ({"env": {"id": "HalfCheetah-v5"}}, "halfcheetah"),
    ({"env": {"id": "Hopper-v5"}}, "hopper"),
    ({"env": {"id": "Acrobot-v1"}}, "acrobot"),
    ({"env": {"id": "Acrobot-v1"}, "algo": {"name": "a3c"}}, "acrobot-a3c"),
    ({"env": {"id": "CartPole-v1"}, "algo": {"name": "a2c"}}, "cartpole-a2c"),
    ({"env": {"id": "CartPole-v1"}, "algo": {"name": "mc"}}, None),  # classic-da2c is only chosen by name
    ({"env": {"id": "LunarLander-v3"}, "algo": {"name": "a2c"}}, None),  # no preset for that pair
    ({"env": {"id": "MountainCar-v0"}}, None),
], ids=str)
def test_auto_picks_the_preset_of_the_env_and_algorithm(config: dict | None, picked: str | None) -> None:
    assert choose(config, "auto") == picked
    assert choose(config, "none") is None
    line = announce(config, "auto")
    assert (line is None) == (picked in (None, "cartpole"))  # cartpole is the defaults: nothing to say
    if line is not None:
        assert line == (f"pacer: using preset {picked!r}, tuned for {resolve(None, picked).env.id} "
                        "(--preset none for the plain defaults)")


def test_the_config_overrides_the_preset_it_picked() -> None:
    cfg = resolve({"env": {"id": "LunarLander-v3"}, "algo": {"lr": 1e-4}}, "auto")
    assert cfg.algo.lr == 1e-4 and cfg.algo.n_steps == 256  # the preset's n_steps, the config's lr
    assert resolve({"env": {"id": "LunarLander-v3"}}, "none").algo.n_steps == Config().algo.n_steps


def test_the_cli_says_which_preset_it_picked(tmp_path: Path) -> None:
    """`pacer train --env Acrobot-v1` trains with 'acrobot'; with --preset none, with the defaults."""
    def run(*extra: str) -> tuple[str, str]:
        out = subprocess.run([sys.executable, "-m", "pacer", "train", "--env", "Acrobot-v1", "--backend", "inline",
                              "--workers", "1", "--total-steps", "64", "--no-progress", "--set",
                              "log.tensorboard=false", "--set", "runtime.final_eval_episodes=0", "--run-dir",
                              str(tmp_path / f"run{len(extra)}"), *extra], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stderr, (tmp_path / f"run{len(extra)}" / "config.yaml").read_text()

    err, saved = run()
    assert "pacer: using preset 'acrobot', tuned for Acrobot-v1 (--preset none for the plain defaults)" in err
    assert "envs_per_worker: 16" in saved
    plain, notes = runconfig.resolve({"env": {"id": "Acrobot-v1"}}, preset="none")  # what --preset none resolves
    assert notes == [] and plain.env.envs_per_worker == 32


@pytest.mark.parametrize(("env_id", "kind", "line"), [
    ("Walker2d-v5", "continuous", "pacer: no preset for Walker2d-v5; Box actions, so the continuous-control recipe "
     "'continuous': PPO, 8 envs per worker, 256-step rollouts, 10 epochs, running observation normalization, reward "
     "scaling (--preset none for the plain defaults)"),
    ("MountainCarContinuous-v0", "continuous", None),
    ("MountainCar-v0", "discrete", "pacer: no preset for MountainCar-v0; discrete actions, so the general recipe "
     "'discrete' (the defaults): PPO, 32 envs per worker, 32-step rollouts, 4 epochs x 8 minibatches"),
    ("helpers:make_cartpole", "discrete", None),
])
def test_an_env_without_a_preset_gets_the_recipe_for_its_actions(env_id: str, kind: str, line: str | None) -> None:
    cfg, notes = runconfig.resolve({"env": {"id": env_id}, "algo": {"lr": 1e-4}})
    assert [kind] == [runconfig.kind_of({"env": {"id": env_id}})]
    assert len(notes) == 1 and notes[0].startswith(f"pacer: no preset for {env_id}; ")
    if line is not None:
        assert notes[0] == line
    plain = Config.from_dict({"env": {"id": env_id}, "algo": {"lr": 1e-4}})
    if kind == "continuous":
        assert (cfg.env.envs_per_worker, cfg.algo.n_steps, cfg.model.normalize_input) == (
            CONTINUOUS["env"]["envs_per_worker"], CONTINUOUS["algo"]["n_steps"], "running")
    else:
        assert cfg == plain
    assert cfg.algo.lr == 1e-4  # the config still overrides the recipe
    none_cfg, none_notes = runconfig.resolve({"env": {"id": env_id}, "algo": {"lr": 1e-4}}, preset="none")
    assert none_cfg == plain and none_notes == []


def test_the_recipes_are_for_ppo_only() -> None:
    """Another algorithm without a preset of its own gets the plain defaults, not a PPO recipe under its name."""
    cfg, notes = runconfig.resolve({"env": {"id": "Walker2d-v5"}, "algo": {"name": "a2c"}})
    assert notes == [] and cfg == Config.from_dict({"env": {"id": "Walker2d-v5"}, "algo": {"name": "a2c"}})
    assert choose({"env": {"id": "Walker2d-v5"}, "algo": {"name": "a2c"}}, "auto", "continuous") is None


def test_a_named_preset_makes_no_env_to_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(wanted: dict) -> str:
        raise AssertionError("made an env")

    monkeypatch.setattr(runconfig, "kind_of", refuse)
    assert runconfig.resolve(None) == (Config(), [])  # CartPole-v1: the defaults, silently
    runconfig.resolve({"env": {"id": "Hopper-v5"}})
    with pytest.raises(AssertionError, match="made an env"):
        runconfig.resolve({"env": {"id": "Walker2d-v5"}})


def test_an_unknown_env_is_refused_before_a_recipe_is_chosen() -> None:
    with pytest.raises(PacerError, match=r"^unknown environment 'CartPoel-v1' \(did you mean 'CartPole-v1'"):
        runconfig.resolve({"env": {"id": "CartPoel-v1"}})


@pytest.mark.parametrize(("env_id", "setting", "target"), [
    ("CartPole-v1", "auto", 475.0), ("Acrobot-v1", "auto", -100.0), ("LunarLander-v3", "auto", 200.0),
    ("Pendulum-v1", "auto", None), ("helpers:make_cartpole", "auto", None),
    ("Pendulum-v1", -200.0, -200.0), ("CartPole-v1", None, None),
])
def test_stop_target(env_id: str, setting: float | str | None, target: float | None) -> None:
    assert probe(EnvConfig(id=env_id)).stop_target(setting) == target


def test_stop_at_return_values() -> None:
    assert Config.from_dict({"runtime": {"stop_at_return": "auto"}}).runtime.stop_at_return == "auto"
    assert Config.from_dict({"runtime": {"stop_at_return": "3e2"}}).runtime.stop_at_return == 300.0
    with pytest.raises(PacerError, match=r"^runtime.stop_at_return must be a number, 'auto' or null; got 'soon'$"):
        Config.from_dict({"runtime": {"stop_at_return": "soon"}})
    # 'auto' without evaluations is simply no early stop; an explicit number needs them
    Config.from_dict({"runtime": {"eval_every": 0}})


def test_env_kwargs_reach_the_env() -> None:
    discrete = probe(EnvConfig(id="LunarLander-v3")).action_space
    continuous = probe(EnvConfig(id="LunarLander-v3", kwargs={"continuous": True})).action_space
    assert isinstance(discrete, gym.spaces.Discrete) and isinstance(continuous, gym.spaces.Box)
    with pytest.raises(PacerError, match=r"^cannot make CartPole-v1 with env.kwargs \{'colour': 'red'"):
        probe(EnvConfig(kwargs={"colour": "red"}))
    with pytest.raises(PacerError, match=r"^env.kwargs.f must be plain data"):
        Config.from_dict({"env": {"kwargs": {"f": object()}}})
