"""Quality after a fixed time: pacer for `pacer_s` seconds against Stable-Baselines3 PPO for `sb3_s` seconds.

For tasks that are never "solved" in minutes (MuJoCo locomotion), the question is how good a policy each gets in a
given time. Both train with their own settings for the env (pacer's preset, the rl-zoo's hyperparameters with
VecNormalize), are timed as training time from the command's start (evaluation excluded), evaluated by the same
evaluator every `eval_every` env steps and once at the end, alternating on the same seeds.

The (env, seed) runs are taken in groups of `sb3_parallel`: each group's pacer runs one at a time (pacer uses every
core), then its SB3 runs side by side. SB3 trains on one thread (pacer.bench.sb3), so on a machine with at least
`sb3_parallel` cores the runs side by side get what each would get alone (a CNN, on Atari, gets the cores divided
among the runs: `sb3_threads`); the record keeps every run's env steps
per second to show it. Every finished run is saved in `root/timed-runs/`; with `resume`, a run saved there with the
same settings is taken instead of trained again, so a long comparison stopped halfway continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from pacer.bench import runs
from pacer.bench.record import median

# rl-baselines3-zoo's benchmark.md (PPO, deterministic evaluation, 1M steps, one run each), for reference: the
# zoo trained the v3 envs; these are not measured here.
PUBLISHED = {
    "HalfCheetah-v5": {"source": "rl-baselines3-zoo benchmark.md, ppo HalfCheetah-v3, 1M steps",
                       "mean": 5819.099, "std": 663.530},
    "Hopper-v5": {"source": "rl-baselines3-zoo benchmark.md, ppo Hopper-v3, 1M steps", "mean": 2410.435,
                  "std": 10.026},
}


def _saved(root: Path, what: dict[str, Any]) -> Path:
    """Where a run with exactly these settings is kept."""
    digest = hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]
    return root / "timed-runs" / f"{what['framework']}-{what['env']}-s{what['seed']}-{digest}.json"


def _once(path: Path, resume: bool, train: Callable[[], runs.Run]) -> runs.Run:
    """A saved run when resuming (errors are trained again), else a new one, saved."""
    if resume and path.is_file():
        run: runs.Run = json.loads(path.read_text())
        if "error" not in run:
            return {**run, "resumed": True}
    run = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run))
    return run


def _groups(jobs: list[tuple[str, int]], size: int) -> Iterator[list[tuple[str, int]]]:
    for i in range(0, len(jobs), size):
        yield jobs[i:i + size]


def sb3_threads(env: str, side_by_side: int) -> int:
    """SB3's torch threads: one for the small MLPs (more only add overhead), the cores it gets for a CNN (Atari),
    as pacer's workers together use every core."""
    from pacer.presets import is_atari

    return max(1, (os.cpu_count() or 1) // side_by_side) if is_atari(env) else 1


def timed(envs: list[str], seeds: list[int], root: Path, log: Callable[[str], None] = print,
          pacer_s: float = 300.0, sb3_s: float = 1500.0, eval_every: int = 50_000, eval_episodes: int = 10,
          sb3_hyperparams: str = "zoo", settings: dict[str, Any] | None = None, sb3_parallel: int = 1,
          resume: bool = False) -> list[dict[str, Any]]:
    """One record per env, in `envs`' order."""
    jobs = [(env, seed) for env in envs for seed in seeds]
    done: dict[tuple[str, int, str], runs.Run] = {}
    common = {"eval_every": eval_every, "eval_episodes": eval_episodes}
    for group in _groups(jobs, max(1, sb3_parallel)):
        for env, seed in group:
            what = {"framework": "pacer", "env": env, "seed": seed, "seconds": pacer_s, "settings": settings,
                    **common}
            run_dir = root / f"pacer-{env}-s{seed}-{time.strftime('%H%M%S')}"
            run = _once(_saved(root, what), resume, partial(
                runs.pacer_timed, run_dir, env, seed, pacer_s, eval_every, eval_episodes, settings))
            log(format_timed({**run, "env": env}, pacer_s))
            done[env, seed, "pacer"] = run
        if sb3_s <= 0:  # pacer alone (tuning a preset)
            continue

        def sb3_run(job: tuple[str, int], side_by_side: int = len(group)) -> runs.Run:
            env, seed = job
            threads = sb3_threads(env, side_by_side)
            what = {"framework": "sb3", "env": env, "seed": seed, "seconds": sb3_s, "hyperparams": sb3_hyperparams,
                    **common, **({"threads": threads} if threads > 1 else {})}
            return _once(_saved(root, what), resume, partial(
                runs.sb3, "ppo", env, seed, "timed", eval_every=eval_every, cap_s=sb3_s, eval_episodes=eval_episodes,
                hyperparams=sb3_hyperparams, threads=threads))

        with ThreadPoolExecutor(max_workers=len(group)) as pool:  # each run is its own process
            for (env, seed), run in zip(group, pool.map(sb3_run, group), strict=True):
                log(format_timed({**run, "env": env}, sb3_s))
                done[env, seed, "sb3-ppo"] = run
    return [_record(env, [done[key] for key in done if key[0] == env and key[2] == "pacer"],
                    [done[key] for key in done if key[0] == env and key[2] == "sb3-ppo"], log, pacer_s, sb3_s,
                    {**common, "seeds": seeds, "sb3_hyperparams": sb3_hyperparams, "settings": settings,
                     "sb3_parallel": sb3_parallel}) for env in envs]


def _record(env: str, pacer: list[runs.Run], sb3: list[runs.Run], log: Callable[[str], None], pacer_s: float,
            sb3_s: float, about: dict[str, Any]) -> dict[str, Any]:
    by = {"pacer": pacer, "sb3-ppo": sb3}
    summary = {name: {"runs": len(rs), "median_final_return": median([r.get("final_return") for r in rs]),
                      "median_final_success": median([runs.success(r) for r in rs]),
                      "median_env_steps": median([r.get("env_steps") for r in rs]),
                      "median_steps_per_s": median([r.get("steps_per_s") for r in rs])} for name, rs in by.items()}
    p, s = summary["pacer"]["median_final_return"], summary["sb3-ppo"]["median_final_return"]
    verdict = None if p is None or s is None else p >= s
    log(f"  {env}: median greedy return: pacer after {pacer_s:g} s {p}, SB3 PPO after {sb3_s:g} s {s}: "
        + ("pacer >= SB3" if verdict else "pacer < SB3" if verdict is not None else "n/a"))
    if env.startswith("MiniGrid-"):
        log(f"  {env}: median success (final episodes reaching the goal): pacer "
            f"{summary['pacer']['median_final_success']}, SB3 PPO {summary['sb3-ppo']['median_final_success']}")
    return {"env": env, "pacer_s": pacer_s, "sb3_s": sb3_s, **about, "runs": by, "summary": summary,
            "pacer_at_least_sb3": verdict, "published": PUBLISHED.get(env)}


def format_timed(run: dict[str, Any], seconds: float) -> str:
    name = run["framework"] + (f"-{run['algo']}" if "algo" in run else "")
    where = f" {run['env']}" if "env" in run else ""
    if "error" in run:
        return f"  {name}{where} seed {run['seed']}: FAILED {run['error']}"
    rate = f"{run['steps_per_s']:,.0f} steps/s" if run.get("steps_per_s") else "n/a steps/s"
    again = ", saved run" if run.get("resumed") else ""
    won = f", success {runs.success(run)}" if str(run.get("env", "")).startswith("MiniGrid-") else ""
    return (f"  {name}{where} seed {run['seed']}: greedy return {run.get('final_return')}{won} after {seconds:g} s "
            f"of training ({run.get('env_steps'):,} env steps, {rate}{again})")
