"""The benchmark suite: its arithmetic against hand-computed values, and (slow) a short real compare."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from pacer.bench import runs, suite
from pacer.bench.record import median
from pacer.config import Config
from pacer.envs import probe
from pacer.model import make_model
from pacer.runtime import shared as shared_state


def test_amdahl_fit_recovers_a_known_serial_fraction() -> None:
    speedups = {n: suite.amdahl(0.05, n) for n in (1, 2)}
    assert suite.amdahl_fit(speedups) == pytest.approx(0.05, abs=1e-4)
    assert suite.amdahl(0.05, 2) == pytest.approx(1 / (0.05 + 0.95 / 2))
    assert suite.amdahl_fit({1: 1.0, 2: 2.0}) == 0.0  # perfect scaling: no serial part


def test_solve_time_is_the_time_to_the_confirmed_stop_without_evaluations() -> None:
    run = {"stop_reason": "target_return", "wall_s": 9.5, "eval_time_s": 3.25, "env_steps": 40_000}
    assert runs.solved_at_stop(run, 475.0)["solve_s"] == 6.25
    assert run["solve_env_steps"] == 40_000 and run["solved"]
    unsolved = runs.solved_at_stop({"stop_reason": "time_limit", "wall_s": 9.5, "eval_time_s": 1.0,
                                    "env_steps": 10}, 475.0)
    assert not unsolved["solved"] and unsolved["solve_s"] is None


def test_steady_rate_excludes_start_up_and_evaluation_time() -> None:
    rows = [{"time": 3.0, "eval_time": 0.0, "env_steps": 0},
            {"time": 4.0, "eval_time": 0.0, "env_steps": 1000},
            {"time": 7.0, "eval_time": 1.0, "env_steps": 5000}]  # 4000 steps in 3 - 1 = 2 s of training
    assert runs.steady_rate(rows) == 2000.0
    assert runs.steady_rate(rows[:2]) is None


def test_ratios_are_other_over_pacer_and_a_cap_gives_a_lower_bound() -> None:
    record = {"summary": {"pacer": {"median_solve_s": 4.0}, "sb3-a2c": {"median_solve_s": 20.0}},
              "throughput": {"pacer": {"steps_per_s": 50_000.0}, "sb3-a2c": {"steps_per_s": 8_000.0}},
              "classic": {"cap_s": 800.0, "default": {"time_to_recent_s": 8.0},
                          "classic-da2c": {"time_to_recent_s": None}}}
    r = suite.ratios(record)
    assert r["solve_time sb3-a2c / pacer"] == 5.0
    assert r["throughput pacer / sb3-a2c"] == 6.2
    assert r["rolling-475 time classic-da2c / default"] == ">= 100.0 (classic never reached it)"
    assert median([3.0, None, 1.0, 2.0]) == 2.0 and median([None]) is None


def test_an_unsolved_run_counts_as_never_solved_in_the_median() -> None:
    def run(solve_s: float | None) -> dict:
        return {"solved": solve_s is not None, "solve_s": solve_s, "solve_env_steps": 1, "steps_per_s": 1.0}

    assert suite.summarize([run(40.0), run(50.0), run(None)])["median_solve_s"] == 50.0
    assert suite.summarize([run(40.0), run(None), run(None)])["median_solve_s"] is None
    assert suite.summarize([run(40.0), run(None), run(None)])["solved"] == 1


def test_a_paused_worker_waits_until_resumed_and_says_so() -> None:
    cfg = Config()
    spec = probe(cfg.env)
    obs, act = spec.observation_space, spec.action_space
    state = shared_state.create(cfg, make_model(cfg.model, obs, act), torch.multiprocessing.get_context("spawn"),
                                in_shared_memory=False)
    state.pause.set()
    held = threading.Thread(target=state.hold_while_paused, args=(1,))
    held.start()
    deadline = time.monotonic() + 5
    while not state.waiting[1] and time.monotonic() < deadline:
        time.sleep(0.001)
    assert state.waiting[1] == 1 and held.is_alive()
    state.pause.clear()
    held.join(timeout=5)
    assert not held.is_alive() and state.waiting[1] == 0


@pytest.mark.parametrize("kind", ["solve", "timed"])
def test_pacer_runs_train_the_env_they_are_given(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A regression: with no preset named, the runs trained the default env (CartPole) whatever env was asked."""
    commands: list[list[str]] = []

    def fake_run(cmd: list[str], timeout: float) -> tuple[float, subprocess.CompletedProcess[str]]:
        commands.append(cmd)
        return 0.0, subprocess.CompletedProcess(cmd, 1, "", "failed")

    monkeypatch.setattr(runs, "_run", fake_run)
    if kind == "solve":
        run = runs.pacer_solve(tmp_path, "LunarLander-v3", 0, 200.0, 50_000, 60.0)
    else:
        run = runs.pacer_timed(tmp_path, "LunarLander-v3", 0, 60.0, 50_000, 5)
    assert "error" in run
    assert commands[0][commands[0].index("--env") + 1] == "LunarLander-v3"


