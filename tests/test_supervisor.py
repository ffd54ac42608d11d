"""The supervisor's decisions, driven by a scripted fake backend: no workers, no environments, no waiting."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from pacer import jobs
from pacer.clock import Clock
from pacer.config import Config
from pacer.errors import WorkerFailed
from pacer.evaluation import Played
from pacer.metrics import Metrics
from pacer.reports import Failure, Report
from pacer.runtime import shared as shared_state
from pacer.supervisor import Supervisor


class FakeBackend:
    """Each poll() is one round of a script: worker 0 counts `steps` env steps and `episodes` episodes in the
    shared counters, as a real worker does, and reports them; failures() returns the round's scripted deaths."""

    def __init__(self, shared: shared_state.SharedState, steps: int = 0, episodes: int = 0,
                 failures: dict[int, list[Failure]] | None = None, poll_s: float = 0.0) -> None:
        self.shared, self.steps, self.episodes, self.poll_s = shared, steps, episodes, poll_s
        self.script = failures or {}
        self.polls = 0
        self.restarted: list[int] = []
        self.paused = False
        self.pauses = 0
        self.holds = True  # what pause() answers: False plays a worker that could not be held in time
        self.final_states: dict[int, Any] = {}

    def start(self, stop_requested: Any) -> None:
        pass

    def poll(self, timeout: float) -> list[Report]:
        self.polls += 1
        if self.poll_s:
            time.sleep(self.poll_s)  # a real backend waits for reports; this one need not spin
        self.shared.add(0, self.steps, self.episodes, 1)
        return [Report(worker=0, env_steps=self.steps, updates=1,
                       episode_returns=np.full(self.episodes, float(self.polls)), stats={"loss": 0.5})]

    def failures(self) -> list[Failure]:
        return self.script.pop(self.polls, [])  # each death is reported once

    def notices(self) -> list[str]:
        return []

    def restart(self, rank: int) -> None:
        self.restarted.append(rank)

    def pause(self) -> bool:
        self.paused = True
        self.pauses += 1
        return self.holds

    def resume(self) -> None:
        self.paused = False

    def placement(self) -> dict[int, dict[str, Any]]:
        return {}

    def stop(self) -> list[Report]:
        return []


class Run:
    """A supervisor over a fake backend, with the evaluations and checkpoints it asked for."""

    def __init__(self, tmp_path: Path, runtime: dict[str, Any], log: dict[str, Any] | None = None,
                 start_steps: int = 0, evals: list[float] | None = None, **backend: Any) -> None:
        # eval_share 1: these polls take no time, so a share of it would space evaluations by polls' worth of time
        self.cfg = Config.from_dict({"runtime": {"backend": "inline", "workers": 2, "eval_every": 0, "eval_share": 1.0,
                                                 **runtime},
                                     "log": {"progress": False, "tensorboard": False, "checkpoint_every": 0,
                                             "report_every": 0.0, **(log or {})}})
        # inline-style shared state (plain arrays, no shared memory): its counters can be set at will
        self.shared = shared_state.create(self.cfg, nn.Linear(2, 2), torch.multiprocessing.get_context("spawn"),
                                          in_shared_memory=False)
        self.shared.set_counters({"env_steps": start_steps, "episodes": 0, "updates": 0})
        self.backend = FakeBackend(self.shared, **backend)
        self.metrics = Metrics(tmp_path, "jsonl", False, False, self.cfg.runtime.total_steps, start_steps)
        self.evals = list(evals or [])
        self.evaluated_at: list[int] = []
        self.paused_in_eval: list[bool] = []
        self.checkpoints: list[str] = []
        self.videos: list[str] = []
        self.episodes: list[int] = []
        self.firsts: list[int] = []  # each evaluation's first episode number (its seeds follow from it)
        self.eval_seconds = 0.0  # how long each evaluation takes
        self.cut = 0  # episodes each evaluation reports as cut by its time cap
        self.clock = Clock()
        self.evaluation = jobs.Evaluation(self.cfg, self.evaluate, self.backend, self.shared, self.metrics,
                                          self.clock) if self.cfg.runtime.eval_every else None
        self.supervisor = Supervisor(
            self.shared, self.backend, self.metrics, self.clock,
            jobs.standard_jobs(self.cfg, self.shared, self.metrics, self.clock, self.evaluation, self.save,
                               self.videos.append),
            jobs.standard_stops(self.cfg, self.evaluation), self.cfg.runtime.max_restarts)

    def save(self, name: str) -> Path:
        self.checkpoints.append(name)
        return Path(self.metrics.path.parent / "checkpoints" / f"{name}.pt")

    def evaluate(self, episodes: int, first: int) -> Played:
        time.sleep(self.eval_seconds)
        self.evaluated_at.append(self.shared.counters()["env_steps"])
        self.paused_in_eval.append(self.backend.paused)
        self.episodes.append(episodes)
        self.firsts.append(first)
        return Played(np.full(episodes, self.evals.pop(0)), self.cut)

    def run(self) -> str:
        try:
            return self.supervisor.run()
        finally:
            self.metrics.close()

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.metrics.path.read_text().splitlines()]


