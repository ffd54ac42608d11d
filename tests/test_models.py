"""Models three ways: layer spec, factory import path, user nn.Module subclass."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
import torch

import pacer
from helpers import TinyActorCritic
from pacer.config import ModelConfig
from pacer.errors import PacerError
from pacer.heads import head_for
from pacer.model import MLPActorCritic, make_model
from pacer.presets import resolve

CARTPOLE = gym.make("CartPole-v1")
PENDULUM = gym.make("Pendulum-v1")


def test_classic_architecture() -> None:
    model = make_model(resolve(None, "classic-da2c").model, CARTPOLE.observation_space, CARTPOLE.action_space)
    shapes = [tuple(p.shape) for p in model.parameters()]
    # trunk 4->25->50, critic branch 50->25, actor head 50->2, value head 25->1
    assert shapes == [(25, 4), (25,), (50, 25), (50,), (25, 50), (25,), (2, 50), (2,), (1, 25), (1,)]
    obs = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    logits, value = model(obs)
    assert torch.all(value.abs() <= 1.0)  # tanh critic
    # input L2 normalization: scaling the observation changes nothing
    torch.testing.assert_close(model(obs * 10)[0], logits)


def test_detached_critic_leaves_the_trunk_to_the_actor() -> None:
    model = make_model(resolve(None, "classic-da2c").model, CARTPOLE.observation_space, CARTPOLE.action_space)
    assert isinstance(model, MLPActorCritic)
    _, value = model(torch.randn(5, 4))
    value.sum().backward()
    assert all(p.grad is None for p in model.trunk.parameters())
    assert all(p.grad is not None for p in model.critic_body.parameters())


def test_separate_networks_and_gaussian_head() -> None:
    model = make_model(ModelConfig(hidden=(8,)), PENDULUM.observation_space, PENDULUM.action_space)
    pi, value = model(torch.zeros(3, 3))
    assert pi.shape == (3, 1) and value.shape == (3,)
    head = head_for(PENDULUM.action_space)
    actions, logp = head.sample(model, pi)
    assert actions.shape == (3, 1) and logp.shape == (3,)
    torch.testing.assert_close(head.mode(pi), pi)


def test_factory_path() -> None:
    model = make_model(ModelConfig(factory="helpers:make_tiny"), CARTPOLE.observation_space, CARTPOLE.action_space)
    assert isinstance(model, TinyActorCritic)


def test_factory_errors() -> None:
    with pytest.raises(PacerError, match=r"model factory 'make_cartpole' must be callable as factory\(obs"):
        make_model(ModelConfig(factory="helpers:make_cartpole"), CARTPOLE.observation_space, CARTPOLE.action_space)
    with pytest.raises(PacerError, match="model factory 'helpers:make_not_a_model' returned str"):
        make_model(ModelConfig(factory="helpers:make_not_a_model"), CARTPOLE.observation_space,
                   CARTPOLE.action_space)
    with pytest.raises(PacerError, match="must have a parameter 'log_std'"):
        make_model(ModelConfig(factory=lambda o, a: torch.nn.Linear(3, 1)), PENDULUM.observation_space,
                   PENDULUM.action_space)


@pytest.mark.parametrize("factory", ["helpers:make_tiny", TinyActorCritic])
def test_training_with_a_user_model(factory: object, quiet: dict, tmp_path: Path) -> None:
    quiet["model"] = {"factory": factory}
    result = pacer.train(quiet)
    agent = pacer.load(result.run_dir)
    assert isinstance(agent.model, TinyActorCritic)
    assert agent.act(CARTPOLE.reset(seed=0)[0]) in (0, 1)
