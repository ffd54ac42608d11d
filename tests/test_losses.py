"""Loss functions on a fixed batch, against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from pacer.algos import Batch
from pacer.algos.losses import a2c_loss, mc_loss, ppo_loss
from pacer.config import AlgoConfig


class Fixed(nn.Module):
    """Returns fixed logits and values whatever the input: the losses become hand-computable."""

    def __init__(self, logits: list[list[float]], values: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))
        self.values = nn.Parameter(torch.tensor(values))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return self.logits, self.values


LOGITS = [[0.0, 0.0], [math.log(3.0), 0.0]]  # probabilities [.5, .5] and [.75, .25]
VALUES = [0.5, -1.0]


def batch(advantages: list[float], returns: list[float], old_logp: list[float] | None = None) -> Batch:
    return Batch(obs=torch.zeros(2, 4), actions=torch.tensor([0, 1]),
                 logp=torch.tensor(old_logp or [0.0, 0.0]), advantages=torch.tensor(advantages),
                 returns=torch.tensor(returns))


def test_mc_loss_sums_as_the_classic() -> None:
    model = Fixed(LOGITS, VALUES)
    cfg = AlgoConfig(value_coef=0.1, entropy_coef=0.0)
    loss, stats = mc_loss(model, "discrete", batch([0, 0], [1.0, 0.0]), cfg)
    logp = [math.log(0.5), math.log(0.25)]
    actor = -(logp[0] * (1.0 - 0.5) + logp[1] * (0.0 - -1.0))
    critic = (0.5 - 1.0) ** 2 + (-1.0 - 0.0) ** 2
    assert stats["actor_loss"] == pytest.approx(actor, rel=1e-6)
    assert stats["critic_loss"] == pytest.approx(critic, rel=1e-6)
    assert loss.item() == pytest.approx(actor + 0.1 * critic, rel=1e-6)


def test_mc_actor_gradient_does_not_reach_the_critic() -> None:
    model = Fixed(LOGITS, VALUES)
    loss, _ = mc_loss(model, "discrete", batch([0, 0], [1.0, 0.0]), AlgoConfig(value_coef=0.0))
    loss.backward()
    assert model.values.grad is not None and torch.all(model.values.grad == 0)  # V(s) is detached in the actor


def test_a2c_loss_means_and_entropy() -> None:
    model = Fixed(LOGITS, VALUES)
    cfg = AlgoConfig(value_coef=0.5, entropy_coef=0.01)
    loss, stats = a2c_loss(model, "discrete", batch([2.0, -1.0], [1.0, 1.0]), cfg)
    logp = [math.log(0.5), math.log(0.25)]
    actor = -(logp[0] * 2.0 + logp[1] * -1.0) / 2
    critic = ((0.5 - 1.0) ** 2 + (-1.0 - 1.0) ** 2) / 2
    entropy = (math.log(2) + -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))) / 2
    assert stats["entropy"] == pytest.approx(entropy, rel=1e-6)
    assert loss.item() == pytest.approx(actor + 0.5 * critic - 0.01 * entropy, rel=1e-6)


def test_ppo_clips_the_ratio() -> None:
    model = Fixed(LOGITS, VALUES)
    # old policy: p(a=0|s0) = .25 (ratio 2), p(a=1|s1) = .5 (ratio .5)
    old = [math.log(0.25), math.log(0.5)]
    cfg = AlgoConfig(clip_range=0.2, value_coef=0.0, entropy_coef=0.0)
    _, stats = ppo_loss(model, "discrete", batch([1.0, 1.0], [0.0, 0.0], old), cfg)
    # min(2*1, 1.2*1) = 1.2 and min(.5*1, .8*1) = .5
    assert stats["actor_loss"] == pytest.approx(-(1.2 + 0.5) / 2, rel=1e-6)


def test_gaussian_logp_and_entropy() -> None:
    from pacer.model import logp_entropy

    class G(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.log_std = nn.Parameter(torch.tensor([math.log(2.0)]))

    mean, actions = torch.tensor([[0.0]]), torch.tensor([[2.0]])
    logp, entropy = logp_entropy("gaussian", G(), mean, actions)
    # N(2; 0, 2^2): -0.5*(1)^2 - log 2 - 0.5 log(2 pi)
    assert logp.item() == pytest.approx(-0.5 - math.log(2.0) - 0.5 * math.log(2 * math.pi), rel=1e-6)
    assert entropy.item() == pytest.approx(0.5 + 0.5 * math.log(2 * math.pi) + math.log(2.0), rel=1e-6)
