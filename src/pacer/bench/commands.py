"""`pacer bench ...`: each subcommand measures, prints a table, writes JSON (and a PNG) under benchmarks/results."""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path
from typing import Any

from pacer.errors import PacerError


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _words(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def _settings(items: list[str]) -> dict[str, Any]:
    from pacer.config import parse_settings

    return parse_settings(items)


def add_parser(sub: Any) -> None:
    bench = sub.add_parser("bench", help="measure throughput, time to solve, scaling; compare with SB3")
    kinds = bench.add_subparsers(dest="bench", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where results go")
    common.add_argument("--runs-dir", type=Path, default=Path("runs/bench"), help="where the measured runs go")

    tp = kinds.add_parser("throughput", parents=[common], help="env-steps/s over a grid, with per-phase split")
    tp.add_argument("--env", default="CartPole-v1")
    tp.add_argument("--preset", default="auto", help="default: the one `pacer train --env ENV` picks")
    tp.add_argument("--backends", type=_words, default=["inline", "local"])
    tp.add_argument("--workers", type=_ints, default=[1, 2])
    tp.add_argument("--envs", type=_ints, default=[16, 64, 256], help="envs per worker")
    tp.add_argument("--seconds", type=float, default=8.0, help="training time per grid point")
    tp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any config key for every grid point, e.g. --set algo.epochs=1 (repeatable)")
    tp.add_argument("--env-limit", action="store_true",
                    help="after each point, the env-only limit: the same processes x envs stepping random actions")
    tp.add_argument("--sb3", choices=["none", "ppo", "a2c"], default="none",
                    help="after each round of the grid, SB3's env steps/s (rl-zoo settings for the env, the same "
                         "preprocessing on Atari; bench extra), and pacer / SB3 per point")
    tp.add_argument("--sb3-threads", type=int, default=0,
                    help="SB3's torch threads (0: the machine's cores for Atari's CNN, else 1)")
    tp.add_argument("--rounds", type=int, default=1, help="the grid (and SB3) again, alternating: the machine is noisy")

    for name, text in (("solve", "time from the command to a solved policy, several seeds"),
                       ("compare", "solve and throughput against Stable-Baselines3 A2C/PPO (needs the bench extra)")):
        p = kinds.add_parser(name, parents=[common], help=text)
        p.add_argument("--env", default="CartPole-v1")
        p.add_argument("--seeds", type=int, default=5)
        p.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST..FIRST+N-1 (tune on others)")
        p.add_argument("--cap", type=float, default=None, help="seconds per run before it counts as unsolved")
        if name == "solve":
            p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="any config key for pacer's runs, e.g. --set env.envs_per_worker=256 (repeatable)")
        if name == "compare":
            p.add_argument("--algos", type=_words, default=["a2c", "ppo"])
            p.add_argument("--classic-cap", type=float, default=600.0,
                           help="CartPole: seconds for classic-da2c to reach a rolling mean of 475 (0: skip)")
            p.add_argument("--render-default-seeds", type=int, default=0,
                           help="also run SB3 PPO with its default rgb_array rendering for this many seeds")
            p.add_argument("--throughput-seconds", type=float, default=10.0)

    tm = kinds.add_parser("timed", parents=[common],
                          help="greedy return after a set time, pacer vs SB3 PPO (MuJoCo, Atari; bench extra)")
    tm.add_argument("--env", type=_words, default=["HalfCheetah-v5"],
                    help="one env, or several separated by commas (their SB3 runs can then share a group)")
    tm.add_argument("--seeds", type=int, default=1)
    tm.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST..FIRST+N-1 (tune on others)")
    tm.add_argument("--pacer-seconds", type=float, default=300.0)
    tm.add_argument("--sb3-seconds", type=float, default=1500.0, help="0: pacer alone")
    tm.add_argument("--eval-every", type=int, default=50_000)
    tm.add_argument("--eval-episodes", type=int, default=10)
    tm.add_argument("--sb3", choices=["zoo", "defaults"], default="zoo",
                    help="SB3 PPO with rl-baselines3-zoo's hyperparameters for the env, or the library's defaults")
    tm.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key for pacer's runs")
    tm.add_argument("--sb3-parallel", type=int, default=1,
                    help="SB3 runs side by side (one thread each; at most the machine's cores); pacer runs alone")
    tm.add_argument("--resume", action="store_true",
                    help="take runs already saved in RUNS_DIR/timed-runs with the same settings instead of training")

    sc = kinds.add_parser("scaling", parents=[common], help="speed-up over worker counts, Amdahl fit")
    sc.add_argument("--env", default="LunarLander-v3")
    sc.add_argument("--preset", default="auto", help="default: the one `pacer train --env ENV` picks")
    sc.add_argument("--workers", type=_ints, default=[1, 2, 4])
    sc.add_argument("--seconds", type=float, default=20.0)
    sc.add_argument("--repeats", type=int, default=3)
    sc.add_argument("--backend", "--backends", dest="backend", default="local",
                    help="local, ray (a private instance; every socket on loopback) or inline")
    sc.add_argument("--solve-seeds", type=int, default=0, metavar="N",
                    help="also the env steps to solve at each worker count, median of N seeds (0: skip)")

    cs = kinds.add_parser("coldstart", parents=[common], help="command to first env step of 2 workers")
    cs.add_argument("--methods", type=_words, default=["forkserver", "spawn", "fork"])
    cs.add_argument("--repeats", type=int, default=3)


def _seeds(args: argparse.Namespace) -> list[int]:
    return list(range(args.first_seed, args.first_seed + args.seeds))


def run(args: argparse.Namespace) -> int:
    from pacer.bench import plots, record, suite, throughput, timed

    def log(line: str) -> None:
        print(line, flush=True)

    record.begin()
    kind = args.bench
    png: Path | None = None
    result: dict[str, Any]
    if kind == "throughput":
        settings = _settings(args.set)
        if args.rounds < 1 or args.sb3_threads < 0:
            raise PacerError("--rounds must be at least 1 and --sb3-threads at least 0")
        if args.sb3 != "none" and importlib.util.find_spec("stable_baselines3") is None:
            raise PacerError("--sb3 needs Stable-Baselines3: pip install 'pacer-rl[bench]'")
        result = throughput.rounds(args.env, args.backends, args.workers, args.envs, args.seconds, args.preset, log,
                                   settings, args.env_limit, args.rounds, None if args.sb3 == "none" else args.sb3,
                                   args.sb3_threads or timed.sb3_threads(args.env, 1))
    elif kind == "solve":
        result = suite.solve(args.env, _seeds(args), args.runs_dir, log, args.cap, _settings(args.set))
        s = result["summary"]["pacer"]
        log(f"pacer: {s['solved']}/{s['runs']} seeds solved, median {s['median_solve_s']} s")
    elif kind == "compare":
        if importlib.util.find_spec("stable_baselines3") is None:
            raise PacerError("compare needs Stable-Baselines3: pip install 'pacer-rl[bench]'")
        result = suite.compare(args.env, _seeds(args), args.runs_dir, log, tuple(args.algos),
                               args.classic_cap, args.render_default_seeds, args.throughput_seconds, args.cap)
        png = args.out / record.file_name(f"compare-{args.env}.png")
        args.out.mkdir(parents=True, exist_ok=True)
        plots.compare_curves(result, png)
    elif kind == "timed":
        if importlib.util.find_spec("stable_baselines3") is None:
            raise PacerError("timed needs Stable-Baselines3: pip install 'pacer-rl[bench]'")
        if not 1 <= args.sb3_parallel <= (os.cpu_count() or 1):
            raise PacerError(f"--sb3-parallel must be 1..{os.cpu_count() or 1} (this machine's cores): side by side "
                             "runs beyond the cores would each get less than a run alone")
        args.out.mkdir(parents=True, exist_ok=True)
        for result in timed.timed(args.env, _seeds(args), args.runs_dir, log, args.pacer_seconds, args.sb3_seconds,
                                  args.eval_every, args.eval_episodes, args.sb3, _settings(args.set),
                                  args.sb3_parallel, args.resume):
            png = plots.timed_curves(result, args.out / record.file_name(f"timed-{result['env']}.png"))
            path = record.write(f"timed-{result['env']}", {**result, "plot": str(png)}, args.out)
            log(f"wrote {path} and {png}")
        return 0
    elif kind == "scaling":
        result = suite.scaling(args.env, args.workers, args.seconds, args.repeats, log, args.preset, args.backend,
                               args.solve_seeds, args.runs_dir)
        backend = "" if args.backend == "local" else f"-{args.backend}"
        png = args.out / record.file_name(f"scaling-{args.env}{backend}.png")
        args.out.mkdir(parents=True, exist_ok=True)
        plots.speedup_curve(result, png)
    else:
        result = suite.cold_start(args.methods, args.repeats, args.runs_dir, log)
        log(f"median seconds to the first env step: {result['median_s']}")
    name = kind if kind in ("coldstart",) else f"{kind}-{getattr(args, 'env', '')}"
    path = record.write(name, {**result, "plot": str(png) if png else None}, args.out)
    log(f"wrote {path}" + (f" and {png}" if png else ""))
    return 0