def test_failed_workers_are_restarted_until_the_budget_is_spent(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    failures = {2: [Failure(1, "Traceback: boom one\n")], 3: [Failure(0, "Traceback: boom two\n")],
                4: [Failure(1, "Traceback: boom three\n")]}
    run = Run(tmp_path, {"max_restarts": 2, "total_steps": 100}, steps=10, failures=failures)
    with pytest.raises(WorkerFailed, match=r"(?s)boom three.*runtime\.max_restarts = 2\) is spent"):
        run.run()
    assert run.backend.restarted == [1, 0]  # two restarts, then the third death ends the run
    assert run.backend.polls == 4
    err = capsys.readouterr().err
    assert "restarting worker 1 (restart 1 of 2)" in err and "restarting worker 0 (restart 2 of 2)" in err
    assert "boom one" in err  # the worker's own traceback is shown


def test_no_restart_budget_fails_on_the_first_death(tmp_path: Path) -> None:
    run = Run(tmp_path, {"max_restarts": 0, "total_steps": 100}, steps=10, failures={1: [Failure(0, "boom\n")]})
    with pytest.raises(WorkerFailed, match="boom"):
        run.run()
    assert run.backend.restarted == []


def test_a_failure_at_start_up_is_not_restarted(tmp_path: Path) -> None:
    """A worker that fails before its first rollout would fail the same way on every restart: the run stops at once,
    its budget unspent, saying why."""
    run = Run(tmp_path, {"max_restarts": 3, "total_steps": 100}, steps=10,
              failures={1: [Failure(0, "worker 0 failed: unknown environment 'Nope-v0'", started=False)]})
    with pytest.raises(WorkerFailed, match=r"(?s)unknown environment 'Nope-v0'.*failed at start-up, before its first "
                                           r"rollout: a restart would meet the same error, so the run stops"):
        run.run()
    assert run.backend.restarted == []


def test_evaluation_cadence_and_stop_at_return(tmp_path: Path) -> None:
    runtime = {"eval_every": 100, "stop_at_return": 50.0, "total_steps": 10**6, "pause_for_eval": True,
               "eval_episodes": 10, "confirm_episodes": 30}
    # the third evaluation reaches 50, its confirmation falls short (40); the fourth reaches it and is confirmed
    run = Run(tmp_path, runtime, steps=30, evals=[10.0, 20.0, 60.0, 40.0, 55.0, 51.0])
    assert run.run() == "target_return"
    # steps 30, 60, ...: the first count at or past each multiple of 100 evaluates, then the next multiple is due
    assert run.evaluated_at == [120, 210, 300, 300, 420, 420]
    assert run.episodes == [10, 10, 10, 30, 10, 30]
    # each periodic evaluation plays new episodes, numbered past the confirming ones; a confirmation plays the
    # run's first 30 every time (a fixed few could never reach a target their own best falls short of)
    assert run.firsts == [30 + 120, 30 + 210, 30 + 300, 0, 30 + 420, 0]
    assert run.backend.polls == 14  # it stops on the evaluation whose confirmation reached the target
    # held during each evaluation; after the confirmation that stops the run, held for good: the parameters scored
    # are the ones the run ends with
    assert run.paused_in_eval == [True] * 6 and run.backend.paused
    assert run.backend.pauses == 6
    assert run.evaluation is not None and run.evaluation.confirmed is not None
    assert list(run.evaluation.confirmed.returns) == [51.0] * 30
    assert [r["eval_return"] for r in run.rows() if r["eval_return"] is not None] == [10.0, 20.0, 60.0, 55.0]


def test_an_evaluation_cut_by_its_time_cap_confirms_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    """Episodes cut at runtime.eval_max_seconds are scored with their return so far: never a whole game's score, so
    such an evaluation cannot confirm a solve; the row counts them."""
    run = Run(tmp_path, {"eval_every": 100, "stop_at_return": 50.0, "total_steps": 400, "eval_episodes": 10,
                         "confirm_episodes": 30}, steps=50, evals=[60.0] * 20)
    run.cut = 2
    assert run.run() == "total_steps"
    assert run.episodes[:4] == [10, 30, 10, 30]
    assert run.evaluation is not None and run.evaluation.confirmed is None
    assert "60.0, 2 episodes cut (target 50)" in capsys.readouterr().err
    assert {r["eval_cut"] for r in run.rows() if r["eval_return"] is not None} == {2}


def test_a_confirmation_holds_the_workers_even_without_pause_for_eval(tmp_path: Path) -> None:
    run = Run(tmp_path, {"eval_every": 100, "stop_at_return": 5.0, "total_steps": 10**6, "pause_for_eval": False},
              steps=50,
              evals=[9.0, 4.0, 9.0, 6.0])
    assert run.run() == "target_return"
    assert run.paused_in_eval == [False, True, False, True]
    assert run.backend.pauses == 2 and run.backend.paused


def test_evaluations_of_a_resumed_run_continue_its_cadence(tmp_path: Path) -> None:
    run = Run(tmp_path, {"eval_every": 100, "total_steps": 400}, start_steps=250, steps=40,
              evals=[1.0, 2.0])
    assert run.run() == "total_steps"
    assert run.evaluated_at == [330, 410]  # not at once: 250 was past the multiple 200 it had already done
    assert run.paused_in_eval == [True, True] and run.backend.paused is False  # held for each (the default)


def test_periodic_checkpoints_and_the_total_steps_stop(tmp_path: Path) -> None:
    run = Run(tmp_path, {"total_steps": 450}, log={"checkpoint_every": 100}, start_steps=250, steps=40)
    assert run.run() == "total_steps"
    # 290, 330, 370, 410, 450: a checkpoint at the first count past 300 and 400; it stops once 450 is reached
    assert run.checkpoints == ["step_330", "step_410"]
    assert run.backend.polls == 5
    assert run.rows()[-1]["env_steps"] == 450


def test_total_episodes_stop(tmp_path: Path) -> None:
    run = Run(tmp_path, {"total_steps": 10**6, "total_episodes": 5}, steps=10, episodes=2)
    assert run.run() == "total_episodes"
    assert run.backend.polls == 3  # 2, 4, 6 episodes
    assert list(run.metrics.recent) == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]  # every report reached the metrics


