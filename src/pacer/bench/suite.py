"""The benchmark suite: solve, compare, scaling and cold start, each one function that runs its measurements,
prints a table and returns a JSON-ready record. Throughput lives in throughput.py, single runs in runs.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pacer.bench import runs, throughput
from pacer.bench.record import median

# What "solved" means per env (100-episode greedy mean), how often to evaluate (the same env-step cadence for
# every framework), a preset for pacer (None: what `pacer train --env ENV` picks), and a cap on each run's time.
TASKS: dict[str, dict[str, Any]] = {
    "CartPole-v1": {"target": 475.0, "eval_every": 10_000, "preset": None, "cap_s": 300.0},
    "CartPoleNoVel-v1": {"target": 475.0, "eval_every": 10_000, "preset": None, "cap_s": 900.0},
    "LunarLander-v3": {"target": 200.0, "eval_every": 50_000, "preset": None, "cap_s": 900.0},
    "Acrobot-v1": {"target": -100.0, "eval_every": 20_000, "preset": None, "cap_s": 300.0},
    # Taxi's registered threshold (8) is above the optimal policy's expected return (7.93, by value iteration over
    # its 300 start states): a perfect policy's 100-episode mean reaches 8 only 40% of the time, 7.5 95% of the time.
    "Taxi-v4": {"target": 7.5, "eval_every": 20_000, "preset": None, "cap_s": 900.0},
}
CLASSIC_RECENT_TARGET = 475.0
Log = Callable[[str], None]


def task(env: str) -> dict[str, Any]:
    if env not in TASKS:
        from pacer.errors import PacerError

        raise PacerError(f"no benchmark task for {env!r}; choose from {', '.join(TASKS)}")
    return TASKS[env]


def _run_dir(root: Path, name: str) -> Path:
    return root / f"{name}-{time.strftime('%H%M%S')}-{time.monotonic_ns() % 10**6}"


def solve(env: str, seeds: list[int], root: Path, log: Log = print, cap_s: float | None = None,
          settings: dict[str, Any] | None = None) -> dict[str, Any]:
    t = task(env)
    cap = cap_s or t["cap_s"]
    out = []
    for seed in seeds:
        run = runs.pacer_solve(_run_dir(root, f"pacer-{env}-s{seed}"), env, seed, t["target"], t["eval_every"], cap,
                               t["preset"], settings)
        log(format_run(run))
        out.append(run)
    return {"env": env, "target": t["target"], "eval_every": t["eval_every"], "cap_s": cap, "settings": settings,
            "runs": out, "summary": {"pacer": summarize(out)}}


def compare(env: str, seeds: list[int], root: Path, log: Log = print, algos: tuple[str, ...] = ("a2c", "ppo"),
            classic_cap_s: float = 600.0, render_default_seeds: int = 0, throughput_s: float = 10.0,
            cap_s: float | None = None) -> dict[str, Any]:
    """pacer, SB3 A2C and SB3 PPO on the same seeds, alternating run by run (the machine is noisy); on
    CartPole also the classic per-step design. Returns solve times, throughputs and their ratios."""
    t = task(env)
    cap = cap_s or t["cap_s"]
    by: dict[str, list[dict[str, Any]]] = {"pacer": [], **{f"sb3-{a}": [] for a in algos}}
    for seed in seeds:
        run = runs.pacer_solve(_run_dir(root, f"pacer-{env}-s{seed}"), env, seed, t["target"], t["eval_every"], cap,
                               t["preset"])
        log(format_run(run))
        by["pacer"].append(run)
        for algo in algos:
            run = runs.sb3(algo, env, seed, "solve", target=t["target"], eval_every=t["eval_every"], cap_s=cap)
            log(format_run(run))
            by[f"sb3-{algo}"].append(run)
    for seed in seeds[:render_default_seeds]:  # SB3's own default: rgb_array rendering (slow on LunarLander)
        run = runs.sb3("ppo", env, seed, "solve", target=t["target"], eval_every=t["eval_every"], cap_s=cap,
                       render_mode="default")
        log(format_run(run))
        by.setdefault("sb3-ppo-render-default", []).append(run)
    record: dict[str, Any] = {"env": env, "target": t["target"], "eval_every": t["eval_every"], "cap_s": cap,
                              "runs": by, "summary": {name: summarize(rs) for name, rs in by.items()}}
    if env == "CartPole-v1" and classic_cap_s > 0:
        record["classic"] = classic_vs_default(root, seeds[0], classic_cap_s, log)
    record["throughput"] = compare_throughput(env, t["preset"], algos, throughput_s, log)
    record["ratios"] = ratios(record)
    for line in format_ratios(record["ratios"]):
        log(line)
    return record


def classic_vs_default(root: Path, seed: int, cap_s: float, log: Log) -> dict[str, Any]:
    """Time until the mean of the last 100 training episodes reaches 475: the default config vs classic-da2c."""
    common = {"runtime.eval_every": 0, "runtime.final_eval_episodes": 0, "log.checkpoint_every": 0}
    default = runs.pacer_train(_run_dir(root, "default-recent"), seed, common)
    # no episode budget: the classic run gets the whole cap to reach the target
    classic = runs.pacer_train(_run_dir(root, "classic-da2c"), seed, {**common, "runtime.time_limit": cap_s,
                                                                       "runtime.total_episodes": None},
                               preset="classic-da2c", timeout=cap_s * 2 + 120)
    out: dict[str, Any] = {"target": CLASSIC_RECENT_TARGET, "cap_s": cap_s}
    for name, run in (("default", default), ("classic-da2c", classic)):
        reached = runs.time_to_recent(run, CLASSIC_RECENT_TARGET)
        best = max((p[2] for p in run.get("recent_curve", [])), default=None)
        out[name] = {"time_to_recent_s": reached, "best_recent": best, "wall_s": run.get("wall_s"),
                     "env_steps": run.get("env_steps"), "steps_per_s": run.get("steps_per_s"),
                     "recent_curve": run.get("recent_curve"), "error": run.get("error")}
        log(f"  {name}: rolling-100 mean {CLASSIC_RECENT_TARGET:g} "
            + (f"after {reached:.1f} s" if reached is not None else f"not reached (best {best}) in "
               f"{run.get('wall_s')} s"))
    return out


def compare_throughput(env: str, preset: str | None, algos: tuple[str, ...], seconds: float,
                       log: Log) -> dict[str, Any]:
    from pacer.presets import resolve

    preset = preset or "auto"  # the config `pacer train --env ENV` runs, as in the solve runs
    cfg = resolve({"env": {"id": env}}, preset)
    point = throughput.measure(env, "local", cfg.runtime.workers, cfg.env.envs_per_worker, seconds, preset)
    log("  pacer (its config for this env) " + throughput.format_point(point))
    out: dict[str, Any] = {"pacer": point}
    for algo in algos:
        run = runs.sb3(algo, env, 0, "throughput", steps=int(seconds * 6_000))
        log(f"  sb3-{algo}: {run.get('steps_per_s') or 0:,.0f} steps/s {run.get('error', '')}")
        out[f"sb3-{algo}"] = {"steps_per_s": run.get("steps_per_s"), "env_steps": run.get("env_steps"),
                              "error": run.get("error")}
    return out


def summarize(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over all runs; an unsolved run counts as slower than any solved one (never solved), so the median
    solve time exists only when more than half of the runs solved."""
    solved = [r for r in rs if r.get("solved")]
    never = float("inf")
    median_solve = median([r["solve_s"] if r.get("solved") else never for r in rs])
    return {"runs": len(rs), "solved": len(solved),
            "median_solve_s": None if median_solve in (None, never) else median_solve,
            "median_solve_env_steps": median([r["solve_env_steps"] for r in solved]),
            "median_steps_per_s": median([r.get("steps_per_s") for r in rs]),
            "median_eval_time_s": median([r.get("eval_time_s") for r in rs])}


