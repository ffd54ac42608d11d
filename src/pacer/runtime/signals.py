"""Ctrl-C and SIGTERM: while a run is supervised they never raise; they ask for a stop, a second one forces it.

Only the parent acts on them. Children start with both blocked and then ignore them (a terminal's Ctrl-C, or a
SIGTERM sent to the whole process group, reaches every process); the parent asks them to stop, and kills them if
they do not.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

FORCE = threading.Event()
"""Set by a second Ctrl-C/SIGTERM: stop waiting for workers, kill them now."""


@contextlib.contextmanager
def children_ignore_sigint(also_sigterm: bool = False) -> Iterator[None]:
    """Start processes with SIGINT blocked from their first instruction (a blocked mask survives fork and exec),
    so that a Ctrl-C reaching the whole process group while a fork server or spawned worker is still importing
    torch does not kill it with a traceback; workers then ignore SIGINT for good (child_signals). Only the parent
    acts on Ctrl-C: in the parent the signal is only held back for the moment a start takes, never lost."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    blocked = {signal.SIGINT, signal.SIGTERM} if also_sigterm else {signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block is done (a checkpoint write), then act on them as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in _not_ignored((signal.SIGINT, signal.SIGTERM))}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in caught[:1]:
            handler = previous[signal.Signals(signum)]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C once the run has stopped cleanly (the CLI exits 143 on it, 130 on Ctrl-C)."""


def _not_ignored(signals: tuple[int, ...]) -> list[int]:
    """The signals this process was not told to ignore. A program started with SIGINT ignored (a background job
    of a non-interactive shell) keeps ignoring it, as Python itself does; pacer never takes such a signal over."""
    return [sig for sig in signals if signal.getsignal(sig) is not signal.SIG_IGN]


class StopSignals:
    """While a run is supervised, Ctrl-C and SIGTERM never raise: the first asks for a stop (the supervisor sees
    it at its next loop), a later one sets FORCE (stop waiting for workers, kill them). An exception raised at an
    arbitrary point could land in a finalizer, where Python drops it, or half-way through a start or a write.
    A signal the process inherited as ignored stays ignored."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
        else:
            FORCE.set()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in _not_ignored((signal.SIGINT, signal.SIGTERM)):  # our handler never raises: each swap is safe
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        FORCE.clear()

    def raise_if_received(self) -> None:
        if self.received == signal.SIGTERM:
            raise Terminated
        if self.received is not None:
            raise KeyboardInterrupt


def child_signals() -> None:
    """Ctrl-C, and a SIGTERM sent to the whole process group (a terminal, systemd, docker stop), reach every
    process; only the parent acts on them, and asks workers to finish their rollout. A worker that must go now is
    SIGKILLed by the parent (join_all)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # started with them blocked (children_ignore_sigint): now as set above
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
