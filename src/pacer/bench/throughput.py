"""Training throughput: env steps per second over a grid of backends x workers x envs per worker, with where the
time goes inside the workers (env step, inference, returns, loss+backward, optimizer step, parameter sync,
reporting) and the parent's share of a core."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from pacer.bench.runs import steady_rate

PHASES = ("env", "inference", "returns", "learn", "optimizer", "sync", "report")


def measure(env: str, backend: str, workers: int, envs: int, seconds: float, preset: str | None = None,
            settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """One point of the grid: train for `seconds` in this process (the parent, for the local backend)."""
    from pacer.config import nest
    from pacer.training import train  # torch loads only when a measurement runs

    with tempfile.TemporaryDirectory(prefix="pacer-bench-") as tmp:
        result = train(nest(settings or {}), preset=preset, env__id=env, runtime__backend=backend,
                       runtime__workers=workers, env__envs_per_worker=envs, runtime__time_limit=seconds,
                       runtime__total_steps=10**12, runtime__eval_every=0, runtime__final_eval_episodes=0,
                       log__progress=False, log__checkpoint_every=0, log__report_every=0.5, log__run_dir=tmp)
        summary = json.loads((Path(tmp) / "summary.json").read_text())
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    first = max(summary["first_env_step_at"]) if summary["first_env_step_at"] else summary["started_at"]
    active = max(result.wall_time - (first - summary["started_at"]), 1e-9)  # seconds the workers were stepping
    worker_time = summary["worker_time_s"]
    threads = 1 if backend == "inline" else workers  # inline workers take turns in this one process
    split = {phase: round(worker_time.get(phase, 0.0) / (threads * active), 4) for phase in PHASES}
    split["other"] = round(max(0.0, 1.0 - sum(split.values())), 4)
    return {"env": env, "backend": backend, "workers": workers, "envs_per_worker": envs,
            "steps_per_s": steady_rate(rows), "env_steps": result.env_steps, "seconds": round(active, 2),
            "worker_split": split,
            "parent_core_share": round(summary["parent_cpu_s"] / max(result.wall_time, 1e-9), 3)}


def grid(env: str, backends: list[str], workers: list[int], envs: list[int], seconds: float,
         preset: str | None = None, log: Any = print,
         settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    points = []
    for backend in backends:
        for n in workers:
            for e in envs:
                point = measure(env, backend, n, e, seconds, preset, settings)
                log(format_point(point))
                points.append(point)
    return points


def format_point(p: dict[str, Any]) -> str:
    split = " ".join(f"{k} {v:.0%}" for k, v in p["worker_split"].items() if v >= 0.005)
    rate = f"{p['steps_per_s']:>11,.0f}" if p["steps_per_s"] else "        n/a"
    return (f"{p['backend']:>6} {p['workers']:>2} x {p['envs_per_worker']:>4} envs: {rate} steps/s | "
            f"worker time: {split} | parent {p['parent_core_share']:.0%} of a core")
