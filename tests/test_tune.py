"""`pacer tune`: a tiny study end to end (CLI, parallel trials, SQLite resume, best.yaml), pruning, the search."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from pacer.config import Config, load_yaml, nest  # noqa: E402
from pacer.tune import Running, follow, new_evaluations, sample  # noqa: E402


def _tune(directory: Path, trials: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacer", "tune", "--env", "CartPole-v1", "--trials", str(trials),
                           "--parallel", "2", "--steps", "2048", "--evaluations", "2", "--backend", "inline",
                           "--seconds", "90", "--dir", str(directory)], capture_output=True, text=True, timeout=240)


@pytest.mark.timeout(300)
def test_a_tiny_study_runs_trials_in_parallel_writes_the_best_and_resumes(tmp_path: Path) -> None:
    out = _tune(tmp_path, 2)
    assert out.returncode == 0, out.stderr + out.stdout
    study = optuna.load_study(study_name="CartPole-v1", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    # two trials ran at the same time: the second started before the first ended
    first, second = sorted(study.trials, key=lambda t: t.datetime_start)[:2]
    assert second.datetime_start < first.datetime_complete
    best = study.best_trial
    config = load_yaml(tmp_path / "best.yaml")
    cfg = Config.from_dict(config)
    assert cfg.algo.lr == pytest.approx(best.params["lr"]) and cfg.algo.n_steps == best.params["n_steps"]
    assert cfg.runtime.workers == 1 and cfg.runtime.total_steps == 2048 and "backend" not in config["runtime"]
    assert cfg.runtime.time_limit == 90.0 and load_yaml(tmp_path / "trials" / "trial-000.yaml")["runtime"][
        "time_limit"] == 90.0
    assert f"best trial {best.number}: {best.value:.1f}" in out.stdout

    again = _tune(tmp_path, 3)  # the same command, one trial more: the study continues
    assert again.returncode == 0, again.stderr
    assert "continuing study 'CartPole-v1': 2 trial(s) already" in again.stdout
    assert len(optuna.load_study(study_name="CartPole-v1", storage=f"sqlite:///{tmp_path / 'study.db'}").trials) == 3


def test_a_trial_the_pruner_gives_up_on_is_stopped(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"env_steps": 100, "eval_return": null}\n'
                                            '{"env_steps": 200, "eval_return": 12.5}\n{"env_steps": 3')  # half a line
    # a study whose one finished trial scored 50 at the second evaluation: the median pruner stops a 12.5 there
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    finished = study.ask()
    finished.report(50.0, 2)
    study.tell(finished, 50.0)
    trial = study.ask()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    running = Running(trial, process, tmp_path, eval_every=100)
    lines: list[str] = []
    start = time.monotonic()
    follow(running, lines.append)
    # reported at its evaluation's index (200 env steps // 100), where the pruner finds the other trial's value
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {2: 12.5} and running.pruned
    assert process.poll() is not None and time.monotonic() - start < 10  # stopped, and reaped
    assert lines == ["trial 1: pruned at 200 env steps (greedy return 12.5)"]
    # the half-written line is read once it is whole, not before
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('00, "eval_return": 20.0}\n')
    assert new_evaluations(running) == [(300, 20.0)]


def test_the_search_caps_minibatches_and_replays_from_the_best_params() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        settings = sample(trial, "ppo", continuous=True)
        rows = settings["env.envs_per_worker"] * settings["algo.n_steps"]
        assert rows // settings["algo.minibatches"] >= 16 or settings["algo.minibatches"] == 1
        assert sample(optuna.trial.FixedTrial(trial.params), "ppo", continuous=True) == settings
        Config.from_dict(nest(settings))
        study.tell(trial, 0.0)
    a2c = sample(optuna.trial.FixedTrial({**study.trials[0].params}), "a2c", continuous=False)
    assert "algo.epochs" not in a2c and "model.log_std_init" not in a2c and "model.memory_size" not in a2c


def test_a_recurrent_search_includes_the_memory_size_and_keeps_whole_envs_in_a_minibatch() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    sizes = set()
    for _ in range(30):
        trial = study.ask()
        settings = sample(trial, "ppo", continuous=False, memory=True)
        assert settings["algo.minibatches"] <= settings["env.envs_per_worker"]  # at least one env's rollout each
        sizes.add(settings["model.memory_size"])
        Config.from_dict(nest({**settings, "model.memory": "lstm"}))
        study.tell(trial, 0.0)
    assert sizes == {32, 64, 128, 256}


def test_bad_tune_input_is_refused_in_one_line() -> None:
    out = subprocess.run([sys.executable, "-m", "pacer", "tune", "--trials", "0"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and out.stderr == "pacer: error: --trials must be >= 1, got 0\n"


def _rows(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _trial_processes(directory: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(directory) in cmdline and "tune" not in cmdline.split("\0")[2:4] and state != "Z":
                pids.append(int(proc.name))
    return pids


@pytest.mark.timeout(120)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_trials_end_when_the_tuner_is_killed(tmp_path: Path) -> None:
    tuner = subprocess.Popen([sys.executable, "-m", "pacer", "tune", "--env", "CartPole-v1", "--trials", "2",
                              "--parallel", "2", "--steps", "100000000", "--backend", "inline", "--dir",
                              str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    # both trials are training: each has written a row (its file alone appears before its stop signals are handled)
    while not all(_rows(tmp_path / "trials" / f"trial-00{i}" / "metrics.jsonl") for i in (0, 1)):
        assert time.monotonic() < deadline and tuner.poll() is None
        time.sleep(0.2)
    assert len(_trial_processes(tmp_path)) >= 2
    tuner.kill()
    tuner.wait(10)
    deadline = time.monotonic() + 60
    while (left := _trial_processes(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []
    # they stopped as on a SIGTERM: cleanly, each with its final checkpoint
    assert all((tmp_path / "trials" / f"trial-00{i}" / "checkpoints" / "final.pt").exists() for i in (0, 1))
