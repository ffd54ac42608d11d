"""A small custom env with pacer's defaults against fixed envs-per-worker settings (issue 21, "defaults that carry").

    python benchmarks/custom_env.py [--seeds 0,1,2] [--steps 60000] [--envs 32,256]

Trains examples/corridor.py's Corridor (6 cells, a moving goal; a perfect policy scores about 0.96) for `--steps`
env steps on 2 local workers, no early stop, and prints the 100-episode greedy mean of the final parameters: first
with no settings at all (what `pacer train --env examples.corridor:Corridor` picks, said in one line), then with
each `--envs` per worker. Runs alternate seed by seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.corridor import Corridor

import pacer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--envs", default="32,256")
    args = parser.parse_args()
    settings: dict[str, dict[str, int]] = {"defaults": {}}
    settings.update({f"{n} envs/worker": {"env__envs_per_worker": int(n)} for n in args.envs.split(",")})
    results: dict[str, list[float]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as root:
        for seed in (int(s) for s in args.seeds.split(",")):
            for name, extra in settings.items():
                result = pacer.train({"env": {"id": Corridor}}, runtime__total_steps=args.steps, runtime__seed=seed,
                                     runtime__stop_at_return=None, runtime__final_eval_episodes=100,
                                     log__progress=False, log__tensorboard=False,
                                     log__run_dir=f"{root}/{name.replace(' ', '-').replace('/', '')}-{seed}",
                                     **extra)  # type: ignore[arg-type]
                results[name].append(round(float(result.eval_mean or 0.0), 3))
                print(f"seed {seed} {name}: {results[name][-1]}", flush=True)
    print(json.dumps({name: {"finals": v, "median": statistics.median(v)} for name, v in results.items()}))


if __name__ == "__main__":
    main()
