"""Gymnasium wrappers from the config (`env.wrappers`): a list whose entries are a wrapper's name, or a one-key
mapping of the name to its keyword arguments, applied in order to every training and evaluation env.

A name is a class of `gymnasium.wrappers` (`FrameStackObservation`) or an import path (`mypkg.wrappers:Crop`);
a class defined in a notebook may be the entry itself. In YAML:

    env:
      wrappers:
        - AtariPreprocessing: {frame_skip: 1, noop_max: 30}
        - FrameStackObservation: {stack_size: 4}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from pacer.errors import PacerError, did_you_mean
from pacer.usercode import resolve_import


def parse(entries: Sequence[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Each entry as (wrapper class, keyword arguments); one line naming the entry for anything else."""
    out = []
    for i, entry in enumerate(entries):
        name: Any = entry
        kwargs: Any = {}
        if isinstance(entry, dict):
            if len(entry) != 1:
                raise PacerError(f"env.wrappers[{i}] must be a name or one 'name: {{arguments}}' mapping, "
                                 f"got {entry!r}")
            [(name, kwargs)] = entry.items()
            kwargs = {} if kwargs is None else kwargs
            if not isinstance(kwargs, dict):
                raise PacerError(f"env.wrappers[{i}] ({name}): the arguments must be a mapping, got {kwargs!r}")
        out.append((resolve(name, i), dict(kwargs)))
    return out


def resolve(name: Any, index: int) -> Any:
    if callable(name):
        return name
    if not isinstance(name, str) or not name:
        raise PacerError(f"env.wrappers[{index}] must be a wrapper's name or 'module:Class', got {name!r}")
    if ":" in name:
        return resolve_import(name, "wrapper")
    known = [n for n in dir(gym.wrappers) if isinstance(getattr(gym.wrappers, n), type)
             and issubclass(getattr(gym.wrappers, n), gym.Wrapper)]
    if name not in known:
        raise PacerError(f"env.wrappers[{index}]: gymnasium.wrappers has no wrapper {name!r}"
                         f"{did_you_mean(name, known)}; a wrapper of your own is 'module:Class'")
    return getattr(gym.wrappers, name)


def apply(env: gym.Env, entries: Sequence[Any]) -> gym.Env:
    """The env wrapped by each entry in order (the first entry is innermost)."""
    for i, (cls, kwargs) in enumerate(parse(entries)):
        try:
            env = cls(env, **kwargs)
        except TypeError as exc:  # an argument the wrapper does not take, or lacks
            raise PacerError(f"env.wrappers[{i}] ({getattr(cls, '__name__', cls)}): {exc}") from None
    return env
