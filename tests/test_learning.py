"""a2c and a3c learn: their presets solve CartPole-v1 and Acrobot-v1 (100-episode greedy means >= 475 and
>= -100, the envs' reward thresholds). Slow (a minute or two each on 2 cores): `make test-slow`."""

from __future__ import annotations

from pathlib import Path

import pytest

import pacer

THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("env_id", list(THRESHOLDS))
@pytest.mark.parametrize("algo", ["a2c", "a3c"])
def test_the_preset_solves(algo: str, env_id: str, tmp_path: Path) -> None:
    result = pacer.train({"env": {"id": env_id}, "algo": {"name": algo},
                          "log": {"run_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False}})
    assert result.stop_reason == "target_return"  # stopped solved, before the step budget
    # scored again, on episodes the training evaluations never saw
    assert pacer.evaluate(result.run_dir, episodes=100, seed=777).mean >= THRESHOLDS[env_id]
