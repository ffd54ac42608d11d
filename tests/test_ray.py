"""The Ray backend on a two-node cluster on this machine (loopback only): workers on both nodes, a node lost
mid-run, an actor that raises, Ctrl-C, and checkpoints that resume on another backend. Marker `ray`."""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

# read by Ray when it is imported: every node on 127.0.0.1 (not the machine's network address), no usage stats
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
ray = pytest.importorskip("ray")

import pacer  # noqa: E402
from faults import Run  # noqa: E402
from pacer import checkpoint  # noqa: E402
from ray_envs import make_crashing_cartpole  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
FAST_HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}  # a lost node seen in ~2 s


@pytest.fixture(scope="module")
def cluster() -> Any:
    """Head with 2 CPUs, a second node with 1, both on 127.0.0.1; the driver connected to it."""
    from ray.cluster_utils import Cluster

    os.environ["PYTHONPATH"] = str(Path(__file__).parent)  # actors import the tests' helpers
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "object_store_memory": 100 * 2**20, "include_dashboard": False,
        "_system_config": FAST_HEALTH})
    cluster.add_node(**NODE)
    ray.init(address=cluster.address)
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.timeout(180)
def test_ctrl_c_stops_a_ray_run_cleanly(tmp_path: Path) -> None:
    """A private Ray instance, signalled as a terminal does: exit 130, a checkpoint, nothing left behind. First in
    the module, before the cluster fixture connects this process to a cluster."""
    run = Run(tmp_path / "run", "--backend", "ray", "--total-steps", "100000000", "--set",
              "runtime.stop_at_return=null")
    try:
        run.wait_for_steps(1, timeout=120)
        run.signal(signal.SIGINT)
        assert run.wait(90) == 130, run.stderr
        assert "Traceback" not in run.stderr
        assert checkpoint.load(run.run_dir / "checkpoints" / "final.pt")["counters"]["env_steps"] > 0
        procs, _ = run.leftovers(settle=30.0)  # Ray's own processes included: the private instance is gone
        assert [p for p in procs if p[1] != "Z"] == []
    finally:
        if run.proc.poll() is None:
            run.signal(signal.SIGKILL)
            run.proc.wait()
        run.close()


def config(tmp_path: Path, cluster: Any, name: str, **runtime: Any) -> dict:
    return {"env": {"envs_per_worker": 8},
            "runtime": {"backend": "ray", "address": cluster.address, "workers": 2, "total_steps": 6000,
                        "eval_every": 0, "final_eval_episodes": 2, **runtime},
            "log": {"run_dir": str(tmp_path / name), "progress": False, "tensorboard": False}}


def all_cpus_free() -> bool:
    """No pacer actor left alive: each holds a CPU while it lives."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0) == ray.cluster_resources().get("CPU", -1):
            return True
        time.sleep(0.2)
    return False


def updates_per_step(counters: dict[str, int], before: dict[str, int] | None = None) -> float:
    """Updates of the run's parameters per env step, in units of one per (rollout of 8 envs x 32 steps) / 32: a
    worker's rollout of the default config makes 4 epochs x 8 minibatches = 32 updates."""
    before = before or {"updates": 0, "env_steps": 0}
    return (counters["updates"] - before["updates"]) / (counters["env_steps"] - before["env_steps"]) * 256 / 32


