"""The `pacer` command as a subprocess: train, eval, bad input, Ctrl-C; nothing may be left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pacer
from faults import as_from_a_terminal
from leftovers import OwnFiles, session_processes
from pacer import checkpoint

TINY = ["--total-steps", "3000", "--envs-per-worker", "4", "--workers", "2", "--no-progress",
        "--set", "runtime.eval_every=0", "--set", "runtime.final_eval_episodes=2", "--set", "log.tensorboard=false"]


def pacer_cmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                                      os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "pacer", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.mark.timeout(120)
def test_train_then_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = OwnFiles(monkeypatch)  # the commands' files, never another run's: they get a TMPDIR of their own
    run = tmp_path / "run"
    done = pacer_cmd("train", "--run-dir", str(run), *TINY)
    assert done.returncode == 0, done.stderr
    assert "env steps" in done.stdout and f"pacer eval {run}" in done.stdout
    assert (run / "summary.json").is_file() and (run / "checkpoints" / "final.pt").is_file()
    out = pacer_cmd("eval", str(run), "--episodes", "4", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["episodes"] == 4 and report["greedy"] is True
    assert report["mean"] == pytest.approx(sum(report["returns"]) / 4)
    assert own.files() == set()


def test_config_file_and_flags_override_it(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("runtime:\n  workers: 1\n  backend: inline\nalgo:\n  lr: 0.002\n")
    out = pacer_cmd("train", "--config", str(cfg), "--print-config", *TINY)  # TINY says --workers 2
    assert out.returncode == 0, out.stderr
    saved = out.stdout  # the config the run would use (and write into its config.yaml)
    assert "workers: 2" in saved and "lr: 0.002" in saved and "backend: inline" in saved


@pytest.mark.timeout(120)
def test_ctrl_c_stops_cleanly_saves_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = OwnFiles(monkeypatch)  # the command's files, never another run's: it gets a TMPDIR of its own
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    # a new session, signalled as a group: exactly what a terminal does on Ctrl-C
    proc = subprocess.Popen([sys.executable, "-m", "pacer", "train", "--run-dir", str(run), "--total-steps",
                             "100000000", "--no-progress", "--envs-per-worker", "4", "--set",
                             "runtime.stop_at_return=null"],
                            start_new_session=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_from_a_terminal)
    try:
        deadline = time.monotonic() + 60
        metrics = run / "metrics.jsonl"
        while time.monotonic() < deadline:
            rows = metrics.read_text().splitlines() if metrics.exists() else []
            if rows and json.loads(rows[-1])["env_steps"] > 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail("training never started")
        os.killpg(proc.pid, signal.SIGINT)
        tic = time.monotonic()
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 130, err
        # it does not hang, even on a busy machine (the 15 s of a quiet one: test_faults.py, pytest -m soak)
        assert time.monotonic() - tic < 60
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in err
    data = checkpoint.load(run / "checkpoints" / "final.pt")
    assert data["counters"]["env_steps"] > 0
    assert all(state is not None for state in data["workers"])  # the workers stopped by themselves, not waited out
    time.sleep(0.5)
    assert session_processes(proc.pid) == []
    assert own.files() == set()


def test_plot_writes_a_png(tmp_path: Path, quiet: dict) -> None:
    run = pacer.train(quiet).run_dir  # trained here: only the command under test runs as a subprocess
    out = pacer_cmd("plot", str(run), "--out", str(tmp_path / "c.png"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
