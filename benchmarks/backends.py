"""Measure issue 8's 'done when' items for the backends, and record them with the machine, versions and commit.

    python benchmarks/backends.py solve      # the default CartPole config on inline, local and ray: 100-episode eval
    python benchmarks/backends.py cluster    # a two-node loopback Ray cluster: workers on both nodes, then a node
                                             # lost mid-run; both final policies evaluated over 100 episodes

Results go to benchmarks/results/backends-<kind>-<date>.json (src/pacer/bench/record.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "bench"
PACER = [sys.executable, "-m", "pacer"]


def evaluate(run_dir: Path) -> dict[str, Any]:
    out = subprocess.run([*PACER, "eval", str(run_dir), "--episodes", "100", "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    return {"eval_mean": report["mean"], "eval_std": report["std"], "eval_min": report["min"]}


def summary(run_dir: Path) -> dict[str, Any]:
    data = json.loads((run_dir / "summary.json").read_text())
    return {k: data[k] for k in ("env_steps", "wall_time_s", "steps_per_s", "stop_reason", "workers")}


def solve() -> dict[str, Any]:
    """The same (default) config on each backend, seed 0, as whole commands."""
    out: dict[str, Any] = {}
    for backend in ("inline", "local", "ray"):
        run_dir = RUNS / f"backends-cartpole-{backend}"
        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = [*PACER, "train", "--backend", backend, "--run-dir", str(run_dir), "--no-progress"]
        tic = time.monotonic()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        out[backend] = {"command": " ".join(cmd[2:]), "exit": done.returncode,
                        "command_wall_s": round(time.monotonic() - tic, 2)}
        if done.returncode == 0:
            out[backend].update(summary(run_dir), **evaluate(run_dir))
        else:
            out[backend]["stderr"] = done.stderr[-2000:]
        print(backend, out[backend], flush=True)
    return out


def cluster() -> dict[str, Any]:
    """A head (2 CPUs) and two more nodes (1 CPU each) on 127.0.0.1; the default CartPole config on 2 workers,
    then again with a node removed once training runs."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    import pacer

    node = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": 100 * 2**20,
                                                      "include_dashboard": False})
    c.add_node(**node)
    ray.init(address=c.address)
    out: dict[str, Any] = {"nodes": sorted({n["NodeManagerAddress"] for n in ray.nodes()})}
    try:
        run_dir = RUNS / "backends-cluster"
        shutil.rmtree(run_dir, ignore_errors=True)
        result = pacer.train({"runtime": {"backend": "ray", "address": c.address},
                              "log": {"run_dir": str(run_dir), "progress": False}})
        out["two_nodes"] = {**summary(run_dir), **evaluate(run_dir),
                            "worker_nodes": len({w["node_id"] for w in summary(run_dir)["workers"]})}
        print("two nodes", out["two_nodes"], flush=True)

        lost = c.add_node(**node)
        c.wait_for_nodes()
        run_dir = RUNS / "backends-cluster-lost-node"
        shutil.rmtree(run_dir, ignore_errors=True)
        removed: dict[str, float] = {}

        def remove() -> None:
            metrics = run_dir / "metrics.jsonl"
            while True:
                rows = metrics.read_text().splitlines() if metrics.exists() else []
                if rows and json.loads(rows[-1])["env_steps"] > 100_000:
                    removed["at_steps"] = json.loads(rows[-1])["env_steps"]
                    c.remove_node(lost, allow_graceful=False)
                    return
                time.sleep(0.2)

        remover = threading.Thread(target=remove, daemon=True)
        remover.start()
        result = pacer.train({"runtime": {"backend": "ray", "address": c.address, "workers": 3},
                              "log": {"run_dir": str(run_dir), "progress": False}})
        out["lost_node"] = {**summary(run_dir), **evaluate(run_dir), "removed_at_steps": removed.get("at_steps"),
                            "stop_reason": result.stop_reason}
        print("lost node", out["lost_node"], flush=True)
    finally:
        ray.shutdown()
        c.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["solve", "cluster"])
    kind = parser.parse_args().kind
    sys.path.insert(0, str(ROOT / "src"))
    from pacer.bench import record

    record.begin()
    result = solve() if kind == "solve" else cluster()
    print("wrote", record.write(f"backends-{kind}", result))


if __name__ == "__main__":
    main()
