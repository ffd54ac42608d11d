"""Loss functions on a fixed batch, against values computed by hand."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch
from torch import Tensor, nn

from pacer.algos import Batch, LossFn, LossTerms
from pacer.algos.losses import a2c_loss, mc_loss, ppo_loss
from pacer.config import AlgoConfig
from pacer.heads import Categorical


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


HEAD = Categorical(gym.spaces.Discrete(2))


def terms_of(loss: LossFn, model: nn.Module, data: Batch, cfg: AlgoConfig) -> tuple[Tensor, dict[str, float]]:
    """The loss to minimize and the numbers reported, as the worker takes them from the loss's terms."""
    terms = loss(model, HEAD, data, cfg)
    assert isinstance(terms, LossTerms)
    return terms.total(cfg), terms.report()


def batch(advantages: list[float], returns: list[float], old_logp: list[float] | None = None) -> Batch:
    return Batch(obs=torch.zeros(2, 4), actions=torch.tensor([0, 1]),
                 logp=torch.tensor(old_logp or [0.0, 0.0]), advantages=torch.tensor(advantages),
                 returns=torch.tensor(returns), values=torch.tensor(VALUES))


def test_mc_loss_sums_as_the_classic() -> None:
    model = Fixed(LOGITS, VALUES)
    cfg = AlgoConfig(value_coef=0.1, entropy_coef=0.0)
    loss, stats = terms_of(mc_loss, model, batch([0, 0], [1.0, 0.0]), cfg)
    logp = [math.log(0.5), math.log(0.25)]
    actor = -(logp[0] * (1.0 - 0.5) + logp[1] * (0.0 - -1.0))
    critic = (0.5 - 1.0) ** 2 + (-1.0 - 0.0) ** 2
    assert stats["actor_loss"] == pytest.approx(actor, rel=1e-6)
    assert stats["critic_loss"] == pytest.approx(critic, rel=1e-6)
    assert loss.item() == pytest.approx(actor + 0.1 * critic, rel=1e-6)


def test_mc_actor_gradient_does_not_reach_the_critic() -> None:
    model = Fixed(LOGITS, VALUES)
    loss, _ = terms_of(mc_loss, model, batch([0, 0], [1.0, 0.0]), AlgoConfig(value_coef=0.0))
    loss.backward()
    assert model.values.grad is not None and torch.all(model.values.grad == 0)  # V(s) is detached in the actor


def test_a2c_loss_means_and_entropy() -> None:
    model = Fixed(LOGITS, VALUES)
    cfg = AlgoConfig(value_coef=0.5, entropy_coef=0.01)
    loss, stats = terms_of(a2c_loss, model, batch([2.0, -1.0], [1.0, 1.0]), cfg)
    logp = [math.log(0.5), math.log(0.25)]
    actor = -(logp[0] * 2.0 + logp[1] * -1.0) / 2
    critic = ((0.5 - 1.0) ** 2 + (-1.0 - 1.0) ** 2) / 2
    entropy = (math.log(2) + -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))) / 2
    assert stats["entropy"] == pytest.approx(entropy, rel=1e-6)
    assert loss.item() == pytest.approx(actor + 0.5 * critic - 0.01 * entropy, rel=1e-6)


# Rows' new probabilities of their actions are .5 and .25. With old ones of .25 and .5 the ratios are 2 and .5, both
# outside clip_range .2's [.8, 1.2]; with .5/1.1 and .25/.9 they are 1.1 and .9, inside it.
OUTSIDE = [math.log(0.25), math.log(0.5)]
INSIDE = [math.log(0.5 / 1.1), math.log(0.25 / 0.9)]


@pytest.mark.parametrize(("old", "advantages", "surrogates"), [
    (OUTSIDE, [1.0, 1.0], [1.2, 0.5]),  # A > 0: min(2, 1.2) clips the gain above; min(.5, .8) keeps the ratio
    (OUTSIDE, [-1.0, -1.0], [-2.0, -0.8]),  # A < 0: min(-2, -1.2) keeps the ratio; min(-.5, -.8) clips it below
    (OUTSIDE, [-2.0, 3.0], [-4.0, 1.5]),  # no clip on either side: min(-4, -2.4) and min(1.5, 2.4)
    (OUTSIDE, [2.0, -3.0], [2.4, -2.4]),  # the clip on both sides: min(4, 2.4) and min(-1.5, -2.4)
    (INSIDE, [1.0, -1.0], [1.1, -0.9]),  # inside the range the clip does nothing
], ids=["positive", "negative", "neither-clipped", "both-clipped", "inside-the-range"])
def test_ppo_clips_the_ratio(old: list[float], advantages: list[float], surrogates: list[float]) -> None:
    """min(ratio * A, clip(ratio) * A), not min(ratio, clip(ratio)) * A: they differ when A < 0."""
    model = Fixed(LOGITS, VALUES)
    cfg = AlgoConfig(clip_range=0.2, value_coef=0.0, entropy_coef=0.0)
    _, stats = terms_of(ppo_loss, model, batch(advantages, [0.0, 0.0], old), cfg)
    assert stats["actor_loss"] == pytest.approx(-sum(surrogates) / 2, rel=1e-6)


