"""Pure return and advantage computations on [T, N] NumPy arrays (time first, one column per environment).

`terminated` and `truncated` stay apart: a terminated episode has no future value, a truncated one is cut by a
time limit and is bootstrapped with the value of its true next state.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]
Mask = NDArray[np.bool_]


def discounted_returns(rewards: Array, dones: Mask, gamma: float) -> Array:
    """Monte-Carlo returns G_t = r_t + gamma * G_{t+1}, restarting after every step where `dones` is true.

    Nothing is bootstrapped: a rollout must end on a done for its returns to be complete episodes.
    """
    returns = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1:], dtype=np.float64)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running * (~dones[t])
        returns[t] = running
    return returns


def gae(
    rewards: Array,
    values: Array,
    next_values: Array,
    *,
    terminated: Mask,
    truncated: Mask,
    gamma: float,
    lam: float,
) -> tuple[Array, Array]:
    """Generalized advantage estimation; returns (advantages, value targets). Every array is [T, N].

    next_values[t] is V(s_{t+1}) of the true next state (for a truncated step, its final observation).
    delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t); the advantage recursion stops at both
    terminated and truncated steps, since the next row belongs to another episode. The masks are keywords: two
    boolean arrays of one shape are easy to swap, and swapping them silently changes what is bootstrapped.
    """
    shape = np.shape(rewards)
    for name, array in (("values", values), ("next_values", next_values), ("terminated", terminated),
                        ("truncated", truncated)):
        if np.shape(array) != shape:
            raise ValueError(f"gae: {name} has shape {np.shape(array)}, rewards {shape}: every array is [T, N]")
    advantages = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1:], dtype=np.float64)
    not_terminated = 1.0 - terminated.astype(np.float64)
    continues = 1.0 - (terminated | truncated).astype(np.float64)
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * next_values[t] * not_terminated[t] - values[t]
        running = delta + gamma * lam * continues[t] * running
        advantages[t] = running
    return advantages, advantages + values


def normalize_columns(returns: Array, valid: Mask, how: str) -> Array:
    """Scale each column (one episode per column in 'mc' rollouts) over its valid entries.

    'l2' divides by the L2 norm, as the classic distributed A2C does with F.normalize; 'std' standardizes.
    """
    if how == "none":
        return returns
    masked = np.where(valid, returns, 0.0)
    if how == "l2":
        norm = np.sqrt((masked**2).sum(axis=0))
        return returns / np.maximum(norm, 1e-12)
    count = np.maximum(valid.sum(axis=0), 1)
    mean = masked.sum(axis=0) / count
    std = np.sqrt((np.where(valid, returns - mean, 0.0) ** 2).sum(axis=0) / count)
    return (returns - mean) / (std + 1e-8)
