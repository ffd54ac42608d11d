"""Capture and restore the state of a vector env as plain data, for exact resume without pickling objects.

A checkpoint is loaded with `torch.load(weights_only=True)`, which accepts tensors, Python numbers, strings and
containers of them, and nothing else (no NumPy scalar, no Generator, no object). So the state of an env is walked,
attribute by attribute, through its wrappers (`.env`) and sub-envs (`.envs`), and each value is encoded as plain
data (see `encode`): NumPy arrays stay arrays (the checkpoint turns them into tensors), NumPy scalars, RandomState
and Generator states, tuples and nested dicts and lists are tagged so that `decode` gives back the same types, and
MuJoCo's `MjData` is stored as its integration state, the Atari emulator (ale-py's `ALEInterface`) as its own
serialized state, a deque (stacked frames) as its items. Functions, spaces, specs and models are configuration, not
state, and are skipped. Anything else (a Box2D world, a lock, a user's object) is *opaque*: it is left out, named
in `opaque_items()`, and a resume of that env then starts fresh episodes instead of restoring a partial state.
"""

from __future__ import annotations

import collections
import enum
import json
from typing import Any

import numpy as np

PLAIN = (bool, int, float, str, type(None))
ARRAY_KINDS = "biuf"  # dtypes a tensor can hold exactly
# configuration by Gymnasium's convention (metadata), and PassiveEnvChecker's copy of the last observation
SKIPPED_ATTRS = {"metadata", "_previous_data"}


class Opaque(Exception):
    """A value that is neither plain data nor configuration: it cannot be stored in a checkpoint."""


class _Skip:
    """Marker for configuration (functions, spaces, specs): not state, not stored."""


SKIP = _Skip()


def encode(value: Any) -> Any:
    """Plain data for `value` (SKIP for configuration); raises Opaque for what cannot be stored."""
    if isinstance(value, np.generic):  # before PLAIN: np.float64 is a float, but weights_only refuses it
        if value.dtype.kind not in ARRAY_KINDS:
            raise Opaque(type(value).__name__)
        return {"$scalar": np.asarray(value)}
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in ARRAY_KINDS:
            raise Opaque(f"array of {value.dtype}")
        return value.copy()
    if isinstance(value, np.random.Generator):
        return {"$generator": json.dumps(value.bit_generator.state)}  # JSON keeps 128-bit integers exact
    if isinstance(value, np.random.RandomState):
        state = value.get_state(legacy=False)
        return {"$random_state": json.dumps(state, default=lambda a: a.tolist())}
    if isinstance(value, (list, tuple, dict)):
        return _encode_container(value)
    if isinstance(value, collections.deque):  # FrameStackObservation's frames
        return {"$deque": {"items": _encode_container(list(value)), "maxlen": value.maxlen}}
    if _is_ale(value):  # the Atari emulator: its own serialized state, random number generator included
        return {"$ale": np.frombuffer(value.cloneState(include_rng=True).serialize(), dtype=np.uint8).copy()}
    if _is_mujoco_data(value):
        return {"$mjdata": _mujoco_state(value)}
    if callable(value) or _is_configuration(value):
        return SKIP
    raise Opaque(type(value).__name__)


