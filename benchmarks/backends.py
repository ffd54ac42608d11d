"""Measure issue 8's 'done when' items for the backends, and record them with the machine, versions and commit.

    python benchmarks/backends.py solve      # the default CartPole config on inline, local and ray: 100-episode eval
    python benchmarks/backends.py cluster    # a two-node loopback Ray cluster: workers on both nodes, then a node
                                             # lost mid-run; both final policies evaluated over 100 episodes
    python benchmarks/backends.py node-loss  # issue 20: 5 CartPole runs (600k steps, no early stop) that each
                                             # lose a node at ~300k steps: exit status, 100-episode greedy mean
    python benchmarks/backends.py node-join  # issue 20: 2 workers where 1 fits; a node joins: when its worker starts,
                                             # and whether the run (default CartPole, stop when solved) solves
    --group-minibatch pooled                 # either of the last two with runtime.group_minibatch 'pooled' (default:
                                             # the config's own, 'worker' since issue 31)

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

# read when Ray is first imported: every node of the test clusters on 127.0.0.1 (never this machine's address)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
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


def remove_node_at(c: Any, node: Any, run_dir: Path, steps: int, removed: dict[str, Any]) -> threading.Thread:
    """A thread that removes `node` (no graceful stop: a lost machine) once the run's metrics pass `steps` env
    steps, noting the count in `removed['at_steps']`; it gives up after 10 minutes."""
    def remove() -> None:
        metrics = run_dir / "metrics.jsonl"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            rows = metrics.read_text().splitlines() if metrics.exists() else []
            if rows and json.loads(rows[-1])["env_steps"] > steps:
                removed["at_steps"] = json.loads(rows[-1])["env_steps"]
                c.remove_node(node, allow_graceful=False)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=remove, daemon=True)
    thread.start()
    return thread


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
        removed: dict[str, Any] = {}
        remove_node_at(c, lost, run_dir, 100_000, removed)
        result = pacer.train({"runtime": {"backend": "ray", "address": c.address, "workers": 3},
                              "log": {"run_dir": str(run_dir), "progress": False}})
        out["lost_node"] = {**summary(run_dir), **evaluate(run_dir), "removed_at_steps": removed.get("at_steps"),
                            "stop_reason": result.stop_reason}
        print("lost node", out["lost_node"], flush=True)
    finally:
        ray.shutdown()
        c.shutdown()
    return out


def loopback_cluster(head_cpus: int) -> Any:
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": head_cpus, "object_store_memory": 100 * 2**20, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4}})
    ray.init(address=c.address)
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}, "a node is not on loopback"
    return c


NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}


def node_loss(group_minibatch: str | None, runs: int = 5, steps: int = 600_000) -> dict[str, Any]:
    """CartPole-v1 defaults, 2 workers, `steps` env steps, no early stop, seeds 0 to runs - 1; a node with a worker
    removed at ~300k steps. (With group_minibatch 'pooled' the 2-worker group, one learner on 512 envs, is not done
    learning at 600k steps even without a loss: Hogwild's two learners make twice the updates per step.)"""
    import ray

    import pacer

    c = loopback_cluster(head_cpus=2)
    out: dict[str, Any] = {"total_steps": steps, "group_minibatch": group_minibatch or "worker (the default)",
                           "runs": []}
    try:
        for i in range(runs):
            lost = c.add_node(**NODE)
            c.wait_for_nodes()
            run_dir = RUNS / f"node-loss-{i}"
            shutil.rmtree(run_dir, ignore_errors=True)
            removed: dict[str, Any] = {}
            remover = remove_node_at(c, lost, run_dir, 300_000, removed)
            cfg = {"runtime": {"backend": "ray", "address": c.address, "workers": 2, "seed": i,
                               "total_steps": steps, "stop_at_return": None,
                               **({"group_minibatch": group_minibatch} if group_minibatch else {})},
                   "log": {"run_dir": str(run_dir), "progress": False}}
            try:
                result = pacer.train(cfg)
                row = {"exit": 0, "stop_reason": result.stop_reason, **summary(run_dir), **evaluate(run_dir)}
            except Exception as exc:  # the run failed: that is the finding
                row = {"exit": 1, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
            remover.join(timeout=5)
            row["removed_at_steps"] = removed.get("at_steps")
            row["seed"] = i
            row["nodes_used"] = len({p["node_id"] for w in row.get("workers", []) for p in w.get("places", [])})
            print("node loss", i, {k: v for k, v in row.items() if k != "workers"}, flush=True)
            out["runs"].append(row)
    finally:
        ray.shutdown()
        c.shutdown()
    return out


def node_join(group_minibatch: str | None) -> dict[str, Any]:
    """The default CartPole config (stop when solved) on 2 workers where 1 fits; a node joins at ~50k env steps."""
    import ray

    import pacer
    from pacer.backends.ray import RayBackend

    c = loopback_cluster(head_cpus=1)
    added: dict[str, float] = {}
    nodes: list[Any] = []
    poll = RayBackend.poll

    def poll_then_grow(self: RayBackend, timeout: float) -> list[Any]:
        reports = poll(self, timeout)
        if not nodes and self.shared.counters()["env_steps"] > 50_000:  # Ray adds nodes from the main thread only
            added["epoch"] = time.time()
            nodes.append(c.add_node(**NODE))
        return reports

    RayBackend.poll = poll_then_grow  # type: ignore[method-assign]
    run_dir = RUNS / "node-join"
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        result = pacer.train({"runtime": {"backend": "ray", "address": c.address, "workers": 2,
                                          **({"group_minibatch": group_minibatch} if group_minibatch else {})},
                              "log": {"run_dir": str(run_dir), "progress": False}})
        workers = summary(run_dir)["workers"]
        started = sorted(place["at"] for w in workers for place in w["places"])
        out = {"exit": 0, "group_minibatch": group_minibatch, "stop_reason": result.stop_reason,
               "env_steps": result.env_steps,
               "eval_mean": result.eval_mean, "places": started, "node_requested_at": added.get("epoch"),
               "joined_after_s": round(started[-1] - added["epoch"], 2) if "epoch" in added else None}
    finally:
        RayBackend.poll = poll  # type: ignore[method-assign]
        ray.shutdown()
        c.shutdown()
    print("node join", out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["solve", "cluster", "node-loss", "node-join"])
    parser.add_argument("--group-minibatch", choices=["pooled", "worker"], default=None)
    args = parser.parse_args()
    kind = args.kind
    sys.path.insert(0, str(ROOT / "src"))
    from pacer.bench import record

    record.begin()
    if kind in ("node-loss", "node-join"):
        result = {"node-loss": node_loss, "node-join": node_join}[kind](args.group_minibatch)
    else:
        result = {"solve": solve, "cluster": cluster}[kind]()
    print("wrote", record.write(f"backends-{kind}", result))


if __name__ == "__main__":
    main()