def test_compare_and_scaling_measure_the_config_pacer_train_picks_for_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A regression: with no preset named, compare's throughput ran LunarLander with CartPole's defaults."""
    from pacer.bench import throughput

    points: list[tuple[int, str | None]] = []

    def fake_measure(env: str, backend: str, workers: int, envs: int, seconds: float,
                     preset: str | None = None) -> dict[str, object]:
        points.append((envs, preset))
        return {"steps_per_s": 1.0}

    monkeypatch.setattr(throughput, "measure", fake_measure)
    monkeypatch.setattr(throughput, "format_point", lambda point: "")
    monkeypatch.setattr(runs, "sb3", lambda *args, **kwargs: {"steps_per_s": 1.0})
    suite.compare_throughput("LunarLander-v3", None, ("ppo",), 1.0, lambda line: None)
    suite.scaling("LunarLander-v3", [1], 1.0, 1, lambda line: None)
    assert points == [(16, "auto"), (16, "auto")]  # the lunarlander preset's 16 envs, not the default 256


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_short_compare_runs_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("matplotlib")
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "pacer", "bench", "compare", "--env", "CartPole-v1", "--seeds", "1",
                           "--algos", "a2c", "--classic-cap", "10", "--cap", "90", "--throughput-seconds", "8",
                           "--out", str(out), "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=560)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(next(out.glob("compare-CartPole-v1-*.json")).read_text())
    assert record["versions"]["torch"] and record["machine"]["cores"] and record["command"].startswith("pacer bench")
    pacer_run, sb3_run = record["runs"]["pacer"][0], record["runs"]["sb3-a2c"][0]
    assert pacer_run["solved"] and 0 < pacer_run["solve_s"] < 90
    assert pacer_run["cold_start_s"] < pacer_run["solve_s"]
    assert sb3_run["steps_per_s"] > 0 and "error" not in sb3_run
    assert record["throughput"]["pacer"]["steps_per_s"] > 0 and record["throughput"]["sb3-a2c"]["steps_per_s"] > 0
    assert "solve_time sb3-a2c / pacer" in record["ratios"] or not sb3_run["solved"]
    assert (out / "compare-CartPole-v1.png").stat().st_size > 10_000


def test_a_record_carries_the_commit_seen_before_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pacer.bench import record

    monkeypatch.setattr(record, "_COMMIT_AT_START", [])
    monkeypatch.setattr(record, "git_commit", lambda: "abc123")
    record.begin()
    monkeypatch.setattr(record, "git_commit", lambda: "abc123-dirty")  # the run's own files made the tree dirty
    saved = json.loads(record.write("probe", {}, tmp_path).read_text())
    assert saved["commit"] == "abc123"


@pytest.mark.timeout(60)
def test_a_changed_result_file_leaves_the_commit_clean_and_a_changed_source_file_does_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One benchmark's plot (a tracked file under benchmarks/results) must not mark the next record '-dirty'."""
    from pacer.bench import record

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "plot.png").write_text("old")
    (tmp_path / "code.py").write_text("old")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks" / "results" / "plot.png").write_text("new")
    clean = record.git_commit()
    assert clean is not None and len(clean) == 40
    (tmp_path / "code.py").write_text("new")
    assert record.git_commit() == clean + "-dirty"


@pytest.mark.timeout(120)
def test_the_env_only_limit_steps_the_env_in_each_process() -> None:
    from pacer.bench.throughput import env_limit

    rate = env_limit("CartPole-v1", workers=2, envs=4, seconds=0.3)
    assert rate > 1_000  # NumPy CartPole: far more than this even on a busy machine


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_short_timed_mujoco_compare_runs_end_to_end(tmp_path: Path) -> None:
    """`pacer bench timed` on HalfCheetah-v5: both frameworks train, are evaluated, get a final return."""
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("mujoco")
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "pacer", "bench", "timed", "--env", "HalfCheetah-v5",
                           "--pacer-seconds", "20", "--sb3-seconds", "20", "--eval-every", "2000",
                           "--eval-episodes", "2", "--out", str(out), "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(next(out.glob("timed-HalfCheetah-v5-*.json")).read_text())
    for name in ("pacer", "sb3-ppo"):
        run = record["runs"][name][0]
        assert "error" not in run and isinstance(run["final_return"], float), run
    assert record["runs"]["pacer"][0]["curve"]  # SB3 may not reach its first evaluation in 20 s on a busy machine
    pacer_run = record["runs"]["pacer"][0]
    assert pacer_run["env_steps"] > record["runs"]["sb3-ppo"][0]["env_steps"]  # 2 processes, batched envs
    assert "id: HalfCheetah-v5" in (Path(pacer_run["run_dir"]) / "config.yaml").read_text()
    assert record["published"]["mean"] == 5819.099
    assert (out / "timed-HalfCheetah-v5.png").stat().st_size > 10_000


