"""Quality after a fixed time: pacer for `pacer_s` seconds against Stable-Baselines3 PPO for `sb3_s` seconds.

For tasks that are never "solved" in minutes (MuJoCo locomotion), the question is how good a policy each gets in a
given time. Both train with their own settings for the env (pacer's preset, the rl-zoo's hyperparameters with
VecNormalize), are timed as training time from the command's start (evaluation excluded), evaluated by the same
evaluator every `eval_every` env steps and once at the end, alternating run by run on the same seeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


def timed(env: str, seeds: list[int], root: Path, log: Callable[[str], None] = print, pacer_s: float = 300.0,
          sb3_s: float = 1500.0, eval_every: int = 50_000, eval_episodes: int = 10, sb3_hyperparams: str = "zoo",
          settings: dict[str, Any] | None = None) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {"pacer": [], "sb3-ppo": []}
    for seed in seeds:
        run_dir = root / f"pacer-{env}-s{seed}-{time.strftime('%H%M%S')}"
        run = runs.pacer_timed(run_dir, env, seed, pacer_s, eval_every, eval_episodes, settings)
        log(format_timed(run, pacer_s))
        by["pacer"].append(run)
        if sb3_s > 0:  # 0: pacer alone (tuning a preset)
            run = runs.sb3("ppo", env, seed, "timed", eval_every=eval_every, cap_s=sb3_s,
                           eval_episodes=eval_episodes, hyperparams=sb3_hyperparams)
            log(format_timed(run, sb3_s))
            by["sb3-ppo"].append(run)
    summary = {name: {"runs": len(rs), "median_final_return": median([r.get("final_return") for r in rs]),
                      "median_env_steps": median([r.get("env_steps") for r in rs]),
                      "median_steps_per_s": median([r.get("steps_per_s") for r in rs])} for name, rs in by.items()}
    p, s = summary["pacer"]["median_final_return"], summary["sb3-ppo"]["median_final_return"]
    verdict = None if p is None or s is None else p >= s
    log(f"  median greedy return: pacer after {pacer_s:g} s {p}, SB3 PPO after {sb3_s:g} s {s}: "
        + ("pacer >= SB3" if verdict else "pacer < SB3" if verdict is not None else "n/a"))
    return {"env": env, "seeds": seeds, "pacer_s": pacer_s, "sb3_s": sb3_s, "sb3_hyperparams": sb3_hyperparams,
            "settings": settings, "eval_every": eval_every,
            "eval_episodes": eval_episodes, "runs": by, "summary": summary, "pacer_at_least_sb3": verdict,
            "published": PUBLISHED.get(env)}


def format_timed(run: dict[str, Any], seconds: float) -> str:
    name = run["framework"] + (f"-{run['algo']}" if "algo" in run else "")
    if "error" in run:
        return f"  {name} seed {run['seed']}: FAILED {run['error']}"
    rate = f"{run['steps_per_s']:,.0f} steps/s" if run.get("steps_per_s") else "n/a steps/s"
    return (f"  {name} seed {run['seed']}: greedy return {run.get('final_return')} after {seconds:g} s of training "
            f"({run.get('env_steps'):,} env steps, {rate})")
