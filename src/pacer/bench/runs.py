"""One measured run per function, each in its own process started the way a user starts it, so that every time
counts from the command's start (imports and worker start-up included). Evaluation time is excluded: pacer's
runs hold their workers while the parent evaluates (`runtime.pause_for_eval`), Stable-Baselines3 evaluates
between rollouts; both use the same evaluator (`pacer.evaluation.run_episodes`, 100 greedy episodes)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

Run = dict[str, Any]
EVAL_EPISODES = 100


def _run(cmd: list[str], timeout: float) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Start `cmd` in its own session; returns the epoch time just before the start, and its result. On timeout
    the whole process group is asked to stop, then killed: a benchmark never leaves processes behind."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    return t0, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def pacer_train(run_dir: Path, seed: int, settings: dict[str, Any], preset: str | None = None,
                timeout: float = 3600.0, env: str | None = None) -> Run:
    """`pacer train [--env ENV]` with `--set key=value` settings (without `env`, the preset's or the default env);
    returns its times relative to the command's start."""
    cmd = [sys.executable, "-m", "pacer", "train", "--no-progress", "--run-dir", str(run_dir), "--seed", str(seed)]
    if env is not None:
        cmd += ["--env", env]
    if preset is not None:
        cmd += ["--preset", preset]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    t0, done = _run(cmd, timeout)
    if done.returncode != 0 or not (run_dir / "summary.json").is_file():
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return {"framework": "pacer", "seed": seed, "error": f"exit {done.returncode}: {tail}", "command": cmd}
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    offset = summary["started_at"] - t0  # imports and set-up before the run's clock started

    def since_start(row: dict[str, Any]) -> float:
        return offset + row["time"] - row["eval_time"]

    curve = [[round(since_start(r), 3), r["env_steps"], r["eval_return"]] for r in rows
             if r.get("eval_return") is not None]
    recent = [[round(since_start(r), 3), r["env_steps"], r["return_recent"]] for r in rows
              if r.get("return_recent") is not None]
    first_steps = summary.get("first_env_step_at") or []
    return {"framework": "pacer", "seed": seed, "command": cmd, "run_dir": str(run_dir),
            "stop_reason": summary["stop_reason"], "env_steps": summary["env_steps"],
            "wall_s": round(offset + summary["wall_time_s"], 3),
            "eval_time_s": summary["eval_time_s"], "cold_start_s": round(max(first_steps) - t0, 3)
            if first_steps else None, "steps_per_s": steady_rate(rows), "curve": curve, "recent_curve": recent,
            "worker_time_s": summary.get("worker_time_s"), "parent_cpu_s": summary.get("parent_cpu_s")}


def pacer_solve(run_dir: Path, env: str, seed: int, target: float, eval_every: int, cap_s: float,
                preset: str | None = None, settings: dict[str, Any] | None = None) -> Run:
    """Train `env` as a user would (`pacer train --env ENV`: its preset unless `preset` says otherwise) until a
    greedy evaluation reaches `target` and a 100-episode evaluation confirms it (the run then stops), the step
    budget is spent, or `cap_s` seconds of training pass."""
    run = pacer_train(run_dir, seed, {
        **(settings or {}), "runtime.stop_at_return": target, "runtime.eval_every": eval_every,
        "runtime.confirm_episodes": EVAL_EPISODES, "runtime.pause_for_eval": True, "runtime.eval_share": 1.0,
        "runtime.time_limit": cap_s,
        "runtime.final_eval_episodes": 0, "log.checkpoint_every": 0}, preset, timeout=cap_s * 3 + 120, env=env)
    return solved_at_stop(run, target)


def solved_at_stop(run: Run, target: float) -> Run:
    """A run solved when it stopped on its confirmed target; the time to that is the command's time to the stop
    with every evaluation (and the confirming one) taken out."""
    run["target"] = target
    run["solved"] = run.get("stop_reason") == "target_return"
    run["solve_s"] = round(run["wall_s"] - run["eval_time_s"], 3) if run["solved"] else None
    run["solve_env_steps"] = run["env_steps"] if run["solved"] else None
    return run


def time_to_recent(run: Run, target: float) -> float | None:
    """Seconds from the command's start until the mean of the last 100 training episodes reached `target`."""
    return next((point[0] for point in run.get("recent_curve", []) if point[2] >= target), None)


def steady_rate(rows: list[dict[str, Any]]) -> float | None:
    """Env steps per second of training between the first report and the last row (start-up excluded)."""
    live = [r for r in rows if r["env_steps"] > 0]
    if len(live) < 2:
        return None
    first, last = live[0], live[-1]
    seconds = (last["time"] - last["eval_time"]) - (first["time"] - first["eval_time"])
    return round((last["env_steps"] - first["env_steps"]) / seconds, 1) if seconds > 0 else None


def pacer_timed(run_dir: Path, env: str, seed: int, seconds: float, eval_every: int, eval_episodes: int,
                settings: dict[str, Any] | None = None) -> Run:
    """Train `env` for `seconds` of training time (its preset, no early stop), evaluating every `eval_every` steps
    with the workers held; `final_return` is the greedy mean of the final parameters."""
    run = pacer_train(run_dir, seed, {
        **(settings or {}), "runtime.time_limit": seconds, "runtime.stop_at_return": None,
        "runtime.total_steps": 10**12, "runtime.eval_every": eval_every, "runtime.eval_episodes": eval_episodes,
        "runtime.pause_for_eval": True, "runtime.eval_share": 1.0, "runtime.final_eval_episodes": eval_episodes,
        "log.checkpoint_every": 0},
        timeout=seconds * 3 + 300, env=env)
    if "error" not in run:
        summary = json.loads((run_dir / "summary.json").read_text())
        run["final_return"], run["final_returns"] = summary.get("eval_mean"), summary.get("eval_returns")
    return run


def success(run: Run) -> float | None:
    """The share of a timed run's final episodes with a positive return: MiniGrid pays only on reaching the goal
    (1 - 0.9 x steps / max steps), so this is its success rate."""
    returns = run.get("final_returns")
    return round(sum(r > 0 for r in returns) / len(returns), 4) if returns else None


def sb3(algo: str, env: str, seed: int, mode: str, *, target: float | None = None, eval_every: int = 0,
        cap_s: float = 600.0, steps: int = 100_000, render_mode: str = "none",
        eval_episodes: int = EVAL_EPISODES, hyperparams: str = "zoo", threads: int = 1) -> Run:
    """Stable-Baselines3 with the rl-zoo hyperparameters (or its library defaults: `hyperparams='defaults'`,
    pacer.bench.sb3) on `threads` torch threads, timed like pacer's runs."""
    cmd = [sys.executable, "-m", "pacer.bench.sb3", "--algo", algo, "--env", env, "--seed", str(seed),
           "--mode", mode, "--render-mode", render_mode, "--hyperparams", hyperparams, "--threads", str(threads)]
    if mode == "solve":
        cmd += ["--target", str(target)]
    if mode in ("solve", "timed"):
        cmd += ["--eval-every", str(eval_every), "--eval-episodes", str(eval_episodes), "--max-seconds", str(cap_s)]
    else:
        cmd += ["--steps", str(steps)]
    t0, done = _run(cmd, timeout=cap_s * 3 + 300)
    try:
        out = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return {"framework": "sb3", "algo": algo, "seed": seed, "error": f"exit {done.returncode}: {tail}",
                "command": cmd}
    offset = out["train_started_at"] - t0
    run: Run = {"framework": "sb3", "algo": algo, "seed": seed, "command": cmd, "render_mode": render_mode,
                "env_steps": out["env_steps"], "eval_time_s": out["eval_time_s"], "steps_per_s": out["steps_per_s"],
                "startup_s": round(offset, 3), "hyperparams": out.get("hyperparams"),
                "curve": [[round(offset + t, 3), steps_, mean] for t, steps_, mean in out.get("curve", [])]}
    if mode == "timed":
        run["final_return"] = out.get("final_return")
        run["wall_s"] = round(offset + out["train_time_s"], 3)
    if mode == "solve":
        run["target"] = target
        run["solved"] = bool(out["solved"])
        run["solve_s"] = round(out["solved_at"] - t0 - out["eval_time_before_solve_s"], 3) if out["solved"] else None
        run["solve_env_steps"] = out.get("solve_env_steps")
    return run