def ratios(record: dict[str, Any]) -> dict[str, Any]:
    """Speed ratios, other / pacer (> 1: pacer is faster), from medians measured in this one run."""
    s = record["summary"]
    out: dict[str, Any] = {}
    base = s["pacer"]["median_solve_s"]
    for name, summ in s.items():
        if name != "pacer" and base and summ["median_solve_s"]:
            out[f"solve_time {name} / pacer"] = round(summ["median_solve_s"] / base, 2)
    tp = record.get("throughput", {})
    base_tp = tp.get("pacer", {}).get("steps_per_s")
    for name, point in tp.items():
        if name != "pacer" and base_tp and point.get("steps_per_s"):
            out[f"throughput pacer / {name}"] = round(base_tp / point["steps_per_s"], 1)
    classic = record.get("classic")
    if classic:
        d, c = classic["default"]["time_to_recent_s"], classic["classic-da2c"]["time_to_recent_s"]
        if d:
            key = "rolling-475 time classic-da2c / default"
            out[key] = round(c / d, 1) if c else f">= {round(classic['cap_s'] / d, 1)} (classic never reached it)"
    return out


def format_ratios(r: dict[str, Any]) -> list[str]:
    return [f"  {k}: {v}" for k, v in r.items()]


def format_run(run: dict[str, Any]) -> str:
    name = run["framework"] + (f"-{run['algo']}" if "algo" in run else "")
    if run.get("render_mode") == "default":
        name += " (render default)"
    if "error" in run:
        return f"  {name} seed {run['seed']}: FAILED {run['error']}"
    solve = f"solved in {run['solve_s']:.1f} s at {run['solve_env_steps']:,} steps" if run.get("solved") else \
        "not solved"
    rate = f"{run['steps_per_s']:,.0f} steps/s" if run.get("steps_per_s") else "n/a steps/s"
    return f"  {name} seed {run['seed']}: {solve} ({rate}, eval {run['eval_time_s']:.1f} s apart)"


