"""Action heads against torch.distributions and hand-computed bounds: one object per action space."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from pacer.errors import PacerError
from pacer.heads import Bernoulli, Categorical, DiagGaussian, MultiCategorical, act, head_for, masked


class LogStd(nn.Module):
    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.log_std = nn.Parameter(torch.tensor(values))


def test_categorical_matches_torch_distributions() -> None:
    head = head_for(gym.spaces.Discrete(3))
    assert isinstance(head, Categorical) and head.size == 3 and head.shape == () and head.dtype is np.int64
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, -1.0]])
    reference = torch.distributions.Categorical(logits=logits)
    actions, logp = head.sample(nn.Module(), logits, torch.Generator().manual_seed(0))
    torch.testing.assert_close(logp, reference.log_prob(actions))
    logp, entropy = head.log_prob_entropy(nn.Module(), logits, torch.tensor([2, 0]))
    torch.testing.assert_close(logp, reference.log_prob(torch.tensor([2, 0])))
    torch.testing.assert_close(entropy, reference.entropy())
    assert head.mode(logits).tolist() == [2, 0]
    assert head.clip(torch.tensor([5, -1])).tolist() == [5, -1]  # no bounds to clip to


def test_gaussian_matches_torch_distributions_and_clips_each_dimension_to_its_own_bounds() -> None:
    head = head_for(gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 5.0], np.float32)))
    assert isinstance(head, DiagGaussian) and head.size == 2 and head.shape == (2,) and head.dtype is np.float32
    model, means = LogStd([0.0, -1.0]), torch.tensor([[0.5, 2.0]])
    reference = torch.distributions.Normal(means, model.log_std.exp())
    actions, logp = head.sample(model, means, torch.Generator().manual_seed(0))
    torch.testing.assert_close(logp, reference.log_prob(actions).sum(-1))
    _, entropy = head.log_prob_entropy(model, means, actions)
    torch.testing.assert_close(entropy, reference.entropy().sum(-1))
    torch.testing.assert_close(head.clip(torch.tensor([[3.0, -2.0], [-3.0, 9.0]])),
                               torch.tensor([[1.0, 0.0], [-1.0, 5.0]]))
    greedy = act(head, model, torch.tensor([[2.0, 1.0]]), greedy=True)
    assert isinstance(greedy, np.ndarray) and greedy.tolist() == [[1.0, 1.0]]  # the mode, clipped


def test_multi_discrete_sums_independent_components_and_keeps_each_start() -> None:
    head = head_for(gym.spaces.MultiDiscrete([3, 2], start=[1, -1]))
    assert isinstance(head, MultiCategorical) and head.size == 5 and head.shape == (2,) and head.dtype is np.int64
    logits = torch.tensor([[0.0, 1.0, 2.0, 0.5, -0.5], [2.0, 0.0, -1.0, -1.0, 1.0]])
    first, second = (torch.distributions.Categorical(logits=logits[:, :3]),
                     torch.distributions.Categorical(logits=logits[:, 3:]))
    actions = torch.tensor([[3, -1], [1, 0]])  # env actions: index + start
    logp, entropy = head.log_prob_entropy(nn.Module(), logits, actions)
    torch.testing.assert_close(logp, first.log_prob(torch.tensor([2, 0])) + second.log_prob(torch.tensor([0, 1])))
    torch.testing.assert_close(entropy, first.entropy() + second.entropy())
    drawn, drawn_logp = head.sample(nn.Module(), logits, torch.Generator().manual_seed(0))
    assert drawn.shape == (2, 2) and ((drawn[:, 0] >= 1) & (drawn[:, 0] <= 3)).all()
    torch.testing.assert_close(drawn_logp, head.log_prob_entropy(nn.Module(), logits, drawn)[0])
    assert head.mode(logits).tolist() == [[3, -1], [1, 0]]
    space = gym.spaces.MultiDiscrete([3, 2], start=[1, -1])
    assert all(space.contains(a.numpy()) for a in drawn)


def test_multi_binary_is_one_bernoulli_per_bit() -> None:
    head = head_for(gym.spaces.MultiBinary(3))
    assert isinstance(head, Bernoulli) and head.size == 3 and head.shape == (3,) and head.dtype is np.int8
    logits = torch.tensor([[0.0, 2.0, -3.0], [40.0, -40.0, 1.0]])
    reference = torch.distributions.Bernoulli(logits=logits)
    bits = torch.tensor([[1, 0, 0], [1, 0, 1]], dtype=torch.int8)
    logp, entropy = head.log_prob_entropy(nn.Module(), logits, bits)
    torch.testing.assert_close(logp, reference.log_prob(bits.float()).sum(-1))
    torch.testing.assert_close(entropy, reference.entropy().sum(-1))
    drawn, drawn_logp = head.sample(nn.Module(), logits, torch.Generator().manual_seed(0))
    assert drawn.dtype == torch.int8 and gym.spaces.MultiBinary(3).contains(drawn[0].numpy())
    torch.testing.assert_close(drawn_logp, head.log_prob_entropy(nn.Module(), logits, drawn)[0])
    assert head.mode(logits).tolist() == [[0, 1, 0], [1, 0, 1]]


def test_a_masked_categorical_is_the_softmax_over_the_legal_actions_by_hand() -> None:
    # logits (1, 2, 3) with the last illegal: p = (e^1, e^2) / (e^1 + e^2) = (1, e) / (1 + e)
    head = head_for(gym.spaces.Discrete(3))
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    legal = torch.tensor([[True, True, False]])
    p1 = 1.0 / (1.0 + math.e)
    p2 = 1.0 - p1
    logp, entropy = head.log_prob_entropy(nn.Module(), masked(logits, legal), torch.tensor([1]))
    assert logp.item() == pytest.approx(math.log(p2), abs=1e-6)
    assert entropy.item() == pytest.approx(-(p1 * math.log(p1) + p2 * math.log(p2)), abs=1e-6)
    assert head.mode(masked(logits, legal)).item() == 1  # the best legal action, not the best of all
    draws, draw_logp = head.sample(nn.Module(), masked(logits.expand(2000, 3), legal.expand(2000, 3)),
                                   torch.Generator().manual_seed(0))
    assert not (draws == 2).any() and torch.isfinite(draw_logp).all()
    assert (draws == 1).float().mean().item() == pytest.approx(p2, abs=0.04)
    # one legal action: probability 1, entropy 0, no NaN anywhere (0 * log 0 is where -inf logits give NaN)
    only = torch.tensor([[False, False, True]])
    logp, entropy = head.log_prob_entropy(nn.Module(), masked(logits, only), torch.tensor([2]))
    assert logp.item() == pytest.approx(0.0, abs=1e-6) and entropy.item() == pytest.approx(0.0, abs=1e-6)


def test_a_masked_multi_discrete_masks_each_component_by_hand() -> None:
    # component 1: logits (0, 0, 0), action 0 illegal -> uniform over 2: log 1/2, entropy log 2
    # component 2: logits (0, 5), action 1 illegal -> certain: log 1, entropy 0
    head = head_for(gym.spaces.MultiDiscrete([3, 2]))
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0, 5.0]])
    legal = torch.tensor([[False, True, True, True, False]])
    logp, entropy = head.log_prob_entropy(nn.Module(), masked(logits, legal), torch.tensor([[2, 0]]))
    assert logp.item() == pytest.approx(math.log(0.5), abs=1e-6)
    assert entropy.item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert head.mode(masked(logits, legal)).tolist() == [[1, 0]]


def test_masked_logits_give_the_legal_gradient_only() -> None:
    # d logp(a) / d logits over the legal ones is onehot(a) - p; an illegal logit gets exactly 0
    head = head_for(gym.spaces.Discrete(3))
    logits = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    legal = torch.tensor([[True, True, False]])
    logp, _ = head.log_prob_entropy(nn.Module(), masked(logits, legal), torch.tensor([0]))
    logp.sum().backward()
    p1 = 1.0 / (1.0 + math.e)
    assert logits.grad is not None
    torch.testing.assert_close(logits.grad, torch.tensor([[1.0 - p1, -(1.0 - p1), 0.0]]))


@pytest.mark.parametrize(("space", "message"), [
    (gym.spaces.Box(-1.0, 1.0, (2, 2)), r"pacer handles 1-D Box actions \(reshape them to 4 values in an "
                                         r"ActionWrapper\)$"),
    (gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3))),
     r"pacer handles Discrete, MultiDiscrete, MultiBinary and 1-D Box actions \(a Tuple or Dict of actions: "
     r"flatten it into one of these in an ActionWrapper\)$"),
], ids=["2-d-box", "tuple"])
def test_spaces_without_a_head_are_refused_in_one_line(space: gym.Space, message: str) -> None:
    with pytest.raises(PacerError, match=r"^unsupported action space .*: " + message):
        head_for(space)
