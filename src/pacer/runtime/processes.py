"""Starting, watching and reaping child processes: every child dies with its parent and is always joined."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Iterable
from multiprocessing.connection import wait as wait_for
from typing import Any

import torch.multiprocessing as tmp

PR_SET_PDEATHSIG = 1


def resolve_start_method(method: str) -> str:
    """'auto' is forkserver where it exists (fork is unsafe once torch has started threads), else spawn."""
    if method != "auto":
        if method not in mp.get_all_start_methods():
            from pacer.errors import PacerError

            raise PacerError(f"start method {method!r} is not available here; use one of "
                             f"{', '.join(mp.get_all_start_methods())}")
        return method
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def context(method: str) -> Any:
    """A torch multiprocessing context; forkserver preloads torch and pacer so each worker starts in ~20 ms."""
    ctx = tmp.get_context(resolve_start_method(method))
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["torch", "gymnasium", "pacer.backends.local"])
    return ctx


def stop_helpers() -> None:
    """Stop and reap multiprocessing's fork server and resource tracker, if this process started them.

    Left to exit by themselves they are orphaned when the parent exits, and linger as zombies until init reaps
    them. The CLI calls this on its way out; a long-lived program (a notebook) keeps them for fast restarts."""
    import gc
    from multiprocessing import forkserver, resource_tracker

    gc.collect()  # finalize queues and locks first: they talk to the resource tracker
    for helper in (getattr(forkserver, "_forkserver", None), getattr(resource_tracker, "_resource_tracker", None)):
        stop = getattr(helper, "_stop", None)  # private, but present from Python 3.8 to 3.13
        if stop is not None:
            with contextlib.suppress(OSError, ChildProcessError):
                stop()


def die_with_parent() -> None:
    """In a child: get SIGKILL when the parent dies (Linux), and exit now if it is already gone.

    Under forkserver the parent is the fork server, which itself exits when the main process dies."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent or parent == 1:
        os._exit(1)


def child_signals() -> None:
    """Ctrl-C reaches the whole process group; only the parent acts on it, and asks workers to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def join_all(processes: Iterable[Any], timeout: float, drain: Any = None) -> None:
    """Join every process within `timeout` seconds in all; terminate, then kill, whatever is left, and reap it.

    `drain()` is called while waiting, so a child blocked on flushing a queue can finish."""
    procs = [p for p in processes if p is not None]
    deadline = time.monotonic() + timeout
    for sig_step in ("wait", "terminate", "kill"):
        for p in procs:
            if sig_step == "terminate" and p.is_alive():
                p.terminate()
            elif sig_step == "kill" and p.is_alive():
                p.kill()
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            if drain is not None:
                drain()
            wait_for([p.sentinel for p in procs if p.is_alive()], timeout=0.05)
        deadline = time.monotonic() + 2.0
    for p in procs:
        p.join(timeout=1.0)
        if hasattr(p, "close") and p.exitcode is not None:
            p.close()
