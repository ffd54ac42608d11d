"""User code on its way to workers: env factories and classes, model factories and classes, loss functions.

What a worker can import (`package.module:name`) travels by reference, as pickle always does. What it cannot (a
function or class defined in a notebook cell, in `__main__`, or inside another function) travels by value, with
cloudpickle, as Stable-Baselines3's CloudpickleWrapper does. Only the worker's spec is wrapped: shared tensors
keep travelling by handle through torch's own pickler, never by value.
"""

from __future__ import annotations

import importlib
import pickle
from typing import TYPE_CHECKING, Any

from pacer.errors import PacerError

if TYPE_CHECKING:
    from pacer.config import Config

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


def user_code(cfg: Config) -> dict[str, Any]:
    """The run's user code, by what it is: what a worker must receive besides plain configuration."""
    from pacer.algos import get_algo

    return {"env factory": cfg.env.id, "model factory": cfg.model.factory,
            "loss function": get_algo(cfg.algo.name).loss}


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
            raise PacerError(f"the {what} {name!r} cannot be sent to worker processes: {str(exc).splitlines()[0]}"
                             ) from None
