"""Reports folded together when a worker could not send them at once: nothing is lost or counted twice."""

from __future__ import annotations

import numpy as np

from pacer.reports import Report


def test_merged_reports_add_counts_and_times_and_keep_episodes_in_order() -> None:
    first = Report(worker=1, env_steps=10, updates=1, episode_returns=np.array([1.0]), episode_lengths=np.array([5]),
                   stats={"loss": 0.5, "entropy": 0.7}, timings={"env": 1.0, "learn": 2.0}, first_env_step_at=5.0)
    second = Report(worker=1, env_steps=20, updates=2, episode_returns=np.array([2.0, 3.0]),
                    episode_lengths=np.array([6, 7]), stats={"loss": 0.25}, timings={"env": 0.5, "report": 0.1})
    merged = first.merge(second)
    assert (merged.worker, merged.env_steps, merged.updates) == (1, 30, 3)
    assert merged.episode_returns.tolist() == [1.0, 2.0, 3.0] and merged.episode_lengths.tolist() == [5, 6, 7]
    assert merged.stats == {"loss": 0.25, "entropy": 0.7}  # the newer numbers win, the others stay
    assert merged.timings == {"env": 1.5, "learn": 2.0, "report": 0.1}
    assert merged.first_env_step_at == 5.0  # sent once, kept
    assert second.merge(first).first_env_step_at == 5.0
