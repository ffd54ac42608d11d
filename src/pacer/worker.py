"""A worker: owns a batch of environments and a local model; turns rollouts into updates of the shared model.

It knows nothing of where it runs. It reaches the run's parameters only through its `Link` (pacer/link.py):
`pull` copies the latest parameters into the local model, `push` hands in one update from the local gradients.
The inline and local backends link it to shared memory (Hogwild: the update is applied to the shared parameters at
once, lock-free), the Ray backend to the driver's parameter server. Each iteration: pull, collect a rollout, let
the algorithm's schedule drive the updates (loss on the local model, push, once per minibatch), count, report.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pacer import masks, normalize
from pacer.algos import Algorithm, Batch, LossTerms, Step, explained_variance, prepare
from pacer.algos.losses import value_rows
from pacer.config import Config
from pacer.envs import EnvSpec, ensure_registered, layout_of, make_vector_env
from pacer.errors import PacerError
from pacer.heads import head_for
from pacer.league import League
from pacer.link import Link
from pacer.model import make_model
from pacer.phases import Phases
from pacer.reports import Report
from pacer.rollout import Collector
from pacer.runtime import flat
from pacer.selfplay import SelfPlayVectorEnv
from pacer.spaces import tree_map


@dataclass(frozen=True)
class WorkerSpec:
    config: Config
    rank: int
    seed: int
    algorithm: Algorithm
    state: dict[str, Any] | None = None
    """A previous session's `Worker.get_state()`, to continue exactly where it stopped (resume)."""
    env: EnvSpec | None = None
    """The parent's probe of the env (pacer/envs.py): its registration goes with it, for an id the parent
    registered itself."""


def learning_rate(cfg: Config, env_steps: int) -> float:
    """The learning rate at this point of the run: constant, or decayed linearly to zero at the step budget."""
    if cfg.algo.lr_schedule == "linear":
        return cfg.algo.lr * max(0.0, 1.0 - env_steps / cfg.runtime.total_steps)
    return cfg.algo.lr


