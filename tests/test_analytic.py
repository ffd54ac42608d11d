"""The hand-written gradient (algos/analytic.py) is autograd's on everything it covers, and everything else is
refused: every config field is classified, and a schedule's steps apply the gradient of their own minibatch."""

from __future__ import annotations

import dataclasses
import itertools
import random
import typing
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from pacer.algos import analytic, get_algo
from pacer.algos.losses import Batch, ppo_surrogate, rows
from pacer.config import AlgoConfig, Config, ModelConfig
from pacer.heads import head_for, masked
from pacer.model import make_model
from pacer.runtime import flat
from pacer.spaces import KINDS, ObsLayout, tree_map

SPACES = {
    "discrete": (gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.Discrete(4)),
    "gaussian": (gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-2, 2, (2,), np.float32)),
    "grid": (gym.spaces.Box(-1, 1, (2, 3), np.float32), gym.spaces.Discrete(3)),  # flattened by the MLP
    # a structured observation whose leaves have no parameters of their own (pacer/spaces.py, model.Features)
    "dict": (gym.spaces.Dict({"position": gym.spaces.Box(-1, 1, (3,), np.float32), "room": gym.spaces.Discrete(4),
                              "doors": gym.spaces.MultiBinary(2), "keys": gym.spaces.MultiDiscrete([2, 3])}),
             gym.spaces.Discrete(3)),
}


def _setup(space: str, mcfg: ModelConfig, seed: int = 0) -> tuple:
    torch.manual_seed(seed)
    obs_space, act_space = SPACES[space]
    model = make_model(mcfg, obs_space, act_space)
    params = list(model.parameters())
    flat.flatten_(params)
    norm = model.obs_norm if model.features is None else model.features.obs_norm
    if mcfg.normalize_input == "running":  # statistics that are not the identity
        dim = norm.mean.shape[0]
        norm.mean.copy_(torch.randn(dim))
        norm.var.copy_(torch.rand(dim) + 0.5)
    return model, head_for(act_space), params, obs_space, act_space


