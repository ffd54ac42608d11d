"""Real worker processes under every start method, failures with their traceback, nothing left behind."""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path

import pytest

import pacer
from leftovers import OwnFiles
from pacer.runtime.supervisor import WorkerFailed


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
def test_a_crashing_worker_is_reported_with_its_own_traceback(quiet: dict) -> None:
    quiet["model"] = {"factory": "helpers:make_broken_model"}
    quiet["runtime"]["max_restarts"] = 1
    with pytest.raises(WorkerFailed) as info:
        pacer.train(local(quiet, "forkserver"))
    message = str(info.value)
    assert re.search(r"worker \d failed", message) and "RuntimeError: boom in the worker" in message
    assert "the restart budget (runtime.max_restarts = 1) is spent" in message
    assert "make_broken_model" in message  # the traceback comes from the child
    assert (Path(quiet["log"]["run_dir"]) / "checkpoints" / "final.pt").is_file()
    assert [p for p in multiprocessing.active_children() if p.name.startswith("pacer-")] == []


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


def test_a_factory_from_an_interactive_main_is_refused(quiet: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from pacer.errors import PacerError

    fake_main = types.ModuleType("__main__")  # a notebook's __main__ has no __file__

    def make_env():  # type: ignore[no-untyped-def]
        import gymnasium

        return gymnasium.make("CartPole-v1")

    make_env.__module__ = "__main__"
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    quiet["env"]["id"] = make_env
    with pytest.raises(PacerError, match="defined in an interactive __main__ that worker processes cannot import"):
        pacer.train(local(quiet, "spawn"))


@pytest.mark.timeout(90)
def test_works_from_an_interactive_main(tmp_path: Path) -> None:
    """`python -c` has a __main__ without a file, like a Jupyter kernel: local workers must still start."""
    import subprocess
    import sys

    code = (
        "import pacer\n"
        f"r = pacer.train({{'runtime': {{'workers': 2, 'total_steps': 2000, 'eval_every': 0, "
        f"'final_eval_episodes': 1}}, 'env': {{'envs_per_worker': 2}}, "
        f"'log': {{'run_dir': {str(tmp_path / 'run')!r}, 'progress': False, 'tensorboard': False}}}})\n"
        "print('steps', r.env_steps)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=80)
    assert out.returncode == 0, out.stderr
    assert "steps 2" in out.stdout
