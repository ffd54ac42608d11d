"""The Ray actor side: a worker, the very same Worker code, behind a link to the driver's parameter server.

The driver holds the parameters and the optimizer state. Once per rollout it calls `iterate(version, [params],
env_steps)`: the actor loads the parameters if their version is new (fetched from the object store only then),
collects and learns, and returns its update with its report. One remote call per rollout, never per minibatch:

- one update per rollout (mc, a2c, a3c): the update is the gradient, and the driver's optimizer steps on it;
- several (ppo's epochs x minibatches): the actor steps its own optimizer on its local copy, and the update is
  the parameter change over the rollout, which the driver adds to its parameters (asynchronous, like Hogwild).
"""

from __future__ import annotations

import os
import socket
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pacer import normalize
from pacer.reports import Report
from pacer.runtime import optim
from pacer.usercode import unwrap
from pacer.worker import Worker, WorkerSpec

# ("grad" or "delta", one NumPy array (or None) per parameter, the rollouts' observation moments or None)
Update = tuple[str, list[Any], Any]


class ActorLink:
    """The worker's link inside an actor: parameters come with each call, updates leave with its result."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.algo = spec.config.algo
        self.mode = "grad" if self.algo.epochs == self.algo.minibatches == 1 else "delta"
        self.received: list[np.ndarray] | None = None
        self.received_version, self.loaded_version = -1, -1
        self.start: list[Tensor] = []  # the parameters this rollout started from (delta mode)
        self.grads: list[Any] = []
        self.steps_seen = 0
        self.optimizer: torch.optim.Optimizer | None = None  # delta mode: this actor's own, kept across rollouts
        self.stats: Any = None  # the run's observation moments, as the driver sent them
        self.moments: Any = None  # this rollout's, for the driver

    def receive(self, version: int, params: list[np.ndarray] | None, env_steps: int, stats: Any) -> None:
        if params is not None:
            self.received, self.received_version = params, version
        self.steps_seen, self.stats = env_steps, stats

    def observe(self, moments: Any) -> None:
        self.moments = moments if self.moments is None else normalize.combine(self.moments, moments)

    def obs_stats(self) -> Any:
        return self.stats

    def pull(self, params: list[nn.Parameter]) -> int:
        """At a rollout's start, load the parameters received with the call; later in the rollout (between
        minibatches) the local copy is the learner's own, so there is nothing to load."""
        if self.received is not None and self.loaded_version != self.received_version:
            with torch.no_grad():
                for local, value in zip(params, self.received, strict=True):
                    local.copy_(torch.tensor(value))  # a copy: object-store arrays are read-only
            self.loaded_version = self.received_version
            self.start = [p.detach().clone() for p in params]
        return self.loaded_version

    def push(self, params: list[nn.Parameter], lr: float) -> None:
        if self.mode == "grad":
            self.grads = [None if p.grad is None else p.grad.numpy().copy() for p in params]
            return
        if self.optimizer is None:
            self.optimizer = optim.bind(self.algo.optimizer, params, optim.new_state(self.algo.optimizer, params),
                                        lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()

    def take_update(self, params: list[nn.Parameter]) -> Update:
        moments, self.moments = self.moments, None
        if self.mode == "grad":
            grads, self.grads = self.grads, []
            return ("grad", grads, moments)
        delta = [(p.detach() - s).numpy() for p, s in zip(params, self.start, strict=True)]
        self.loaded_version = -1  # the next call's parameters replace this rollout's local learning
        return ("delta", delta, moments)

    def add(self, steps: int, episodes: int, updates: int) -> None:
        pass  # the driver counts, from the report

    def env_steps(self) -> int:
        return self.steps_seen

    def beat(self) -> None:
        pass  # the driver watches its calls' age instead


class WorkerActor:
    """Wrapped with `ray.remote` by the backend (so that importing this module needs no Ray)."""

    def __init__(self, spec: Any) -> None:
        spec = unwrap(spec)
        torch.set_num_threads(spec.config.runtime.threads_per_worker)
        self.rank = spec.rank
        self.worker: Worker | None = None
        self.spec = spec

    def where(self) -> dict[str, Any]:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}

    def iterate(self, version: int, params: list[Any], env_steps: int, stats: Any = None) -> tuple[Update, Report]:
        import ray

        if self.worker is None:  # built on the first call, so that a failure comes back as that call's error
            self.worker = Worker(self.spec, ActorLink(self.spec))
        link = self.worker.link
        assert isinstance(link, ActorLink)
        fresh = params[0] is not None and version != link.received_version
        link.receive(version, ray.get(params[0]) if fresh else None, env_steps, stats)
        report = self.worker.iterate()
        return link.take_update(self.worker.local_params), report

    def get_state(self) -> dict[str, Any] | None:
        return None if self.worker is None else self.worker.get_state()
