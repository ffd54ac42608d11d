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
from pacer.envs import is_image
from pacer.errors import PacerError
from pacer.heads import head_for
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

    def inputs(self, obs: Tensor) -> Tensor:
        """What the first layer reads: the observation as one vector per row (a stack of frames, a grid: flattened),
        standardized by the run's statistics or scaled to unit length. No parameter acts before this point."""
        x = obs.flatten(1).float()
        if self.obs_norm is not None:
            x = self.obs_norm(x)
        if self.l2_input:
            x = F.normalize(x, dim=-1)
        return x

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        features = self.trunk(self.inputs(obs))
        pi = self.pi_head(self.actor_body(features))
        critic_in = features.detach() if self.detach_critic else features
        value = self.value_head(self.critic_body(critic_in)).squeeze(-1)
        if self.tanh_value:
            value = torch.tanh(value)
        return pi, value


def _channels_last(shape: tuple[int, ...]) -> bool:
    """HxWxC (Gymnasium's RGB frames) rather than CxHxW (stacked frames): few channels last, many rows first."""
    return len(shape) == 3 and shape[-1] <= 4 < shape[0]


def chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Channels, height and width of an image observation's shape (HxW has one channel)."""
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    if _channels_last(shape):
        return shape[2], shape[0], shape[1]
    return shape[0], shape[1], shape[2]


class CNNActorCritic(nn.Module):
    """The Nature CNN (Mnih et al. 2015; A3C and PPO's Atari networks): 32 8x8/4, 64 4x4/2 and 64 3x3/1
    convolutions, 512 units, both heads on the shared features; uint8 pixels scaled to [0, 1] here, channels last
    (HxWxC) moved first. Orthogonal initialization as in Baselines, SB3 and CleanRL."""

    def __init__(self, obs_shape: tuple[int, ...], pi_dim: int, gaussian: bool, log_std_init: float) -> None:
        super().__init__()
        self.channels_last = _channels_last(obs_shape)
        self.add_channel = len(obs_shape) == 2
        c, h, w = chw(obs_shape)
        self.convs = nn.Sequential(nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                                   nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, c, h, w)).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, 512), nn.ReLU())
        self.pi_head = nn.Linear(512, pi_dim)
        self.value_head = nn.Linear(512, 1)
        if gaussian:
            self.log_std = nn.Parameter(torch.full((pi_dim,), float(log_std_init)))
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)) and module.bias is not None:
                gain = 0.01 if module is self.pi_head else 1.0 if module is self.value_head else math.sqrt(2)
                nn.init.orthogonal_(module.weight, gain)
                nn.init.zeros_(module.bias)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        x = obs.float() / 255.0
        if self.add_channel:
            x = x.unsqueeze(1)
        elif self.channels_last:
            x = x.permute(0, 3, 1, 2)
        # NHWC in memory: oneDNN's convolutions run 1.3-1.4x faster on it on CPU (a PPO minibatch of 256 Atari frames,
        # one thread: 125-133 ms against 168-181); the weights keep their layout (flat shared buffers)
        x = x.contiguous(memory_format=torch.channels_last)
        features = self.fc(self.convs(x))
        return self.pi_head(features), self.value_head(features).squeeze(-1)


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
        if head.has_log_std and not isinstance(getattr(model, "log_std", None), nn.Parameter):
            raise PacerError("a model for Box actions must have a parameter 'log_std' (see docs/models.md)")
    elif cfg.encoder == "cnn" or (cfg.encoder == "auto" and is_image(observation_space)):
        shape = tuple(observation_space.shape or ())
        if len(shape) not in (2, 3) or min(chw(shape)[1:]) < 36:
            raise PacerError(f"model.encoder cnn needs image observations of at least 36x36 pixels (HxW, HxWxC or "
                             f"CxHxW), got shape {shape}")
        if cfg.normalize_input != "none":
            raise PacerError("model.normalize_input applies to the MLP; the CNN scales pixels to [0, 1] itself")
        model = CNNActorCritic(shape, head.size, head.has_log_std, cfg.log_std_init)
    else:
        obs_dim = int(np.prod(observation_space.shape))
        model = MLPActorCritic(cfg, obs_dim, head.size, head.has_log_std)
    return model
