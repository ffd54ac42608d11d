"""Fault injection on real processes: crashes, hangs, signals in every phase, a killed parent.

Each test states its pass criteria: time to detect, exit code, a checkpoint that loads, nothing left behind.
2 workers with 1 torch thread each; every test has a hard timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from faults import Run
from leftovers import session_processes
from pacer import checkpoint

LONG = ["--total-steps", "100000000"]
DETECT_S = 2.0  # a crash must be seen this fast
GRACE_S = 15.0  # a stop must complete within this


@pytest.fixture(autouse=True)
def kill_runs_at_teardown(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A failing test must not leave its `pacer train` running: kill every session it started."""
    started: list[Run] = []
    init = Run.__init__

    def tracking_init(self: Run, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(Run, "__init__", tracking_init)
    yield
    for run in started:
        if run.proc.poll() is None:
            for pid, _ in session_processes(run.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            run.proc.wait()


def faulty_run(tmp_path: Path, fault: str, *args: str) -> Run:
    """A 20k-step run whose env misbehaves (`crashing` or `hanging`) once, in one worker."""
    return Run(tmp_path / "run", "--env", f"helpers:make_{fault}_cartpole", "--total-steps", "20000",
               "--set", "runtime.eval_every=0", *args, env={"PACER_TEST_FAULT_MARKER": str(tmp_path / "marker")})


def assert_clean(run: Run) -> None:
    procs, files = run.leftovers()
    assert procs == [], f"processes left in the run's session: {procs}"
    assert files == set(), f"files left behind: {files}"
    leftover_tmp = [p.name for p in (run.run_dir / "checkpoints").glob(".*tmp")]
    assert leftover_tmp == []


def assert_checkpoint(run: Run) -> dict:
    data = checkpoint.load(checkpoint.find(run.run_dir))
    assert data["counters"]["env_steps"] > 0
    return data


def env_steps_never_decrease(run: Run) -> None:
    rows = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["env_steps"] for r in rows]
    assert steps == sorted(steps)


@pytest.mark.timeout(120)
def test_a_crashing_worker_is_restarted_and_the_run_completes(tmp_path: Path) -> None:
    run = faulty_run(tmp_path, "crashing")
    assert run.wait(90) == 0, run.stderr
    assert "RuntimeError: injected crash" in run.stderr  # the worker's own traceback, shown by the parent
    assert "FaultyCartPole" in run.stderr or "helpers.py" in run.stderr
    assert "restarting worker" in run.stderr
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["env_steps"] >= 20000
    env_steps_never_decrease(run)
    assert_clean(run)


@pytest.mark.timeout(120)
def test_a_sigkilled_worker_is_seen_within_2_s_and_restarted(tmp_path: Path) -> None:
    run = Run(tmp_path / "run", *LONG)
    run.wait_for_steps(5000)
    victim = run.workers()[0]
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    seen_at = run.wait_for_line("died with signal SIGKILL", timeout=10)
    assert seen_at - killed_at < DETECT_S
    run.wait_for_line("restarting worker")
    before = json.loads((run.run_dir / "metrics.jsonl").read_text().splitlines()[-1])["env_steps"]
    run.wait_for_steps(before + 5000)  # the restarted worker trains on
    assert victim not in run.workers() and len(run.workers()) == 2
    run.signal(signal.SIGINT)
    assert run.wait(GRACE_S) == 130
    assert_checkpoint(run)
    env_steps_never_decrease(run)
    assert_clean(run)


@pytest.mark.timeout(120)
def test_a_hung_worker_is_killed_by_the_heartbeat_timeout(tmp_path: Path) -> None:
    run = Run(tmp_path / "run", *LONG, "--set", "runtime.heartbeat_timeout=3")
    run.wait_for_steps(5000)
    victim = run.workers()[1]
    stopped_at = time.monotonic()
    os.kill(victim, signal.SIGSTOP)  # a hang: the process exists but never reports again
    seen_at = run.wait_for_line("gave no sign of life", timeout=15)
    # the last heartbeat came up to one rollout before the stop: detection lands at timeout + [-rollout, +2 s]
    assert 2.5 <= seen_at - stopped_at < 3.0 + DETECT_S
    run.wait_for_line("restarting worker")
    run.signal(signal.SIGINT)
    assert run.wait(GRACE_S) == 130
    assert_checkpoint(run)
    assert_clean(run)


@pytest.mark.timeout(120)
def test_a_hanging_env_is_detected_too(tmp_path: Path) -> None:
    run = faulty_run(tmp_path, "hanging", "--set", "runtime.heartbeat_timeout=3")
    assert run.wait(90) == 0, run.stderr
    assert "gave no sign of life" in run.stderr and "restarting worker" in run.stderr
    assert_clean(run)


@pytest.mark.timeout(120)
def test_when_the_restart_budget_is_spent_the_run_stops_with_exit_1_and_a_checkpoint(tmp_path: Path) -> None:
    run = faulty_run(tmp_path, "crashing", "--set", "runtime.max_restarts=0")
    assert run.wait(90) == 1
    assert "RuntimeError: injected crash" in run.stderr
    assert "the restart budget (runtime.max_restarts = 0) is spent" in run.stderr
    assert_checkpoint(run)
    assert_clean(run)


PHASES = {
    # what to run so that the parent is (almost always) in that phase when the signal arrives
    "startup": [],
    "rollout": [],
    "evaluation": ["--set", "runtime.eval_every=1", "--set", "runtime.eval_episodes=64"],
    "checkpoint": ["--set", "log.checkpoint_every=1", "--set", "model.hidden=[768,768]"],
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", list(PHASES))
def test_a_signal_in_any_phase_stops_cleanly(phase: str, sig: int, tmp_path: Path) -> None:
    if sig == signal.SIGTERM and phase in ("evaluation", "checkpoint"):
        pytest.skip("SIGTERM takes the same path as SIGINT; two phases suffice for it")
    run = Run(tmp_path / "run", *LONG, *PHASES[phase])
    if phase == "startup":
        run.wait_for_line("workers on local processes")  # the pool is starting
    else:
        run.wait_for_steps(1)
        time.sleep(0.5)
    signalled = time.monotonic()
    run.signal(sig)
    code = run.wait(GRACE_S)
    assert time.monotonic() - signalled < GRACE_S
    assert code == (130 if sig == signal.SIGINT else 143), run.stderr
    assert "Traceback" not in run.stderr
    if phase != "startup" or (run.run_dir / "checkpoints").exists():
        assert checkpoint.load(checkpoint.find(run.run_dir))["format"] == checkpoint.FORMAT
    assert_clean(run)


@pytest.mark.timeout(120)
def test_a_second_ctrl_c_exits_within_2_s(tmp_path: Path) -> None:
    run = Run(tmp_path / "run", *LONG)
    run.wait_for_steps(2000)
    os.kill(run.workers()[0], signal.SIGSTOP)  # this worker would make a graceful stop wait its full grace
    run.signal(signal.SIGINT)
    time.sleep(0.5)
    second = time.monotonic()
    run.signal(signal.SIGINT)
    assert run.wait(10) == 130
    assert time.monotonic() - second < 2.0
    assert_clean(run)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("when", ["startup", "training"])
def test_workers_exit_by_themselves_when_the_parent_is_sigkilled(when: str, tmp_path: Path) -> None:
    run = Run(tmp_path / "run", *LONG)
    if when == "startup":
        run.wait_for_line("workers on local processes")
        time.sleep(0.3)
    else:
        run.wait_for_steps(2000)
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait()
    killed = time.monotonic()
    while time.monotonic() - killed < 5.0:
        alive = [(pid, state) for pid, state in session_processes(run.proc.pid) if state != "Z"]
        if not alive:
            break
        time.sleep(0.1)
    assert alive == [], f"still running 5 s after the parent died: {alive}"
    # the orphans' zombies are init's to reap, and their /tmp/pymp-* and semaphores are cleaned by the fork
    # server and the resource tracker on their way out
    procs, files = run.leftovers(settle=15.0)
    assert procs == [] and files == set()


@pytest.mark.timeout(60)
def test_file_descriptors_return_to_baseline(quiet: dict, tmp_path: Path) -> None:
    import pacer

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    quiet["runtime"].update(backend="local", workers=2, total_steps=2000)
    pacer.train(quiet)  # the first run starts the fork server, which stays for the next ones
    baseline = fds()
    for i in range(3):
        quiet["log"]["run_dir"] = str(tmp_path / f"again{i}")
        pacer.train(quiet)
    assert fds() == baseline
