"""Backends run workers somewhere and hand their reports to the supervisor.

A backend follows one small protocol: `start()`, `poll(timeout) -> reports`, `failures()`, `restart(rank)`,
`pause()`/`resume()` (hold the workers between rollouts) and `stop()`.
'inline' runs the worker code in this process (debugging, tests); 'local' runs one process per worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pacer.runtime.shared import SharedState
from pacer.worker import Report, WorkerSpec


class Backend(Protocol):
    def start(self) -> None:
        """Create the workers; returns once they are started (not necessarily stepping yet)."""

    def poll(self, timeout: float) -> list[Report]:
        """Reports that arrived, waiting up to `timeout` seconds for the first one."""

    def failures(self) -> list[tuple[int, str]]:
        """(rank, message with the worker's own traceback) for each worker that died since the last call."""

    def restart(self, rank: int) -> None:
        """Start a dead worker again, with a new seed and the current shared parameters."""

    def pause(self) -> None:
        """Hold every worker between rollouts; returns once they are all waiting."""

    def resume(self) -> None:
        """Let held workers go on."""

    final_states: dict[int, Any]
    """Each worker's state when it stopped cleanly (`Worker.get_state()`), for exact resume."""

    def stop(self) -> list[Report]:
        """Ask every worker to finish, wait for them within a grace period, kill the rest; always returns.
        Returns the reports that arrived while stopping."""


def make_backend(specs: list[WorkerSpec], shared: SharedState, reseed: Callable[[int, int], int]) -> Backend:
    rt = specs[0].config.runtime
    if rt.backend == "inline":
        from pacer.backends.inline import InlineBackend

        return InlineBackend(specs, shared)
    from pacer.backends.local import LocalBackend

    return LocalBackend(specs, shared, rt.start_method, rt.heartbeat_timeout, reseed)
