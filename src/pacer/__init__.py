"""pacer: parallel actor-critic reinforcement learning on CPU processes."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pacer.agent import Agent, evaluate, load
    from pacer.algos import register_algo
    from pacer.config import Config
    from pacer.curves import plot
    from pacer.errors import PacerError
    from pacer.presets import PRESETS
    from pacer.training import TrainResult, train

from pacer.version import __version__ as __version__

__all__ = ["PRESETS", "Agent", "Config", "PacerError", "TrainResult", "evaluate", "load", "plot", "register_algo",
           "train"]

# Imported on first use, not here: importing torch takes ~2 s, and the `pacer` command starts its fork server
# (which imports torch too) before it imports torch itself, so that the two imports run side by side.
_HOME = {"Agent": "pacer.agent", "evaluate": "pacer.agent", "load": "pacer.agent", "plot": "pacer.curves",
         "register_algo": "pacer.algos", "Config": "pacer.config", "PacerError": "pacer.errors",
         "PRESETS": "pacer.presets", "TrainResult": "pacer.training", "train": "pacer.training"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'pacer' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
