"""One pipe per worker, with credits: a report channel that a SIGKILLed worker cannot wedge.

A `multiprocessing.Queue` shared by all workers has one write lock: a worker killed while holding it (or halfway
through a message) blocks every other writer and can leave the reader waiting forever on a torn message. Here each
worker owns its pipe; when it dies, its pipe reads EOF and is dropped, and a restarted worker gets a new one.
Credits bound what is in flight, so a worker never blocks on a slow parent: without a credit it keeps the report
and folds it into the next.
"""

from __future__ import annotations

from typing import Any

CREDITS = 16


class Sender:
    """The worker's end: handed to the child process at start."""

    def __init__(self, writer: Any, credits: Any) -> None:
        self.writer, self.credits = writer, credits

    def try_send(self, message: Any) -> bool:
        """Send if a credit is free; never blocks."""
        if not self.credits.acquire(block=False):
            return False
        self.writer.send(message)
        return True

    def send(self, message: Any) -> None:
        """Send regardless of credits (final and error messages); may block until the parent reads."""
        self.writer.send(message)


class Channel:
    """The parent's end, and the sender to give to one worker process."""

    def __init__(self, ctx: Any) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self.credits = ctx.Semaphore(CREDITS)

    def sender(self) -> Sender:
        return Sender(self.writer, self.credits)

    def after_start(self) -> None:
        """The child has its copy of the write end: close ours, so that its death reads as EOF."""
        self.writer.close()

    def receive_all(self) -> tuple[list[Any], bool]:
        """Every complete message available now, and whether the writer is gone (EOF)."""
        out: list[Any] = []
        try:
            while self.reader.poll():
                out.append(self.reader.recv())
                self.credits.release()
        except (EOFError, OSError):
            return out, True
        return out, False

    def close(self) -> None:
        self.reader.close()
        if not self.writer.closed:
            self.writer.close()
