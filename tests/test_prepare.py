"""`prepare()`: a hand-built Rollout becomes a Batch of its valid rows, with targets computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pacer.algos import prepare
from pacer.config import AlgoConfig
from pacer.rollout import Rollout


def rollout(rewards: list[list[float]], values: list[list[float]], terminated: list[list[int]],
            truncated: list[list[int]], valid: list[list[int]], last_values: list[float]) -> Rollout:
    """[T, N] lists in; obs, actions and logp encode (t, n) so that the rows kept, and their order, show."""
    t, n = np.shape(rewards)
    tn = np.arange(t * n, dtype=np.float32).reshape(t, n)
    return Rollout(obs=np.stack([tn, -tn], axis=-1), actions=np.arange(t * n).reshape(t, n),
                   logp=-tn / 10, values=np.array(values, np.float32), rewards=np.array(rewards, np.float32),
                   terminated=np.array(terminated, bool), truncated=np.array(truncated, bool),
                   valid=np.array(valid, bool), last_values=np.array(last_values, np.float32))


def n_step() -> Rollout:
    """Two envs, four steps, NEXT_STEP autoreset. Env 0 terminates at t1, env 1 is truncated at t1; t2 is the reset
    step of both (invalid, its observation is the final one of the ended episode); t3 is a new episode."""
    return rollout(rewards=[[1, 1], [2, 0], [7, 7], [1, 3]],  # rewards of the invalid row must not leak anywhere
                   values=[[0.5, 0], [1, 1], [3, 2], [0.5, 1]],  # t2: V(final obs); env 1's is 2
                   terminated=[[0, 0], [1, 0], [0, 0], [0, 1]],
                   truncated=[[0, 0], [0, 1], [0, 0], [0, 0]],
                   valid=[[1, 1], [1, 1], [0, 0], [1, 1]],
                   last_values=[2, 5])


# gamma = lambda = .5, so gamma * lambda = .25; next_values are values[t + 1], then last_values.
# env 0: d3 = 1 + .5*2 - .5 = 1.5; d1 = 2 - 1 = 1 (terminated: no bootstrap, and the recursion stops);
#        d0 = 1 + .5*1 - .5 = 1, A0 = 1 + .25*1 = 1.25
# env 1: d3 = 3 - 1 = 2 (terminated); d1 = 0 + .5*2 - 1 = 0 (truncated: bootstrap V(final obs) = 2, then stop);
#        d0 = 1 + .5*1 - 0 = 1.5, A0 = 1.5 + .25*0 = 1.5
# valid rows in [T, N] order: (0,0) (0,1) (1,0) (1,1) (3,0) (3,1); returns = A + V
GAE_ADV = [1.25, 1.5, 1.0, 0.0, 1.5, 2.0]
GAE_RET = [1.75, 1.5, 2.0, 1.0, 2.0, 3.0]
KEPT = [0, 1, 2, 3, 6, 7]  # t * N + n of the valid rows


def standardized(xs: list[float]) -> list[float]:
    mean = sum(xs) / len(xs)
    std = (sum((x - mean) ** 2 for x in xs) / len(xs)) ** 0.5  # population std, over the valid rows only
    return [(x - mean) / std for x in xs]


def test_gae_targets_on_the_valid_rows() -> None:
    cfg = AlgoConfig(gamma=0.5, gae_lambda=0.5, normalize_advantages=False)
    batch = prepare(n_step(), cfg, "gae")
    np.testing.assert_allclose(batch.advantages.numpy(), GAE_ADV, rtol=1e-6)
    np.testing.assert_allclose(batch.returns.numpy(), GAE_RET, rtol=1e-6)
    kept = torch.tensor(KEPT, dtype=torch.float32)
    torch.testing.assert_close(batch.obs, torch.stack([kept, -kept], dim=-1))  # the invalid rows are gone
    torch.testing.assert_close(batch.actions, torch.tensor(KEPT))
    torch.testing.assert_close(batch.logp, -kept / 10)
    assert all(x.dtype == torch.float32 for x in (batch.obs, batch.logp, batch.advantages, batch.returns))


def test_gae_advantages_are_standardized_over_the_valid_rows_only() -> None:
    cfg = AlgoConfig(gamma=0.5, gae_lambda=0.5, normalize_advantages=True)
    batch = prepare(n_step(), cfg, "gae")
    # mean 7.25/6; the invalid rows' advantages (-2.375 and -1) would shift it
    np.testing.assert_allclose(batch.advantages.numpy(), standardized(GAE_ADV), rtol=1e-5)
    np.testing.assert_allclose(batch.returns.numpy(), GAE_RET, rtol=1e-6)  # value targets stay unnormalized


def test_a_single_valid_row_is_not_standardized() -> None:
    # one row has no spread to divide by: its advantage is kept as it is, not turned into 0 or nan
    one = rollout(rewards=[[1.0]], values=[[0.5]], terminated=[[1]], truncated=[[0]], valid=[[1]],
                  last_values=[9.0])
    batch = prepare(one, AlgoConfig(normalize_advantages=True), "gae")
    np.testing.assert_allclose(batch.advantages.numpy(), [0.5])


def episodes() -> Rollout:
    """Whole episodes, one per column, as `collect_episodes` leaves them: env 0 terminates at t1, env 1 is truncated
    at t2, and the rows after an episode's end are invalid, with rewards from the next episode that must not leak
    into the returns (a truncation ends the episode as much as a termination does)."""
    return rollout(rewards=[[1, 1], [2, 1], [5, 1], [5, 4]], values=[[0.5, 0.25], [1, 0.5], [9, 1], [9, 9]],
                   terminated=[[0, 0], [1, 0], [0, 0], [0, 0]], truncated=[[0, 0], [0, 0], [0, 1], [0, 0]],
                   valid=[[1, 1], [1, 1], [0, 1], [0, 0]], last_values=[0, 0])


# gamma = .5: env 0: G1 = 2, G0 = 1 + .5*2 = 2; env 1: G2 = 1, G1 = 1 + .5*1 = 1.5, G0 = 1 + .5*1.5 = 1.75
# valid rows in [T, N] order: (0,0) (0,1) (1,0) (1,1) (2,1)
MC_RET = [2.0, 1.75, 2.0, 1.5, 1.0]
MC_VALUES = [0.5, 0.25, 1.0, 0.5, 1.0]


@pytest.mark.parametrize("how", ["none", "l2"])
def test_mc_returns_and_advantages(how: str) -> None:
    cfg = AlgoConfig(gamma=0.5, normalize_returns=how, normalize_advantages=False)
    batch = prepare(episodes(), cfg, "mc")
    if how == "none":
        returns = MC_RET
    else:  # per column over its valid rows: env 0's norm is sqrt(2^2 + 2^2), env 1's sqrt(1.75^2 + 1.5^2 + 1^2)
        n0, n1 = 8**0.5, 6.3125**0.5  # env 0's invalid returns, 7.5 and 5, are left out of its norm
        returns = [2 / n0, 1.75 / n1, 2 / n0, 1.5 / n1, 1 / n1]
    np.testing.assert_allclose(batch.returns.numpy(), returns, rtol=1e-6)
    np.testing.assert_allclose(batch.advantages.numpy(), np.subtract(returns, MC_VALUES), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(batch.actions, torch.tensor([0, 1, 2, 3, 5]))


def test_mc_std_normalization_and_standardized_advantages() -> None:
    cfg = AlgoConfig(gamma=0.5, normalize_returns="std", normalize_advantages=True)
    batch = prepare(episodes(), cfg, "mc")
    # env 0's valid returns are equal: standardized to 0; env 1's [1.75, 1.5, 1] standardize over themselves
    env1 = standardized([1.75, 1.5, 1.0])
    returns = [0.0, env1[0], 0.0, env1[1], env1[2]]
    np.testing.assert_allclose(batch.returns.numpy(), returns, rtol=1e-5, atol=1e-6)
    advantages = standardized(list(np.subtract(returns, MC_VALUES)))
    np.testing.assert_allclose(batch.advantages.numpy(), advantages, rtol=1e-5, atol=1e-6)