def test_scaling_on_another_backend_also_reports_env_steps_to_solve(monkeypatch: pytest.MonkeyPatch) -> None:
    from pacer.bench import throughput

    backends: list[str] = []
    solves: list[tuple[int, dict]] = []

    def fake_measure(env: str, backend: str, workers: int, envs: int, seconds: float,
                     preset: str | None = None) -> dict[str, object]:
        backends.append(backend)
        return {"steps_per_s": 100.0 * workers}

    def fake_solve(run_dir: Path, env: str, seed: int, target: float, eval_every: int, cap_s: float,
                   preset: str | None = None, settings: dict | None = None) -> dict[str, object]:
        solves.append((seed, dict(settings or {})))
        workers = (settings or {})["runtime.workers"]
        return {"solved": True, "solve_env_steps": 1000 * workers + seed, "solve_s": 10.0}

    monkeypatch.setattr(throughput, "measure", fake_measure)
    monkeypatch.setattr(throughput, "format_point", lambda point: "")
    monkeypatch.setattr(runs, "pacer_solve", fake_solve)
    result = suite.scaling("LunarLander-v3", [1, 2], 1.0, 1, lambda line: None, backend="ray", solve_seeds=3)
    assert backends == ["ray", "ray"] and result["backend"] == "ray"
    assert [row["solve_env_steps"] for row in result["table"]] == [1001, 2001]  # medians over seeds 0, 1, 2
    assert [row["solved"] for row in result["table"]] == ["3/3", "3/3"]
    assert solves[0] == (0, {"runtime.backend": "ray", "runtime.workers": 1}) and len(solves) == 6


def test_timed_runs_pacer_alone_and_sb3_side_by_side_and_resumes_saved_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups of `sb3_parallel` (env, seed) runs across envs: the group's pacer runs one at a time, then its SB3 runs
    at once; finished runs are saved and, with `resume`, taken instead of trained (a failed one is trained again)."""
    import threading

    from pacer.bench import timed

    events: list[str] = []
    both_started = threading.Barrier(2, timeout=5)  # SB3 runs of a full group must overlap, or this times out
    fail = {("Hopper-v5", 0)}

    def fake_pacer(run_dir: Path, env: str, seed: int, *args: object) -> dict[str, object]:
        events.append(f"pacer {env} {seed}")
        return {"framework": "pacer", "seed": seed, "final_return": float(seed), "env_steps": 10, "steps_per_s": 1.0}

    def fake_sb3(algo: str, env: str, seed: int, mode: str, **kwargs: object) -> dict[str, object]:
        events.append(f"sb3 {env} {seed}")
        both_started.wait()
        if (env, seed) in fail:
            return {"framework": "sb3", "algo": algo, "seed": seed, "error": "exit 1: boom"}
        return {"framework": "sb3", "algo": algo, "seed": seed, "final_return": 0.5, "env_steps": 5,
                "steps_per_s": 1.0}

    monkeypatch.setattr(runs, "pacer_timed", fake_pacer)
    monkeypatch.setattr(runs, "sb3", fake_sb3)
    lines: list[str] = []
    records = timed.timed(["HalfCheetah-v5", "Hopper-v5"], [0, 1], tmp_path, lines.append, sb3_parallel=2)
    assert events[:2] == ["pacer HalfCheetah-v5 0", "pacer HalfCheetah-v5 1"]
    assert sorted(events[2:4]) == ["sb3 HalfCheetah-v5 0", "sb3 HalfCheetah-v5 1"]
    assert events[4:6] == ["pacer Hopper-v5 0", "pacer Hopper-v5 1"]
    assert [r["env"] for r in records] == ["HalfCheetah-v5", "Hopper-v5"]
    assert records[0]["summary"]["pacer"]["median_final_return"] == 0.5
    assert records[0]["pacer_at_least_sb3"] is True and records[0]["sb3_parallel"] == 2
    assert any("FAILED exit 1: boom" in line for line in lines)

    events.clear()
    fail.clear()
    both_started = threading.Barrier(1)  # one run is trained again: nothing to wait for
    records = timed.timed(["HalfCheetah-v5", "Hopper-v5"], [0, 1], tmp_path, lines.append, sb3_parallel=2,
                          resume=True)
    assert events == ["sb3 Hopper-v5 0"]  # only the failed run is trained again
    assert all(r.get("resumed") for r in records[0]["runs"]["pacer"] + records[0]["runs"]["sb3-ppo"])
    assert records[1]["runs"]["sb3-ppo"][0]["final_return"] == 0.5
    events.clear()
    timed.timed(["HalfCheetah-v5"], [0], tmp_path, lines.append, pacer_s=200.0, resume=True)
    assert events == ["pacer HalfCheetah-v5 0"]  # pacer's time differs: trained again; SB3's run is the saved one


def test_timed_refuses_more_side_by_side_sb3_runs_than_cores(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    done = subprocess.run([sys.executable, "-m", "pacer", "bench", "timed", "--sb3-parallel", "999",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("pacer: error: --sb3-parallel must be 1..")


def test_throughput_rounds_alternate_with_sb3_and_give_ratios_of_the_same_round(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Round by round: the grid, then SB3 for as many env steps as pacer's fastest point made; each point is divided
    by its own round's SB3 rate (the machine is noisy), on the threads asked for."""
    from pacer.bench import throughput

    events: list[str] = []
    rates = iter([600.0, 800.0])  # pacer's two rounds
    sb3_rates = iter([300.0, 500.0])

    def fake_measure(env: str, backend: str, workers: int, envs: int, seconds: float,
                     preset: str | None = None, settings: dict | None = None) -> dict[str, object]:
        events.append("pacer")
        return {"steps_per_s": next(rates), "env_steps": 30_000}

    def fake_sb3(algo: str, env: str, seed: int, mode: str, **kwargs: object) -> dict[str, object]:
        events.append(f"sb3 {algo} {mode} steps={kwargs['steps']} threads={kwargs['threads']}")
        return {"steps_per_s": next(sb3_rates), "env_steps": kwargs["steps"]}

    monkeypatch.setattr(throughput, "measure", fake_measure)
    monkeypatch.setattr(throughput, "format_point", lambda point: "")
    monkeypatch.setattr(runs, "sb3", fake_sb3)
    lines: list[str] = []
    out = throughput.rounds("ALE/Pong-v5", ["local"], [2], [8], 45.0, "atari", lines.append, repeats=2,
                            sb3_algo="ppo", sb3_threads=2)
    assert events == ["pacer", "sb3 ppo throughput steps=30000 threads=2"] * 2
    assert [p["pacer_over_sb3"] for p in out["points"]] == [2.0, 1.6]  # 600/300, 800/500: not 600/500
    assert [p["round"] for p in out["points"]] == [0, 1]
    assert out["median_pacer_over_sb3"] == 1.8
    assert lines[-1] == "median pacer / SB3 over 2 points: 1.8"