def scaling(env: str, workers: list[int], seconds: float, repeats: int, log: Log = print,
            preset: str | None = "auto", backend: str = "local", solve_seeds: int = 0,
            root: Path | None = None) -> dict[str, Any]:
    """Throughput for each worker count, repeated in alternation; speed-up, efficiency, Amdahl fit. `preset`:
    'auto' is what `pacer train --env ENV` picks. With `solve_seeds`, also the env steps (and seconds) to solve
    at each worker count, median over that many seeds (seeds 0, 1, ...)."""
    import os

    from pacer.presets import resolve

    envs = resolve({"env": {"id": env}}, preset).env.envs_per_worker
    rates: dict[int, list[float]] = {n: [] for n in workers}
    for _ in range(repeats):
        for n in workers:
            point = throughput.measure(env, backend, n, envs, seconds, preset)
            log(throughput.format_point(point))
            rates[n].append(point["steps_per_s"] or 0.0)
    med = {n: median(v) or 0.0 for n, v in rates.items()}
    one = med[min(workers)] * min(workers)  # per-worker rate at the smallest count
    speedup = {n: med[n] / one for n in workers}
    cores = os.cpu_count() or 1
    fitted = [n for n in workers if n <= cores]
    serial = amdahl_fit({n: speedup[n] for n in fitted})
    # the same fit on each repeat alone: how far the machine's noise moves the serial fraction
    per_repeat = [amdahl_fit({n: rates[n][r] / (rates[min(workers)][r] * min(workers)) for n in fitted})
                  for r in range(repeats)]
    table: list[dict[str, Any]] = [
        {"workers": n, "steps_per_s": round(med[n], 1), "runs": rates[n], "speedup": round(speedup[n], 3),
         "efficiency": round(speedup[n] / n, 3)} for n in workers]
    for row in table:
        log(f"  {row['workers']:>3} workers: {row['steps_per_s']:>10,.0f} steps/s  speed-up {row['speedup']:.2f}  "
            f"efficiency {row['efficiency']:.0%}")
    projection = {n: round(amdahl(serial, n), 2) for n in (16, 64)}
    worst = max(per_repeat)
    projection_worst = {n: round(amdahl(worst, n), 2) for n in (16, 64)}
    log(f"  Amdahl fit on 1..{cores} workers (this machine's cores): serial fraction {serial:.3f} (per repeat "
        f"{', '.join(f'{f:.3f}' for f in per_repeat)}); PROJECTED speed-up (not measured): 16 cores "
        f"{projection[16]}x ({projection_worst[16]}x with the worst repeat), 64 cores {projection[64]}x "
        f"({projection_worst[64]}x)")
    if solve_seeds:
        t = task(env)
        for row in table:
            n = row["workers"]
            done = [runs.pacer_solve(_run_dir(root or Path("runs/bench"), f"scaling-{env}-{backend}-w{n}-s{seed}"),
                                     env, seed, t["target"], t["eval_every"], t["cap_s"], preset,
                                     {"runtime.backend": backend, "runtime.workers": n}) for seed in range(solve_seeds)]
            row["solve_runs"] = done
            row["solve_env_steps"] = median([r["solve_env_steps"] for r in done if r.get("solved")])
            row["solve_s"] = median([r["solve_s"] for r in done if r.get("solved")])
            row["solved"] = f"{sum(bool(r.get('solved')) for r in done)}/{len(done)}"
            log(f"  {n:>3} workers: solved {row['solved']}, median {row['solve_env_steps'] or 0:,.0f} env steps, "
                f"{row['solve_s'] or 0:.1f} s to solve")
    return {"env": env, "preset": preset, "backend": backend, "envs_per_worker": envs, "seconds": seconds,
            "repeats": repeats, "cores": cores, "table": table, "amdahl_serial_fraction": round(serial, 4),
            "fit_workers": fitted,
            "serial_fraction_per_repeat": [round(f, 4) for f in per_repeat], "projection_not_measured": projection,
            "projection_worst_repeat_not_measured": projection_worst}


def amdahl(serial: float, n: float) -> float:
    return 1.0 / (serial + (1.0 - serial) / n)


def amdahl_fit(speedups: dict[int, float]) -> float:
    """Least-squares serial fraction in [0, 1] (a fine grid: one parameter, a handful of points)."""
    grid = [i / 10_000 for i in range(10_001)]
    return min(grid, key=lambda f: sum((amdahl(f, n) - s) ** 2 for n, s in speedups.items()))


def cold_start(methods: list[str], repeats: int, root: Path, log: Log = print) -> dict[str, Any]:
    """Seconds from the `pacer train` command to the first env step of its 2 workers, per start method."""
    out: dict[str, Any] = {}
    for _ in range(repeats):
        for method in methods:
            run = runs.pacer_train(_run_dir(root, f"cold-{method}"), 0, {
                "runtime.start_method": method, "runtime.total_steps": 20_000, "runtime.eval_every": 0,
                "runtime.final_eval_episodes": 0, "log.checkpoint_every": 0}, timeout=120)
            log(f"  {method}: first env step of every worker after {run.get('cold_start_s')} s "
                f"{run.get('error', '')}")
            out.setdefault(method, []).append(run.get("cold_start_s"))
    return {"workers": 2, "runs": out, "median_s": {m: median(v) for m, v in out.items()}}
