"""Where a worker's time goes: a lap timer (after PufferLib's `Profile`). Each `lap(phase)` adds the time since the
previous lap to that phase, so the phases of a loop cover all of its time and a phase is one line in the code."""

from __future__ import annotations

import time


class Phases:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def start(self) -> None:
        """Begin timing from now (what came before belongs to no phase)."""
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        """The time since the last lap (or start) was spent in `phase`."""
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now

    def take(self) -> dict[str, float]:
        """The seconds per phase since the last take, and start again from zero."""
        out, self.seconds = self.seconds, {}
        return out
