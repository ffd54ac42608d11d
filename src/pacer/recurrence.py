"""What every caller of a model needs to know of memory: whether it has one, its initial state, one step of it.

A recurrent model follows the interface of docs/models.md: `state_size`, `initial_state(batch) -> [batch,
state_size]` and `forward(obs [T, B, ...], state [B, state_size], starts [T, B]) -> (pi, value, state)`. A feedforward
one is `forward(obs [B, ...]) -> (pi, value)`. Rollouts, evaluation, `Agent.act`, videos and exported graphs take
one step at a time through `step`, whichever kind they hold.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from pacer.spaces import tree_map


def is_recurrent(model: nn.Module) -> bool:
    """Whether the model has a memory (the recurrent interface: `initial_state`)."""
    return callable(getattr(model, "initial_state", None))


def state_size(model: nn.Module) -> int:
    """The width of a recurrent model's state (0 for a feedforward model)."""
    size = getattr(model, "state_size", 0) if is_recurrent(model) else 0
    return int(size)


def initial_state(model: nn.Module, batch: int) -> Tensor | None:
    """A recurrent model's state before any step, for `batch` envs (None for a feedforward model)."""
    if not is_recurrent(model):
        return None
    make: Any = model.initial_state
    state: Tensor = make(batch)
    return state


def step(model: nn.Module, obs: Any, state: Tensor | None, starts: Tensor | None
         ) -> tuple[Tensor, Tensor, Tensor | None]:
    """One env step of a batch [B, ...] (a tree of them for a structured observation), for any model: a feedforward
    one as it is; a recurrent one as a sequence of one step, from `state` [B, state_size] (reset where `starts` [B]
    is true), returning its next state."""
    if state is None or starts is None:
        pi, value = model(obs)
        return pi, value, None
    pi, value, state = model(tree_map(lambda x: x.unsqueeze(0), obs), state, starts.unsqueeze(0))
    return pi[0], value[0], state