def test_ppo_clipped_rows_get_no_policy_gradient() -> None:
    cfg = AlgoConfig(clip_range=0.2, value_coef=0.0, entropy_coef=0.0)
    clipped = Fixed(LOGITS, VALUES)
    terms_of(ppo_loss, clipped, batch([2.0, -3.0], [0.0, 0.0], OUTSIDE), cfg)[0].backward()
    assert clipped.logits.grad is not None and torch.all(clipped.logits.grad == 0)
    unclipped = Fixed(LOGITS, VALUES)
    terms_of(ppo_loss, unclipped, batch([-2.0, 3.0], [0.0, 0.0], OUTSIDE), cfg)[0].backward()
    # d(-ratio * A / 2)/d logits = -A/2 * ratio * (onehot(a) - pi):
    # row 0: 1 * 2 * ([1, 0] - [.5, .5]) = [1, -1]; row 1: -1.5 * .5 * ([0, 1] - [.75, .25]) = [.5625, -.5625]
    torch.testing.assert_close(unclipped.logits.grad, torch.tensor([[1.0, -1.0], [0.5625, -0.5625]]))


def test_gaussian_logp_and_entropy() -> None:
    from pacer.heads import DiagGaussian

    class G(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.log_std = nn.Parameter(torch.tensor([math.log(2.0)]))

    mean, actions = torch.tensor([[0.0]]), torch.tensor([[2.0]])
    head = DiagGaussian(gym.spaces.Box(-1.0, 1.0, (1,)))
    logp, entropy = head.log_prob_entropy(G(), mean, actions)
    # N(2; 0, 2^2): -0.5*(1)^2 - log 2 - 0.5 log(2 pi)
    assert logp.item() == pytest.approx(-0.5 - math.log(2.0) - 0.5 * math.log(2 * math.pi), rel=1e-6)
    assert entropy.item() == pytest.approx(0.5 + 0.5 * math.log(2 * math.pi) + math.log(2.0), rel=1e-6)


@pytest.mark.parametrize(("old", "approx_kl", "clip_fraction"), [
    (OUTSIDE, ((2 - 1) - math.log(2) + (0.5 - 1) - math.log(0.5)) / 2, 1.0),  # ratios 2 and .5: both clipped
    (INSIDE, ((1.1 - 1) - math.log(1.1) + (0.9 - 1) - math.log(0.9)) / 2, 0.0),  # ratios 1.1 and .9: neither
], ids=["outside", "inside"])
def test_ppo_reports_approx_kl_and_clip_fraction(old: list[float], approx_kl: float, clip_fraction: float) -> None:
    """approx-KL is the mean of (r - 1) - log r (never negative), as CleanRL and SB3 log it."""
    cfg = AlgoConfig(clip_range=0.2)
    _, stats = terms_of(ppo_loss, Fixed(LOGITS, VALUES), batch([1.0, 1.0], [0.0, 0.0], old), cfg)
    assert stats["approx_kl"] == pytest.approx(approx_kl, rel=1e-5)
    assert stats["clip_fraction"] == clip_fraction


def test_explained_variance() -> None:
    from pacer.algos import explained_variance

    # returns [1, -1] (variance 1), values [.5, -1]: residuals [.5, 0] (variance .0625)
    assert explained_variance(torch.tensor([0.5, -1.0]), torch.tensor([1.0, -1.0])) == pytest.approx(0.9375)
    assert explained_variance(torch.tensor([1.0, -1.0]), torch.tensor([1.0, -1.0])) == 1.0
    assert math.isnan(explained_variance(torch.tensor([0.0, 3.0]), torch.tensor([2.0, 2.0])))
