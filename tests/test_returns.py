"""Returns and GAE against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pacer.algos.returns import discounted_returns, gae, normalize_columns


def col(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=np.float64)[:, None]


def flags(*xs: int) -> np.ndarray:
    return np.array(xs, dtype=bool)[:, None]


def test_discounted_returns_restart_after_done() -> None:
    rewards = col(1, 1, 1, 2, 2)
    dones = flags(0, 0, 1, 0, 1)
    out = discounted_returns(rewards, dones, gamma=0.5)
    # episode 1: G2 = 1, G1 = 1 + .5*1 = 1.5, G0 = 1 + .5*1.5 = 1.75; episode 2: G4 = 2, G3 = 2 + .5*2 = 3
    np.testing.assert_allclose(out[:, 0], [1.75, 1.5, 1.0, 3.0, 2.0])


def test_gae_lambda_one_is_bootstrapped_return_minus_value() -> None:
    rewards, values = col(1, 1, 1), col(0.5, 0.5, 0.5)
    next_values = col(0.5, 0.5, 2.0)  # V(s3) = 2 bootstraps the rollout end
    adv, ret = gae(rewards, values, next_values, terminated=flags(0, 0, 0), truncated=flags(0, 0, 0), gamma=0.9,
                   lam=1.0)
    # R2 = 1 + .9*2 = 2.8; R1 = 1 + .9*2.8 = 3.52; R0 = 1 + .9*3.52 = 4.168
    np.testing.assert_allclose(ret[:, 0], [4.168, 3.52, 2.8])
    np.testing.assert_allclose(adv[:, 0], [3.668, 3.02, 2.3])


def test_gae_termination_does_not_bootstrap_but_truncation_does() -> None:
    rewards, values = col(1.0), col(0.0)
    next_values = col(10.0)  # value of the final observation
    adv_term, _ = gae(rewards, values, next_values, terminated=flags(1), truncated=flags(0), gamma=0.9, lam=0.95)
    adv_trunc, _ = gae(rewards, values, next_values, terminated=flags(0), truncated=flags(1), gamma=0.9, lam=0.95)
    assert adv_term[0, 0] == pytest.approx(1.0)  # r, no future
    assert adv_trunc[0, 0] == pytest.approx(1.0 + 0.9 * 10.0)  # r + gamma V(final obs)


def test_gae_hand_computed_two_episodes() -> None:
    g, lam = 0.9, 0.8
    rewards = col(1, 2, 3, 4)
    values = col(0.1, 0.2, 0.3, 0.4)
    next_values = col(0.2, 5.0, 0.4, 0.6)  # row 1 truncates: V(final obs) = 5
    terminated, truncated = flags(0, 0, 0, 1), flags(0, 1, 0, 0)
    adv, ret = gae(rewards, values, next_values, terminated=terminated, truncated=truncated, gamma=g, lam=lam)
    d3 = 4 - 0.4  # terminated: no bootstrap
    d2 = 3 + g * 0.4 - 0.3
    d1 = 2 + g * 5.0 - 0.2  # truncated: bootstrap with V(final obs), and the recursion stops here
    d0 = 1 + g * 0.2 - 0.1
    a3, a2 = d3, d2 + g * lam * d3
    a1, a0 = d1, d0 + g * lam * d1
    np.testing.assert_allclose(adv[:, 0], [a0, a1, a2, a3])
    np.testing.assert_allclose(ret[:, 0], np.array([a0, a1, a2, a3]) + values[:, 0])


def test_gae_columns_are_independent() -> None:
    rewards = np.array([[1.0, 0.0], [1.0, 5.0]])
    values = np.zeros((2, 2))
    none = np.zeros((2, 2), dtype=bool)
    adv, _ = gae(rewards, values, values, terminated=none, truncated=none, gamma=1.0, lam=1.0)
    np.testing.assert_allclose(adv, [[2.0, 5.0], [1.0, 5.0]])


def test_l2_normalization_matches_the_classic_f_normalize() -> None:
    returns = col(3.0, 4.0, 99.0)
    valid = flags(1, 1, 0)  # the invalid row is ignored in the norm
    out = normalize_columns(returns, valid, "l2")
    np.testing.assert_allclose(out[:2, 0], [0.6, 0.8])


def test_std_normalization() -> None:
    out = normalize_columns(col(1.0, 3.0), flags(1, 1), "std")
    np.testing.assert_allclose(out[:, 0], [-1.0, 1.0], atol=1e-6)


def test_gae_takes_its_masks_by_keyword_and_checks_shapes() -> None:
    rewards = np.zeros((3, 2), dtype=np.float32)
    mask = np.zeros((3, 2), dtype=bool)
    with pytest.raises(TypeError):
        gae(rewards, rewards, rewards, mask, mask, 0.9, 0.9)  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"gae: truncated has shape \(2, 3\), rewards \(3, 2\): every array is"):
        gae(rewards, rewards, rewards, terminated=mask, truncated=mask.T, gamma=0.9, lam=0.9)
    with pytest.raises(ValueError, match=r"gae: next_values has shape \(3,\)"):
        gae(rewards, rewards, rewards[:, 0], terminated=mask, truncated=mask, gamma=0.9, lam=0.9)
