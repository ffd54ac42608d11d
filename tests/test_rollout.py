"""The collector: NEXT_STEP reset rows are masked, whole episodes for 'mc' are whole and counted once."""

from __future__ import annotations

import numpy as np
import torch

from pacer.config import EnvConfig, ModelConfig
from pacer.envs import make_vector_env
from pacer.heads import head_for
from pacer.model import make_model
from pacer.rollout import Collector


def collector(num_envs: int, seed: int = 0, env_id: str = "CartPole-v1") -> Collector:
    env = make_vector_env(EnvConfig(id=env_id), num_envs)
    torch.manual_seed(seed)
    model = make_model(ModelConfig(), env.single_observation_space, env.single_action_space)
    return Collector(env, model, head_for(env.single_action_space), seed)


def test_reset_rows_are_invalid_and_episode_lengths_add_up() -> None:
    c = collector(3)
    rollout = c.collect(400)
    done = rollout.terminated | rollout.truncated
    # the row after a done is the reset step of that env: invalid; every other row is valid
    expected_valid = np.ones_like(done)
    expected_valid[1:] = ~done[:-1]
    np.testing.assert_array_equal(rollout.valid, expected_valid)
    returns, lengths = c.pop_episodes()
    assert len(returns) == int(done.sum()) > 0
    assert sum(lengths) <= int(rollout.valid.sum())


def test_whole_episodes_start_fresh_end_once_and_are_counted_once() -> None:
    c = collector(4, seed=1)
    c.collect(7)  # leave every env mid-episode
    c.pop_episodes()
    for _ in range(2):
        rollout = c.collect_episodes(chunk=16)
        done = (rollout.terminated | rollout.truncated) & rollout.valid
        assert done.sum(axis=0).tolist() == [1, 1, 1, 1]  # exactly one episode per env
        for env in range(4):
            rows = np.flatnonzero(rollout.valid[:, env])
            assert rows[0] == 0 and np.all(np.diff(rows) == 1)  # starts at the first row, contiguous
            assert done[rows[-1], env]  # and ends on its done
        returns, lengths = c.pop_episodes()
        assert len(returns) == 4
        assert sorted(lengths) == sorted(rollout.valid.sum(axis=0).tolist())
        # CartPole pays 1 per step: each return equals its episode's length
        assert sorted(returns) == sorted(float(n) for n in lengths)
