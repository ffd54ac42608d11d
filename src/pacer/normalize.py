"""Running statistics for observation normalization and reward scaling (what SB3's VecNormalize does).

Observation statistics are a row of float64 [count, mean (D), M2 (D)]. Each worker adds its rollouts' moments to a
row of its own (one writer per row, so no lock) and the run's statistics are all rows combined with Chan et al.'s
parallel formula, which is exact: the same numbers as one pass over every observation. The model applies them
(`RunningNorm`, whose buffers are saved in every checkpoint), so `pacer eval`, `Agent.act` and an exported model
normalize exactly as training did.

Reward scaling divides each reward by the standard deviation of a running discounted return, per worker; it is a
learning aid only (episode returns are reported unscaled) and needs nothing at evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

EPS = 1e-8
CLIP = 10.0  # normalized observations and scaled rewards are clipped to +-10, as in SB3 and CleanRL


def empty(dim: int) -> NDArray[np.float64]:
    return np.zeros(1 + 2 * dim)


def moments(x: NDArray[Any]) -> NDArray[np.float64]:
    """[count, mean, M2] of the rows of `x` ([n, *obs_shape], flattened per row)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:  # e.g. every env on its reset step at once (MuJoCo's envs all truncate at step 1000)
        return empty(int(np.prod(x.shape[1:])))
    flat = x.reshape(len(x), -1)
    mean = flat.mean(axis=0)
    return np.concatenate([[len(flat)], mean, ((flat - mean) ** 2).sum(axis=0)])


def combine(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """The moments of the union of two samples."""
    dim = (len(a) - 1) // 2
    na, nb = a[0], b[0]
    if nb == 0:
        return a.copy()
    if na == 0:
        return b.copy()
    n = na + nb
    delta = b[1:1 + dim] - a[1:1 + dim]
    mean = a[1:1 + dim] + delta * (nb / n)
    m2 = a[1 + dim:] + b[1 + dim:] + delta ** 2 * (na * nb / n)
    return np.concatenate([[n], mean, m2])


def total(rows: NDArray[np.float64] | Tensor) -> NDArray[np.float64]:
    """All rows (one per worker, plus earlier sessions) combined, in row order."""
    rows = np.asarray(rows, dtype=np.float64)
    out = rows[0].copy()
    for row in rows[1:]:
        out = combine(out, row)
    return out


def mean_var(row: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and (population) variance; zero and one before any observation."""
    dim = (len(row) - 1) // 2
    if row[0] == 0:
        return np.zeros(dim), np.ones(dim)
    return row[1:1 + dim], row[1 + dim:] / row[0]


class RunningNorm(nn.Module):
    """(x - mean) / sqrt(var + eps), clipped: statistics the optimizer never touches (buffers, not parameters)."""

    mean: Tensor
    var: Tensor

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))

    def forward(self, x: Tensor) -> Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + EPS)).clamp(-CLIP, CLIP)

    @torch.no_grad()
    def load(self, row: NDArray[np.float64]) -> None:
        mean, var = mean_var(np.array(row))  # a copy: rows from Ray's object store are read-only
        self.mean.copy_(torch.from_numpy(mean).reshape(self.mean.shape))
        self.var.copy_(torch.from_numpy(var).reshape(self.var.shape))


def norm_of(model: nn.Module) -> RunningNorm | None:
    """The model's observation normalizer, if it has one (the built-in model with normalize_input 'running')."""
    norm = getattr(model, "obs_norm", None)
    if norm is None:  # a structured observation's vector leaves (model.Features)
        norm = getattr(getattr(model, "features", None), "obs_norm", None)
    return norm if isinstance(norm, RunningNorm) else None


class RewardScaler:
    """Divides rewards by the running std of each env's discounted return (reset at episode ends)."""

    def __init__(self, num_envs: int, gamma: float) -> None:
        self.gamma = gamma
        self.returns = np.zeros(num_envs)
        self.stats = empty(1)

    def __call__(self, rewards: NDArray[Any], done: NDArray[np.bool_], valid: NDArray[np.bool_]
                 ) -> NDArray[np.float32]:
        # invalid rows (NEXT_STEP autoreset steps) are not transitions: they neither count nor carry a return
        self.returns = np.where(valid, self.returns * self.gamma + rewards, self.returns)
        self.stats = combine(self.stats, moments(self.returns[valid][:, None]))
        self.returns[done & valid] = 0.0
        _, var = mean_var(self.stats)
        return np.clip(rewards / np.sqrt(var[0] + EPS), -CLIP, CLIP).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        return {"returns": self.returns.copy(), "stats": self.stats.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.returns, self.stats = np.array(state["returns"]), np.array(state["stats"])
