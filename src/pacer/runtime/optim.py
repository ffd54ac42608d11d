"""Optimizers whose state lives in tensors allocated once by the parent (in shared memory for processes).

A3C's shared optimizer is one such state used by every worker; the classic distributed A2C gives each worker its
own state. Either way the parent holds every tensor, so a checkpoint can save the optimizer state of the run.
The step count is a tensor inside that state: shared with the moments, so Adam's bias correction is right.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pacer.runtime import flat

OptimizerState = list[dict[str, Tensor]]  # one dict per parameter, in model.parameters() order

RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-5  # the A3C / Stable-Baselines3 A2C settings


def new_state(kind: str, params: list[nn.Parameter]) -> OptimizerState:
    """Zero-initialized state, the same keys and dtypes torch's own optimizers create on their first step. Each
    moment is one flat tensor, and each parameter's entry holds views of it; the entries share one step count (the
    optimizer steps every parameter together), so that `ParamStore` can step the flat tensors in one go."""
    keys = ("exp_avg", "exp_avg_sq") if kind == "adam" else ("square_avg",)
    if len({p.dtype for p in params}) != 1:  # mixed dtypes cannot share a buffer: separate tensors, separate steps
        return [{"step": torch.zeros((), dtype=torch.float32), **{key: torch.zeros_like(p) for key in keys}}
                for p in params]
    step = torch.zeros((), dtype=torch.float32)
    views = {key: flat.zeros_like_all(params) for key in keys}
    return [{"step": step, **{key: views[key][i] for key in keys}} for i in range(len(params))]


def share_state(state: OptimizerState) -> None:
    for entry in state:
        for tensor in entry.values():
            tensor.share_memory_()  # a view's whole storage: the flat moment, once


def flat_state(state: OptimizerState) -> dict[str, Tensor] | None:
    """The state as one entry of flat tensors (the step count and each moment), or None when its entries are not
    views of flat moments with one shared step count (a state made elsewhere)."""
    if not state or any(entry["step"] is not state[0]["step"] for entry in state):
        return None
    moments = {key: flat.view_of([entry[key] for entry in state]) for key in state[0] if key != "step"}
    if any(moment is None for moment in moments.values()):
        return None
    return {"step": state[0]["step"], **{key: m for key, m in moments.items() if m is not None}}


def bind(kind: str, params: Sequence[Tensor], state: OptimizerState, lr: float) -> torch.optim.Optimizer:
    """A torch optimizer over `params` that reads and updates `state` in place (no copies)."""
    optimizer: torch.optim.Optimizer
    # ParamStore binds one flat tensor when it can: Adam then runs torch's fused kernel on it (36 us a step for
    # 10k floats here, against 75 us single-tensor and 105 us foreach), and a resumed run stays bit-identical to an
    # uninterrupted one (tests/test_resume.py; with fused Adam on many small per-parameter tensors it was not).
    # Otherwise foreach: one call per state kind over every parameter (278 us against the per-tensor loop's 406).
    one = len(params) == 1  # one flat tensor: torch's fused kernel, a single pass over it
    if kind == "adam":
        optimizer = torch.optim.Adam(params, lr=lr, fused=one or None, foreach=not one or None)
    else:
        optimizer = torch.optim.RMSprop(params, lr=lr, alpha=RMSPROP_ALPHA, eps=RMSPROP_EPS,
                                        foreach=not one)
    for p, entry in zip(params, state, strict=True):
        optimizer.state[p] = entry
    return optimizer


def load_state(target: OptimizerState, source: list[dict[str, Tensor]]) -> None:
    """Copy saved values into the (shared) tensors in place, keeping their storage."""
    for dst, src in zip(target, source, strict=True):
        for key, tensor in dst.items():
            tensor.copy_(src[key])
