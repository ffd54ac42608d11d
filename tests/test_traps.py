"""What a new user runs into, answered before any worker starts, in one line (issue 31), each as the user meets
it: the `pacer` command or a Python script run as a subprocess, and nothing left behind after it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from leftovers import OwnFiles, session_processes

ROOT = Path(__file__).resolve().parent.parent
PACER = Path(sys.executable).parent / "pacer"  # the console script a user types (not `python -m pacer`)
QUIET = ["--no-progress", "--set", "log.tensorboard=false", "--set", "runtime.final_eval_episodes=2"]


@dataclass
class Done:
    code: int
    out: str
    err: str
    left: tuple[list[tuple[int, str]], set[str]]
    """Processes of its session and its own /dev/shm entries and /tmp/pymp-* dirs, once it exited."""

    def one_error_line(self) -> str:
        """The error, which must be the last line of stderr and the only one that starts with 'pacer: error'."""
        errors = [line for line in self.err.splitlines() if line.startswith("pacer: error")]
        assert len(errors) == 1 and self.err.rstrip().endswith(errors[0]), self.err
        assert "Traceback" not in self.err, self.err
        return errors[0]


def run(cmd: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 120.0) -> Done:
    own = OwnFiles()
    try:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT / "tests"), **own.env, **(env or {})})
        own.watch_session(proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
        deadline = time.monotonic() + 10.0
        while True:
            left = (session_processes(proc.pid), own.files())
            if left == ([], set()) or time.monotonic() > deadline:
                return Done(proc.returncode, out, err, left)
            time.sleep(0.1)
    finally:
        own.close()


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "train_script.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_stacked_frames_train_on_the_mlp(tmp_path: Path) -> None:
    """A multi-dimensional float observation (CartPole, 4 frames stacked: 4x4) is flattened by the MLP."""
    done = run([PACER, "train", "--backend", "inline", "--workers", "1", "--total-steps", "600", "--run-dir",
                tmp_path / "run", "--set", "env.wrappers=[{FrameStackObservation: {stack_size: 4}}]", *QUIET])
    assert done.code == 0, done.err
    assert "greedy evaluation" in done.out


def test_a_script_without_the_main_guard_is_named_in_one_line(tmp_path: Path) -> None:
    """Under forkserver (and spawn) each worker imports the script again: unguarded, it would train in every one.
    Refused before any process starts, naming the line; no restart, no /tmp/pymp-* left."""
    path = script(tmp_path, f"""
        import pacer

        pacer.train({{"runtime": {{"workers": 2, "total_steps": 2000}},
                     "log": {{"run_dir": {str(tmp_path / 'run')!r}, "progress": False}}}})
    """)
    done = run([sys.executable, path])
    assert done.code == 1 and done.err.count("Traceback") == 1, done.err
    assert done.err.rstrip().endswith("PacerError: train_script.py:4 starts training when the script is imported, "
                                      "and each worker process (start method forkserver) imports the script again: "
                                      'put it under `if __name__ == "__main__":` (or use runtime.start_method fork, '
                                      "or the inline backend)")
    assert done.left == ([], set()) and not (tmp_path / "run").exists()


def test_an_env_registered_under_the_main_guard_reaches_the_workers(tmp_path: Path) -> None:
    """The parent's registration travels with the workers' spec: they make the env it names."""
    path = script(tmp_path, f"""
        import gymnasium as gym
        import pacer

        if __name__ == "__main__":
            gym.register("Guarded-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                         max_episode_steps=200)
            result = pacer.train({{"env": {{"id": "Guarded-v0", "envs_per_worker": 4}},
                                  "runtime": {{"workers": 2, "total_steps": 1500, "final_eval_episodes": 2}},
                                  "log": {{"run_dir": {str(tmp_path / 'run')!r}, "progress": False}}}})
            print("trained", result.env_steps)
    """)
    done = run([sys.executable, path])
    assert done.code == 0 and "trained" in done.out and "Traceback" not in done.err, done.err
    assert done.left == ([], set())


def test_the_current_directory_is_importable_for_a_factory(tmp_path: Path) -> None:
    """`pacer train --env examples.corridor:Corridor` from the project root, as examples/corridor.py says."""
    done = run([PACER, "train", "--env", "examples.corridor:Corridor", "--workers", "1", "--envs-per-worker", "4",
                "--total-steps", "600", "--run-dir", tmp_path / "run", *QUIET])
    assert done.code == 0, done.err
    assert done.left == ([], set())


@pytest.mark.timeout(90)
def test_an_error_at_start_up_is_not_restarted(tmp_path: Path) -> None:
    """A model factory that raises in every worker: one traceback (the worker's own), the run stops with exit 1,
    no restart spent, nothing left behind."""
    done = run([PACER, "train", "--workers", "2", "--envs-per-worker", "4", "--total-steps", "2000", "--run-dir",
                tmp_path / "run", "--set", "model.factory=helpers:make_broken_model", "--set",
                "runtime.max_restarts=3", *QUIET])
    assert done.code == 1 and done.err.count("Traceback") == 1, done.err
    assert "RuntimeError: boom in the worker" in done.err and "restarting worker" not in done.err
    assert "make_broken_model" in done.err  # the traceback is the worker's own, from its process
    assert done.err.rstrip().endswith("failed at start-up, before its first rollout: a restart would meet the same "
                                      "error, so the run stops")
    assert done.left == ([], set())


def test_a_tracker_that_cannot_start_is_one_line_before_any_worker(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    done = run([PACER, "train", "--track", "mlflow", "--total-steps", "600", "--run-dir", tmp_path / "run",
                *QUIET], env={"MLFLOW_TRACKING_URI": f"file:{tmp_path / 'mlruns'}"})
    assert done.code == 2
    assert done.one_error_line().startswith("pacer: error: log.track mlflow: cannot start a run: MlflowException: ")
    assert "MLFLOW_ALLOW_FILE_STORE" in done.err and not (tmp_path / "run").exists()
    assert done.left == ([], set())


def test_print_config_refuses_what_a_run_would(tmp_path: Path) -> None:
    done = run([PACER, "train", "--algo", "sac", "--print-config"])
    assert done.code == 2 and done.out == ""
    assert done.one_error_line() == ("pacer: error: unknown algorithm 'sac' (did you mean 'a3c' or 'a2c'?); choose "
                                     "from mc, a2c, a3c, ppo")


def test_a_pixel_env_with_box_actions_gets_a_recipe_that_trains() -> None:
    """CarRacing-v3 (images, Box actions): the 'pixels-continuous' recipe and its CNN, not the vector one."""
    pytest.importorskip("Box2D")
    done = run([PACER, "train", "--env", "CarRacing-v3", "--print-config"])
    assert done.code == 0, done.err
    assert "recipe 'pixels-continuous': PPO with the Nature CNN" in done.err
    assert "  encoder: cnn\n" in done.out and "  normalize_input: none\n" in done.out


@pytest.mark.slow
def test_carracing_trains_for_a_minute_and_evaluates(tmp_path: Path) -> None:
    pytest.importorskip("Box2D")
    done = run([PACER, "train", "--env", "CarRacing-v3", "--time-limit", "60", "--run-dir", tmp_path / "run",
                "--no-progress"], timeout=400)
    assert done.code == 0, done.err
    assert "greedy evaluation" in done.out and done.left == ([], set())
