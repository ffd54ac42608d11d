"""Action heads: everything that depends on the kind of action space, in one object per space.

A head turns the policy output `pi` of the actor-critic (logits [B, n] for Discrete actions, means [B, d] for a
1-D Box) into actions: `sample` (with log-probabilities, on the hot path), `mode` (greedy), `log_prob_entropy`
(for the losses), `clip` (to the env's bounds: the one place actions are clipped, exportable to ONNX) and the
action `dtype` of rollout buffers. The rest of pacer asks the head and never which kind of space it has.
Sampling builds no `torch.distributions` objects: it runs once per env step.

A head may also give the hand-written gradient (algos/analytic.py) its own log-probability and entropy with their
derivatives (`FastHead`: `saved_log_prob_entropy` and `backward`, beside the forward they differentiate, sharing its
formulas). A head without them is trained with autograd.

Discrete heads (Discrete, MultiDiscrete) take an action mask: `masked` sets the logits of illegal actions to
`MASKED_LOGIT` before any of the above, so sampling, the mode, log-probabilities, entropy and the losses all see the
masked distribution (an illegal action's probability is exactly 0, and 0 * log p stays finite: no NaN).
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
    """'discrete', 'multidiscrete', 'binary' or 'gaussian' (in exported files' metadata)."""
    output: str
    """What the policy output is, by name: 'logits' or 'mean' (an exported file's second output)."""
    has_log_std: bool
    """Whether the model needs a state-independent parameter `log_std` [size] (Gaussian policies)."""
    dtype: type[np.generic]
    """NumPy dtype of an action."""
    shape: tuple[int, ...]
    """Shape of one action: () for Discrete, (d,) for Box."""
    size: int
    """Width of the policy output: the number of actions (summed over a MultiDiscrete's components), the number of
    bits, or the action dimension."""
    maskable: bool
    """Whether it takes an action mask of `size` booleans (one per logit)."""

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
    maskable = True
    dtype: type[np.generic] = np.int64
    shape: tuple[int, ...] = ()

    def __init__(self, space: gym.spaces.Discrete) -> None:
        self.size = int(space.n)
        self.start = int(space.start)

    def sample(self, model: nn.Module, pi: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        logp_all = F.log_softmax(pi, dim=-1)
        index = torch.multinomial(logp_all.exp(), 1, generator=generator)
        return index.squeeze(-1) + self.start, logp_all.gather(-1, index).squeeze(-1)

    def mode(self, pi: Tensor) -> Tensor:
        return pi.argmax(-1) + self.start

    def log_prob_entropy(self, model: nn.Module, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        return self.saved_log_prob_entropy(model, pi, actions)[:2]

    def saved_log_prob_entropy(self, model: nn.Module, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Any]:
        logp_all = F.log_softmax(pi, dim=-1)
        index = (actions.long() - self.start).unsqueeze(-1)
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
    maskable = False
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


class MultiCategorical:
    """MultiDiscrete(nvec): one softmax per component over its own slice of the logits [B, sum(nvec)]; the
    log-probability and the entropy are summed over components (they are independent given the observation)."""

    name = "multidiscrete"
    output = "logits"
    has_log_std = False
    maskable = True
    dtype: type[np.generic] = np.int64

    def __init__(self, space: gym.spaces.MultiDiscrete) -> None:
        self.shape = tuple(space.shape)
        self.nvec = [int(k) for k in np.asarray(space.nvec).reshape(-1)]
        self.start = torch.as_tensor(np.asarray(space.start).reshape(-1), dtype=torch.int64)
        self.size = sum(self.nvec)

    def _split(self, pi: Tensor) -> list[Tensor]:
        return [F.log_softmax(part, dim=-1) for part in pi.split(self.nvec, dim=-1)]

    def sample(self, model: nn.Module, pi: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        parts = self._split(pi)
        index = torch.cat([torch.multinomial(p.exp(), 1, generator=generator) for p in parts], dim=-1)
        logp = sum(p.gather(-1, index[:, j:j + 1]).squeeze(-1) for j, p in enumerate(parts))
        return (index + self.start).view(-1, *self.shape), logp  # type: ignore[return-value]

    def mode(self, pi: Tensor) -> Tensor:
        index = torch.stack([part.argmax(-1) for part in pi.split(self.nvec, dim=-1)], dim=-1)
        return (index + self.start).view(-1, *self.shape)

    def log_prob_entropy(self, model: nn.Module, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        index = actions.long().reshape(actions.shape[0], -1) - self.start
        logp = torch.zeros(pi.shape[0])
        entropy = torch.zeros(pi.shape[0])
        for j, part in enumerate(self._split(pi)):
            logp = logp + part.gather(-1, index[:, j:j + 1]).squeeze(-1)
            entropy = entropy - (part.exp() * part).sum(-1)
        return logp, entropy

    def clip(self, actions: Tensor) -> Tensor:
        return actions


class Bernoulli:
    """MultiBinary(n): each bit drawn on its own, with probability sigmoid(logit); the log-probability and the
    entropy are summed over bits."""

    name = "binary"
    output = "logits"
    has_log_std = False
    maskable = False
    dtype: type[np.generic] = np.int8

    def __init__(self, space: gym.spaces.MultiBinary) -> None:
        self.shape = tuple(space.shape)
        self.size = int(np.prod(self.shape))

    def sample(self, model: nn.Module, pi: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        bits = torch.bernoulli(torch.sigmoid(pi), generator=generator)
        return bits.to(torch.int8).view(-1, *self.shape), self._logp(pi, bits)

    @staticmethod
    def _logp(pi: Tensor, bits: Tensor) -> Tensor:
        # log sigmoid(l) for a 1, log sigmoid(-l) for a 0: -softplus(-l) and -softplus(l), stable for large |l|
        return -(F.softplus(pi) - bits * pi).sum(-1)

    def mode(self, pi: Tensor) -> Tensor:
        return (pi > 0).to(torch.int8).view(-1, *self.shape)

    def log_prob_entropy(self, model: nn.Module, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        bits = actions.reshape(actions.shape[0], -1).to(pi.dtype)
        p = torch.sigmoid(pi)
        entropy = (F.softplus(pi) - p * pi).sum(-1)  # -p log p - (1 - p) log (1 - p), per bit
        return self._logp(pi, bits), entropy

    def clip(self, actions: Tensor) -> Tensor:
        return actions


def head_for(space: gym.Space[Any]) -> ActionHead:
    """The head for an action space; a one-line error for the spaces pacer does not handle."""
    if isinstance(space, gym.spaces.Discrete):
        return Categorical(space)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return MultiCategorical(space)
    if isinstance(space, gym.spaces.MultiBinary):
        return Bernoulli(space)
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return DiagGaussian(space)
    if isinstance(space, gym.spaces.Box):
        raise PacerError(f"unsupported action space {space}: pacer handles 1-D Box actions (reshape them to "
                         f"{int(np.prod(space.shape))} values in an ActionWrapper)")
    raise PacerError(f"unsupported action space {space}: pacer handles Discrete, MultiDiscrete, MultiBinary and 1-D "
                     "Box actions (a Tuple or Dict of actions: flatten it into one of these in an ActionWrapper)")


MASKED_LOGIT = -1e8
"""An illegal action's logit: exp underflows to exactly 0 beside any legal logit, and it stays finite (unlike -inf,
whose 0 * -inf in the entropy is NaN). sb3-contrib's MaskablePPO uses the same value."""


def masked(pi: Tensor, mask: Tensor | None) -> Tensor:
    """The policy output with the logits of illegal actions (mask false) set to `MASKED_LOGIT`; as is without a
    mask."""
    return pi if mask is None else pi.masked_fill(~mask, MASKED_LOGIT)


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
