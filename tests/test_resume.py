"""Exact resume: one inline worker, stopped and resumed, ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import copy

import pytest
import torch

import pacer
from pacer import checkpoint
from pacer.backends.inline import InlineBackend


def interrupt_at(steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C arriving right after the rollout that crosses `steps` (inline: a deterministic point)."""
    poll = InlineBackend.poll

    def poll_then_interrupt(self: InlineBackend, timeout: float) -> list:
        reports = poll(self, timeout)
        if self.shared.counters()["env_steps"] >= steps:
            raise KeyboardInterrupt
        return reports

    monkeypatch.setattr(InlineBackend, "poll", poll_then_interrupt)


def resumed_and_whole(cfg: dict, tmp_path, monkeypatch: pytest.MonkeyPatch, at: int = 1000) -> tuple[dict, dict]:
    """The final checkpoints of a run stopped after `at` env steps and resumed, and of the same run uninterrupted
    (preset none): what a bit-exact resume makes equal."""
    whole = copy.deepcopy(cfg)
    whole["log"]["run_dir"] = str(tmp_path / "whole")
    reference = checkpoint.load(pacer.train(whole, preset="none").checkpoint)
    parts = copy.deepcopy(cfg)
    parts["log"]["run_dir"] = str(tmp_path / "parts")
    with monkeypatch.context() as patch:
        interrupt_at(at, patch)
        with pytest.raises(KeyboardInterrupt):
            pacer.train(parts, preset="none")
    return checkpoint.load(pacer.train(resume=tmp_path / "parts").checkpoint), reference


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "HalfCheetah-v5",
                                    "awkward:make_awkward"])
def test_stop_and_resume_equals_an_uninterrupted_run(env_id: str, quiet: dict, tmp_path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if env_id.startswith("HalfCheetah"):
        pytest.importorskip("mujoco")
    quiet["env"]["id"] = env_id
    quiet["algo"].update(epochs=2, minibatches=2)  # still shuffled minibatches (an RNG to resume), fewer updates
    quiet["runtime"].update(total_steps=3000, final_eval_episodes=0)
    whole = copy.deepcopy(quiet)
    whole["log"]["run_dir"] = str(tmp_path / "whole")
    reference = checkpoint.load(pacer.train(whole).checkpoint)

    parts = copy.deepcopy(quiet)
    parts["log"]["run_dir"] = str(tmp_path / "parts")
    with monkeypatch.context() as patch:
        interrupt_at(1500, patch)
        with pytest.raises(KeyboardInterrupt):
            pacer.train(parts)
    stopped = checkpoint.load(tmp_path / "parts" / "checkpoints" / "final.pt")
    assert 1500 <= stopped["counters"]["env_steps"] < 3000
    resumed = checkpoint.load(pacer.train(resume=tmp_path / "parts").checkpoint)

    assert resumed["counters"] == reference["counters"]
    for name, value in reference["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    for saved, expected in zip(resumed["optimizer"]["states"][0], reference["optimizer"]["states"][0], strict=True):
        for key in expected:
            assert torch.equal(saved[key], expected[key]), key


def test_several_local_workers_resume_counters_optimizer_and_curve(quiet: dict, tmp_path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    quiet["runtime"].update(backend="local", workers=2, total_steps=3000)
    first = pacer.train(quiet)
    saved = checkpoint.load(first.checkpoint)
    assert len(saved["workers"]) == 2 and all(w is not None for w in saved["workers"])  # their states came home
    second = pacer.train(resume=first.run_dir, runtime__total_steps=6000)
    resumed = checkpoint.load(second.checkpoint)
    assert resumed["counters"]["env_steps"] >= 6000
    assert float(resumed["optimizer"]["states"][0][0]["step"]) > float(saved["optimizer"]["states"][0][0]["step"])
    rows = (first.run_dir / "metrics.jsonl").read_text().splitlines()
    import json

    steps = [json.loads(r)["env_steps"] for r in rows]
    times = [json.loads(r)["time"] for r in rows]
    assert steps == sorted(steps) and steps[-1] >= 6000  # one continuous curve over both sessions
    assert times == sorted(times)
