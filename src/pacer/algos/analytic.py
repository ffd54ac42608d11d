"""The gradient of the a2c and ppo losses of pacer's own MLP actor-critic, written out by hand.

For these small networks autograd's bookkeeping (recording the graph, one node per op, accumulating into each
parameter's .grad) costs several times the arithmetic. Here the forward pass keeps its activations and the
backward pass is the chain rule as a few matrix products per layer, written into one flat gradient. It is exactly
the gradient autograd computes (tests/test_analytic.py compares the two on every model shape, head and loss it
covers, ties of PPO's min and clamp included).

It is a second way to the same numbers, so it is fenced:
- an algorithm registers it (`Algorithm.fast_grad`: `ppo` and `a2c` here); a loss of one's own never gets it;
- the values come from the functions the losses call (`ppo_surrogate`, `ppo_stats`, `value_loss`, `total_loss`,
  the model's `inputs`, the head's `saved_log_prob_entropy`); only the derivatives are written here and in the heads;
- `MODEL_FIELDS` and `ALGO_FIELDS` classify every config field: 'any' (every value is covered), 'unused' (it does
  not enter a loss's gradient) or the set of values covered; a run outside them takes autograd, and its config.yaml
  says so (`algo.analytic_grad: false`). A test fails when a field is added that nobody classified;
- the model must be exactly `MLPActorCritic` and the head a `FastHead` (Discrete, 1-D Box): a new head or a
  recurrent core (`model.memory`) is trained with autograd until this module says otherwise; so is a structured
  observation with a leaf `OBS_LEAVES` does not cover (an image's CNN), and a test fails when a kind of leaf is
  added that it does not classify. Action masks are covered: with the logits masked, an illegal action's
  probability is exactly 0, and so is the gradient the head's `backward` gives its logit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from pacer.algos.losses import Batch, LossTerms, Surrogate, ppo_stats, ppo_surrogate, value_loss
from pacer.config import AlgoConfig, ModelConfig
from pacer.heads import ActionHead, FastHead, masked
from pacer.model import MLPActorCritic
from pacer.runtime import flat
from pacer.spaces import ObsLayout

# an activation's backward kernel, from its output (the kernels autograd runs); an activation not named here is
# not covered
ACTIVATION_GRADS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "tanh": lambda g, out: torch.ops.aten.tanh_backward(g, out),
    "relu": lambda g, out: torch.ops.aten.threshold_backward(g, out, 0),
}
ACTIVATION_FORWARD: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.Tensor.tanh_, "relu": torch.Tensor.relu_}

Rule = Literal["any", "unused"] | frozenset[Any]

MODEL_FIELDS: dict[str, Rule] = {
    "hidden": "any",
    "activation": frozenset(ACTIVATION_GRADS),
    "shared_trunk": frozenset({False}),
    "critic_hidden": "any",  # more layers of the critic's own network
    "detach_critic": "any",  # acts only with a shared trunk, which is not covered
    "critic_output": frozenset({"linear"}),
    "normalize_input": "any",  # `inputs()`: no parameter acts before it, so it needs no derivative
    "init": "any",
    "encoder": frozenset({"auto", "mlp"}),  # 'auto' is the MLP for what MLPActorCritic takes (checked on the model)
    "log_std_init": "any",
    "memory": frozenset({"none"}),  # a recurrent core: autograd (backpropagation through time)
    "memory_size": "any", "memory_shared": "any",  # act only with a core
    "factory": frozenset({None}),
}
ALGO_FIELDS: dict[str, Rule] = {
    "name": "unused",  # an algorithm registers its own fast path, or has none
    "gamma": "unused", "gae_lambda": "unused", "n_steps": "unused",  # the batch's targets, made before any loss
    "normalize_returns": "unused", "normalize_advantages": "unused", "scale_rewards": "unused",
    "clip_rewards": "unused",
    "lr": "unused", "lr_schedule": "unused", "optimizer": "unused", "shared_optimizer": "unused",  # the step
    "max_grad_norm": "unused",  # applied by the worker to whichever gradient
    "epochs": "unused", "minibatches": "unused", "target_kl": "unused",  # the schedule's
    "sequence_length": "unused",  # recurrent models only, which are not covered
    "analytic_grad": "unused",  # the switch itself
    "value_coef": "any", "entropy_coef": "any", "clip_range": "any",
}


# the leaves of a structured observation (pacer/spaces.py) by whether the fast path covers them: those the model's
# `Features` turns into inputs without parameters (`inputs()` computes them: no derivative is needed) are; an image
# leaf has a CNN of its own, which is not
OBS_LEAVES: dict[str, bool] = {"vector": True, "discrete": True, "multidiscrete": True, "binary": True,
                               "pixels": False}


def refusal(mcfg: ModelConfig, acfg: AlgoConfig, head: ActionHead, layout: ObsLayout | None = None) -> str | None:
    """Why the fast path does not cover this model, algorithm settings, head and observation layout
    ('model.shared_trunk=True', ...), or None when it does. Action masks are covered (masked logits: `compute`)."""
    for section, rules, cfg in (("model", MODEL_FIELDS, mcfg), ("algo", ALGO_FIELDS, acfg)):
        for name, rule in rules.items():
            value = getattr(cfg, name)
            if isinstance(rule, frozenset) and value not in rule:
                return f"{section}.{name}={value!r}"
    if not callable(getattr(head, "backward", None)):
        return f"the {head.name} action head"
    if layout is not None and layout.structured:
        for leaf in layout.leaves:
            if not OBS_LEAVES[leaf.kind]:
                return f"the {leaf.kind} observation {leaf.path!r}"
    return None


class FastGrad(Protocol):
    def compute(self, batch: Batch) -> tuple[dict[str, float], float, Tensor]:
        """The loss's statistics (as `LossTerms.report` gives them), its total, and its flat gradient (a new tensor,
        in `model.parameters()` order)."""


FastGradFactory = Callable[[nn.Module, ActionHead, ModelConfig, AlgoConfig, Sequence[Tensor]], "FastGrad | None"]


def _layers(body: nn.Module) -> list[nn.Linear]:
    return [m for m in body.modules() if isinstance(m, nn.Linear)]


def ppo_surrogate_grad(surrogate: Surrogate, advantages: Tensor) -> Tensor:
    """d ppo_surrogate / d logp, per row: -A r / n where the unclipped term is the smaller one (where the two are
    equal, r inside the range, autograd splits the gradient between them, which sums to the same), else 0."""
    unclipped_wins = (surrogate.unclipped <= surrogate.clipped).to(advantages.dtype)
    return unclipped_wins.mul_(surrogate.unclipped).mul_(-1.0 / advantages.shape[0])


class Layer(NamedTuple):
    """A linear layer as the fast path uses it: its tensors, and the views of the gradient its own go into (all
    fixed for the model's life: parameters are updated in place, in their flat buffer)."""

    weight_t: Tensor
    bias: Tensor
    weight: Tensor
    grad_weight: Tensor
    grad_bias: Tensor


class AnalyticGrad:
    def __init__(self, model: MLPActorCritic, head: FastHead, algo: Literal["a2c", "ppo"], cfg: AlgoConfig,
                 activation: str, params: Sequence[Tensor]) -> None:
        self.model, self.head, self.algo, self.cfg = model, head, algo, cfg
        self.act, self.act_grad = ACTIVATION_FORWARD[activation], ACTIVATION_GRADS[activation]
        self.params = list(params)
        # written into by every compute(), then copied out as the step's own gradient (one copy costs less than
        # a new buffer's views)
        self.grad = torch.empty(sum(p.numel() for p in self.params), dtype=self.params[0].dtype)
        views: dict[int, Tensor] = {}
        offset = 0
        for p in self.params:  # model.parameters() order: the flat gradient's
            views[id(p)] = self.grad[offset:offset + p.numel()].view_as(p)
            offset += p.numel()

        def layer(m: nn.Linear) -> Layer:
            return Layer(m.weight.t(), m.bias, m.weight, views[id(m.weight)], views[id(m.bias)])

        self.actor_modules = [*_layers(model.actor_body), model.pi_head]
        self.critic_modules = [*_layers(model.critic_body), model.value_head]
        self.actor = [layer(m) for m in self.actor_modules]
        self.critic = [layer(m) for m in self.critic_modules]
        self.log_std = (model.log_std, views[id(model.log_std)]) if head.has_log_std else None

    def _forward(self, layers: list[Layer], x: Tensor) -> list[Tensor]:
        """Each layer's input, then the output (the model's layers, with no activation after the last)."""
        acts = [x]
        last = len(layers) - 1
        for i, layer in enumerate(layers):
            z = torch.addmm(layer.bias, acts[-1], layer.weight_t)
            acts.append(self.act(z) if i < last else z)
        return acts

    def _backward(self, layers: list[Layer], acts: list[Tensor], g: Tensor) -> None:
        """Back-propagate `g` (the gradient at the output) through the layers into their gradient views."""
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            torch.mm(g.t(), acts[i], out=layer.grad_weight)
            torch.sum(g, 0, out=layer.grad_bias)
            if i == 0:
                break
            g = self.act_grad(g.mm(layer.weight), acts[i])

    def compute(self, batch: Batch) -> tuple[dict[str, float], float, Tensor]:
        cfg, model = self.cfg, self.model
        with torch.no_grad():
            x = model.inputs(batch.obs)
            actor, critic = self._forward(self.actor, x), self._forward(self.critic, x)
            pi, value = masked(actor[-1], batch.action_mask), critic[-1].squeeze(-1)
            n = pi.shape[0]
            logp, entropy, saved = self.head.saved_log_prob_entropy(model, pi, batch.actions)
            if self.algo == "ppo":
                surrogate = ppo_surrogate(logp, batch.logp, batch.advantages, cfg.clip_range)
                policy, d_logp = surrogate.loss, ppo_surrogate_grad(surrogate, batch.advantages)
                stats = ppo_stats(surrogate.ratio, surrogate.log_ratio, cfg.clip_range)
            else:
                policy = -(logp * batch.advantages).mean()
                d_logp, stats = batch.advantages * (-1.0 / n), {}
            terms = LossTerms(policy, value_loss(value, batch.returns), entropy.mean(), stats)
            g_pi, g_log_std = self.head.backward(model, saved, d_logp, -cfg.entropy_coef / n)
            if g_log_std is not None and self.log_std is not None:
                self.log_std[1].copy_(g_log_std)
            self._backward(self.actor, actor, g_pi)
            err = value - batch.returns
            self._backward(self.critic, critic, err.mul_(2.0 * cfg.value_coef / n).unsqueeze(-1))
            return terms.report(), float(terms.total(cfg)), self.grad.clone()  # the step's own gradient


def _analytic(algo: Literal["a2c", "ppo"]) -> FastGradFactory:
    def build(model: nn.Module, head: ActionHead, mcfg: ModelConfig, acfg: AlgoConfig, params: Sequence[Tensor]
              ) -> AnalyticGrad | None:
        if type(model) is not MLPActorCritic or refusal(mcfg, acfg, head) is not None:
            return None
        if any(p.dtype != torch.float32 for p in params):
            return None
        if {id(p) for p in model.parameters()} != {id(t) for t in params} or flat.view_of(list(params)) is None:
            return None  # the model's own parameters, already views of their one buffer (the layers' views stay)
        grad = AnalyticGrad(model, head, algo, acfg, mcfg.activation, params)  # type: ignore[arg-type]
        covered = {id(t) for m in grad.actor_modules + grad.critic_modules for t in (m.weight, m.bias)}
        if grad.log_std is not None:
            covered.add(id(grad.log_std[0]))
        return grad if covered == {id(p) for p in model.parameters()} else None

    return build


ppo = _analytic("ppo")
a2c = _analytic("a2c")