def test_workers_run_on_both_nodes_and_leave_no_actor(cluster: Any, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Also: a group of 2 updates the parameters as often per env step as 2 local workers (each member splits its
    rollout 2 x 8 ways; summary.json says so); with runtime.group_minibatch 'pooled', once per pooled minibatch
    (half that rate, counted once, not once per member), and the run says so. (Each rollout's last steps may be
    autoreset steps that do not count: a rate up to ~20% above.)"""
    result = pacer.train(config(tmp_path, cluster, "both"))
    assert result.env_steps >= 6000 and result.stop_reason == "total_steps"
    assert 1.0 <= updates_per_step(checkpoint.load(result.checkpoint)["counters"]) < 1.2
    workers = json.loads((result.run_dir / "summary.json").read_text())["workers"]
    assert len(workers) == 2 and len({w["node_id"] for w in workers}) == 2  # one per node
    assert all(w["host"] for w in workers)
    assert [(g["size"], g["minibatches"]) for g in workers[0]["groups"]] == [(2, 16)]
    assert "group_minibatch 'pooled'" not in capsys.readouterr().err
    assert all_cpus_free()
    # a Ray checkpoint resumes on another backend (and back): the same format
    local = pacer.train(resume=result.run_dir, runtime__backend="inline", runtime__total_steps=8000)
    assert local.env_steps >= 8000
    before = checkpoint.load(local.checkpoint)["counters"]
    again = pacer.train(resume=result.run_dir, runtime__backend="ray", runtime__total_steps=12000,
                        runtime__group_minibatch="pooled")
    assert again.env_steps >= 12000 and all_cpus_free()
    assert 0.5 <= updates_per_step(checkpoint.load(again.checkpoint)["counters"], before) < 0.6
    assert "1/2 the updates per env step" in capsys.readouterr().err


def test_a_cnn_learns_from_pixels_on_ray_workers(cluster: Any, tmp_path: Path) -> None:
    """Image observations on Ray: uint8 frames of an env the tests make, the Nature CNN on two actors (one per node)
    as one data-parallel group, learning what it learns inline (tests/test_pixels.py); its checkpoint resumes."""
    from pacer.model import CNNActorCritic

    cfg = config(tmp_path, cluster, "pixels", final_eval_episodes=100)
    cfg["env"]["id"] = "image_envs:make_lit_quadrant"
    cfg["algo"] = {"name": "ppo", "n_steps": 8, "epochs": 2, "minibatches": 4, "lr": 1e-3}
    result = pacer.train(cfg, preset="none")
    assert result.eval_mean is not None and result.eval_mean >= 0.95, result.eval_mean  # a guess scores 0.25
    agent = pacer.load(result.run_dir)
    assert isinstance(agent.model, CNNActorCritic)
    workers = json.loads((result.run_dir / "summary.json").read_text())["workers"]
    assert len({w["node_id"] for w in workers}) == 2
    again = pacer.train(resume=result.run_dir, runtime__total_steps=8000)
    assert again.env_steps >= 8000 and all_cpus_free()


def test_observation_statistics_gather_every_actors_observations(cluster: Any, tmp_path: Path) -> None:
    """Running observation normalization on Ray: the driver merges each actor's moments (one row per worker), the
    actors normalize with the run's statistics, the checkpoint's model carries them."""
    from pacer import normalize

    cfg = config(tmp_path, cluster, "norm")
    cfg["env"]["id"] = "Pendulum-v1"
    cfg["model"] = {"normalize_input": "running"}
    cfg["algo"] = {"scale_rewards": True}
    result = pacer.train(cfg, preset="none")
    saved = checkpoint.load(result.checkpoint)
    moments = saved["obs_moments"].numpy()
    assert moments[:2, 0].sum() == result.env_steps and all(moments[:2, 0] > 0)
    mean, _ = normalize.mean_var(normalize.total(moments))
    assert abs(saved["model"]["obs_norm.mean"].numpy() - mean).max() < 1e-6
    assert all_cpus_free()


def test_an_actor_that_raises_shows_its_traceback_and_is_restarted(cluster: Any, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path, cluster, "raises")
    cfg["env"]["id"] = functools.partial(make_crashing_cartpole, str(tmp_path / "marker"))  # reaches the actors
    result = pacer.train(cfg)
    err = capsys.readouterr().err
    assert "RuntimeError: injected crash in an actor" in err and "ray_envs.py" in err  # the remote traceback
    assert "restarting worker" in err
    assert result.env_steps >= 6000 and all_cpus_free()


def logged_at(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str]]:
    """Every line the run tells the user, with the time it was told."""
    from pacer.metrics import Metrics

    lines: list[tuple[float, str]] = []
    log = Metrics.log

    def timed_log(self: Metrics, message: str) -> None:
        lines.append((time.monotonic(), message))
        log(self, message)

    monkeypatch.setattr(Metrics, "log", timed_log)
    return lines


def when_steps(metrics: Path, steps: int, action: Any, done: dict[str, float]) -> threading.Thread:
    """A thread that runs `action()` once the run's metrics show `steps` env steps, and notes when."""
    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = metrics.read_text().splitlines() if metrics.exists() else []
            if rows and json.loads(rows[-1])["env_steps"] > steps:
                done["at"], done["epoch"] = time.monotonic(), time.time()
                action()
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_a_lost_node_is_noticed_and_its_worker_restarted_on_a_live_one(cluster: Any, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Lost capacity, not a crash: the worker starts again where there is room, and no restart is spent."""
    node = cluster.add_node(**NODE)  # a node of its own to lose (the fixture's second node stays)
    cluster.wait_for_nodes()
    cfg = config(tmp_path, cluster, "lost", workers=3, total_steps=40000, max_restarts=0)
    lines = logged_at(monkeypatch)
    removed: dict[str, float] = {}
    remover = when_steps(Path(cfg["log"]["run_dir"]) / "metrics.jsonl", 5000,
                         lambda: cluster.remove_node(node, allow_graceful=False), removed)
    result = pacer.train(cfg)  # max_restarts 0: a counted restart would end the run
    remover.join()
    err = capsys.readouterr().err
    assert "at" in removed, "the run ended before the node could be removed"
    noticed = [at for at, line in lines if "lost with its node" in line]
    assert noticed and "not counted against runtime.max_restarts" in err and "restarting worker" not in err
    # seen within seconds: Ray's health checks (every 0.5 s here) notice the node, the pending call fails
    print(f"lost node noticed {noticed[0] - removed['at']:.1f} s after its removal")
    assert noticed[0] - removed["at"] < 30.0
    assert result.stop_reason == "total_steps" and result.env_steps >= 40000
    assert all_cpus_free()


def test_a_run_starts_with_what_fits_and_grows_when_a_node_joins(cluster: Any, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """4 workers of 1 CPU on the fixture's 3 CPUs: 3 train, the run says so; a node joins and the 4th starts."""
    from pacer.backends.ray import RayBackend

    cfg = config(tmp_path, cluster, "grow", workers=4, total_steps=60000)
    cfg["algo"] = {"epochs": 1, "minibatches": 2}
    added: dict[str, float] = {}
    nodes: list[Any] = []
    poll = RayBackend.poll

    def poll_then_grow(self: RayBackend, timeout: float) -> list:
        if nodes and len(self.membership.where) < 4 and time.time() - added["epoch"] < 60:
            # no new round until the 4th worker has started: on a loaded machine the budget could otherwise be
            # spent by the other three first (what is tested is that it starts, and how soon)
            self.membership.locate(1.0)
            return []
        reports = poll(self, timeout)
        if not nodes and self.shared.counters()["env_steps"] > 3000:  # Ray adds nodes from the main thread only
            added["epoch"] = time.time()
            nodes.append(cluster.add_node(**NODE))
        return reports

    monkeypatch.setattr(RayBackend, "poll", poll_then_grow)
    try:
        result = pacer.train(cfg)
    finally:
        for node in nodes:
            cluster.remove_node(node)
    err = capsys.readouterr().err
    assert "the cluster has room for 3 of 4 workers" in err and "4 workers train" in err
    assert "epoch" in added, "the run ended before a node could join"
    workers = json.loads((result.run_dir / "summary.json").read_text())["workers"]
    started = sorted(place["at"] for w in workers for place in w["places"])
    assert len(started) == 4 and started[2] < added["epoch"]  # three from the start, one place each
    joined = started[3] - added["epoch"]
    print(f"the 4th worker started {joined:.1f} s after its node joined")
    assert 0 < joined < 20.0
    assert result.stop_reason == "total_steps" and result.env_steps >= 60000


def small(tmp_path: Path, name: str, backend: str, cluster: Any, **runtime: Any) -> dict:
    return {"env": {"envs_per_worker": 4}, "algo": {"n_steps": 16, "epochs": 2, "minibatches": 4},
            "runtime": {"backend": backend, "workers": 1, "total_steps": 3 * 64, "eval_every": 0, "seed": 3,
                        "final_eval_episodes": 0, **({"address": cluster.address} if backend == "ray" else {}),
                        **runtime},
            "log": {"run_dir": str(tmp_path / name), "progress": False, "tensorboard": False}}


def test_one_ray_worker_learns_exactly_as_inline(cluster: Any, tmp_path: Path) -> None:
    """A few rollouts of 2 epochs x 4 minibatches: the same parameters and optimizer state, to float tolerance."""
    inline = checkpoint.load(pacer.train(small(tmp_path, "inline", "inline", cluster), preset="none").checkpoint)
    remote = checkpoint.load(pacer.train(small(tmp_path, "ray", "ray", cluster), preset="none").checkpoint)
    assert inline["counters"] == remote["counters"] and inline["counters"]["updates"] in (24, 32)  # 3-4 rollouts
    for name, value in inline["model"].items():
        torch.testing.assert_close(remote["model"][name], value, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(inline["optimizer"]["states"][0], remote["optimizer"]["states"][0], strict=True):
        for key, value in mine.items():
            torch.testing.assert_close(theirs[key], value, rtol=1e-5, atol=1e-6)
    assert all_cpus_free()


def test_many_agents_on_a_ray_worker_learn_exactly_as_inline(cluster: Any, tmp_path: Path) -> None:
    """A PettingZoo env (agents appearing and dying, their ids as inputs) under a recurrent policy: the rows of its
    agents make the same updates on a Ray actor as in this process."""
    runs = []
    for backend in ("inline", "ray"):
        cfg = small(tmp_path, f"agents-{backend}", backend, cluster)
        cfg["env"].update(id="agent_envs:relay", agent_id=True)
        cfg["model"] = {"memory": "gru", "memory_size": 8}
        runs.append(checkpoint.load(pacer.train(cfg, preset="none").checkpoint))
    inline, remote = runs
    assert inline["counters"] == remote["counters"] and inline["counters"]["updates"] >= 16
    for name, value in inline["model"].items():
        torch.testing.assert_close(remote["model"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert all_cpus_free()


def summed_rule(workers: int, rounds: int, steps: int, lr: float) -> float:
    """What the old rule did, on the same problem: every learner takes `steps` Adam steps from the same w with an
    optimizer of its own, and the changes are added up. Returns the distance from the optimum at the end."""
    from pacer.runtime import optim
    from pacer.runtime.store import ParamStore

    w = torch.tensor(5.0)
    learners = []
    for _ in range(workers):
        param = torch.nn.Parameter(torch.zeros(()))
        learners.append((param, ParamStore([param], optim.new_state("adam", [param]), "adam", lr)))
    for _ in range(rounds):
        change = torch.zeros(())
        for param, store in learners:
            with torch.no_grad():
                param.copy_(w)
            for _ in range(steps):
                store.apply((2 * (param.detach() - 1.0)).reshape(1), lr)  # the gradient of (w - 1)^2, flat
            change += param.detach() - w
        w = w + change
    return abs(float(w) - 1.0)


def test_eight_workers_learn_as_one_where_summed_updates_diverge(cluster: Any, tmp_path: Path,
                                                                 algos: dict) -> None:
    """(w - 1)^2 from w = 5 with Adam at lr 0.3, 8 updates a rollout: 8 learners whose changes are summed swing
    further from the optimum each round; 8 Ray workers averaging their gradients take exactly one learner's steps.
    The loss is scaled by 1e-8, so that Adam's eps (1e-8) makes its step depend on the gradient's size: a group that
    summed its gradients (8x the mean) steps differently (w 0.99 instead of 0.73 after 40 steps), although Adam is
    otherwise blind to scale; 6 rounds, so that the run stops well before both reach the optimum."""
    from pacer.runtime import optim
    from pacer.runtime.store import ParamStore
    from ray_envs import Scalar, tiny_quadratic_loss

    assert summed_rule(8, 30, 8, 0.3) > 4.0  # it diverges: farther from 1 than it started
    pacer.register_algo("quadratic", tiny_quadratic_loss)
    cfg = {"env": {"envs_per_worker": 1},
           "model": {"factory": Scalar},
           "algo": {"name": "quadratic", "n_steps": 16, "epochs": 1, "minibatches": 8, "lr": 0.3,
                    "lr_schedule": "constant", "max_grad_norm": None},
           "runtime": {"backend": "ray", "address": cluster.address, "workers": 8, "cpus_per_worker": 0.25,
                       "group_minibatch": "pooled", "total_steps": 6 * 8 * 16, "eval_every": 0,
                       "final_eval_episodes": 0},
           "log": {"run_dir": str(tmp_path / "eight"), "progress": False, "tensorboard": False}}
    result = pacer.train(cfg, preset="none")
    saved = checkpoint.load(result.checkpoint)
    steps = saved["counters"]["updates"]
    assert steps >= 6 * 8  # 6 rounds or more of 8 group steps (counted once per step)
    one = torch.nn.Parameter(torch.tensor(5.0))  # one learner, the same number of steps, each member's gradient
    store = ParamStore([one], optim.new_state("adam", [one]), "adam", 0.3)
    value_coef = 0.5  # the loss is the critic's term: LossTerms.total weighs it with algo.value_coef
    for _ in range(steps):
        store.apply((value_coef * 1e-8 * 2 * (one.detach() - 1.0)).reshape(1), 0.3)
    torch.testing.assert_close(saved["model"]["w"], one.detach(), rtol=1e-5, atol=1e-6)
    assert abs(float(one.detach()) - 1.0) < 1.0  # it learned: from 5 towards 1, and is still on its way
    assert all_cpus_free()


@pytest.mark.parametrize("memory", ["none", "lstm"])
def test_a_group_of_two_learns_as_two_workers_averaging_each_update(cluster: Any, tmp_path: Path, memory: str
                                                                    ) -> None:
    """Two Ray members, each splitting its own CartPole rollouts (the default 'worker' minibatches: rows, or with an
    LSTM each env's sequence), all-reduce every minibatch's gradient: the parameters are those of two of pacer's
    workers that average each update in lockstep in one process (tests/lockstep.py), to float tolerance. (The first
    round waits for both actors: the group is the same from the start.)"""
    from lockstep import train_in_lockstep
    from pacer.config import from_saved

    cfg = small(tmp_path, "pair", "ray", cluster, workers=2, total_steps=3 * 2 * 64)
    cfg["algo"]["lr_schedule"] = "constant"
    cfg["model"] = {"memory": memory, "memory_size": 8}
    saved = checkpoint.load(pacer.train(cfg, preset="none").checkpoint)
    rounds, rest = divmod(saved["counters"]["updates"], 2 * 4 * 2)  # 2 epochs x 4 minibatches x 2 members a round
    assert rest == 0 and rounds >= 3
    expected = train_in_lockstep(from_saved(saved["config"]), rounds)
    for (name, value), want in zip(saved["model"].items(), expected, strict=True):
        torch.testing.assert_close(value, want, rtol=1e-5, atol=1e-6, msg=name)
    assert all_cpus_free()
