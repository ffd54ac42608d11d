"""Action heads against torch.distributions and hand-computed bounds: one object per action space."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from pacer.errors import PacerError
from pacer.heads import Categorical, DiagGaussian, act, head_for


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


@pytest.mark.parametrize("space", [gym.spaces.MultiDiscrete([2, 2]), gym.spaces.Box(-1.0, 1.0, (2, 2))],
                         ids=["multi-discrete", "2-d-box"])
def test_spaces_without_a_head_are_refused_in_one_line(space: gym.Space) -> None:
    with pytest.raises(PacerError, match=r"^unsupported action space .*: pacer handles Discrete and 1-D Box actions$"):
        head_for(space)
