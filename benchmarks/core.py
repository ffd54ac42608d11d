"""Measure the core 'done when' items of pacer, as whole commands, and record them with the machine and date.

    python benchmarks/core.py cartpole acrobot pendulum classic    # or any subset

Each experiment runs `pacer train` and `pacer eval` as subprocesses in a new session, times them, and checks that
nothing is left behind afterwards (processes of the session, zombies included; new /dev/shm entries; new
/tmp/pymp-* directories). Results go to benchmarks/results/core-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from leftovers import session_processes, shm_and_tmp  # noqa: E402 - the tests' own leftover checks

RUNS = ROOT / "runs" / "bench"
PACER = [sys.executable, "-m", "pacer"]

EXPERIMENTS: dict[str, list[tuple[str, list[str]]]] = {
    "cartpole": [(f"cartpole-s{s}", ["--seed", str(s)]) for s in range(5)],
    "acrobot": [(f"acrobot-s{s}", ["--preset", "acrobot", "--seed", str(s)]) for s in range(3)],
    "pendulum": [(f"pendulum-s{s}", ["--preset", "pendulum", "--seed", str(s)]) for s in range(2)],
    "classic": [("classic-da2c-s0", ["--preset", "classic-da2c", "--seed", "0"])],
}


def run(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess[str], list[tuple[int, str]]]:
    tic = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    out, err = proc.communicate()
    wall = time.monotonic() - tic
    return wall, subprocess.CompletedProcess(cmd, proc.returncode, out, err), session_processes(proc.pid)


def first_last_return(run_dir: Path) -> tuple[float | None, float | None]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    returns = [r["return_recent"] for r in rows if r.get("return_recent") is not None]
    return (returns[0], returns[-1]) if returns else (None, None)


def experiment(name: str, args: list[str]) -> dict[str, Any]:
    run_dir = (RUNS / name).relative_to(ROOT)  # commands run from the project root
    shutil.rmtree(ROOT / run_dir, ignore_errors=True)
    before = shm_and_tmp()
    train_cmd = [*PACER, "train", "--run-dir", str(run_dir), "--no-progress", *args]
    train_wall, train, train_left = run(train_cmd)
    eval_cmd = [*PACER, "eval", str(run_dir), "--episodes", "100", "--json"]
    eval_wall, ev, eval_left = run(eval_cmd)
    time.sleep(0.5)
    summary = json.loads((ROOT / run_dir / "summary.json").read_text()) if train.returncode == 0 else {}
    result = json.loads(ev.stdout) if ev.returncode == 0 else {}
    first, last = first_last_return(ROOT / run_dir)
    row = {
        "name": name, "train_command": " ".join(["pacer", *train_cmd[3:]]),
        "eval_command": " ".join(["pacer", *eval_cmd[3:]]), "train_exit": train.returncode,
        "eval_exit": ev.returncode, "train_wall_s": round(train_wall, 2), "eval_wall_s": round(eval_wall, 2),
        "env_steps": summary.get("env_steps"), "episodes": summary.get("episodes"),
        "steps_per_s": summary.get("steps_per_s"), "eval_time_in_training_s": summary.get("eval_time_s"),
        "eval100_mean": result.get("mean"), "eval100_std": result.get("std"),
        "first_recent_return": first, "last_recent_return": last,
        "leftover_processes": train_left + eval_left, "leftover_shm_or_pymp": sorted(shm_and_tmp() - before),
    }
    if train.returncode != 0 or ev.returncode != 0:
        row["stderr"] = (train.stderr + ev.stderr)[-2000:]
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("experiments", nargs="+", choices=list(EXPERIMENTS))
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    record: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit.stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "command": " ".join(["python", "benchmarks/core.py", *args.experiments]), "runs": [],
    }
    for exp in args.experiments:
        for name, extra in EXPERIMENTS[exp]:
            row = experiment(name, extra)
            record["runs"].append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.endswith("command")}), flush=True)
    out = ROOT / "benchmarks" / "results" / f"core-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
