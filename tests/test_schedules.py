"""Update schedules: which rows each update sees, and PPO's early stop on a target KL."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pacer.algos import get_algo
from pacer.algos.losses import Batch
from pacer.algos.schedules import Step, epochs_of_minibatches
from pacer.config import AlgoConfig, Config
from pacer.runconfig import complete


def rows(n: int) -> Batch:
    """A batch whose observation i is [i]: each minibatch shows which rows it holds."""
    column = torch.arange(n, dtype=torch.float32)
    return Batch(obs=column[:, None], actions=column.long(), logp=column, advantages=column, returns=column,
                 values=column)


class Recorder:
    """A learner that records which rows each loss saw and which minibatches it applied; the i-th loss reports
    approx-KL kls[i]."""

    def __init__(self, kls: list[float] | None = None) -> None:
        self.kls = kls
        self.seen: list[list[int]] = []
        self.applied: list[list[int]] = []

    def loss(self, minibatch: Batch) -> Step:
        self.seen.append(sorted(int(x) for x in minibatch.obs[:, 0]))
        kl = self.kls[len(self.seen) - 1] if self.kls else 0.0
        return Step(torch.tensor(float(len(self.seen))), {"approx_kl": kl})

    def step(self, step: Step) -> dict[str, float]:
        self.applied.append(self.seen[int(step.loss.item()) - 1])
        return {"loss": step.loss.item()}


def test_each_epoch_sees_every_row_once_in_shuffled_minibatches() -> None:
    learner = Recorder()
    stats, updates = epochs_of_minibatches(rows(8), AlgoConfig(epochs=2, minibatches=4),
                                           torch.Generator().manual_seed(0), learner)
    seen = learner.seen
    assert updates == 8 and [len(m) for m in seen] == [2] * 8 and learner.applied == seen
    for epoch in (seen[:4], seen[4:]):
        assert sorted(i for m in epoch for i in m) == list(range(8))
    assert seen[:4] != [[0, 1], [2, 3], [4, 5], [6, 7]]  # shuffled
    assert stats["loss"] == pytest.approx(sum(range(1, 9)) / 8)  # the mean over the updates, not the last one
    assert "kl_early_stop" not in stats


@pytest.mark.parametrize(("kls", "expected_updates", "stopped"), [
    # 0.016 > 1.5 x 0.01: that minibatch is not applied, nor the rest of the rollout (as SB3 does)
    ([0.001, 0.002, 0.016, 0.0, 0.0, 0.0], 2, 1.0),
    ([0.015, 0.015, 0.015, 0.015, 0.015, 0.015], 6, 0.0),  # exactly 1.5 x target is not over it
], ids=["over", "at-the-margin"])
def test_a_target_kl_stops_before_the_minibatch_that_exceeds_it(kls: list[float], expected_updates: int,
                                                                 stopped: float) -> None:
    learner = Recorder(kls)
    cfg = AlgoConfig(target_kl=0.01, epochs=3, minibatches=2)
    stats, updates = epochs_of_minibatches(rows(6), cfg, torch.Generator().manual_seed(0), learner)
    assert updates == expected_updates == len(learner.applied)
    assert len(learner.seen) == expected_updates + int(stopped)  # the exceeding loss was computed, not stepped
    assert stats["kl_early_stop"] == stopped
    assert stats["loss"] == pytest.approx(sum(range(1, expected_updates + 1)) / expected_updates)


def test_a_schedule_refuses_a_config_whose_epochs_were_never_resolved() -> None:
    with pytest.raises(ValueError, match=r"algo\.epochs and algo\.minibatches must be resolved"):
        epochs_of_minibatches(rows(4), AlgoConfig(), torch.Generator(), Recorder())


def test_the_front_door_writes_ppos_own_epochs_and_minibatches_or_the_configs(tmp_path: Path) -> None:
    cfg = complete(Config.from_dict({"algo": {"name": "ppo"}}), tmp_path)
    assert (cfg.algo.epochs, cfg.algo.minibatches) == (4, 8)  # ppo's own
    cfg = complete(Config.from_dict({"algo": {"name": "a2c"}}), tmp_path)
    assert (cfg.algo.epochs, cfg.algo.minibatches) == (1, 1)
    cfg = complete(Config.from_dict({"algo": {"name": "ppo", "epochs": 1, "minibatches": 2}}), tmp_path)
    learner = Recorder()
    get_algo("ppo").schedule(rows(16), cfg.algo, torch.Generator().manual_seed(0), learner)
    assert [len(m) for m in learner.seen] == [8, 8]


@pytest.mark.parametrize("n", [11, 3], ids=["rows-left-over", "fewer-rows-than-minibatches"])
def test_every_epoch_has_exactly_its_minibatches(n: int) -> None:
    """11 rows in 4 minibatches of 2 (not 5 of 2), 3 rows in 4 minibatches of 1: the workers of a data-parallel
    group must take the same number of steps whatever their count of valid rows."""
    learner = Recorder()
    _, updates = epochs_of_minibatches(rows(n), AlgoConfig(epochs=2, minibatches=4), torch.Generator().manual_seed(0),
                                       learner)
    assert updates == 8 and len(learner.seen) == 8
    assert all(len(set(m)) == len(m) for m in learner.seen)  # no row twice within a minibatch
