"""Multi-process evaluation under faults: a crashed, killed or hung evaluation process ends the evaluation with
one line within seconds, and leaves no process behind."""

from __future__ import annotations

import multiprocessing
import re
import time

import pytest

import pacer
from pacer.errors import WorkerFailed

CASES = {  # eval_envs factory -> the one line it must end with
    "crashing": r"^evaluation process \d failed: RuntimeError: injected evaluation crash "
                r"\(eval_envs\.py:\d+, in step\)$",
    "killed": r"^evaluation process \d died \(signal SIGKILL\) before returning its episodes$",
    "hanging": r"^evaluation process \d made no env step for \d+\.\d s \(a hung env\?\) and was killed$",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny run per faulty env (training and in-process evaluation are unaffected by the fault)."""
    runs = {}
    for fault in CASES:
        runs[fault] = pacer.train({
            "env": {"id": f"eval_envs:make_{fault}", "envs_per_worker": 2},
            "algo": {"n_steps": 8, "epochs": 1, "minibatches": 1},
            "runtime": {"backend": "inline", "workers": 1, "total_steps": 64, "eval_every": 0,
                        "final_eval_episodes": 0},
            "log": {"run_dir": str(tmp_path_factory.mktemp("runs") / fault), "progress": False,
                    "tensorboard": False}}).run_dir
    return runs


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", list(CASES))
def test_a_faulty_evaluation_process_ends_the_evaluation_in_one_line(fault: str, trained: dict) -> None:
    tic = time.monotonic()
    with pytest.raises(WorkerFailed) as info:
        pacer.evaluate(trained[fault], episodes=4, workers=2, start_method="fork", hang_timeout=2.0)
    took = time.monotonic() - tic
    message = str(info.value)
    assert "\n" not in message
    assert re.match(CASES[fault], message), message
    assert took < 30.0  # seconds, not the old 600 s queue timeout (a hang: 2 s + start-up on a busy machine)
    assert [p for p in multiprocessing.active_children() if p.name == "pacer-eval"] == []


@pytest.mark.timeout(60)
def test_pacer_eval_with_a_hung_process_exits_1_in_one_line(trained: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """...and leaves nothing behind: no process, no /dev/shm entry, no /tmp/pymp-* dir (the hung one is killed)."""
    from leftovers import OwnFiles
    from test_cli import pacer_cmd

    own = OwnFiles(monkeypatch)  # the command's files, never another run's: it gets a TMPDIR of its own
    tic = time.monotonic()
    out = pacer_cmd("eval", str(trained["hanging"]), "--episodes", "4", "--workers", "2", "--hang-timeout", "2")
    assert out.returncode == 1, out.stderr
    assert re.match(r"^pacer: error: " + CASES["hanging"][1:], out.stderr.strip()), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert time.monotonic() - tic < 45.0
    assert own.files() == set()