class Worker:
    def __init__(self, spec: WorkerSpec, link: Link) -> None:
        cfg = spec.config
        self.cfg, self.spec, self.link = cfg, spec, link
        ensure_registered(spec.env)
        self.env = make_vector_env(cfg.env, cfg.env.envs_per_worker)
        self.head = head_for(self.env.single_action_space)
        self.layout = layout_of(cfg.env, self.env.single_observation_space, self.env.single_action_space)
        self.model = make_model(cfg.model, self.layout.kept_space, self.env.single_action_space)
        self.local_params = list(self.model.parameters())
        flat.flatten_(self.local_params)  # views of one buffer: a pull is one copy (runtime/flat.py)
        self.norm = normalize.norm_of(self.model)
        link.pull(self.local_params)
        scaler = normalize.RewardScaler(self.env.num_envs, cfg.algo.gamma) if cfg.algo.scale_rewards else None
        if scaler is not None and (kept := link.reward_stats()) is not None:
            scaler.stats = np.array(kept)  # a restarted worker goes on with the run's scale, not from nothing
        self.scaler = scaler
        self.phases = Phases()  # where the time goes: sync, inference, env, returns, learn, optimizer
        self.collector = Collector(self.env, self.model, self.head, spec.seed, cfg.env.termination_reward, scaler,
                                   cfg.algo.clip_rewards, self.phases, self.layout,
                                   masks.configured(cfg.env.action_mask))
        self.rng = torch.Generator().manual_seed(spec.seed + 1)  # minibatch order
        # self-play: whom the learner's games are against, rollout by rollout (pacer/selfplay.py)
        self.league = League(self.model, self.head, self.layout.cast, self.env, spec.seed) \
            if isinstance(self.env, SelfPlayVectorEnv) else None
        # the algorithm's hand-written gradient where it covers the run (exactly autograd's, ~2x faster: the
        # built-in MLP's a2c/ppo loss); config.yaml says whether it does (runconfig.complete). None: autograd
        fast = spec.algorithm.fast_grad
        self.fast_grad = fast(self.model, self.head, cfg.model, cfg.algo, self.local_params) \
            if fast is not None and cfg.algo.analytic_grad else None
        self.first_reported = False
        self.updates = 0  # this rollout's, so far
        if spec.state is not None:
            self.set_state(spec.state)
        link.beat()

    def get_state(self) -> dict[str, Any]:
        """Plain data (NumPy arrays, numbers, strings): it may travel through a pipe."""
        return {"collector": self.collector.get_state(), "rng": self.rng.get_state().numpy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.set_state(torch.from_numpy(np.asarray(state["rng"], dtype=np.uint8)))
        self.collector.set_state(state["collector"])

    def iterate(self) -> Report:
        """One rollout and its updates; returns what happened, as plain numbers."""
        phases = self.phases
        phases.start()
        self.link.pull(self.local_params)
        if self.norm is not None:  # fixed for the whole rollout and its updates: what collected is what learns
            self.norm.load(self.link.obs_stats())
        phases.lap("sync")
        if self.league is not None:
            self.league.choose()
        if self.spec.algorithm.targets == "mc":
            rollout = self.collector.collect_episodes()
        else:
            rollout = self.collector.collect(self.cfg.algo.n_steps)
        if self.norm is not None:
            valid = tree_map(lambda x: x[rollout.valid], rollout.obs)
            self.link.observe(normalize.moments(self.layout.vectors(valid)))
            phases.lap("sync")
        batch = prepare(rollout, self.cfg.algo, self.spec.algorithm.targets)
        phases.lap("returns")
        stats, updates = self.learn(batch)
        if self.scaler is not None:
            self.link.keep_reward_stats(self.scaler.stats)
        returns, lengths = self.collector.pop_episodes()
        stats.update(self.collector.pop_agent_returns())
        if self.league is not None:
            stats.update(self.league.results())
        steps = int(rollout.valid.sum())
        self.link.add(steps, len(returns), updates)
        self.link.beat()
        report = Report(worker=self.spec.rank, env_steps=steps, updates=updates,
                        episode_returns=np.asarray(returns, dtype=np.float64),
                        episode_lengths=np.asarray(lengths, dtype=np.int64), stats=stats,
                        timings=phases.take())
        if not self.first_reported and self.collector.first_step_at is not None:
            report.first_env_step_at = self.collector.first_step_at
            self.first_reported = True
        return report

    def learn(self, batch: Batch) -> tuple[dict[str, float], int]:
        """The algorithm's schedule decides the epochs and minibatches; each update goes through the link."""
        self.updates = 0
        algo = self.cfg.algo
        if algo.minibatches is not None and (split := self.link.minibatches(algo.minibatches)) != algo.minibatches:
            algo = dataclasses.replace(algo, minibatches=split)  # a member of a group (Ray) splits its share finer
        stats, made = self.spec.algorithm.schedule(batch, algo, self.rng, self)
        ev = explained_variance(*value_rows(batch)) if made else math.nan
        if not math.isnan(ev):
            stats["explained_variance"] = ev
        return stats, made

    def loss(self, minibatch: Batch) -> Step:
        """The minibatch's update on the run's latest parameters (the schedule's Learner side)."""
        if self.updates:  # later minibatches learn on top of the latest parameters
            self.link.pull(self.local_params)
            self.phases.lap("sync")
        if self.fast_grad is not None:
            stats, total, grad = self.fast_grad.compute(minibatch)
            step = Step(torch.tensor(total), stats, grad)
        else:
            terms = self.spec.algorithm.loss(self.model, self.head, minibatch, self.cfg.algo)
            if not isinstance(terms, LossTerms):
                raise PacerError(f"the loss function of algo {self.cfg.algo.name!r} returned {type(terms).__name__}; "
                                 "a loss returns pacer.algos.LossTerms(policy, value, entropy, stats)")
            step = Step(terms.total(self.cfg.algo), terms.report())
        self.phases.lap("learn")
        if self.cfg.algo.target_kl is not None:
            step.stats = self.link.agree(step.stats)
            self.phases.lap("sync")
        return step

    def step(self, step: Step) -> dict[str, float]:
        """Apply one update: its gradient (back-propagated on the local model now, if the step holds a graph) goes
        to the link."""
        algo, phases = self.cfg.algo, self.phases
        grad = step.grad
        if grad is None:
            self.model.zero_grad(set_to_none=True)
            step.loss.backward()
            # one flat gradient (zeros for a parameter the loss did not use): one norm, one all-reduce, one step
            grad = flat.gather([p.grad for p in self.local_params], self.local_params)
        step.grad = None  # a step is applied once: its gradient now belongs to the parameters' store
        phases.lap("learn")
        self.link.reduce(grad)  # a data-parallel group averages its gradients before they are clipped
        phases.lap("sync")
        stats = {"loss": float(step.loss.item())}
        if algo.max_grad_norm is not None:
            stats["grad_norm"] = flat.clip_norm_(grad, algo.max_grad_norm)
        phases.lap("learn")
        # the run's step count (summed shared counters) only when the schedule uses it
        steps = self.link.env_steps() if algo.lr_schedule == "linear" else 0
        self.link.push(grad, learning_rate(self.cfg, steps))
        phases.lap("optimizer")
        self.updates += 1
        return stats

    def close(self) -> None:
        self.env.close()
