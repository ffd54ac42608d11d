"""One pipe per worker, with credits, read by a thread: a report channel that a dying worker cannot wedge.

A `multiprocessing.Queue` shared by all workers has one write lock: a worker killed while holding it (or halfway
through a message) blocks every other writer and can leave the reader waiting forever on a torn message. Here each
worker owns its pipe, and a small thread in the parent does the blocking reads: the supervisor's main thread only
takes whole messages from an in-process queue, so neither a torn message nor a Ctrl-C in the middle of a read can
leave it stuck. When a worker dies its pipe reads EOF, and a restarted worker gets a new one. Credits bound what
is in flight, so a worker never blocks on a slow parent: without a credit it folds the report into the next.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from typing import Any

CREDITS = 16
EOF_MARK = "__eof__"


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


class Inbox:
    """Where every channel's reader thread delivers (rank, message), with a file descriptor to wait on."""

    def __init__(self) -> None:
        self.messages: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)  # a full wake pipe already says "wake up"
        self.lock = threading.Lock()  # a late reader thread must never write to a closed (reused) descriptor
        self.closed = False

    def put(self, rank: int, message: Any) -> None:
        self.messages.put((rank, message))
        with self.lock:
            if not self.closed:
                with contextlib.suppress(BlockingIOError):
                    os.write(self.wake_w, b"\0")

    def take_all(self) -> list[tuple[int, Any]]:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        with self.lock:
            self.closed = True
            os.close(self.wake_r)
            os.close(self.wake_w)


class Channel:
    """The parent's end of one worker's pipe."""

    def __init__(self, ctx: Any, rank: int, inbox: Inbox) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self.credits = ctx.Semaphore(CREDITS)
        self.rank, self.inbox = rank, inbox

    def sender(self) -> Sender:
        return Sender(self.writer, self.credits)

    def after_start(self) -> threading.Thread:
        """The child has its copy of the write end: close ours (so that its death reads as EOF), start reading."""
        self.writer.close()
        pump = threading.Thread(target=self._pump, name=f"pacer-reports-{self.rank}", daemon=True)
        pump.start()
        return pump

    def _pump(self) -> None:
        try:
            while True:
                message = self.reader.recv()
                self.credits.release()
                self.inbox.put(self.rank, message)
        except (EOFError, OSError):
            self.inbox.put(self.rank, EOF_MARK)
        finally:
            self.reader.close()