def _batch(model: torch.nn.Module, head, obs_space, act_space, rows: int = 64, masks: bool = False) -> Batch:
    g = torch.Generator().manual_seed(1)
    if isinstance(obs_space, gym.spaces.Box):
        obs = torch.randn(rows, *obs_space.shape, generator=g) * 2
    else:
        obs_space.seed(1)
        layout = ObsLayout(obs_space)
        obs = tree_map(torch.from_numpy, layout.cast(tree_map(lambda *xs: np.stack(xs),
                                                              *[obs_space.sample() for _ in range(rows)])))
    legal = None
    if isinstance(act_space, gym.spaces.Discrete):
        actions = torch.randint(0, act_space.n, (rows,), generator=g)
        if masks:  # about half the actions illegal, the one taken always legal
            legal = torch.rand(rows, act_space.n, generator=g) < 0.5
            legal[torch.arange(rows), actions] = True
    else:
        actions = torch.randn(rows, act_space.shape[0], generator=g)
    with torch.no_grad():
        pi, value = model(obs)
        logp, _ = head.log_prob_entropy(model, masked(pi, legal), actions)
    # ratios exactly 1 (PPO's tie between the clipped and unclipped terms), inside the range, and far outside
    shift = torch.cat([torch.zeros(rows // 4), 0.05 * torch.randn(rows // 4, generator=g),
                       torch.randn(rows - rows // 2, generator=g)])
    advantages = torch.randn(rows, generator=g)
    advantages[::7] = 0.0
    return Batch(obs, actions, logp + shift, advantages, torch.randn(rows, generator=g) * 3, value,
                 action_mask=legal)


def _compare(space: str, mcfg: ModelConfig, acfg: AlgoConfig, seed: int = 0, masks: bool = False) -> None:
    """The fast path's gradient, total and statistics against autograd's on the algorithm's own loss."""
    model, head, params, obs_space, act_space = _setup(space, mcfg, seed)
    batch = _batch(model, head, obs_space, act_space, masks=masks)
    algorithm = get_algo(acfg.name)
    fast = algorithm.fast_grad(model, head, mcfg, acfg, params)
    assert fast is not None, analytic.refusal(mcfg, acfg, head)
    stats, total, grad = fast.compute(batch)

    model.zero_grad(set_to_none=True)
    terms = algorithm.loss(model, head, batch, acfg)
    loss = terms.total(acfg)
    loss.backward()
    expected = flat.gather([p.grad for p in params], params)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
    assert total == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
    reported = terms.report()
    assert stats.keys() == reported.keys()
    for key, value in reported.items():
        assert stats[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


CASES = list(itertools.product(["discrete", "gaussian"], ["ppo", "a2c"], ["tanh", "relu"], ["none", "running"],
                               [(64, 64), (16,)]))


@pytest.mark.parametrize(("space", "algo", "activation", "norm", "hidden"), CASES, ids=str)
def test_the_analytic_gradient_is_autograds(space: str, algo: str, activation: str, norm: str,
                                            hidden: tuple[int, ...]) -> None:
    _compare(space, ModelConfig(hidden=hidden, activation=activation, normalize_input=norm, log_std_init=-0.5),
             AlgoConfig(name=algo, entropy_coef=0.03, value_coef=0.7, clip_range=0.2))


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
@pytest.mark.parametrize("space", ["discrete", "dict"])
def test_the_analytic_gradient_is_autograds_with_action_masks(space: str, algo: str) -> None:
    _compare(space, ModelConfig(normalize_input="running"), AlgoConfig(name=algo, entropy_coef=0.05), masks=True)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_the_analytic_gradient_is_autograds_on_a_structured_observation(algo: str) -> None:
    _compare("dict", ModelConfig(hidden=(32,), normalize_input="running"), AlgoConfig(name=algo, entropy_coef=0.02))


def test_every_kind_of_observation_leaf_is_classified_and_images_take_autograd() -> None:
    assert set(analytic.OBS_LEAVES) == set(KINDS), "a kind of observation leaf nobody classified for analytic.py"
    space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (40, 40, 3), np.uint8),
                             "direction": gym.spaces.Discrete(4)})
    mcfg, acfg, head = ModelConfig(), AlgoConfig(), head_for(gym.spaces.Discrete(3))
    assert analytic.refusal(mcfg, acfg, head, ObsLayout(space)) == "the pixels observation 'image'"
    model = make_model(mcfg, space, gym.spaces.Discrete(3))
    params = list(model.parameters())
    flat.flatten_(params)
    assert get_algo("ppo").fast_grad(model, head, mcfg, acfg, params) is None  # the CNN's parameters: not covered


def test_every_config_field_is_classified() -> None:
    """A field added to ModelConfig or AlgoConfig must be classified for the fast path before any test passes: is
    every value covered, does it not enter the gradient, or which values are covered (the rest take autograd)."""
    for cls, rules in ((ModelConfig, analytic.MODEL_FIELDS), (AlgoConfig, analytic.ALGO_FIELDS)):
        names = {f.name for f in dataclasses.fields(cls)}
        assert names - rules.keys() == set(), f"{cls.__name__} fields nobody classified for algos/analytic.py"
        assert rules.keys() - names == set(), f"{cls.__name__} has no such fields"
        hints = typing.get_type_hints(cls)
        for name, rule in rules.items():
            choices = typing.get_args(hints[name]) if typing.get_origin(hints[name]) is typing.Literal else None
            if isinstance(rule, frozenset) and choices is not None:
                assert rule <= set(choices) | {None}, f"{name}: covered values the config does not offer"


def _refused_values() -> list[tuple[str, str, Any]]:
    """Every value a field offers (a Literal's choices, a bool's two) that its rule leaves out."""
    out = []
    for section, cls, rules in (("model", ModelConfig, analytic.MODEL_FIELDS), ("algo", AlgoConfig,
                                                                                 analytic.ALGO_FIELDS)):
        hints = typing.get_type_hints(cls)
        for name, rule in rules.items():
            if not isinstance(rule, frozenset):
                continue
            hint = hints[name]
            choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else \
                (True, False) if hint is bool else ()
            out += [(section, name, value) for value in choices if value not in rule]
    return out


@pytest.mark.parametrize(("section", "name", "value"), _refused_values(), ids=str)
def test_every_value_it_does_not_cover_takes_autograd(section: str, name: str, value: Any) -> None:
    mcfg, acfg = ModelConfig(), AlgoConfig()
    if section == "model":
        mcfg = dataclasses.replace(mcfg, **{name: value})
    else:
        acfg = dataclasses.replace(acfg, **{name: value})
    obs_space, act_space = SPACES["discrete"]
    head = head_for(act_space)
    assert analytic.refusal(mcfg, acfg, head) == f"{section}.{name}={value!r}"
    if mcfg.encoder == "cnn":
        return  # no CNN for a 5-vector: the refusal is what matters
    model = make_model(mcfg, obs_space, act_space)
    assert get_algo("ppo").fast_grad(model, head, mcfg, acfg, list(model.parameters())) is None


def test_losses_without_a_fast_path_take_autograd() -> None:
    assert get_algo("mc").fast_grad is None
    assert get_algo("mc").fast_grad_refusal(ModelConfig(), AlgoConfig(name="mc"), head_for(gym.spaces.Discrete(2)))
    assert get_algo("a3c").fast_grad is analytic.a2c


def _random_value(hint: Any, rng: random.Random) -> Any:
    """A random value of a config field's type (extend it when a field of a new type is classified 'any')."""
    if typing.get_origin(hint) is typing.Literal:
        return rng.choice(typing.get_args(hint))
    if hint is bool:
        return rng.random() < 0.5
    if hint is int:
        return rng.randint(1, 64)
    if hint is float or hint == float | None:
        return rng.uniform(0.0, 1.5)
    if hint == tuple[int, ...]:
        return tuple(rng.randint(1, 24) for _ in range(rng.randint(0, 3)))
    raise AssertionError(f"no random values for {hint}: extend _random_value")


def test_random_configs_of_every_covered_field_match_autograd() -> None:
    """Each field classified 'any' (or by its covered values) takes random values: the gradient stays autograd's."""
    rng = random.Random(7)
    model_hints, algo_hints = typing.get_type_hints(ModelConfig), typing.get_type_hints(AlgoConfig)
    for trial in range(24):
        model_values, algo_values = {}, {}
        for rules, hints, values in ((analytic.MODEL_FIELDS, model_hints, model_values),
                                     (analytic.ALGO_FIELDS, algo_hints, algo_values)):
            for name, rule in rules.items():
                if rule == "any":
                    values[name] = _random_value(hints[name], rng)
                elif isinstance(rule, frozenset):
                    values[name] = rng.choice(sorted(rule, key=repr))
        if not model_values["hidden"]:
            model_values["hidden"] = (8,)
        model_values["log_std_init"] -= 1.0
        mcfg = ModelConfig(**model_values)
        acfg = AlgoConfig(name=rng.choice(["ppo", "a2c"]), **algo_values)
        _compare(rng.choice(list(SPACES)), mcfg, acfg, seed=trial)


def test_the_ppo_surrogates_derivative() -> None:
    ratio = torch.tensor([1.0, 1.0, 0.5, 1.5, 1.1, 0.9, 1.3, 0.7], dtype=torch.float64)
    advantages = torch.tensor([1.0, -1.0, 2.0, 2.0, -0.5, 0.5, -1.0, -1.0], dtype=torch.float64)
    logp = ratio.log().requires_grad_()
    surrogate = ppo_surrogate(logp, torch.zeros_like(logp), advantages, 0.2)
    surrogate.loss.backward()
    with torch.no_grad():
        torch.testing.assert_close(analytic.ppo_surrogate_grad(surrogate, advantages), logp.grad)


def _worker(analytic_grad: bool, schedule: Any = None) -> tuple[Any, Any, Any]:
    from pacer.backends.hogwild import HogwildLink
    from pacer.runconfig import complete
    from pacer.runtime import shared as shared_state
    from pacer.worker import Worker, WorkerSpec

    cfg = complete(Config.from_dict({"env": {"envs_per_worker": 8},
                                     "algo": {"n_steps": 16, "analytic_grad": analytic_grad},
                                     "runtime": {"workers": 1}}), Path("/tmp/unused"))
    assert cfg.algo.analytic_grad == analytic_grad  # CartPole's MLP and PPO: covered
    torch.manual_seed(0)
    model = make_model(cfg.model, gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), gym.spaces.Discrete(2))
    shared = shared_state.create(cfg, model, torch.multiprocessing.get_context("spawn"), in_shared_memory=False)
    algorithm = get_algo("ppo")
    if schedule is not None:
        algorithm = dataclasses.replace(algorithm, schedule=schedule)
    worker = Worker(WorkerSpec(cfg, 0, 0, algorithm), HogwildLink(shared, 0, cfg))
    assert (worker.fast_grad is not None) == analytic_grad
    return worker, shared, model


def _params(shared: Any) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in shared.params]).clone()


