"""Backends run workers somewhere and hand their reports to the supervisor.

A backend follows one small protocol: `start()`, `poll(timeout) -> reports`, `failures()`, `stop()`.
'inline' runs the worker code in this process (debugging, tests); 'local' runs one process per worker.
"""

from __future__ import annotations

from typing import Protocol

from pacer.worker import Report, WorkerSpec


class Backend(Protocol):
    def start(self) -> None:
        """Create the workers; returns once they are started (not necessarily stepping yet)."""

    def poll(self, timeout: float) -> list[Report]:
        """Reports that arrived, waiting up to `timeout` seconds for the first one."""

    def failures(self) -> list[str]:
        """One message (with the worker's own traceback) per worker that died."""

    def stop(self) -> list[Report]:
        """Ask every worker to finish, wait for them within a grace period, kill the rest; always returns.
        Returns the reports that arrived while stopping."""


def make_backend(name: str, specs: list[WorkerSpec], shared: object, start_method: str) -> Backend:
    if name == "inline":
        from pacer.backends.inline import InlineBackend

        return InlineBackend(specs, shared)  # type: ignore[arg-type]
    from pacer.backends.local import LocalBackend

    return LocalBackend(specs, shared, start_method)  # type: ignore[arg-type]
