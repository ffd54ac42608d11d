"""Real worker processes under every start method, failures with their traceback, nothing left behind."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

import pacer
from leftovers import OwnFiles


def local(quiet: dict, method: str) -> dict:
    quiet["runtime"].update(backend="local", workers=2, start_method=method, total_steps=3000)
    return quiet


@pytest.mark.timeout(90)
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_local_workers_train_and_leave_nothing(method: str, quiet: dict) -> None:
    own = OwnFiles()  # /dev/shm segments of this process and its children; another run's are not ours to judge
    result = pacer.train(local(quiet, method))
    assert result.env_steps >= 3000
    assert result.stop_reason == "total_steps"
    workers = [p for p in multiprocessing.active_children() if p.name.startswith("pacer-")]
    assert workers == []
    assert own.shm() == set()
    # /tmp/pymp-*: the fork server (and its socket dir) lives on in this process for the next run; the CLI and fault
    # tests, whose runs get a TMPDIR of their own, check that nothing at all is left once the command has exited


@pytest.mark.timeout(90)
def test_parallel_evaluation(quiet: dict) -> None:
    result = pacer.train(quiet)
    import torch

    ev = pacer.evaluate(result.run_dir, episodes=6, workers=2, seed=100)
    # episode i starts from seed + i whatever the split: the two halves, run alone, give the same returns
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in evaluation processes: another thread count can round a near-tie differently
    try:
        first = pacer.evaluate(result.run_dir, episodes=3, workers=1, seed=100)
        second = pacer.evaluate(result.run_dir, episodes=3, workers=1, seed=103)
    finally:
        torch.set_num_threads(threads)
    assert ev.returns.tolist() == first.returns.tolist() + second.returns.tolist()
    assert [p for p in multiprocessing.active_children() if p.name.startswith("pacer-")] == []


def test_what_cannot_be_sent_at_all_is_refused_in_one_line(quiet: dict) -> None:
    import threading

    from pacer.errors import PacerError

    lock = threading.Lock()

    def make_env():  # type: ignore[no-untyped-def]
        with lock:  # a closure over a lock: no pickler can send it
            import gymnasium

            return gymnasium.make("CartPole-v1")

    quiet["env"]["id"] = make_env
    with pytest.raises(PacerError, match=r"^the env factory '.*make_env' cannot be sent to worker processes: "
                                         r"cannot pickle '_thread.lock' object$"):
        pacer.train(local(quiet, "spawn"))
    assert [p for p in multiprocessing.active_children() if p.name.startswith("pacer-")] == []


NOTEBOOK_CELLS = """
import gymnasium as gym, numpy as np, torch, pacer
from torch import nn

class Corridor(gym.Env):  # an env class defined in the session, as in a notebook cell
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0
        return np.zeros(2, np.float32), {}
    def step(self, action):
        self.x += 1 if action == 1 else -1
        done = abs(self.x) >= 3
        return np.array([self.x / 3, 1.0], np.float32), float(self.x > 0), done, False, {}

class Net(nn.Module):  # and a model class
    def __init__(self, observation_space, action_space):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 8), nn.Tanh())
        self.pi, self.v = nn.Linear(8, 2), nn.Linear(8, 1)
    def forward(self, obs):
        h = self.body(obs)
        return self.pi(h), self.v(h).squeeze(-1)

r = pacer.train({"env": {"id": Corridor, "envs_per_worker": 2}, "model": {"factory": Net},
                 "runtime": {"workers": 2, "start_method": METHOD, "total_steps": 1000, "eval_every": 0,
                             "final_eval_episodes": 1},
                 "log": {"run_dir": RUN, "progress": False, "tensorboard": False}})
print("steps", r.env_steps)
print("eval", pacer.evaluate(r.run_dir, episodes=2, workers=1, env=Corridor, model=Net).mean)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_an_env_and_a_model_defined_in_an_interactive_main_train_on_processes(method: str, tmp_path: Path) -> None:
    """`python -c` has a __main__ without a file, like a Jupyter kernel: its classes reach workers by value."""
    import subprocess
    import sys

    import yaml

    run = tmp_path / "run"
    code = NOTEBOOK_CELLS.replace("METHOD", repr(method)).replace("RUN", repr(str(run)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr
    assert "steps 1" in out.stdout and "eval " in out.stdout
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["env"]["id"] == "by-value:__main__:Corridor"
    assert saved["model"]["factory"] == "by-value:__main__:Net"


@pytest.mark.timeout(60)
def test_a_stop_during_start_up_launches_no_more_workers(quiet: dict) -> None:
    """A Ctrl-C while the first worker starts (seconds, on a busy machine) must not wait for the others to start."""
    from pacer.algos import get_algo
    from pacer.backends import local as local_backend
    from pacer.config import Config
    from pacer.envs import probe
    from pacer.model import make_model
    from pacer.worker import WorkerSpec

    cfg = Config.from_dict(local(quiet, "fork"))
    spec = probe(cfg.env)
    shared = local_backend.make_shared(cfg, make_model(cfg.model, spec.observation_space, spec.action_space))
    specs = [WorkerSpec(cfg, rank, rank, get_algo(cfg.algo.name)) for rank in range(cfg.runtime.workers)]
    backend = local_backend.create(specs, shared, lambda rank, restarts: rank)
    asked: list[int] = []

    def stop_after_first_launch() -> bool:
        asked.append(len(backend.pids))
        return len(backend.pids) >= 1

    backend.start(stop_after_first_launch)
    backend.stop()
    assert list(backend.pids) == [0] and asked == [0, 1]
    assert [p for p in multiprocessing.active_children() if p.name.startswith("pacer-")] == []
