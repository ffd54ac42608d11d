"""The hand-written gradient (algos/analytic.py) is autograd's, on every model, head and loss it takes."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from pacer.algos import get_algo
from pacer.algos.analytic import analytic_for
from pacer.algos.losses import Batch
from pacer.config import AlgoConfig, Config, ModelConfig
from pacer.heads import head_for
from pacer.model import make_model
from pacer.runtime import flat

SPACES = {
    "discrete": (gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.Discrete(4)),
    "gaussian": (gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-2, 2, (2,), np.float32)),
}


def _setup(space: str, mcfg: ModelConfig, seed: int = 0) -> tuple:
    torch.manual_seed(seed)
    obs_space, act_space = SPACES[space]
    model = make_model(mcfg, obs_space, act_space)
    params = list(model.parameters())
    flat.flatten_(params)
    if mcfg.normalize_input == "running":  # statistics that are not the identity
        model.obs_norm.mean.copy_(torch.randn(obs_space.shape))
        model.obs_norm.var.copy_(torch.rand(obs_space.shape) + 0.5)
    return model, head_for(act_space), params, obs_space, act_space


def _batch(model: torch.nn.Module, head, obs_space, act_space, rows: int = 64) -> Batch:
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(rows, obs_space.shape[0], generator=g) * 2
    if isinstance(act_space, gym.spaces.Discrete):
        actions = torch.randint(0, act_space.n, (rows,), generator=g)
    else:
        actions = torch.randn(rows, act_space.shape[0], generator=g)
    with torch.no_grad():
        pi, value = model(obs)
        logp, _ = head.log_prob_entropy(model, pi, actions)
    # ratios exactly 1 (PPO's tie between the clipped and unclipped terms), inside the range, and far outside
    shift = torch.cat([torch.zeros(rows // 4), 0.05 * torch.randn(rows // 4, generator=g),
                       torch.randn(rows - rows // 2, generator=g)])
    advantages = torch.randn(rows, generator=g)
    advantages[::7] = 0.0
    return Batch(obs, actions, logp + shift, advantages, torch.randn(rows, generator=g) * 3, value)


CASES = list(itertools.product(["discrete", "gaussian"], ["ppo", "a2c"], ["tanh", "relu"], ["none", "running"],
                               [(64, 64), (16,)]))


@pytest.mark.parametrize(("space", "algo", "activation", "norm", "hidden"), CASES, ids=str)
def test_the_analytic_gradient_is_autograds(space: str, algo: str, activation: str, norm: str,
                                            hidden: tuple[int, ...]) -> None:
    mcfg = ModelConfig(hidden=hidden, activation=activation, normalize_input=norm, log_std_init=-0.5)
    acfg = AlgoConfig(name=algo, entropy_coef=0.03, value_coef=0.7, clip_range=0.2)
    model, head, params, obs_space, act_space = _setup(space, mcfg)
    batch = _batch(model, head, obs_space, act_space)
    loss_fn = get_algo(algo).loss
    analytic = analytic_for(model, head, loss_fn, mcfg, acfg, params)
    assert analytic is not None
    grad = torch.full((sum(p.numel() for p in params),), float("nan"))  # every element must be written
    stats, total = analytic.compute(batch, grad)

    model.zero_grad(set_to_none=True)
    terms = loss_fn(model, head, batch, acfg)
    loss = terms.total(acfg)
    loss.backward()
    expected = flat.gather([p.grad for p in params], params)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)
    assert total == pytest.approx(loss.item(), rel=1e-6)
    reported = terms.report()
    assert stats.keys() == reported.keys()
    for key, value in reported.items():
        assert stats[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize("change", [{"shared_trunk": True}, {"critic_output": "tanh"}, {"normalize_input": "l2"}])
def test_what_it_does_not_cover_takes_autograd(change: dict) -> None:
    mcfg = ModelConfig(**change)
    model, head, params, *_ = _setup("discrete", mcfg)
    assert analytic_for(model, head, get_algo("ppo").loss, mcfg, AlgoConfig(), params) is None
    plain = ModelConfig()
    model, head, params, *_ = _setup("discrete", plain)
    assert analytic_for(model, head, get_algo("mc").loss, plain, AlgoConfig(name="mc"), params) is None
    assert analytic_for(model, head, get_algo("a3c").loss, plain, AlgoConfig(name="a3c"), params) is not None


def test_a_worker_learns_the_same_with_either_gradient() -> None:
    """One rollout's PPO updates (4 epochs x 8 minibatches) from the same start: the same parameters."""
    from pacer.backends.hogwild import HogwildLink
    from pacer.runconfig import complete
    from pacer.runtime import shared as shared_state
    from pacer.worker import Worker, WorkerSpec

    results = []
    for analytic in (True, False):
        cfg = complete(Config.from_dict({"env": {"id": "CartPole-v1", "envs_per_worker": 8},
                                         "algo": {"n_steps": 16, "analytic_grad": analytic},
                                         "runtime": {"workers": 1}}), __import__("pathlib").Path("/tmp/unused"))
        torch.manual_seed(0)
        obs_space, act_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), gym.spaces.Discrete(2)
        model = make_model(cfg.model, obs_space, act_space)
        shared = shared_state.create(cfg, model, torch.multiprocessing.get_context("spawn"), in_shared_memory=False)
        worker = Worker(WorkerSpec(cfg, 0, 0, get_algo("ppo")), HogwildLink(shared, 0, cfg))
        assert (worker.analytic is not None) == analytic
        worker.iterate()
        worker.close()
        results.append(torch.cat([p.detach().reshape(-1) for p in shared.params]).clone())
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-6)
    assert not torch.equal(results[0], torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
