"""Loss functions: `loss(model, head, batch, cfg) -> LossTerms`, one per algorithm, no class tree.

A loss returns its terms by name (policy, value, entropy, and any further statistics); `LossTerms.total` combines
them with the config's coefficients, so every algorithm weighs its terms the same way."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from pacer.algos.returns import discounted_returns, gae, normalize_columns
from pacer.config import AlgoConfig
from pacer.heads import ActionHead, masked
from pacer.rollout import Rollout
from pacer.spaces import tree_map


class Memory(NamedTuple):
    """Sequences for a recurrent model: where each starts, and which of its steps are transitions."""

    state: Tensor
    """[C, state_size]: the model's state before each sequence's first step, as it was collected."""
    starts: Tensor
    """[L, C] bool: the state is reset before this step (a new episode's first)."""
    mask: Tensor
    """[L, C] bool: the steps that are transitions (not NEXT_STEP autoreset steps): the batch's rows."""


class Batch(NamedTuple):
    """The valid transitions of a rollout with their learning targets. Without `memory`, rows: every field [n, ...].
    With it (a recurrent model), C sequences of L steps: `obs` [L, C, ...]; the other fields are [L, C] in the batch
    `prepare` makes, and the rows `memory.mask` keeps, in [L, C] order, in a minibatch of sequences (`sequences`)."""

    obs: Tensor
    actions: Tensor
    logp: Tensor  # log-probabilities under the policy that collected the data
    advantages: Tensor
    returns: Tensor  # value targets
    values: Tensor  # the critic's values when the data was collected
    memory: Memory | None = None
    action_mask: Tensor | None = None
    """[n, logits] bool, row by row (as the actions): the legal actions where the env gives masks (pacer/masks.py)."""


def rows(batch: Batch, index: Tensor | slice) -> Batch:
    """The rows `index` of a batch of rows."""
    return Batch(tree_map(lambda x: x[index], batch.obs), batch.actions[index], batch.logp[index],
                 batch.advantages[index], batch.returns[index], batch.values[index],
                 action_mask=None if batch.action_mask is None else batch.action_mask[index])


def outputs(model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """The model's policy output and value for the batch's rows: a feedforward model on the rows; a recurrent one
    over each sequence from its stored state (with the current parameters: truncated backpropagation through it),
    at the steps that are transitions. Every loss gets them here, with the logits of illegal actions masked (where
    the env gives masks): log-probabilities and entropy are those of the distribution the actions were drawn from."""
    if batch.memory is None:
        pi, value = model(batch.obs)
    else:
        pi, value, _ = model(batch.obs, batch.memory.state, batch.memory.starts)
        pi, value = pi[batch.memory.mask], value[batch.memory.mask]
    return masked(pi, batch.action_mask), value


def sequences(batch: Batch, index: Tensor) -> Batch:
    """The minibatch of sequences `index` of a batch of sequences, its row fields flattened to its transitions."""
    memory = batch.memory
    assert memory is not None
    mask = memory.mask[:, index]

    def rows(x: Tensor) -> Tensor:
        return x[:, index][mask]

    return Batch(tree_map(lambda x: x[:, index], batch.obs), rows(batch.actions), rows(batch.logp),
                 rows(batch.advantages), rows(batch.returns), rows(batch.values),
                 Memory(memory.state[index], memory.starts[:, index], mask),
                 None if batch.action_mask is None else rows(batch.action_mask))


def value_rows(batch: Batch) -> tuple[Tensor, Tensor]:
    """The collected values and their targets at the batch's transitions."""
    if batch.memory is None or batch.values.dim() == 1:
        return batch.values, batch.returns
    return batch.values[batch.memory.mask], batch.returns[batch.memory.mask]


def prepare(rollout: Rollout, cfg: AlgoConfig, targets: str) -> Batch:
    """Compute targets on the [T, N] arrays, then keep only valid rows. `targets` is 'mc' or 'gae'. A rollout of
    a recurrent model becomes sequences of `cfg.sequence_length` steps (the whole rollout when null, and always for
    'mc', whose rollouts are whole episodes of any length), each with the state stored at its first step."""
    valid = rollout.valid
    if targets == "mc":
        returns = discounted_returns(rollout.rewards, rollout.terminated | rollout.truncated, cfg.gamma)
        returns = normalize_columns(returns, valid, cfg.normalize_returns)
        advantages = returns - rollout.values
    else:
        advantages, returns = gae(rollout.rewards, rollout.values, rollout.next_values,
                                  terminated=rollout.terminated, truncated=rollout.truncated, gamma=cfg.gamma,
                                  lam=cfg.gae_lambda)
    adv = advantages[valid]
    if cfg.normalize_advantages and adv.size > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    if rollout.states is not None and rollout.starts is not None:
        advantages = advantages.copy()
        advantages[valid] = adv  # normalized over the transitions, laid out [T, N] again
        steps = rollout.valid.shape[0]
        length = steps if targets == "mc" or cfg.sequence_length is None else cfg.sequence_length
        return Batch(obs=tree_map(lambda x: _cut(x, length), rollout.obs), actions=_cut(rollout.actions, length),
                     logp=_cut(rollout.logp, length), advantages=_cut(advantages.astype(np.float32), length),
                     returns=_cut(returns.astype(np.float32), length), values=_cut(rollout.values, length),
                     memory=Memory(torch.from_numpy(rollout.states[::length].reshape(-1, rollout.states.shape[-1])),
                                   _cut(rollout.starts, length), _cut(valid, length)),
                     action_mask=None if rollout.action_masks is None else _cut(rollout.action_masks, length))
    return Batch(
        obs=tree_map(lambda x: torch.from_numpy(x[valid]), rollout.obs),
        actions=torch.from_numpy(rollout.actions[valid]),
        logp=torch.from_numpy(rollout.logp[valid]),
        advantages=torch.from_numpy(adv.astype(np.float32)),
        returns=torch.from_numpy(returns[valid].astype(np.float32)),
        values=torch.from_numpy(rollout.values[valid]),
        action_mask=None if rollout.action_masks is None else torch.from_numpy(rollout.action_masks[valid]),
    )


def _cut(x: Any, length: int) -> Tensor:
    """[T, N, ...] -> [length, T / length * N, ...]: sequence k * N + n is steps k * length ... of env n."""
    steps, envs = x.shape[:2]
    chunks = steps // length
    out = np.ascontiguousarray(x.reshape(chunks, length, envs, *x.shape[2:]).swapaxes(0, 1))
    return torch.from_numpy(out.reshape(length, chunks * envs, *x.shape[2:]))


def explained_variance(values: Tensor, returns: Tensor) -> float:
    """1 - Var[returns - values] / Var[returns]: 1 is a perfect critic, 0 no better than a constant, < 0 worse
    (nan when the returns do not vary)."""
    var = returns.var(unbiased=False)
    return float("nan") if var.item() == 0.0 else float(1.0 - (returns - values).var(unbiased=False) / var)


class LossTerms(NamedTuple):
    """A loss by its terms; minimized as `policy + value_coef * value - entropy_coef * entropy`."""

    policy: Tensor
    """The actor's loss (a scalar)."""
    value: Tensor
    """The critic's loss (a scalar)."""
    entropy: Tensor
    """The policy's entropy (a scalar bonus: subtracted)."""
    stats: Mapping[str, float] = MappingProxyType({})
    """Further numbers to report (they override the terms' own of the same name)."""

    def total(self, cfg: AlgoConfig) -> Tensor:
        return total_loss(self.policy, self.value, self.entropy, cfg)

    def report(self) -> dict[str, float]:
        return {"actor_loss": self.policy.item(), "critic_loss": self.value.item(), "entropy": self.entropy.item(),
                **self.stats}


# The pure pieces of the losses below, called by them and by the hand-written gradient (algos/analytic.py) alike:
# one definition of each number, whichever path computes the gradient.

def total_loss(policy: Tensor, value: Tensor, entropy: Tensor, cfg: AlgoConfig) -> Tensor:
    """What every algorithm minimizes: `policy + value_coef * value - entropy_coef * entropy`."""
    return policy + cfg.value_coef * value - cfg.entropy_coef * entropy


def value_loss(value: Tensor, returns: Tensor) -> Tensor:
    """The critic's mean squared error to its targets."""
    return (value - returns).pow(2).mean()


class Surrogate(NamedTuple):
    """PPO's clipped surrogate and the pieces of it that its statistics and its derivative use."""

    loss: Tensor
    ratio: Tensor
    log_ratio: Tensor
    unclipped: Tensor
    """r A, per row."""
    clipped: Tensor
    """clip(r, 1 - c, 1 + c) A, per row."""


def ppo_surrogate(logp: Tensor, old_logp: Tensor, advantages: Tensor, clip_range: float) -> Surrogate:
    """PPO's clipped surrogate loss `-mean(min(r A, clip(r, 1 - c, 1 + c) A))`, with the ratio r and log r."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * advantages
    return Surrogate(-torch.min(unclipped, clipped).mean(), ratio, log_ratio, unclipped, clipped)


def ppo_stats(ratio: Tensor, log_ratio: Tensor, clip_range: float) -> dict[str, float]:
    """approx_kl: KL(old || new) estimated as E[(r - 1) - log r] (Schulman's k3: unbiased, never negative);
    clip_fraction: the share of ratios outside the clip range. (Call it under torch.no_grad().)"""
    return {"approx_kl": ((ratio - 1.0) - log_ratio).mean().item(),
            "clip_fraction": ((ratio - 1.0).abs() > clip_range).float().mean().item()}


def mc_loss(model: nn.Module, head: ActionHead, batch: Batch, cfg: AlgoConfig) -> LossTerms:
    """Classic Monte-Carlo advantage actor-critic, summed over the episode as in the textbook version:
    actor -log pi(a|s) * (G - V(s)) with V detached, critic (V - G)^2."""
    pi, value = outputs(model, batch)
    logp, entropy = head.log_prob_entropy(model, pi, batch.actions)
    actor = -(logp * (batch.returns - value.detach())).sum()
    critic = (value - batch.returns).pow(2).sum()
    return LossTerms(actor, critic, entropy.sum(), {"entropy": entropy.mean().item()})


def a2c_loss(model: nn.Module, head: ActionHead, batch: Batch, cfg: AlgoConfig) -> LossTerms:
    """Advantage actor-critic on precomputed (GAE) advantages: means over the batch."""
    pi, value = outputs(model, batch)
    logp, entropy = head.log_prob_entropy(model, pi, batch.actions)
    return LossTerms(-(logp * batch.advantages).mean(), value_loss(value, batch.returns), entropy.mean())


def ppo_loss(model: nn.Module, head: ActionHead, batch: Batch, cfg: AlgoConfig) -> LossTerms:
    """PPO's clipped surrogate on the probability ratio to the collecting policy."""
    pi, value = outputs(model, batch)
    logp, entropy = head.log_prob_entropy(model, pi, batch.actions)
    surrogate = ppo_surrogate(logp, batch.logp, batch.advantages, cfg.clip_range)
    with torch.no_grad():
        stats = ppo_stats(surrogate.ratio, surrogate.log_ratio, cfg.clip_range)
    return LossTerms(surrogate.loss, value_loss(value, batch.returns), entropy.mean(), stats)