def test_a_worker_learns_the_same_with_either_gradient() -> None:
    """One rollout's PPO updates (4 epochs x 8 minibatches) from the same start: the same parameters."""
    results = []
    for analytic_grad in (True, False):
        worker, shared, _ = _worker(analytic_grad)
        before = _params(shared)
        worker.iterate()
        worker.close()
        results.append(_params(shared))
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-6)
    assert not torch.equal(results[0], before)


def two_losses_then_the_first(batch: Batch, cfg: AlgoConfig, rng: torch.Generator, learner: Any
                              ) -> tuple[dict[str, float], int]:
    """A schedule that computes two minibatches' losses before it applies the first one's."""
    half = batch.obs.shape[0] // 2
    first = learner.loss(rows(batch, slice(0, half)))
    learner.loss(rows(batch, slice(half, None)))
    return learner.step(first), 1


def test_a_step_applies_its_own_minibatchs_gradient() -> None:
    """Whatever the schedule computed in between, step(s) applies the update of s's minibatch: with the fast path
    exactly as with autograd (the fast path once applied the gradient of the last loss computed)."""
    results = []
    for analytic_grad in (True, False):
        worker, shared, _ = _worker(analytic_grad, schedule=two_losses_then_the_first)
        worker.iterate()
        worker.close()
        results.append(_params(shared))
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-6)
