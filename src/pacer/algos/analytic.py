"""The gradient of the a2c and ppo losses of pacer's own MLP actor-critic, written out by hand.

For these small networks autograd's bookkeeping (recording the graph, one node per op, accumulating into each
parameter's .grad) costs several times the arithmetic. Here the forward pass keeps its activations and the
backward pass is the chain rule as a few matrix products per layer, written straight into the run's flat gradient
buffer. It is exactly the gradient autograd computes (tests/test_analytic.py compares the two on every model
shape, head and loss it covers, ties of PPO's min and clamp included); anything else (a user's model or loss, a
shared trunk, a tanh critic, 'l2' inputs, 'mc') takes the autograd path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pacer.algos.losses import Batch, a2c_loss, ppo_loss
from pacer.config import AlgoConfig, ModelConfig
from pacer.heads import ActionHead, Categorical, DiagGaussian
from pacer.model import MLPActorCritic

LOG_2PI_HALF = 0.5 * math.log(2 * math.pi)
tanh_backward = torch.ops.aten.tanh_backward
threshold_backward = torch.ops.aten.threshold_backward


def _layers(body: nn.Module) -> list[nn.Linear]:
    return [m for m in body.modules() if isinstance(m, nn.Linear)]


class AnalyticGrad:
    """`compute(minibatch, grad)`: the loss terms' values and statistics, with the total loss's gradient written
    into `grad` (the flat buffer whose views are `params`, in model.parameters() order)."""

    def __init__(self, model: MLPActorCritic, head: ActionHead, algo: str, cfg: AlgoConfig, relu: bool,
                 params: Sequence[Tensor]) -> None:
        self.model, self.head, self.algo, self.cfg, self.relu = model, head, algo, cfg, relu
        self.actor = [*_layers(model.actor_body), model.pi_head]
        self.critic = [*_layers(model.critic_body), model.value_head]
        self.params = params
        # parameter -> its position in `params` (and so in the flat gradient)
        self.slot = {id(p): i for i, p in enumerate(model.parameters())}
        self.gaussian = isinstance(head, DiagGaussian)
        self.cached: tuple[Tensor, list[Tensor]] | None = None  # the last gradient buffer and its views

    def _views(self, grad: Tensor) -> list[Tensor]:
        if self.cached is not None and self.cached[0] is grad:
            return self.cached[1]
        out, offset = [], 0
        for p in self.params:
            out.append(grad[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        self.cached = (grad, out)
        return out

    def _forward(self, layers: list[nn.Linear], x: Tensor) -> list[Tensor]:
        """Each layer's input, then the output (no activation after the last layer)."""
        acts = [x]
        for i, layer in enumerate(layers):
            z = torch.addmm(layer.bias, acts[-1], layer.weight.t())
            if i < len(layers) - 1:
                z = z.relu_() if self.relu else z.tanh_()
            acts.append(z)
        return acts

    def _backward(self, layers: list[nn.Linear], acts: list[Tensor], g: Tensor, views: list[Tensor]) -> None:
        """Back-propagate `g` (the gradient at the output) through the layers into their gradient views."""
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            torch.mm(g.t(), acts[i], out=views[self.slot[id(layer.weight)]])
            torch.sum(g, 0, out=views[self.slot[id(layer.bias)]])
            if i == 0:
                break
            g = g.mm(layer.weight)
            # through the activation, from its output: the same kernels autograd runs
            g = threshold_backward(g, acts[i], 0) if self.relu else tanh_backward(g, acts[i])

    def compute(self, batch: Batch, grad: Tensor) -> tuple[dict[str, float], float]:
        """The gradient of `policy + value_coef * value - entropy_coef * entropy` into `grad`; returns the stats a
        loss reports and the total loss."""
        cfg, model = self.cfg, self.model
        with torch.no_grad():
            obs = batch.obs
            if model.obs_norm is not None:
                obs = model.obs_norm(obs.flatten(1))
            actor = self._forward(self.actor, obs)
            critic = self._forward(self.critic, obs)
            pi, value = actor[-1], critic[-1].squeeze(-1)
            n = pi.shape[0]
            if self.gaussian:
                log_std = model.log_std
                std = log_std.exp()
                z = (batch.actions - pi) / std
                logp = (-0.5 * z * z - log_std - LOG_2PI_HALF).sum(-1)
                entropy = (0.5 + LOG_2PI_HALF + log_std).sum()
            else:
                logp_all = torch.log_softmax(pi, -1)
                probs = logp_all.exp()
                actions = batch.actions.long().unsqueeze(-1)
                logp = logp_all.gather(-1, actions).squeeze(-1)
                entropy_rows = -(probs * logp_all).sum(-1)
                entropy = entropy_rows.mean()
            adv = batch.advantages
            stats: dict[str, float] = {}
            if self.algo == "ppo":
                log_ratio = logp - batch.logp
                ratio = log_ratio.exp()
                clipped = ratio.clamp(1.0 - cfg.clip_range, 1.0 + cfg.clip_range)
                surrogate, surrogate_clipped = ratio * adv, clipped * adv
                policy = -torch.minimum(surrogate, surrogate_clipped).mean()
                # d(-min(rA, clip(r)A))/dr: -A where the unclipped term is the smaller one; where the two are
                # equal (r inside the range) autograd splits the gradient between them, which sums to -A too
                d_logp = (surrogate <= surrogate_clipped).to(adv.dtype) * (-adv / n) * ratio
                kl = ((ratio - 1.0) - log_ratio).mean()
                frac = ((ratio - 1.0).abs() > cfg.clip_range).float().mean()
                stats = {"approx_kl": float(kl), "clip_fraction": float(frac)}
            else:
                policy = -(logp * adv).mean()
                d_logp = -adv / n
            err = value - batch.returns
            value_loss = (err * err).mean()
            views = self._views(grad)
            if self.gaussian:
                g_pi = d_logp.unsqueeze(-1) * (z / std)
                g_log_std = views[self.slot[id(model.log_std)]]
                torch.sum(d_logp.unsqueeze(-1) * (z * z - 1.0), 0, out=g_log_std)
                g_log_std.sub_(cfg.entropy_coef)  # d entropy / d log_std = 1 per dimension
            else:
                # d logp/d logits = onehot - p; d H_row/d logits = -p (log p + H_row), H averaged over rows
                g_pi = -probs * d_logp.unsqueeze(-1)
                g_pi.scatter_add_(-1, actions, d_logp.unsqueeze(-1))
                g_pi += (cfg.entropy_coef / n) * probs * (logp_all + entropy_rows.unsqueeze(-1))
            self._backward(self.actor, actor, g_pi, views)
            self._backward(self.critic, critic, ((2.0 * cfg.value_coef / n) * err).unsqueeze(-1), views)
            total = policy + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
            stats.update({"actor_loss": float(policy), "critic_loss": float(value_loss),
                          "entropy": float(entropy)})
        return stats, float(total)


LOSSES: dict[Callable[..., Any], str] = {ppo_loss: "ppo", a2c_loss: "a2c"}


def analytic_for(model: nn.Module, head: ActionHead, loss: Callable[..., Any], mcfg: ModelConfig, cfg: AlgoConfig,
                 params: Sequence[Tensor]) -> AnalyticGrad | None:
    """The hand-written gradient when it covers this model, head and loss; None for autograd."""
    if (type(model) is not MLPActorCritic or loss not in LOSSES or mcfg.factory is not None or mcfg.shared_trunk
            or mcfg.critic_output != "linear" or mcfg.normalize_input == "l2"
            or not isinstance(head, (Categorical, DiagGaussian))):
        return None
    if any(p.dtype != torch.float32 for p in params):
        return None
    grad = AnalyticGrad(model, head, LOSSES[loss], cfg, mcfg.activation == "relu", params)
    covered = {id(t) for layer in grad.actor + grad.critic for t in (layer.weight, layer.bias)}
    if grad.gaussian:
        covered.add(id(model.log_std))
    return grad if covered == {id(p) for p in model.parameters()} else None