def _encode_container(value: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> Any:
    items = list(value.values()) if isinstance(value, dict) else list(value)
    if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
        raise Opaque("dict with non-string keys")
    encoded = [encode(item) for item in items]
    skipped = [e is SKIP for e in encoded]
    if items and all(skipped):
        return SKIP  # a list of factories, a dict of spaces: configuration
    if any(skipped):
        raise Opaque(f"{type(value).__name__} mixing state and objects")
    if isinstance(value, dict):
        return {"$dict": dict(zip(value, encoded, strict=True))}
    return {"$tuple" if isinstance(value, tuple) else "$list": encoded}


def decode(data: Any, current: Any = None) -> Any:
    """The value `encode` was given (same types). `current` is the attribute's present value, updated in place
    where identity matters (a Generator shared with a space, MuJoCo's data bound to its model)."""
    if isinstance(data, np.ndarray):
        return data.copy()
    if not isinstance(data, dict):
        return data
    ((tag, inner),) = data.items()
    if tag == "$scalar":
        return np.asarray(inner)[()]
    if tag == "$generator":
        generator = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        generator.bit_generator.state = json.loads(inner)
        return generator
    if tag == "$random_state":
        random_state = current if isinstance(current, np.random.RandomState) else np.random.RandomState()
        state = json.loads(inner)
        state["state"]["key"] = np.asarray(state["state"]["key"], dtype=np.uint32)
        random_state.set_state(state)
        return random_state
    if tag == "$deque":
        return collections.deque(decode(inner["items"]), maxlen=inner["maxlen"])
    if tag == "$ale":
        import ale_py

        current.restoreState(ale_py.ALEState(np.asarray(inner, dtype=np.uint8).tobytes()))
        return current
    if tag == "$mjdata":
        _set_mujoco_state(current, inner)
        return current
    if tag == "$dict":
        return {k: decode(v) for k, v in inner.items()}
    if tag == "$tuple":
        return tuple(decode(v) for v in inner)
    return [decode(v) for v in inner]


def capture(env: Any) -> dict[str, Any]:
    """{"attrs": plain data by attribute, "children": wrapped env or sub-envs, "opaque": names left out}."""
    attrs: dict[str, Any] = {}
    children: dict[str, Any] = {}
    opaque: list[str] = []
    for name, value in vars(env).items():
        if name in SKIPPED_ATTRS:
            continue
        if name == "env" and hasattr(value, "step"):
            children[name] = capture(value)
        elif name == "envs" and isinstance(value, list) and all(hasattr(e, "step") for e in value):
            children[name] = [capture(e) for e in value]
        else:
            try:
                encoded = encode(value)
            except Opaque as exc:
                opaque.append(f"{name} ({exc})")
                continue
            if encoded is not SKIP:
                attrs[name] = encoded
    return {"attrs": attrs, "children": children, "opaque": opaque}


def restore(env: Any, state: dict[str, Any]) -> None:
    for name, value in state["attrs"].items():
        setattr(env, name, decode(value, getattr(env, name, None)))
    for name, child in state["children"].items():
        if name == "envs":
            for sub, sub_state in zip(env.envs, child, strict=True):
                restore(sub, sub_state)
        else:
            restore(getattr(env, name), child)


def opaque_items(state: dict[str, Any], path: str = "") -> list[str]:
    """Where each left-out value was, e.g. 'envs[0].env.world (b2World)'."""
    found = [f"{path}{name}" for name in state["opaque"]]
    for name, child in state["children"].items():
        if isinstance(child, list):
            for i, sub in enumerate(child):
                found += opaque_items(sub, f"{path}{name}[{i}].")
        else:
            found += opaque_items(child, f"{path}{name}.")
    return found


def is_exact(state: dict[str, Any]) -> bool:
    """True when nothing that could hold episode state was left out."""
    return not opaque_items(state)


def _is_configuration(value: Any) -> bool:
    """Objects that do not change while stepping: spaces, specs, enums, MuJoCo models and renderers."""
    import gymnasium as gym

    if isinstance(value, (gym.Space, gym.envs.registration.EnvSpec, enum.Enum)):
        return True
    kind = type(value)
    return (kind.__module__.startswith("mujoco") and kind.__name__ == "MjModel") or (
        kind.__module__.startswith("gymnasium.envs.mujoco") and kind.__name__ == "MujocoRenderer")


def _is_ale(value: Any) -> bool:
    return type(value).__module__.startswith("ale_py") and type(value).__name__ == "ALEInterface"


def _is_mujoco_data(value: Any) -> bool:
    return type(value).__module__.startswith("mujoco") and type(value).__name__ == "MjData"


def _mujoco_state(data: Any) -> np.ndarray:
    """MuJoCo's own full integration state (time, qpos, qvel, act, warm start, controls, ...)."""
    import mujoco

    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(data.model, spec))
    mujoco.mj_getState(data.model, data, state, spec)
    return state


def _set_mujoco_state(data: Any, state: np.ndarray) -> None:
    import mujoco

    mujoco.mj_setState(data.model, data, np.asarray(state, dtype=np.float64), mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(data.model, data)  # derived quantities (positions of bodies, sensors) from the state
