"""Capture and restore the state of a vector env as plain data (NumPy arrays, numbers, JSON strings), for exact
resume without pickling objects.

Walks the env, its wrappers (`.env`) and sub-envs (`.envs`), and records attributes that are NumPy arrays,
numbers, booleans, None or NumPy random generators (their state as JSON, which keeps 128-bit integers exact).
This covers Gymnasium's NumPy-vectorized CartPole and classic-control envs in a SyncVectorEnv. Envs that keep
state in other objects (Box2D worlds) are restored only partially: pacer then says so and starts fresh episodes.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import numpy as np

PLAIN = (bool, int, float, str, type(None))


def capture(env: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    children: dict[str, Any] = {}
    opaque: list[str] = []
    for name, value in vars(env).items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            attrs[name] = value.copy()
        elif isinstance(value, np.random.Generator):
            attrs[name] = {"generator": json.dumps(value.bit_generator.state)}
        elif isinstance(value, PLAIN):
            attrs[name] = value
        elif name == "env" and hasattr(value, "step"):
            children[name] = capture(value)
        elif name == "envs" and isinstance(value, list):
            children[name] = [capture(e) for e in value]
        elif name == "_previous_data":  # PassiveEnvChecker's copy of the last observation: harmless to skip
            continue
        elif not callable(value) and not _is_static(value):
            opaque.append(name)
    return {"attrs": attrs, "children": children, "opaque": opaque}


def restore(env: Any, state: dict[str, Any]) -> None:
    for name, value in state["attrs"].items():
        if isinstance(value, np.ndarray):
            setattr(env, name, value.copy())
        elif isinstance(value, dict) and "generator" in value:
            generator = getattr(env, name, None)
            if not isinstance(generator, np.random.Generator):
                generator = np.random.default_rng()
                setattr(env, name, generator)
            generator.bit_generator.state = json.loads(value["generator"])
        else:
            setattr(env, name, value)
    for name, child in state["children"].items():
        if name == "envs":
            for sub, sub_state in zip(env.envs, child, strict=True):
                restore(sub, sub_state)
        else:
            restore(getattr(env, name), child)


def is_exact(state: dict[str, Any]) -> bool:
    """True when nothing that could hold episode state was left out."""
    children = state["children"].values()
    nested = [c for child in children for c in (child if isinstance(child, list) else [child])]
    return not state["opaque"] and all(is_exact(c) for c in nested)


def _is_static(value: Any) -> bool:
    """Configuration that does not change while stepping: spaces, specs, metadata, kwargs."""
    import gymnasium as gym

    return isinstance(value, (gym.Space, gym.envs.registration.EnvSpec, dict, tuple, list, enum.Enum))
