"""Action heads: everything that depends on the kind of action space, in one object per space.

A head turns the policy output `pi` of the actor-critic (logits [B, n] for Discrete actions, means [B, d] for a
1-D Box) into actions: `sample` (with log-probabilities, on the hot path), `mode` (greedy), `log_prob_entropy`
(for the losses), `clip` (to the env's bounds: the one place actions are clipped, exportable to ONNX) and the
action `dtype` of rollout buffers. The rest of pacer asks the head and never which kind of space it has.
Sampling builds no `torch.distributions` objects: it runs once per env step.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn

from pacer.errors import PacerError


class ActionHead(Protocol):
    name: str
    """'discrete' or 'gaussian' (in exported files' metadata)."""
    dtype: type[np.generic]
    """NumPy dtype of an action."""
    shape: tuple[int, ...]
    """Shape of one action: () for Discrete, (d,) for Box."""
    size: int
    """Width of the policy output: the number of actions, or the action dimension."""

    def sample(self, model: nn.Module, pi: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        """Draw actions and their log-probabilities (unclipped: the log-probability is of the drawn action)."""

    def mode(self, pi: Tensor) -> Tensor:
        """The most likely action (greedy), unclipped."""

    def log_prob_entropy(self, model: nn.Module, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probability of `actions` and the policy's entropy, per sample."""

    def clip(self, actions: Tensor) -> Tensor:
        """Actions inside the env's bounds (the identity where there are none)."""


class Categorical:
    """Discrete(n): a softmax over logits."""

    name = "discrete"
    dtype: type[np.generic] = np.int64
    shape: tuple[int, ...] = ()

    def __init__(self, space: gym.spaces.Discrete) -> None:
        self.size = int(space.n)

    def sample(self, model: nn.Module, pi: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        logp_all = F.log_softmax(pi, dim=-1)
        actions = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(-1)
        return actions, logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def mode(self, pi: Tensor) -> Tensor:
        return pi.argmax(-1)

    def log_prob_entropy(self, model: nn.Module, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        logp_all = F.log_softmax(pi, dim=-1)
        logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        return logp, -(logp_all.exp() * logp_all).sum(-1)

    def clip(self, actions: Tensor) -> Tensor:
        return actions


class DiagGaussian:
    """A 1-D Box: independent normals around the means, with the model's state-independent `log_std` [d]."""

    name = "gaussian"
    dtype: type[np.generic] = np.float32

    def __init__(self, space: gym.spaces.Box) -> None:
        self.shape = tuple(space.shape)
        self.size = int(space.shape[0])
        self.low = torch.as_tensor(space.low, dtype=torch.float32)
        self.high = torch.as_tensor(space.high, dtype=torch.float32)

    def sample(self, model: nn.Module, pi: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        log_std = log_std_of(model)
        actions = pi + log_std.exp() * torch.randn(pi.shape, generator=generator)
        return actions, gaussian_logp(pi, log_std, actions)

    def mode(self, pi: Tensor) -> Tensor:
        return pi

    def log_prob_entropy(self, model: nn.Module, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        log_std = log_std_of(model)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum().expand(pi.shape[0])
        return gaussian_logp(pi, log_std, actions), entropy

    def clip(self, actions: Tensor) -> Tensor:
        # minimum/maximum, not clamp: ONNX's Clip takes scalar bounds only, and each action dim has its own
        return torch.maximum(torch.minimum(actions, self.high), self.low)


def head_for(space: gym.Space[Any]) -> ActionHead:
    """The head for an action space; a one-line error for the spaces pacer does not handle."""
    if isinstance(space, gym.spaces.Discrete):
        return Categorical(space)
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return DiagGaussian(space)
    raise PacerError(f"unsupported action space {space}: pacer handles Discrete and 1-D Box actions")


@torch.no_grad()
def act(head: ActionHead, model: nn.Module, pi: Tensor, greedy: bool = True,
        generator: torch.Generator | None = None) -> NDArray[Any]:
    """Actions for the env, as NumPy: the mode (greedy) or a sample, clipped to the bounds."""
    actions = head.mode(pi) if greedy else head.sample(model, pi, generator)[0]
    return head.clip(actions).numpy()


def log_std_of(model: nn.Module) -> Tensor:
    log_std = model.log_std
    assert isinstance(log_std, Tensor)
    return log_std


def gaussian_logp(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    z = (actions - mean) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
