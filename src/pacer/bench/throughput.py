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


def _step_randomly(env: str, envs: int, seconds: float, kwargs: dict[str, Any], wrappers: list[Any], vector: str,
                   seed: int) -> tuple[int, float]:
    """Entry point of an env-only process: step a batch of envs with random actions; returns (steps, seconds)."""
    import time

    import numpy as np

    from pacer.config import EnvConfig
    from pacer.envs import make_vector_env

    venv = make_vector_env(EnvConfig(id=env, kwargs=kwargs, wrappers=tuple(wrappers), vector=vector), envs)  # type: ignore[arg-type]
    venv.reset(seed=seed)
    venv.action_space.seed(seed)
    actions = [venv.action_space.sample() for _ in range(64)]  # drawn up front: the policy's cost is not the env's
    steps, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        for batch in actions:
            venv.step(np.asarray(batch))
        steps += 64 * envs
    elapsed = time.perf_counter() - tic
    venv.close()
    return steps, elapsed


def env_limit(env: str, workers: int, envs: int, seconds: float, kwargs: dict[str, Any] | None = None,
              wrappers: list[Any] | None = None, vector: str = "gym") -> float:
    """Env steps/s of `workers` processes that only step the same env batch as training does (random actions, no
    model; the same kwargs, wrappers and vector env): the most any trainer could reach with that many processes."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        results = pool.starmap(_step_randomly, [(env, envs, seconds, kwargs or {}, wrappers or [], vector, 1000 + i)
                                                for i in range(workers)])
    return round(sum(steps / elapsed for steps, elapsed in results), 1)


def _env_spec(env: str, preset: str | None,
              settings: dict[str, Any] | None) -> tuple[dict[str, Any], list[Any], str]:
    """The kwargs, wrappers and vector env training makes the env with."""
    from pacer.config import merge, nest
    from pacer.presets import resolve

    cfg = resolve(merge(nest(settings or {}), {"env": {"id": env}}), preset).env
    return dict(cfg.kwargs), list(cfg.wrappers), cfg.vector


def grid(env: str, backends: list[str], workers: list[int], envs: list[int], seconds: float,
         preset: str | None = None, log: Any = print, settings: dict[str, Any] | None = None,
         with_env_limit: bool = False) -> list[dict[str, Any]]:
    """Each point trains for `seconds`; with `with_env_limit`, right after it the env-only limit of the same
    workers x envs is measured (the same machine state), and the point carries their ratio."""
    points = []
    for backend in backends:
        for n in workers:
            for e in envs:
                point = measure(env, backend, n, e, seconds, preset, settings)
                if with_env_limit:
                    limit = env_limit(env, n, e, seconds, *_env_spec(env, preset, settings))
                    point["env_limit_steps_per_s"] = limit
                    point["share_of_env_limit"] = round((point["steps_per_s"] or 0.0) / limit, 3) if limit else None
                log(format_point(point))
                points.append(point)
    return points


def rounds(env: str, backends: list[str], workers: list[int], envs: list[int], seconds: float,
           preset: str | None = None, log: Any = print, settings: dict[str, Any] | None = None,
           with_env_limit: bool = False, repeats: int = 1, sb3_algo: str | None = None,
           sb3_threads: int = 1) -> dict[str, Any]:
    """The grid `repeats` times; with `sb3_algo`, each round ends with SB3's throughput on the same env (its rl-zoo
    settings), and every point carries pacer / SB3 of its own round: ratios measured side by side, as the machine
    is noisy. SB3 steps as many env steps as pacer's fastest point of the round made, at least 2,048."""
    from pacer.bench import runs
    from pacer.bench.record import median

    points: list[dict[str, Any]] = []
    sb3: list[dict[str, Any]] = []
    for i in range(repeats):
        done = grid(env, backends, workers, envs, seconds, preset, log, settings, with_env_limit)
        if sb3_algo is not None:
            steps = max(2_048, max(p["env_steps"] for p in done))
            run = runs.sb3(sb3_algo, env, i, "throughput", steps=steps, threads=sb3_threads)
            rate = run.get("steps_per_s")
            log(f"  sb3-{sb3_algo} ({sb3_threads} torch thread{'s' * (sb3_threads > 1)}): "
                + (f"{rate:,.1f} steps/s" if rate else f"failed: {run.get('error')}"))
            sb3.append({"round": i, "algo": sb3_algo, "threads": sb3_threads, "steps_per_s": rate,
                        "env_steps": run.get("env_steps"), "error": run.get("error")})
            for p in done:
                p["sb3_steps_per_s"] = rate
                p["pacer_over_sb3"] = round(p["steps_per_s"] / rate, 3) if rate and p["steps_per_s"] else None
        points += [{**p, "round": i} for p in done]
    out: dict[str, Any] = {"settings": settings, "rounds": repeats, "points": points}
    if sb3_algo is not None:
        out["sb3"] = sb3
        out["median_pacer_over_sb3"] = median([p.get("pacer_over_sb3") for p in points])
        log(f"median pacer / SB3 over {len(points)} points: {out['median_pacer_over_sb3']}")
    return out


def format_point(p: dict[str, Any]) -> str:
    split = " ".join(f"{k} {v:.0%}" for k, v in p["worker_split"].items() if v >= 0.005)
    rate = f"{p['steps_per_s']:>11,.0f}" if p["steps_per_s"] else "        n/a"
    limit = (f" | env-only limit {p['env_limit_steps_per_s']:,.0f} steps/s ({p['share_of_env_limit']:.0%} of it)"
             if p.get("env_limit_steps_per_s") else "")
    return (f"{p['backend']:>6} {p['workers']:>2} x {p['envs_per_worker']:>4} envs: {rate} steps/s | "
            f"worker time: {split} | parent {p['parent_core_share']:.0%} of a core{limit}")