def test_sb3_gets_the_cores_for_a_cnn_and_one_thread_for_an_mlp(monkeypatch: pytest.MonkeyPatch) -> None:
    from pacer.bench import timed

    monkeypatch.setattr(timed.os, "cpu_count", lambda: 4)
    assert timed.sb3_threads("ALE/Pong-v5", 1) == 4
    assert timed.sb3_threads("BreakoutNoFrameskip-v4", 2) == 2
    assert timed.sb3_threads("ALE/Pong-v5", 8) == 1
    assert timed.sb3_threads("HalfCheetah-v5", 1) == 1


def test_success_is_the_share_of_final_episodes_with_a_positive_return() -> None:
    assert runs.success({"final_returns": [0.0, 0.93, 0.5, -1.0]}) == 0.5
    assert runs.success({"final_returns": None}) is None and runs.success({}) is None


def test_sb3_reads_minigrids_dict_observation_as_pacer_does() -> None:
    """MiniGrid's image codes reach SB3's MultiInputPolicy as a flat vector (its Nature CNN cannot read 7x7), the
    direction one-hot, the mission left out; pacer's evaluator plays the SB3 policy on the same wrapped env."""
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("minigrid")
    import gymnasium as gym
    from stable_baselines3 import PPO

    from pacer.bench import sb3
    from pacer.config import EnvConfig
    from pacer.envs import register_atari
    from pacer.evaluation import run_episodes

    register_atari("MiniGrid-DoorKey-8x8-v0")
    env = sb3.MiniGridKeys(gym.make("MiniGrid-DoorKey-8x8-v0"))
    assert sorted(env.observation_space.spaces) == ["direction", "image"]
    obs, _ = env.reset(seed=0)
    assert obs["image"].dtype == "float32" and obs["image"].shape == (7, 7, 3) and obs["image"].max() > 1
    model = PPO("MultiInputPolicy", env, n_steps=16, batch_size=16, device="cpu")
    extractors = model.policy.features_extractor.extractors
    assert isinstance(extractors["image"], torch.nn.Flatten) and model.policy.features_dim == 147 + 4
    played = run_episodes(sb3.SB3ActorCritic(model.policy, None),
                          EnvConfig(id="MiniGrid-DoorKey-8x8-v0", wrappers=("pacer.bench.sb3:MiniGridKeys",),
                                    max_episode_steps=20), 2, 0)
    assert len(played.returns) == 2
