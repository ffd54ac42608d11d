"""Ctrl-C and SIGTERM while a run is supervised: asked-for stops, never exceptions; inherited ignores respected."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from pacer.runtime.signals import FORCE, StopSignals, signals_deferred


@pytest.fixture
def sigint_restored() -> Iterator[None]:
    """Python's own handlers for the test (this process may have inherited SIGINT ignored: `make test &` in a
    script), the previous ones after it."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGINT, before[0])
    signal.signal(signal.SIGTERM, before[1])


def test_a_first_signal_asks_a_second_forces(sigint_restored: None) -> None:
    with StopSignals() as stops:
        os.kill(os.getpid(), signal.SIGINT)  # delivered to this (main) thread before kill() returns
        assert stops.received == signal.SIGINT and not FORCE.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert FORCE.is_set()
        with pytest.raises(KeyboardInterrupt):
            stops.raise_if_received()
    assert not FORCE.is_set()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_inherited_ignore_stays_ignored(sigint_restored: None) -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored; like Python, pacer leaves it so
    (taking it over made such a run stop on a Ctrl-C only once supervision had begun, not during start-up)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with StopSignals() as stops:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM is still taken over
        os.kill(os.getpid(), signal.SIGINT)
        assert stops.received is None
        with signals_deferred():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
