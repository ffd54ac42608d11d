"""A data-parallel group without Ray or gloo, as a reference for the Ray backend: pacer's own Worker code in threads
of this process, averaging every update's gradient over the group (a barrier between them) and applying it once to
one parameter store, which every member reads. What a Ray group computes, written as plainly as it can be."""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch import Tensor, nn

from pacer.algos import get_algo
from pacer.config import Config
from pacer.envs import probe
from pacer.model import make_model
from pacer.runtime import flat, optim
from pacer.runtime.store import ParamStore
from pacer.training import worker_seed
from pacer.worker import Worker, WorkerSpec


class LockstepLink:
    def __init__(self, rank: int, size: int, store: ParamStore, barrier: threading.Barrier, slots: list[Any],
                 split: int) -> None:
        self.rank, self.size, self.store = rank, size, store
        self.barrier, self.slots, self.split = barrier, slots, split

    def pull(self, params: list[nn.Parameter]) -> int:
        with torch.no_grad():
            for local, value in zip(params, self.store.params, strict=True):
                local.copy_(value)
        return 0

    def minibatches(self, minibatches: int) -> int:
        return minibatches * self.split

    def reduce(self, grad: Tensor) -> None:
        self.slots[self.rank] = grad.clone()
        self.barrier.wait()
        total = self.slots[0].clone()
        for other in self.slots[1:]:
            total += other  # the members' sum, in rank order, as an all-reduce of 2 makes it
        grad.copy_(total)
        grad /= self.size
        self.barrier.wait()  # every member has its mean before a slot is written again

    def agree(self, stats: dict[str, float]) -> dict[str, float]:
        return stats

    def push(self, grad: Tensor, lr: float) -> None:
        if self.rank == 0:
            self.store.apply(grad, lr)  # once for the group
        self.barrier.wait()  # nobody reads the parameters before the update is in

    def observe(self, moments: Any) -> None:
        pass

    def obs_stats(self) -> Any:
        return None

    def reward_stats(self) -> Any:
        return None

    def keep_reward_stats(self, stats: Any) -> None:
        pass

    def add(self, steps: int, episodes: int, updates: int) -> None:
        pass

    def env_steps(self) -> int:
        return 0  # constant learning rates only

    def beat(self) -> None:
        pass


def train_in_lockstep(cfg: Config, rounds: int) -> list[Tensor]:
    """The parameters after `rounds` rollouts of each of `cfg.runtime.workers` members, from the run's initial
    parameters (seeded as `pacer.train` seeds them) and its workers' seeds."""
    assert cfg.algo.lr_schedule == "constant" and cfg.model.normalize_input == "none"
    size = cfg.runtime.workers
    spec = probe(cfg.env)
    torch.manual_seed(cfg.runtime.seed)
    model = make_model(cfg.model, spec.observation_space, spec.action_space)
    params = list(model.parameters())
    flat.flatten_(params)
    store = ParamStore(params, optim.new_state(cfg.algo.optimizer, params), cfg.algo.optimizer, cfg.algo.lr)
    barrier, slots = threading.Barrier(size), [None] * size
    split = size if cfg.runtime.group_minibatch == "worker" else 1
    workers = [Worker(WorkerSpec(cfg, rank, worker_seed(cfg.runtime.seed, rank, 0), get_algo(cfg.algo.name),
                                 env=spec), LockstepLink(rank, size, store, barrier, slots, split))
               for rank in range(size)]
    errors: list[BaseException] = []

    def run(worker: Worker) -> None:
        try:
            for _ in range(rounds):
                worker.iterate()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return [p.detach().clone() for p in params]
