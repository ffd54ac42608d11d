"""Per-minibatch profile of the learner: where one PPO update of an env's preset spends its time.

    python benchmarks/learner.py [--env LunarLander-v3] [--updates 2000] [--repeats 3] [--compare]
    python benchmarks/learner.py --env CartPoleNoVel-v1   # a recurrent preset: minibatches of sequences

One worker of the preset (the inline backend's Hogwild link, parameters in this process), one rollout collected,
then `--updates` minibatch updates timed phase by phase, as the worker makes them: pull (the latest parameters
into the local model), loss (`Worker.loss`: forward and the loss terms; with the hand-written gradient of
algos/analytic.py, the gradient too), backward+clip (`Worker.step` up to the optimizer: autograd's backward pass,
the gradient's norm and clipping), optimizer (the step on the run's parameters). One torch thread, as in a worker.
Prints each phase's median microseconds per update over `--repeats` passes; `--compare` alternates the
hand-written gradient and autograd (`algo.analytic_grad`) pass by pass and prints both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import torch

from pacer.algos import get_algo, prepare
from pacer.algos.losses import rows, sequences
from pacer.backends.hogwild import HogwildLink
from pacer.envs import make_vector_env
from pacer.model import make_model
from pacer.runconfig import complete, resolve
from pacer.runtime import shared as shared_state
from pacer.worker import Worker, WorkerSpec

PHASES = ("pull", "loss", "backward+clip", "optimizer")


def profile(env: str, updates: int, analytic: bool = True) -> dict[str, float]:
    cfg, _ = resolve({"env": {"id": env}, "runtime": {"workers": 1}, "algo": {"analytic_grad": analytic}})
    cfg = complete(cfg, Path("/tmp/pacer-learner-profile"))
    probe = make_vector_env(cfg.env, 1)
    model = make_model(cfg.model, probe.single_observation_space, probe.single_action_space)
    probe.close()
    shared = shared_state.create(cfg, model, torch.multiprocessing.get_context("spawn"), in_shared_memory=False)
    algorithm = get_algo(cfg.algo.name)
    worker = Worker(WorkerSpec(cfg, 0, 0, algorithm), HogwildLink(shared, 0, cfg))
    rollout = worker.collector.collect(cfg.algo.n_steps)
    batch = prepare(rollout, cfg.algo, algorithm.targets)
    assert cfg.algo.minibatches is not None
    # units: rows, or (a recurrent model) sequences of `algo.sequence_length` steps
    units = batch.obs.shape[0] if batch.memory is None else batch.memory.mask.shape[1]
    size = max(1, units // cfg.algo.minibatches)
    gen = torch.Generator().manual_seed(0)
    spent = dict.fromkeys(PHASES, 0.0)
    link, params = worker.link, worker.local_params
    for _ in range(updates):
        order = torch.randperm(units, generator=gen)[:size]
        minibatch = rows(batch, order) if batch.memory is None else sequences(batch, order)
        t0 = time.perf_counter()
        link.pull(params)
        t1 = time.perf_counter()
        worker.updates = 0  # no second pull inside Worker.loss: "pull" above is the one
        step = worker.loss(minibatch)
        t2 = time.perf_counter()
        worker.phases.take()
        worker.step(step)  # the worker's own update: backward, gradient, clip, optimizer step
        t3 = time.perf_counter()
        optimizer = worker.phases.take().get("optimizer", 0.0)
        for phase, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2 - optimizer, optimizer), strict=True):
            spent[phase] += seconds
    worker.close()
    length = 1 if batch.memory is None else batch.memory.mask.shape[0]
    return {phase: spent[phase] / updates * 1e6 for phase in PHASES} | {
        "units": float(size), "length": float(length), "fast": float(worker.fast_grad is not None)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="LunarLander-v3")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="also autograd, alternating pass by pass")
    args = parser.parse_args()
    torch.set_num_threads(1)
    kinds = (True, False) if args.compare else (True,)
    runs: dict[bool, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(args.repeats):
        for kind in kinds:
            runs[kind].append(profile(args.env, args.updates, kind))
    for kind in kinds:
        med = {phase: statistics.median(run[phase] for run in runs[kind]) for phase in PHASES}
        first = runs[kind][0]
        name = "hand-written gradient" if first["fast"] else "autograd"
        unit = f"{int(first['units'])} rows" if first["length"] == 1 else \
            f"{int(first['units'])} sequences of {int(first['length'])} steps"
        per = "" if first["length"] == 1 else \
            f" ({sum(statistics.median(r[p] for r in runs[kind]) for p in PHASES) / first['units']:.0f} us a sequence)"
        print(f"{args.env}, {name}: {unit} a minibatch{per}; median us per update over "
              f"{args.repeats} passes of {args.updates}: " + ", ".join(f"{phase} {med[phase]:.0f}" for phase in PHASES)
              + f"; total {sum(med.values()):.0f}; passes' totals "
              + " / ".join(f"{sum(run[p] for p in PHASES):.0f}" for run in runs[kind]))


if __name__ == "__main__":
    main()
