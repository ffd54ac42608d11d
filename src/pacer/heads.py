"""Action heads: everything that depends on the kind of action space, in one object per space.

A head turns the policy output `pi` of the actor-critic (logits [B, n] for Discrete actions, means [B, d] for a
1-D Box) into actions: `sample` (with log-probabilities, on the hot path), `mode` (greedy), `log_prob_entropy`
(for the losses), `clip` (to the env's bounds: the one place actions are clipped, exportable to ONNX) and the
action `dtype` of rollout buffers. The rest of pacer asks the head and never which kind of space it has.
Sampling builds no `torch.distributions` objects: it runs once per env step.

A head may also give the hand-written gradient (algos/analytic.py) its own log-probability and entropy with their
derivatives (`FastHead`: `saved_log_prob_entropy` and `backward`, beside the forward they differentiate, sharing its
formulas). A head without them is trained with autograd.
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
    output: str
    """What the policy output is, by name: 'logits' or 'mean' (an exported file's second output)."""
    has_log_std: bool
    """Whether the model needs a state-independent parameter `log_std` [size] (Gaussian policies)."""
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


class FastHead(ActionHead, Protocol):
    """A head whose log-probability and entropy the hand-written gradient can differentiate."""

    def saved_log_prob_entropy(self, model: nn.Module, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Any]:
        """`log_prob_entropy`'s values, and what `backward` needs of the forward pass."""

    def backward(self, model: nn.Module, saved: Any, d_logp: Tensor, d_entropy: float) -> tuple[Tensor, Tensor | None]:
        """The gradient with respect to `pi` and to `log_std` (None without one), given those with respect to each
        row's log-probability and to each row's entropy (the same for every row: losses average the entropy)."""


class Categorical:
    """Discrete(n): a softmax over logits."""

    name = "discrete"
    output = "logits"
    has_log_std = False
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
        return self.saved_log_prob_entropy(model, pi, actions)[:2]

    def saved_log_prob_entropy(self, model: nn.Module, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Any]:
        logp_all = F.log_softmax(pi, dim=-1)
        index = actions.long().unsqueeze(-1)
        probs = logp_all.exp()
        entropy = -(probs * logp_all).sum(-1)
        return logp_all.gather(-1, index).squeeze(-1), entropy, (logp_all, probs, index, entropy)

    def backward(self, model: nn.Module, saved: Any, d_logp: Tensor, d_entropy: float) -> tuple[Tensor, Tensor | None]:
        logp_all, probs, index, entropy = saved
        # d logp / d logits = onehot - p; d H / d logits = -p (log p + H)
        g_pi = probs * (d_logp + d_entropy * entropy).neg_().unsqueeze(-1)
        g_pi.scatter_add_(-1, index, d_logp.unsqueeze(-1))
        g_pi.add_(probs * logp_all, alpha=-d_entropy)
        return g_pi, None

    def clip(self, actions: Tensor) -> Tensor:
        return actions


class DiagGaussian:
    """A 1-D Box: independent normals around the means, with the model's state-independent `log_std` [d]."""

    name = "gaussian"
    output = "mean"
    has_log_std = True
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
        return self.saved_log_prob_entropy(model, pi, actions)[:2]

    def saved_log_prob_entropy(self, model: nn.Module, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Any]:
        log_std = log_std_of(model)
        entropy = (LOG_2PI_HALF + 0.5 + log_std).sum().expand(pi.shape[0])
        z = (actions - pi) / log_std.exp()
        return (-0.5 * z.pow(2) - log_std - LOG_2PI_HALF).sum(-1), entropy, (z, log_std)

    def backward(self, model: nn.Module, saved: Any, d_logp: Tensor, d_entropy: float) -> tuple[Tensor, Tensor | None]:
        z, log_std = saved
        # d logp / d mean = z / std; d logp / d log_std = z^2 - 1; d H / d log_std = 1 per row
        g_pi = d_logp.unsqueeze(-1) * (z / log_std.exp())
        g_log_std = (d_logp.unsqueeze(-1) * (z * z - 1.0)).sum(0).add_(d_entropy * z.shape[0])
        return g_pi, g_log_std

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


LOG_2PI_HALF = 0.5 * math.log(2 * math.pi)


def gaussian_logp(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    z = (actions - mean) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - LOG_2PI_HALF).sum(-1)
