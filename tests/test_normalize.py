"""Running observation statistics, reward scaling and orthogonal init, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pacer
from pacer import checkpoint, normalize
from pacer.config import Config, ModelConfig
from pacer.model import MLPActorCritic
from pacer.runtime import shared as shared_state


def test_moments_combined_in_any_split_equal_one_pass() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 3))
    parts = [normalize.moments(x[:7]), normalize.moments(x[7:30]), normalize.empty(3), normalize.moments(x[30:])]
    mean, var = normalize.mean_var(normalize.total(np.stack(parts)))
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-12)


def test_no_observation_yet_is_the_identity() -> None:
    norm = normalize.RunningNorm((2,))
    norm.load(normalize.empty(2))
    x = torch.tensor([[1.5, -2.0]])
    torch.testing.assert_close(norm(x), x)


def test_running_norm_standardizes_and_clips() -> None:
    norm = normalize.RunningNorm((2,))
    norm.load(normalize.moments(np.array([[0.0, 10.0], [2.0, 10.0]])))  # mean [1, 10], var [1, 0]
    out = norm(torch.tensor([[3.0, 10.0], [1.0, 11.0]]))
    assert out[0, 0].item() == pytest.approx(2.0, rel=1e-6)
    assert out[0, 1].item() == 0.0
    assert out[1, 1].item() == normalize.CLIP  # 1 / sqrt(1e-8) = 1e4, clipped to 10


def test_reward_scaling_by_the_discounted_returns_std() -> None:
    scaler = normalize.RewardScaler(num_envs=2, gamma=0.5)
    valid = np.array([True, True])
    # step 1: returns [1, 3], var 1 -> rewards / sqrt(1 + eps)
    out = scaler(np.array([1.0, 3.0]), np.array([False, True]), valid)
    np.testing.assert_allclose(out, [1.0, 3.0], rtol=1e-6)
    # step 2: env 1's episode ended (its return restarts): returns [.5 + 2, 0 + 2] = [2.5, 2]
    # all returns so far: 1, 3, 2.5, 2 -> mean 2.125, var .546875
    out = scaler(np.array([2.0, 2.0]), np.array([False, False]), valid)
    np.testing.assert_allclose(out, np.array([2.0, 2.0]) / math.sqrt(0.546875), rtol=1e-6)


def test_reward_scaling_skips_rows_that_are_not_transitions() -> None:
    scaler = normalize.RewardScaler(num_envs=2, gamma=0.9)
    scaler(np.array([1.0, 5.0]), np.array([False, False]), np.array([True, False]))
    assert scaler.stats[0] == 1 and list(scaler.returns) == [1.0, 0.0]
    # every env on its reset step at once (MuJoCo envs truncate together): nothing counts, nothing breaks
    out = scaler(np.array([3.0, 3.0]), np.array([False, False]), np.array([False, False]))
    assert scaler.stats[0] == 1 and list(scaler.returns) == [1.0, 0.0] and np.isfinite(out).all()
    assert normalize.moments(np.zeros((0, 3)))[0] == 0 and len(normalize.moments(np.zeros((0, 3)))) == 7


def test_orthogonal_init() -> None:
    torch.manual_seed(0)
    model = MLPActorCritic(ModelConfig(hidden=(16, 16), init="orthogonal"), obs_dim=4, pi_dim=2, gaussian=False)
    first = model.actor_body[0].weight  # [16, 4]: orthonormal columns, scaled by sqrt 2
    torch.testing.assert_close(first.T @ first, 2.0 * torch.eye(4), atol=1e-5, rtol=0)
    head = model.pi_head.weight  # [2, 16]: orthonormal rows, scaled by 0.01
    torch.testing.assert_close(head @ head.T, 1e-4 * torch.eye(2), atol=1e-8, rtol=0)
    value = model.value_head.weight
    assert value.norm().item() == pytest.approx(1.0, rel=1e-5)
    assert all(torch.all(m.bias == 0) for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_the_run_normalizes_with_every_workers_observations(quiet: dict) -> None:
    quiet["env"]["id"] = "Pendulum-v1"
    quiet["model"] = {"normalize_input": "running", "init": "orthogonal"}
    quiet["algo"]["scale_rewards"] = True
    quiet["runtime"].update(workers=2, total_steps=1000)
    result = pacer.train(quiet, preset="none")
    saved = checkpoint.load(result.checkpoint)
    moments = saved["obs_moments"].numpy()
    assert moments.shape == (3, 1 + 2 * 3)
    assert moments[:2, 0].sum() == result.env_steps and all(moments[:2, 0] > 0)  # every transition, both workers
    mean, var = normalize.mean_var(normalize.total(moments))
    np.testing.assert_allclose(saved["model"]["obs_norm.mean"].numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(saved["model"]["obs_norm.var"].numpy(), var, rtol=1e-6)
    assert abs(mean[2]) < 8.0 and var[2] > 0.1  # angular velocity: a real spread, not the identity
    agent = pacer.load(result.run_dir)  # eval and act use the saved statistics
    np.testing.assert_allclose(agent.model.obs_norm.mean.numpy(), mean, rtol=1e-6)
    assert all(key in saved["workers"][0]["collector"] for key in ("reward_scaler",))


def _write_rows(shared: shared_state.SharedState, writes: int, dim: int) -> None:
    """In a child process: observation k (k = 1, 2, ...) is k in every dimension, added one per write."""
    for k in range(1, writes + 1):
        shared.observe(0, normalize.moments(np.full((1, dim), float(k))))


def test_a_row_is_never_read_half_written() -> None:
    """A worker rewrites its row of observation moments while others read every row. After k writes a whole row
    holds count k, mean (k + 1) / 2 and M2 k (k^2 - 1) / 12 in every dimension; a torn read mixes two writes. The
    rows are long (160 KB) so that reads and writes overlap often."""
    dim, writes = 10_000, 3000
    cfg = Config.from_dict({"runtime": {"workers": 1}, "model": {"normalize_input": "running"}})
    model = MLPActorCritic(cfg.model, dim, 2, gaussian=False)
    ctx = torch.multiprocessing.get_context("fork")  # a child that only does NumPy: fork is safe and fast here
    shared = shared_state.create(cfg, model, ctx, in_shared_memory=True)
    writer = ctx.Process(target=_write_rows, args=(shared, writes, dim), daemon=True)
    writer.start()
    reads = 0
    try:
        while writer.is_alive() or reads == 0:
            row = shared.obs_stats()
            count, mean, m2 = row[0], row[1:1 + dim], row[1 + dim:]
            expected_m2 = count * (count**2 - 1) / 12
            assert mean[0] == pytest.approx((count + 1) / 2 if count else 0.0, abs=1e-6), f"torn at read {reads}"
            assert mean[-1] == pytest.approx(mean[0], abs=1e-6) and m2[0] == pytest.approx(m2[-1], rel=1e-9)
            assert m2[-1] == pytest.approx(expected_m2, rel=1e-6, abs=1e-6), f"torn at read {reads}"
            reads += 1
    finally:
        writer.join(timeout=30)
    assert writer.exitcode == 0 and reads > 100
    assert shared.obs_stats()[0] == writes


def test_a_worker_collects_and_learns_with_the_runs_statistics() -> None:
    """At each rollout the worker loads the run's statistics (every worker's rows combined) into its model: what it
    collects with and learns from is normalized as the run says, not by the identity of a fresh model."""
    from pathlib import Path

    from pacer.algos import get_algo
    from pacer.backends.hogwild import HogwildLink
    from pacer.envs import probe
    from pacer.model import make_model
    from pacer.runconfig import complete
    from pacer.worker import Worker, WorkerSpec

    cfg = complete(Config.from_dict({"env": {"id": "Pendulum-v1", "envs_per_worker": 2},
                                     "model": {"normalize_input": "running"},
                                     "algo": {"n_steps": 4, "epochs": 1, "minibatches": 1},
                                     "runtime": {"workers": 2}}), Path("/tmp/unused"))
    spec = probe(cfg.env)
    model = make_model(cfg.model, spec.observation_space, spec.action_space)
    shared = shared_state.create(cfg, model, torch.multiprocessing.get_context("spawn"), in_shared_memory=False)
    rng = np.random.default_rng(0)
    shared.observe(1, normalize.moments(rng.normal([3.0, -1.0, 2.0], [2.0, 0.5, 4.0], size=(500, 3))))  # worker 1
    mean, var = normalize.mean_var(shared.obs_stats())
    worker = Worker(WorkerSpec(cfg, 0, 0, get_algo("ppo"), env=spec), HogwildLink(shared, 0, cfg))
    worker.iterate()
    norm = worker.model.obs_norm
    np.testing.assert_allclose(norm.mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(norm.var.numpy(), var, rtol=1e-6)
    now, _ = normalize.mean_var(shared.obs_stats())  # worker 0's first rollout is in the run's statistics now
    worker.iterate()
    np.testing.assert_allclose(norm.mean.numpy(), now, rtol=1e-6)
    assert np.abs(now - mean).max() > 1e-3
    worker.close()
