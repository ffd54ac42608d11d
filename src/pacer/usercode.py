"""User code on its way to workers: env factories and classes, model factories and classes, loss functions.

What a worker can import (`package.module:name`) travels by reference, as pickle always does. What it cannot (a
function or class defined in a notebook cell, in `__main__`, or inside another function) travels by value, with
cloudpickle, as Stable-Baselines3's CloudpickleWrapper does. Only the worker's spec is wrapped: shared tensors
keep travelling by handle through torch's own pickler, never by value.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
from collections.abc import Callable, Mapping
from typing import Any

from pacer.errors import PacerError, first_line

BY_VALUE = "by-value:"
"""Prefix of a config entry whose callable was passed by value: it names the object, but cannot be imported."""


class ByValue:
    """Pickles its object with cloudpickle; unpickling gives back the object itself (not the wrapper)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        import cloudpickle

        return (pickle.loads, (cloudpickle.dumps(self.obj),))


def unwrap(obj: Any) -> Any:
    """The wrapped object (a forked child receives the wrapper itself, unpickled by nobody)."""
    return obj.obj if isinstance(obj, ByValue) else obj


def importable(obj: Any) -> bool:
    """Can another process get this very object back by importing `obj.__module__` and `obj.__qualname__`?"""
    module_name, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not module_name or module_name == "__main__" or "<" in qualname:  # <locals>, <lambda>
        return False
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return False
    return found is obj


def import_path(obj: Any) -> str:
    """'module:qualname' for config.yaml, or 'by-value:module:qualname' when no process could import it."""
    path = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"
    return path if importable(obj) else BY_VALUE + path


def check_sendable(objects: dict[str, Any]) -> None:
    """Refuse, before anything starts, what cannot be sent to a worker at all: one line naming the object."""
    import cloudpickle

    for what, obj in objects.items():
        if obj is None or isinstance(obj, str):
            continue
        try:
            cloudpickle.dumps(obj)
        except Exception as exc:  # pickling raises many types (PicklingError, TypeError, AttributeError, ...)
            name = getattr(obj, "__qualname__", type(obj).__name__)
            raise PacerError(f"the {what} {name!r} cannot be sent to worker processes: {first_line(exc)}"
                             ) from None


def resolve_import(path: Any, what: str) -> Callable[..., Any]:
    """Import `package.module:name` (or pass a callable through), with a one-line error when it fails."""
    if callable(path):
        return path
    if isinstance(path, str) and path.startswith(BY_VALUE):
        name = path.removeprefix(BY_VALUE).rpartition(":")[2]
        keyword, key = ("model", "model__factory") if what.startswith("model") else ("env", "env__id")
        raise PacerError(f"this run's {what} {name!r} was passed by value from Python (a notebook or an interactive "
                         f"session) and cannot be imported here: pass it again, e.g. pacer.evaluate(run, "
                         f"{keyword}={name}) or pacer.train(resume=run, {key}={name})")
    if not isinstance(path, str) or ":" not in path:
        raise PacerError(f"{what} must be 'package.module:name', got {path!r}")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PacerError(f"cannot import {what} module {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part) and inspect.ismodule(obj):
            submodule = f"{obj.__name__}.{part}"
            try:  # a submodule is an attribute only once imported (mpe2:simple_spread_v3)
                importlib.import_module(submodule)
            except ImportError as exc:
                if getattr(exc, "name", None) != submodule:
                    raise PacerError(f"cannot import {what} module {submodule!r}: {exc}") from None
        if not hasattr(obj, part):
            raise PacerError(f"module {module_name!r} has no {part!r} (from {what} {path!r})")
        obj = getattr(obj, part)
    if inspect.ismodule(obj) and what == "env factory":  # a PettingZoo env module (mpe2:simple_spread_v3)
        obj = getattr(obj, "parallel_env", None) or getattr(obj, "env", obj)
    if not callable(obj):
        raise PacerError(f"{what} {path!r} is not callable")
    return obj


def check_signature(fn: Callable[..., Any], args: tuple[Any, ...], what: str, expected: str,
                    kwargs: Mapping[str, Any] | None = None) -> None:
    """A one-line error for a factory that cannot take the arguments pacer passes it."""
    try:
        inspect.signature(fn).bind(*args, **(kwargs or {}))
    except TypeError:
        if kwargs:
            expected = f"{expected[:-1]}**env.kwargs) with env.kwargs {dict(kwargs)}"
        raise PacerError(f"{what} {getattr(fn, '__qualname__', fn)!r} must be callable as {expected}") from None
    except ValueError:  # builtins without a signature: let the call itself decide
        pass
