"""Backends run workers somewhere and hand their reports to the supervisor; only this package knows where
workers run and how parameters reach them.

A backend is a module, registered by name in BACKENDS (a registry, like the algorithms), that provides:

- `preflight(cfg, model, log)`: its status line, then checks before anything starts (one-line problem and fix);
- `make_shared(cfg, model)`: the run's SharedState (in shared memory when workers are processes);
- `create(specs, shared, reseed) -> Backend`: the object the supervisor drives (the protocol below).

and its entry may name an `early_start(cfg)` that the `pacer` command runs before it imports torch (the local
backend's fork server), so that the two imports overlap. 'inline' runs the worker code in this process
(debugging, tests), 'local' one process per worker on this machine, 'ray' one Ray actor per worker in a cluster.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from pacer.errors import PacerError, did_you_mean

if TYPE_CHECKING:
    from pacer.config import Config
    from pacer.reports import Failure, Report


class Backend(Protocol):
    final_states: dict[int, Any]
    """Each worker's state when it stopped cleanly (`Worker.get_state()`), for exact resume."""

    def start(self, stop_requested: Callable[[], bool]) -> None:
        """Create the workers; returns once they are started (not necessarily stepping yet). Stops launching
        once `stop_requested()` says so (a Ctrl-C during a slow start-up)."""

    def poll(self, timeout: float) -> list[Report]:
        """Reports that arrived, waiting up to `timeout` seconds for the first one."""

    def failures(self) -> list[Failure]:
        """Each worker that died (raised, was killed, hung) since the last call, with its own traceback."""

    def notices(self) -> list[str]:
        """Lines for the user since the last call: changes of capacity (what fits, a node lost or joined)."""

    def restart(self, rank: int) -> None:
        """Start a dead worker again, with a new seed and the current parameters."""

    def pause(self) -> bool:
        """Hold every worker between rollouts; returns True once they are all waiting, False when some were not
        within the backend's wait (a hung or dying worker): then parameters may still change."""

    def resume(self) -> None:
        """Let held workers go on."""

    def placement(self) -> dict[int, dict[str, Any]]:
        """Where each worker ran (host, node id, pid), for summary.json."""

    def stop(self) -> list[Report]:
        """Ask every worker to finish, wait for them within a grace period, kill the rest; always returns.
        Returns the reports that arrived while stopping."""


@dataclass(frozen=True)
class Entry:
    module: str
    """Import path of the backend's module (imported only when the backend is used)."""
    early_start: Callable[[Config], None] | None = None
    """Run by the `pacer` command before it imports torch; must not import torch itself."""


def _start_forkserver(cfg: Config) -> None:
    from pacer.runtime.processes import start_forkserver_early

    start_forkserver_early(cfg.runtime.start_method)


BACKENDS: dict[str, Entry] = {
    "inline": Entry("pacer.backends.inline"),
    "local": Entry("pacer.backends.local", early_start=_start_forkserver),
    "ray": Entry("pacer.backends.ray"),
}


def register_backend(name: str, module: str, early_start: Callable[[Config], None] | None = None) -> None:
    """Make the backend module `module` selectable as `runtime.backend: <name>`."""
    BACKENDS[name] = Entry(module, early_start)


def check_name(name: str) -> None:
    if name not in BACKENDS:
        raise PacerError(f"unknown backend {name!r}{did_you_mean(name, BACKENDS)}; choose from {', '.join(BACKENDS)}")


def backend_module(name: str) -> ModuleType:
    check_name(name)
    return importlib.import_module(BACKENDS[name].module)


def user_code(cfg: Config) -> dict[str, Any]:
    """The run's user code, by what it is: what a worker must receive besides plain configuration (for the
    backends whose workers are other processes to check with `usercode.check_sendable` before they start)."""
    from pacer.algos import get_algo

    return {"env factory": cfg.env.id, "model factory": cfg.model.factory,
            "loss function": get_algo(cfg.algo.name).loss}


def early_start(cfg: Config) -> None:
    entry = BACKENDS.get(cfg.runtime.backend)
    if entry is not None and entry.early_start is not None:
        entry.early_start(cfg)
