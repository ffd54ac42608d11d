"""Config values checked against their dataclass fields' type hints and limits, with one-line errors naming the
key (pacer/config.py declares the fields; this module only checks values)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from typing import Any, Literal

from pacer.aliases import key_hint
from pacer.errors import PacerError, did_you_mean


def build_section(section: str, cls: type, values: dict[str, Any]) -> Any:
    """An instance of the section's dataclass from plain values, each checked against its type hint and limits."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            hint = key_hint(str(key)) or did_you_mean(str(key), names)
            raise PacerError(f"unknown config key '{section}.{key}'{hint}")
        spec = next(f for f in dataclasses.fields(cls) if f.name == key)
        kwargs[key] = check_value(f"{section}.{key}", hints[key], value, spec.metadata)
    return cls(**kwargs)


def check_value(key: str, hint: Any, value: Any, limits: Any) -> Any:
    """Coerce `value` to `hint` where it is lossless (int -> float, list -> tuple), else raise naming `key`."""
    if hint is Any:
        if (value is None and not limits.get("required")) or (isinstance(value, str) and value) or callable(value):
            return value
        raise PacerError(f"{key} must be an import path 'module:name' or a callable, got {value!r}")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return check_value(key, inner[0], value, limits)
        for alternative in inner:
            with contextlib.suppress(PacerError):
                return check_value(key, alternative, value, limits)
        kinds = [f"{', '.join(map(repr, typing.get_args(a)))}" if typing.get_origin(a) is Literal else
                 {float: "a number", int: "an integer", str: "a string"}.get(a, str(a)) for a in inner]
        raise PacerError(f"{key} must be {', '.join(kinds)}{' or null' if type(None) in args else ''}; "
                         f"got {value!r}")
    if origin is Literal:
        if value not in args:
            raise PacerError(f"{key} must be one of {', '.join(map(str, args))}; got {value!r}"
                             f"{did_you_mean(str(value), map(str, args))}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise PacerError(f"{key} must be a mapping of names to values, got {value!r}")
        for name, item in value.items():
            if not isinstance(item, (bool, int, float, str, type(None), list)):
                raise PacerError(f"{key}.{name} must be plain data (a number, string, boolean, null or list), "
                                 f"got {type(item).__name__}")
        return dict(value)
    if origin is tuple and limits.get("wrapper_list"):
        if not isinstance(value, (list, tuple)):
            raise PacerError(f"{key} must be a list of wrappers, got {value!r}")
        for i, entry in enumerate(value):
            if not (callable(entry) or (isinstance(entry, str) and entry)
                    or (isinstance(entry, dict) and len(entry) == 1)):
                raise PacerError(f"{key}[{i}] must be a wrapper's name or one 'name: {{arguments}}' mapping, "
                                 f"got {entry!r}")
        return tuple(value)
    if origin is tuple:
        if isinstance(value, str) and typing.get_origin(args[0]) is Literal:
            value = [value]  # `track: wandb` means [wandb]
        if not isinstance(value, (list, tuple)):
            raise PacerError(f"{key} must be a list of integers, got {value!r}")
        return tuple(check_value(key, args[0], v, limits) for v in value)
    if hint in (int, float) and isinstance(value, str):
        # PyYAML reads 3e-4 and 1e6 as text (YAML 1.1 wants 3.0e-4): take them as the numbers they are meant as
        with contextlib.suppress(ValueError):
            value = float(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise PacerError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise PacerError(f"{key} must be an integer, got {value!r}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PacerError(f"{key} must be a finite number, got {value!r}")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str) or not value:
            raise PacerError(f"{key} must be a non-empty string, got {value!r}")
        return value
    if "min" in limits and value < limits["min"]:
        raise PacerError(f"{key} must be >= {limits['min']}, got {value!r}")
    if "above" in limits and value <= limits["above"]:
        raise PacerError(f"{key} must be > {limits['above']}, got {value!r}")
    if "max" in limits and value > limits["max"]:
        raise PacerError(f"{key} must be <= {limits['max']}, got {value!r}")
    return value
