"""The parameter store: parameters, the optimizer state that updates them, and a version, in one place.

An update is one flat gradient (every parameter's, in order; `runtime/flat.py`) and a learning rate. When the
parameters are views of one flat tensor and the optimizer state is made of flat moments (as `SharedState` and
`optim.new_state` make them), the optimizer steps that one tensor: a handful of operations per update, whatever
the number of layers. Otherwise each parameter gets its slice of the gradient, and the optimizer steps each.
The gradient is set on the parameters by reference, never accumulated into: older A3C code aliased the shared
`.grad` to the local one, which makes gradients pile up on torch >= 2, where `zero_grad()` sets them to None.
The Hogwild link applies to parameters in shared memory; a Ray actor applies to its replica of the run's
parameters, after averaging the gradients with its group. The same code either way, testable without either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pacer.runtime import flat, optim

Dump = tuple[list[np.ndarray], optim.OptimizerState]
"""A store's contents as plain data: each parameter's values, and the optimizer state (tensors)."""


class ParamStore:
    def __init__(self, params: list[nn.Parameter], state: optim.OptimizerState, kind: str, lr: float) -> None:
        self.params, self.state = params, state
        self.flat = flat.view_of(list(params))
        moments = optim.flat_state(state)
        if moments is not None:  # one step count for every parameter: only a step of them all together keeps it
            if self.flat is None:
                raise ValueError("a flat optimizer state needs parameters that are views of one buffer "
                                 "(pacer.runtime.flat.flatten_)")
            self.optimizer = optim.bind(kind, [self.flat], [moments], lr)
        else:
            self.flat = None
            self.optimizer = optim.bind(kind, params, state, lr)
        self.version = 0
        """Updates applied through this store."""

    def apply(self, grad: Tensor, lr: float) -> None:
        """One optimizer step with `grad`, the flat gradient of every parameter (a tensor of its own: it is
        referenced until the next update, not copied)."""
        if self.flat is not None:
            self.flat.grad = grad
        else:
            offset = 0
            for param in self.params:
                param.grad = grad[offset:offset + param.numel()].view_as(param).to(param.dtype)
                offset += param.numel()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.version += 1

    def dump(self) -> Dump:
        """The parameters (as NumPy copies) and the optimizer state (cloned tensors): what travels to another
        process (a Ray actor's replica, the driver) and what it loads."""
        values = [p.detach().numpy().copy() for p in self.params]
        return values, [{k: v.clone() for k, v in entry.items()} for entry in self.state]

    def load(self, dump: Dump | tuple[list[Any], list[dict[str, Tensor]]]) -> None:
        """Copy a `dump()` into this store's parameters and optimizer state, in place (their storage stays)."""
        values, state = dump
        with torch.no_grad():
            for param, value in zip(self.params, values, strict=True):
                param.copy_(torch.tensor(value))  # a copy: object-store arrays are read-only
        optim.load_state(self.state, state)

