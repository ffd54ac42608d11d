"""Hogwild gradient hand-off and the shared optimizer state."""

from __future__ import annotations

import pytest
import torch

from pacer.algos import get_algo, prepare
from pacer.backends.hogwild import HogwildLink
from pacer.config import Config
from pacer.runtime import shared as shared_state
from pacer.worker import Worker, WorkerSpec


def make_workers(n: int, shared_optimizer: bool, lr: float = 0.0, max_grad_norm: float | None = 0.5,
                 analytic_grad: bool = True) -> tuple[list[Worker], shared_state.SharedState]:
    from pacer.envs import probe
    from pacer.model import make_model

    cfg = Config.from_dict({"env": {"envs_per_worker": 2}, "algo": {"n_steps": 4, "lr": lr, "epochs": 1,
                                                                     "minibatches": 1,
                            "shared_optimizer": shared_optimizer, "lr_schedule": "constant",
                                                          "max_grad_norm": max_grad_norm,
                                                          "analytic_grad": analytic_grad},
                            "runtime": {"backend": "inline", "workers": n}})
    spec = probe(cfg.env)
    model = make_model(cfg.model, spec.observation_space, spec.action_space)
    shared = shared_state.create(cfg, model, torch.multiprocessing.get_context("spawn"), in_shared_memory=True)
    workers = [Worker(WorkerSpec(cfg, rank, rank, get_algo("a2c")), HogwildLink(shared, rank, cfg))
               for rank in range(n)]
    return workers, shared


def record_step_grads(worker: Worker) -> list[list[torch.Tensor]]:
    """Wrap the optimizer's step to record the gradients it sees on the shared parameters."""
    seen: list[list[torch.Tensor]] = []
    link = worker.link
    assert isinstance(link, HogwildLink)
    step = link.store.optimizer.step

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        stepped = [link.store.flat] if link.store.flat is not None else link.shared_params
        seen.append([p.grad.clone() for p in stepped])
        return step(*args, **kwargs)

    link.store.optimizer.step = spy  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("analytic_grad", [True, False])
def test_optimizer_sees_the_same_gradient_for_the_same_loss_twice(analytic_grad: bool) -> None:
    # lr 0: the parameters stay put; no clipping, which would rescale a doubled gradient back to the same vector
    (worker,), _ = make_workers(1, shared_optimizer=True, lr=0.0, max_grad_norm=None, analytic_grad=analytic_grad)
    batch = prepare(worker.collector.collect(4), worker.cfg.algo, "gae")
    seen = record_step_grads(worker)
    worker.learn(batch)
    worker.learn(batch)
    assert len(seen) == 2
    assert any(g.abs().sum() > 0 for g in seen[0])
    for first, second in zip(seen[0], seen[1], strict=True):
        torch.testing.assert_close(first, second)  # aliasing would give second == 2 * first


def test_gradients_that_accumulate_across_updates_would_be_caught() -> None:
    """The check above can fail: with the pre-torch-2 A3C hand-off (the shared `.grad` aliased to the local one, then
    `zero_grad` that no longer zeroes in place) each update's gradient piles onto the last one's."""
    # autograd's path: the hand-written gradient (algos/analytic.py) is written whole into its buffer every time
    (worker,), _ = make_workers(1, shared_optimizer=True, lr=0.0, max_grad_norm=None, analytic_grad=False)
    batch = prepare(worker.collector.collect(4), worker.cfg.algo, "gae")
    seen = record_step_grads(worker)
    worker.model.zero_grad = lambda set_to_none=True: None  # type: ignore[method-assign,assignment,misc]
    worker.learn(batch)
    worker.learn(batch)  # the local gradient is never reset: it accumulates
    torch.testing.assert_close(seen[1][0], 2 * seen[0][0])


def test_shared_optimizer_counts_every_workers_steps() -> None:
    workers, shared = make_workers(2, shared_optimizer=True, lr=1e-3)
    for w in workers:
        w.iterate()
    steps = {float(entry["step"]) for entry in shared.optimizer_states[0]}
    assert len(shared.optimizer_states) == 1
    assert steps == {2.0}  # one state, stepped by both workers: bias correction sees 2 steps


def test_per_worker_optimizers_keep_their_own_state() -> None:
    workers, shared = make_workers(2, shared_optimizer=False, lr=1e-3)
    workers[0].iterate()
    workers[0].iterate()
    workers[1].iterate()
    assert [float(s[0]["step"]) for s in shared.optimizer_states] == [2.0, 1.0]


def test_updates_reach_the_shared_parameters_and_the_shared_counter() -> None:
    workers, shared = make_workers(1, shared_optimizer=True, lr=1e-2)
    before = [p.detach().clone() for p in shared.model.parameters()]
    report = workers[0].iterate()
    after = list(shared.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert shared.counters()["env_steps"] == report.env_steps == 8  # 4 steps x 2 envs, first rollout all valid
    assert shared.counters()["updates"] == 1
