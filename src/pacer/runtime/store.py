"""The parameter store: parameters, the optimizer state that updates them, and a version, in one place.

An update is a list of gradients (None where a parameter got none) and a learning rate; `apply` puts them on the
parameters' `.grad` by copy, never by alias (older A3C code aliased the shared `.grad` to the local one, which makes
gradients accumulate on torch >= 2, where `zero_grad()` sets them to None), and steps the optimizer bound to the
state. The Hogwild link applies to parameters in shared memory; a Ray actor applies to its replica of the run's
parameters, after averaging the gradients with its group. The same code either way, testable without either.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pacer.runtime import optim


class ParamStore:
    def __init__(self, params: list[nn.Parameter], state: optim.OptimizerState, kind: str, lr: float) -> None:
        self.params = params
        self.optimizer = optim.bind(kind, params, state, lr)
        self.version = 0
        """Updates applied through this store."""

    def apply(self, grads: list[Tensor | None], lr: float) -> None:
        with torch.no_grad():
            for param, grad in zip(self.params, grads, strict=True):
                if grad is None:  # unused by this loss: no gradient, so the optimizer leaves it alone
                    param.grad = None
                elif param.grad is None:
                    param.grad = grad.clone()
                elif param.grad is not grad:
                    param.grad.copy_(grad)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.version += 1