def test_time_limit(tmp_path: Path) -> None:
    run = Run(tmp_path, {"total_steps": 10**6, "time_limit": 0.2}, steps=1, poll_s=0.01)
    tic = time.monotonic()
    assert run.run() == "time_limit"
    assert 0.2 <= time.monotonic() - tic < 5.0
    assert run.backend.polls > 1


def test_a_stop_request_interrupts(tmp_path: Path) -> None:
    run = Run(tmp_path, {"total_steps": 10**6}, steps=10)
    run.supervisor.stop_requested = lambda: run.backend.polls >= 3
    assert run.run() == "interrupted"
    assert run.backend.polls == 3


def test_the_time_limit_counts_evaluations_that_run_beside_training(tmp_path: Path) -> None:
    """Evaluations while the workers train are training time: a 0.3 s limit is reached after the first 0.25 s one."""
    run = Run(tmp_path, {"total_steps": 10**6, "time_limit": 0.3, "eval_every": 10, "eval_share": 1.0,
                         "pause_for_eval": False}, steps=10, poll_s=0.01, evals=[0.0] * 100)
    run.eval_seconds = 0.25
    tic = time.monotonic()
    assert run.run() == "time_limit"
    assert len(run.evaluated_at) == 2  # 0.25 s, then the limit on the turn after the second one
    assert time.monotonic() - tic < 0.3 + 2 * 0.25 + 0.1
    assert run.clock.held == 0.0


def test_the_time_limit_leaves_out_time_the_workers_were_held(tmp_path: Path) -> None:
    """With pause_for_eval the workers wait through each 0.3 s evaluation: that time is not training time."""
    run = Run(tmp_path, {"total_steps": 10**6, "time_limit": 0.2, "eval_every": 50, "pause_for_eval": True,
                         "eval_share": 1.0}, steps=10, poll_s=0.01, evals=[0.0] * 100)
    run.eval_seconds = 0.3
    tic = time.monotonic()
    assert run.run() == "time_limit"
    assert len(run.evaluated_at) >= 3  # with the held time counted it would stop after the first
    assert time.monotonic() - tic >= 0.2 + 0.3 * len(run.evaluated_at) - 0.05
    assert run.clock.held >= 0.3 * len(run.evaluated_at) - 0.01


def test_evaluations_keep_to_their_share_of_the_wall_time(tmp_path: Path) -> None:
    """An evaluation is due every 10 steps (every poll), but each 0.05 s one is followed by 0.45 s without one."""
    run = Run(tmp_path, {"total_steps": 10**6, "time_limit": 1.2, "eval_every": 10, "eval_share": 0.1,
                         "pause_for_eval": False}, steps=10, poll_s=0.01, evals=[0.0] * 100)
    run.eval_seconds = 0.05
    assert run.run() == "time_limit"
    assert len(run.evaluated_at) == 3  # at about 0, 0.5 and 1.0 s
    assert run.clock.eval_time <= 0.1 * 1.2 + 0.05


def test_a_confirmation_that_cannot_hold_every_worker_confirms_nothing(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = Run(tmp_path, {"eval_every": 100, "stop_at_return": 5.0, "total_steps": 1000}, steps=50,
              evals=[9.0] * 20)
    run.backend.holds = False
    assert run.run() == "total_steps"  # never "solved" on parameters that may have changed under the evaluation
    assert run.evaluation is not None and run.evaluation.confirmed is None
    assert run.episodes == [10] * 10  # at 100, 200, ..., 1000: the confirmations did not evaluate
    assert not run.backend.paused and run.clock.held == 0.0
    assert "not every worker could be held" in capsys.readouterr().err


def test_training_videos_are_a_job_that_skips_the_budgets_end(tmp_path: Path) -> None:
    run = Run(tmp_path, {"total_steps": 300}, log={"video_every": 100}, steps=50)
    assert run.run() == "total_steps"
    assert run.videos == ["step_100", "step_200"]  # at 300 the final video films the same parameters
