"""Update schedules: which rows each update sees, and PPO's early stop on a target KL."""

from __future__ import annotations

import pytest
import torch

from pacer.algos import get_algo
from pacer.algos.losses import Batch
from pacer.algos.schedules import epochs_of_minibatches
from pacer.config import AlgoConfig


def rows(n: int) -> Batch:
    """A batch whose observation i is [i]: each minibatch shows which rows it holds."""
    column = torch.arange(n, dtype=torch.float32)
    return Batch(obs=column[:, None], actions=column.long(), logp=column, advantages=column, returns=column,
                 values=column)


def record(kls: list[float] | None = None) -> tuple[list[list[int]], object]:
    seen: list[list[int]] = []

    def update(minibatch: Batch) -> dict[str, float]:
        seen.append(sorted(int(x) for x in minibatch.obs[:, 0]))
        kl = kls[len(seen) - 1] if kls else 0.0
        return {"approx_kl": kl, "loss": float(len(seen))}

    return seen, update


def test_each_epoch_sees_every_row_once_in_shuffled_minibatches() -> None:
    seen, update = record()
    stats, updates = epochs_of_minibatches(rows(8), AlgoConfig(), 2, 4, torch.Generator().manual_seed(0), update)
    assert updates == 8 and [len(m) for m in seen] == [2] * 8
    for epoch in (seen[:4], seen[4:]):
        assert sorted(i for m in epoch for i in m) == list(range(8))
    assert seen[:4] != [[0, 1], [2, 3], [4, 5], [6, 7]]  # shuffled
    assert stats["loss"] == pytest.approx(sum(range(1, 9)) / 8)  # the mean over the updates, not the last one
    assert "kl_early_stop" not in stats


@pytest.mark.parametrize(("kls", "expected_updates", "stopped"), [
    ([0.001, 0.002, 0.016, 0.0, 0.0, 0.0], 3, 1.0),  # 0.016 > 1.5 x 0.01: the rest of the rollout is skipped
    ([0.015, 0.015, 0.015, 0.015, 0.015, 0.015], 6, 0.0),  # exactly 1.5 x target is not over it
], ids=["over", "at-the-margin"])
def test_a_target_kl_stops_the_rollouts_updates(kls: list[float], expected_updates: int, stopped: float) -> None:
    seen, update = record(kls)
    cfg = AlgoConfig(target_kl=0.01)
    stats, updates = epochs_of_minibatches(rows(6), cfg, 3, 2, torch.Generator().manual_seed(0), update)
    assert updates == expected_updates == len(seen)
    assert stats["kl_early_stop"] == stopped


def test_ppo_takes_its_epochs_and_minibatches_from_the_config_or_its_own() -> None:
    ppo = get_algo("ppo")
    seen, update = record()
    ppo.learn(rows(16), AlgoConfig(), torch.Generator().manual_seed(0), update)
    assert len(seen) == 4 * 8  # its own: 4 epochs of 8
    seen, update = record()
    ppo.learn(rows(16), AlgoConfig(epochs=1, minibatches=2), torch.Generator().manual_seed(0), update)
    assert [len(m) for m in seen] == [8, 8]
