from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacer.algos import ALGOS, Algorithm

sys.path.insert(0, str(Path(__file__).parent))  # so `helpers` imports here and in worker processes


@pytest.fixture
def quiet(tmp_path: Path) -> dict:
    """A small, fast, silent inline config writing into a temporary run directory."""
    return {
        "env": {"id": "CartPole-v1", "envs_per_worker": 4},
        "algo": {"n_steps": 8, "epochs": 1, "minibatches": 2},  # 2 updates a rollout, not PPO's 32: fast tests
        "runtime": {"backend": "inline", "workers": 1, "total_steps": 2000, "eval_every": 0, "eval_episodes": 2,
                    "final_eval_episodes": 2},
        "log": {"run_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False, "report_every": 0.0},
    }


@pytest.fixture
def algos() -> Iterator[dict[str, Algorithm]]:
    """The global algorithm registry, restored afterwards: a test's registration must not leak into later tests."""
    saved = dict(ALGOS)
    yield ALGOS
    ALGOS.clear()
    ALGOS.update(saved)
