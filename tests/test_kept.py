"""Nothing learned is lost by a restart or a resume: a worker's reward-scaling statistics live with the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pacer
from pacer import checkpoint
from pacer.algos import get_algo
from pacer.backends.hogwild import HogwildLink
from pacer.config import Config
from pacer.envs import probe
from pacer.model import make_model
from pacer.rollout import Collector
from pacer.runtime import shared as shared_state
from pacer.worker import Worker, WorkerSpec


def scaled(workers: int = 1) -> tuple[Config, shared_state.SharedState]:
    cfg = Config.from_dict({"env": {"id": "Pendulum-v1", "envs_per_worker": 2},
                            "algo": {"n_steps": 8, "epochs": 1, "minibatches": 1, "scale_rewards": True},
                            "runtime": {"backend": "inline", "workers": workers}})
    spec = probe(cfg.env)
    model = make_model(cfg.model, spec.observation_space, spec.action_space)
    return cfg, shared_state.create(cfg, model, torch.multiprocessing.get_context("spawn"), in_shared_memory=True)


def test_a_restarted_worker_goes_on_with_the_runs_reward_scale() -> None:
    cfg, shared = scaled()
    first = Worker(WorkerSpec(cfg, 0, 1, get_algo("ppo")), HogwildLink(shared, 0, cfg))
    for _ in range(3):
        first.iterate()
    assert first.scaler is not None and first.scaler.stats[0] == 3 * 8 * 2  # every valid step's return counted
    np.testing.assert_array_equal(shared.reward_stats(0), first.scaler.stats)
    again = Worker(WorkerSpec(cfg, 0, 2, get_algo("ppo")), HogwildLink(shared, 0, cfg))  # a restart: a new seed
    assert again.scaler is not None
    np.testing.assert_array_equal(again.scaler.stats, first.scaler.stats)
    np.testing.assert_array_equal(again.scaler.returns, np.zeros(2))  # its envs' running returns start afresh


@pytest.mark.parametrize("final", [True, False], ids=["final", "periodic"])
def test_a_resume_restores_the_reward_scale_from_any_checkpoint(final: bool, quiet: dict) -> None:
    """A periodic checkpoint has no worker states, and a final one may hold an env state that cannot be restored:
    either way the scale comes back (the kept rows)."""
    quiet["env"]["id"] = "Pendulum-v1"
    quiet["algo"]["scale_rewards"] = True
    quiet["runtime"].update(total_steps=1200, final_eval_episodes=0)
    quiet["log"].update(checkpoint_every=500)
    result = pacer.train(quiet, preset="none")
    periodic = sorted((result.run_dir / "checkpoints").glob("step_*.pt"))
    path = result.checkpoint if final else periodic[0]
    saved = checkpoint.load(path)
    kept = saved["reward_moments"].numpy()
    assert kept[0, 0] > 0
    cfg, shared = scaled()
    from pacer.clock import Clock
    from pacer.resume import restore_run

    restore_run(saved, shared, cfg.replace({"env.max_episode_steps": 200, "log.run_dir": str(result.run_dir)}),
                Clock())
    np.testing.assert_array_equal(shared.reward_stats(0), kept[0])


def test_fresh_episodes_of_an_env_that_cannot_be_restored_keep_the_reward_scale() -> None:
    cfg, shared = scaled()
    worker = Worker(WorkerSpec(cfg, 0, 1, get_algo("ppo")), HogwildLink(shared, 0, cfg))
    worker.iterate()
    state = worker.get_state()["collector"]
    state["env"]["opaque"] = ["a Box2D world (not plain data)"]  # as LunarLander's is
    collector: Collector = worker.collector
    scaler = collector.reward_scaler
    assert scaler is not None
    stats = scaler.stats.copy()
    scaler.stats = np.zeros(3)
    assert collector.set_state(state) is False  # not exact: fresh episodes
    np.testing.assert_array_equal(scaler.stats, stats)
