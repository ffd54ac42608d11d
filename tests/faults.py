"""Running `pacer train` as a subprocess in its own session, watching its stderr, injecting faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from leftovers import OwnFiles, session_processes

BASE = ["--no-progress", "--envs-per-worker", "4", "--workers", "2", "--set", "log.tensorboard=false",
        "--set", "runtime.final_eval_episodes=2"]


def as_from_a_terminal() -> None:
    """preexec_fn: SIGINT and SIGTERM at their defaults, as a command typed at a terminal gets them. A test run in
    the background of a script (`make test &`) inherits SIGINT ignored, and pacer keeps an ignored signal ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


class Run:
    """A `pacer train` process in a new session (so it can be signalled as a terminal would, as a group), with a
    TMPDIR of its own (so its /tmp/pymp-* dirs are told apart from other runs')."""

    def __init__(self, run_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.own = OwnFiles()
        # PYTHONFAULTHANDLER: a run that hangs is sent SIGABRT and prints every thread's stack (see wait)
        full_env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "PYTHONFAULTHANDLER": "1",
                    **self.own.env, **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "pacer", "train", "--run-dir", str(run_dir), *BASE,
                                      *args], start_new_session=True, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal)
        self.own.watch_session(self.proc.pid)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for_line(self, text: str, timeout: float = 60.0) -> float:
        """Time at which a stderr line containing `text` appeared."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if text in line:
                    return at
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no line with {text!r} within {timeout} s; stderr:\n{self.stderr}")

    def wait_for_steps(self, steps: int = 1, timeout: float = 60.0) -> None:
        metrics = self.run_dir / "metrics.jsonl"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = metrics.read_text().splitlines() if metrics.exists() else []
            if rows and json.loads(rows[-1])["env_steps"] >= steps:
                return
            time.sleep(0.1)
        raise AssertionError(f"training did not reach {steps} steps within {timeout} s:\n{self.stderr}")

    def workers(self, zombies: bool = True) -> list[int]:
        """PIDs of the worker processes (named pacer-w<rank>)."""
        return sorted(pid for pid, state in session_processes(self.proc.pid)
                      if (zombies or state != "Z") and _is_worker(pid))

    def workers_gone(self, since: float, timeout: float) -> float:
        """Seconds from `since` until no worker process is running (a zombie has exited: it counts as gone)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = self.workers(zombies=False)
            if not live:
                return time.monotonic() - since
            time.sleep(0.05)
        raise AssertionError(f"workers still running {timeout} s later: {live}\n{self.stderr}")

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            state = self._diagnose()
            os.kill(self.proc.pid, signal.SIGABRT)  # the fault handler prints where each thread is
            time.sleep(2.0)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.reader.join(timeout=5)
            raise AssertionError(f"the run did not exit within {timeout} s ({state}); its stderr:\n{self.stderr}"
                                 ) from None
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.reader.join(timeout=5)
        return self.proc.returncode

    def _diagnose(self) -> str:
        """The hung run's signal masks (blocked, ignored, caught: hex bit sets) and how far it trained."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        except OSError:
            status = []
        masks = " ".join(line.replace("\t", "") for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt")))
        metrics = self.run_dir / "metrics.jsonl"
        rows = metrics.read_text().splitlines() if metrics.exists() else []
        steps = json.loads(rows[-1])["env_steps"] if rows else None
        return f"{masks}; {len(rows)} metric rows, last env_steps {steps}; workers {self.workers()}"

    def leftovers(self, settle: float = 5.0) -> tuple[list[tuple[int, str]], set[str]]:
        """Processes of the session (zombies included) and the run's own /dev/shm entries and /tmp/pymp-* dirs
        still there, once settled (waiting at most `settle` seconds for them to go)."""
        deadline = time.monotonic() + settle
        while True:
            procs, files = session_processes(self.proc.pid), self.own.files()
            if (not procs and not files) or time.monotonic() > deadline:
                return procs, files
            time.sleep(0.1)

    def close(self) -> None:
        """Stop watching and remove the run's TMPDIR."""
        self.own.close()


def _is_worker(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().startswith("pacer-w")
    except OSError:
        return False
