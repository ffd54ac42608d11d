"""End-to-end training on the inline backend: run directory, resume, algorithms, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import pacer
from helpers import constant_loss
from pacer import checkpoint
from pacer.algos import Algorithm
from pacer.errors import PacerError


def test_run_directory_contents(quiet: dict) -> None:
    result = pacer.train(quiet)
    run = result.run_dir
    assert result.env_steps >= 2000 and result.stop_reason == "total_steps"
    assert yaml.safe_load((run / "config.yaml").read_text())["runtime"]["total_steps"] == 2000
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["env_steps"] == result.env_steps
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= {"env_steps", "wall_time_s", "steps_per_s", "eval_mean", "eval_std"}
    assert summary["env_steps"] == result.env_steps
    data = checkpoint.load(run / "checkpoints" / "final.pt")
    assert data["counters"]["env_steps"] == result.env_steps


def test_csv_metrics_and_periodic_checkpoints(quiet: dict) -> None:
    quiet["log"].update(metrics_format="csv", checkpoint_every=500, keep_checkpoints=2)
    result = pacer.train(quiet)
    header = (result.run_dir / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("time,eval_time,env_steps,episodes,updates,steps_per_s")
    names = sorted(p.name for p in (result.run_dir / "checkpoints").iterdir())
    assert len(names) == 3 and "final.pt" in names  # last 2 periodic + final


def test_existing_run_dir_needs_resume(quiet: dict) -> None:
    pacer.train(quiet)
    with pytest.raises(PacerError, match="already exists; continue it with --resume"):
        pacer.train(quiet)


def test_resume_continues_counters_and_optimizer_state(quiet: dict) -> None:
    first = pacer.train(quiet)
    saved = checkpoint.load(first.checkpoint)
    with pytest.raises(PacerError, match="already spent its budget"):
        pacer.train(resume=first.run_dir)
    second = pacer.train(resume=first.run_dir, runtime__total_steps=4000)
    assert second.env_steps >= 4000
    resumed = checkpoint.load(second.checkpoint)
    first_step = float(saved["optimizer"]["states"][0][0]["step"])
    assert float(resumed["optimizer"]["states"][0][0]["step"]) > first_step > 0
    assert resumed["counters"]["updates"] > saved["counters"]["updates"]
    assert resumed["wall_time"] > saved["wall_time"]


@pytest.mark.parametrize("algo", ["mc", "a2c", "a3c", "ppo"])
def test_each_algorithm_runs(algo: str, quiet: dict) -> None:
    quiet["algo"].update(name=algo, epochs=2, minibatches=2)
    assert pacer.train(quiet).env_steps >= 2000


def test_box_actions(quiet: dict) -> None:
    quiet["env"]["id"] = "Pendulum-v1"
    result = pacer.train(quiet)
    agent = pacer.load(result.run_dir)
    action = agent.act(np.zeros(3, dtype=np.float32))
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0


def test_env_factory_path(quiet: dict) -> None:
    quiet["env"]["id"] = "helpers:make_cartpole"
    assert pacer.train(quiet).env_steps >= 2000
    quiet["env"]["id"] = "helpers:make_not_an_env"
    quiet["log"]["run_dir"] += "-2"
    with pytest.raises(PacerError, match=r"returned object, not a gymnasium\.Env"):
        pacer.train(quiet)


def test_registered_loss_function(quiet: dict, algos: dict[str, Algorithm]) -> None:
    pacer.register_algo("to-one", constant_loss)
    assert algos["to-one"].loss is constant_loss
    quiet["algo"]["name"] = "to-one"
    quiet["algo"]["lr"] = 0.01
    result = pacer.train(quiet)
    agent = pacer.load(result.run_dir)
    import torch

    _, value = agent.model(torch.zeros(8, 4))
    assert torch.all((value - 1).abs() < 0.5)  # the hand-written step trained the critic towards 1


def test_unknown_algorithm(quiet: dict) -> None:
    quiet["algo"]["name"] = "a2d"
    with pytest.raises(PacerError, match=r"unknown algorithm 'a2d' \(did you mean 'a2c'"):
        pacer.train(quiet)


def test_total_episodes_budget(quiet: dict) -> None:
    quiet["runtime"].update(total_episodes=5, total_steps=10**6)
    quiet["algo"]["name"] = "mc"
    result = pacer.train(quiet)
    assert result.stop_reason == "total_episodes" and 5 <= result.episodes < 5 + 4 * 2


def test_evaluate_api(quiet: dict) -> None:
    result = pacer.train(quiet)
    ev = pacer.evaluate(result.run_dir, episodes=5, workers=1)
    assert len(ev.returns) == 5 and ev.mean == pytest.approx(float(np.mean(ev.returns)))


def test_the_time_limit_and_summary_steps_per_s_count_the_same_time(quiet: dict) -> None:
    """Training time: wall time from the start less the time the workers were held; the limit stops on it and
    summary.json's steps/s divides by it (evaluations during training included: workers go on through them)."""
    quiet["runtime"].update(total_steps=10**9, time_limit=1.5, eval_every=2000, eval_share=0.5,
                            pause_for_eval=False, eval_episodes=100, stop_at_return=None)
    result = pacer.train(quiet)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert result.stop_reason == "time_limit"
    assert 1.5 <= summary["train_time_s"] < 1.5 + 1.0  # a turn of the supervisor's loop past the limit, at most
    assert summary["held_time_s"] == 0.0 and summary["eval_time_s"] > 0.02  # evaluated, never held
    assert summary["steps_per_s"] == pytest.approx(summary["env_steps"] / summary["train_time_s"], rel=2e-3)
    assert summary["wall_time_s"] >= summary["train_time_s"]
