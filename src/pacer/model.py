"""Actor-critic models, built three ways (the action distributions are in heads.py).

The actor-critic interface (docs/models.md): a `torch.nn.Module` whose `forward(obs)` takes a float batch
[B, *obs_shape] and returns `(pi, value)`: `pi` holds logits [B, n] for a Discrete action space or means [B, d]
for a Box one, `value` is [B]. For Box actions the module also has a parameter `log_std` of shape [d].
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pacer.config import ModelConfig
from pacer.errors import PacerError
from pacer.heads import DiagGaussian, head_for
from pacer.normalize import RunningNorm
from pacer.usercode import check_signature, resolve_import

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


class MLPActorCritic(nn.Module):
    """Actor-critic from a layer spec: a shared trunk with an optional critic branch, or two separate networks."""

    def __init__(self, cfg: ModelConfig, obs_dim: int, pi_dim: int, gaussian: bool) -> None:
        super().__init__()
        self.l2_input = cfg.normalize_input == "l2"
        self.obs_norm = RunningNorm((obs_dim,)) if cfg.normalize_input == "running" else None
        self.tanh_value = cfg.critic_output == "tanh"
        self.detach_critic = cfg.detach_critic and cfg.shared_trunk
        sizes = [obs_dim, *cfg.hidden]
        if cfg.shared_trunk:
            self.trunk: nn.Module = _mlp(sizes, cfg.activation)
            self.actor_body: nn.Module = nn.Identity()
            critic_sizes = [sizes[-1], *cfg.critic_hidden]
        else:
            self.trunk = nn.Identity()
            self.actor_body = _mlp(sizes, cfg.activation)
            critic_sizes = [*sizes, *cfg.critic_hidden]
        self.critic_body = _mlp(critic_sizes, cfg.activation)
        self.pi_head = nn.Linear(sizes[-1], pi_dim)
        self.value_head = nn.Linear(critic_sizes[-1], 1)
        if gaussian:
            self.log_std = nn.Parameter(torch.full((pi_dim,), float(cfg.log_std_init)))
        if cfg.init == "orthogonal":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    gain = 0.01 if module is self.pi_head else 1.0 if module is self.value_head else math.sqrt(2)
                    nn.init.orthogonal_(module.weight, gain)
                    nn.init.zeros_(module.bias)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        if self.obs_norm is not None:
            obs = self.obs_norm(obs.flatten(1))
        if self.l2_input:
            obs = F.normalize(obs, dim=-1)
        features = self.trunk(obs)
        pi = self.pi_head(self.actor_body(features))
        critic_in = features.detach() if self.detach_critic else features
        value = self.value_head(self.critic_body(critic_in)).squeeze(-1)
        if self.tanh_value:
            value = torch.tanh(value)
        return pi, value


def make_model(cfg: ModelConfig, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> nn.Module:
    """Build the model from the factory if one is set, else from the layer spec; check the interface."""
    head = head_for(action_space)
    if not isinstance(observation_space, gym.spaces.Box):
        raise PacerError(f"unsupported observation space {observation_space}: pacer handles Box observations")
    if cfg.factory is not None:
        if cfg.normalize_input != "none" or cfg.init != "default":
            raise PacerError("model.normalize_input and model.init apply to the built-in model; with model.factory, "
                             "normalize and initialize inside your module")
        factory = resolve_import(cfg.factory, "model factory")
        check_signature(factory, (observation_space, action_space), "model factory",
                        "factory(observation_space, action_space)")
        model = factory(observation_space, action_space)
        if not isinstance(model, nn.Module):
            raise PacerError(f"model factory {cfg.factory!r} returned {type(model).__name__}, not a torch.nn.Module")
        if isinstance(head, DiagGaussian) and not isinstance(getattr(model, "log_std", None), nn.Parameter):
            raise PacerError("a model for Box actions must have a parameter 'log_std' (see docs/models.md)")
    else:
        obs_dim = int(np.prod(observation_space.shape))
        model = MLPActorCritic(cfg, obs_dim, head.size, isinstance(head, DiagGaussian))
    return model
