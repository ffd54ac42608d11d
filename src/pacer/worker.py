"""A worker: owns a batch of environments and a local model; turns rollouts into updates of the shared model.

Transport-agnostic: the inline backend calls `iterate()` in the parent, the local backend in a child process.
Each iteration: copy the shared parameters into the local model, collect a rollout, compute the loss on the local
model, copy (never alias) the gradients onto the shared parameters, and step the optimizer on them, lock-free
(Hogwild). Copying matters: aliasing the shared `.grad` to the local one, as older A3C code does, makes gradients
accumulate across updates on torch >= 2, where `zero_grad()` sets them to None instead of zeroing in place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pacer.algos import Algorithm, Batch, prepare
from pacer.config import Config
from pacer.envs import make_vector_env
from pacer.model import action_kind, make_model
from pacer.rollout import Collector
from pacer.runtime import optim
from pacer.runtime.shared import SharedState

Report = dict[str, Any]  # numbers and NumPy arrays only: safe to send through a queue


@dataclass(frozen=True)
class WorkerSpec:
    config: Config
    rank: int
    seed: int
    algorithm: Algorithm
    state: dict[str, Any] | None = None
    """A previous session's `Worker.get_state()`, to continue exactly where it stopped (resume)."""


class Worker:
    def __init__(self, spec: WorkerSpec, shared: SharedState) -> None:
        cfg = spec.config
        self.cfg, self.spec, self.shared = cfg, spec, shared
        self.env = make_vector_env(cfg.env.id, cfg.env.envs_per_worker, cfg.env.max_episode_steps)
        self.kind = action_kind(self.env.single_action_space)
        self.model = make_model(cfg.model, self.env.single_observation_space, self.env.single_action_space)
        self.local_params = list(self.model.parameters())
        self.shared_params = list(shared.model.parameters())
        for p in self.shared_params:
            if p.grad is None:  # this process's own gradient buffer (not shared), written by copy every update
                p.grad = torch.zeros_like(p)
        self.optimizer = optim.bind(cfg.algo.optimizer, self.shared_params, shared.optimizer_slot(spec.rank),
                                    cfg.algo.lr)
        self.sync()
        self.collector = Collector(self.env, self.model, self.kind, spec.seed, cfg.env.termination_reward)
        self.rng = torch.Generator().manual_seed(spec.seed + 1)  # minibatch order
        self.timings = {"returns": 0.0, "learn": 0.0, "optimizer": 0.0, "sync": 0.0}
        self.first_reported = False
        self.exact_resume = spec.state is None or self.set_state(spec.state)
        shared.beat(spec.rank)

    def get_state(self) -> dict[str, Any]:
        """Plain data (NumPy arrays, numbers, strings): it may travel through a queue."""
        return {"collector": self.collector.get_state(), "rng": self.rng.get_state().numpy()}

    def set_state(self, state: dict[str, Any]) -> bool:
        self.rng.set_state(torch.from_numpy(np.asarray(state["rng"], dtype=np.uint8)))
        return self.collector.set_state(state["collector"])

    def sync(self) -> None:
        """Local parameters <- shared parameters."""
        with torch.no_grad():
            for local, shared in zip(self.local_params, self.shared_params, strict=True):
                local.copy_(shared)

    def iterate(self) -> Report:
        """One rollout and its updates; returns what happened, as plain numbers."""
        tic = time.perf_counter()
        self.sync()
        self.timings["sync"] += time.perf_counter() - tic
        if self.spec.algorithm.targets == "mc":
            rollout = self.collector.collect_episodes()
        else:
            rollout = self.collector.collect(self.cfg.algo.n_steps)
        tic = time.perf_counter()
        batch = prepare(rollout, self.cfg.algo, self.spec.algorithm.targets)
        self.timings["returns"] += time.perf_counter() - tic
        stats, updates = self.learn(batch)
        returns, lengths = self.collector.pop_episodes()
        steps = int(rollout.valid.sum())
        self.shared.add(self.spec.rank, steps, len(returns), updates)
        self.shared.beat(self.spec.rank)
        report: Report = {"worker": self.spec.rank, "env_steps": steps, "updates": updates,
                          "episode_returns": np.asarray(returns, dtype=np.float64),
                          "episode_lengths": np.asarray(lengths, dtype=np.int64), **stats}
        if not self.first_reported and self.collector.first_step_at is not None:
            report["first_env_step_at"] = self.collector.first_step_at
            self.first_reported = True
        report.update({f"time_{k}": v for k, v in self.collector.timings.items()})
        report.update({f"time_{k}": v for k, v in self.timings.items()})
        for timings in (self.collector.timings, self.timings):
            for key in timings:
                timings[key] = 0.0
        return report

    def learn(self, batch: Batch) -> tuple[dict[str, float], int]:
        algo = self.cfg.algo
        epochs = algo.epochs or self.spec.algorithm.epochs
        minibatches = algo.minibatches or self.spec.algorithm.minibatches
        n = batch.obs.shape[0]
        if n == 0:
            return {}, 0
        size = max(1, n // minibatches)
        stats: dict[str, float] = {}
        updates = 0
        for _ in range(epochs):
            order = torch.randperm(n, generator=self.rng) if minibatches > 1 else torch.arange(n)
            for start in range(0, n - size + 1, size):
                idx = order[start:start + size]
                minibatch = batch if minibatches == 1 else Batch(*(x[idx] for x in batch))
                if updates:  # later minibatches learn on top of everyone's latest parameters
                    self.sync()
                tic = time.perf_counter()
                loss, stats = self.spec.algorithm.loss(self.model, self.kind, minibatch, algo)
                self.model.zero_grad(set_to_none=True)
                loss.backward()
                if algo.max_grad_norm is not None:
                    stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.local_params, algo.max_grad_norm))
                toc = time.perf_counter()
                self.apply_gradients()
                self.timings["learn"] += toc - tic
                self.timings["optimizer"] += time.perf_counter() - toc
                updates += 1
        stats["loss"] = float(loss.item())
        return stats, updates

    def apply_gradients(self) -> None:
        """Copy local gradients onto the shared parameters and step the (shared or per-worker) optimizer."""
        with torch.no_grad():
            for local, shared in zip(self.local_params, self.shared_params, strict=True):
                if local.grad is None:  # unused by this loss: no gradient, so the optimizer leaves it alone
                    shared.grad = None
                elif shared.grad is None:
                    shared.grad = local.grad.clone()
                else:
                    shared.grad.copy_(local.grad)
        if self.cfg.algo.lr_schedule == "linear":
            done = self.shared.counters()["env_steps"] / self.cfg.runtime.total_steps
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.algo.lr * max(0.0, 1.0 - done)
        self.optimizer.step()

    def close(self) -> None:
        self.env.close()
