"""Starting, watching and reaping child processes: every child dies with its parent and is always joined.

Signals (Ctrl-C, SIGTERM) are runtime/signals.py's business; this module only starts processes with them held."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from multiprocessing.connection import wait as wait_for
from typing import Any

from pacer.runtime.signals import FORCE, children_ignore_sigint

PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15
STARTUP_S = 120.0
"""Allowance for a child's first sign of life (a worker's first rollout, an evaluation's first step, a Ray actor's
first round): a spawned process imports torch (~2 s here), maybe on a busy machine or a node that just joined."""
CLEANUP_ENV = "PACER_FORKSERVER_TMPDIR"
# this module first (it imports no torch): the fork server registers the cleanup of its socket directory at once,
# not after the ~2 s torch import, in case the parent is killed meanwhile (start_forkserver_early)
FORKSERVER_PRELOAD = ["pacer.runtime.processes", "torch", "gymnasium", "pacer.backends.local"]
_helpers_stop_registered = False


def resolve_start_method(method: str) -> str:
    """'auto' is forkserver where it exists (fork is unsafe once torch has started threads), else spawn."""
    if method != "auto":
        if method not in mp.get_all_start_methods():
            from pacer.errors import PacerError

            raise PacerError(f"start method {method!r} is not available here; use one of "
                             f"{', '.join(mp.get_all_start_methods())}")
        return method
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def check_main_guard(method: str) -> None:
    """Before starting processes with spawn or forkserver: each child imports the main script again (as
    `__mp_main__`), running its top-level code. A script that trains at import time, outside
    `if __name__ == "__main__":`, would start a training run of its own in every child; refuse it in one line that
    names the line, before any child starts. (A package's `__main__`, a notebook or `python -c` is not imported
    again.)"""
    if resolve_start_method(method) == "fork":
        return
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    path = getattr(main, "__file__", None)
    if main is None or path is None or (name is not None and (name == "__main__" or name.endswith(".__main__"))):
        return
    path = os.path.abspath(path)
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>" and
                                     os.path.abspath(frame.f_code.co_filename) == path):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None or _under_main_guard(path, frame.f_lineno):
        return
    from pacer.errors import PacerError

    raise PacerError(f"{os.path.basename(path)}:{frame.f_lineno} starts training when the script is imported, and "
                     f"each worker process (start method {resolve_start_method(method)}) imports the script again: "
                     "put it under `if __name__ == \"__main__\":` (or use runtime.start_method fork, or the inline "
                     "backend)")


def _under_main_guard(path: str, line: int) -> bool:
    """Whether `line` of the script is inside an `if __name__ == "__main__":` block (True when it cannot be read)."""
    import ast

    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and node.lineno <= line <= (node.end_lineno or node.lineno):
            test = node.test
            if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
                sides = [test.left, *test.comparators]
                if any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides) and \
                        any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides):
                    return True
    return False


def inheriting() -> bool:
    """Whether this process is a spawn or forkserver child still importing its parent's main script."""
    return bool(getattr(mp.current_process(), "_inheriting", False))


def context(method: str) -> Any:
    """A torch multiprocessing context; forkserver preloads torch and pacer so each worker starts in ~20 ms."""
    import torch.multiprocessing as tmp

    ctx = tmp.get_context(resolve_start_method(method))
    global _helpers_stop_registered
    if not _helpers_stop_registered:  # at interpreter exit, reap the helpers instead of orphaning them
        import atexit

        atexit.register(stop_helpers)
        _helpers_stop_registered = True
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
        _start_forkserver()
    return ctx


def start_forkserver_early(method: str) -> None:
    """Start the fork server before this process imports torch, so that both ~2 s imports run at once (on
    two cores, that takes about 1 s off the time to the workers' first step). Needs no torch here."""
    if resolve_start_method(method) != "forkserver":
        return
    mp.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    _start_forkserver()


def _start_forkserver() -> None:
    """Start the fork server now, telling it (and only it) the /tmp/pymp-* directory of its socket: if this
    process is SIGKILLed, nobody else would remove it; the fork server does, when it exits (see below)."""
    from multiprocessing import forkserver, util

    if getattr(forkserver._forkserver, "_forkserver_pid", None) is not None:
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # first: starting it unblocks SIGINT, which would undo the block below
    os.environ[CLEANUP_ENV] = f"{os.getpid()}:{util.get_temp_dir()}"
    try:
        # it may start before anything else (start_forkserver_early) and import torch for ~2 s: a SIGTERM sent
        # to the process group meanwhile must not kill it either; the parent handles that signal
        with children_ignore_sigint(also_sigterm=True):
            forkserver.ensure_running()
    finally:
        del os.environ[CLEANUP_ENV]


def _register_forkserver_cleanup() -> None:
    """Runs at import in every process; acts only in the fork server started by _start_forkserver."""
    value = os.environ.pop(CLEANUP_ENV, "")
    parent, _, tmpdir = value.partition(":")
    if not value or not os.path.basename(tmpdir).startswith("pymp-"):  # set only for the fork server we start
        return
    import atexit
    import shutil

    me = os.getpid()

    def cleanup() -> None:
        # only in the fork server itself, and only when its parent died without cleaning up (re-parented)
        if os.getpid() == me and os.getppid() != int(parent):
            shutil.rmtree(tmpdir, ignore_errors=True)

    atexit.register(cleanup)


def set_name(name: str) -> None:
    """Name the process for ps/top (Linux: /proc/PID/comm, 15 characters)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def stop_helpers() -> None:
    """Stop and reap multiprocessing's fork server and resource tracker, if this process started them.

    Left to exit by themselves they are orphaned when the parent exits, and linger as zombies until init reaps
    them. Called at interpreter exit (and by the CLI on its way out); until then a long-lived program (a notebook)
    keeps them for fast restarts."""
    import gc
    from multiprocessing import forkserver, resource_tracker, util

    gc.collect()  # finalize queues and locks first: they talk to the resource tracker
    # Private attributes, present from Python 3.8 to 3.13. Not their own _stop(): it waits without a limit, and a
    # helper can be kept alive by a child that still holds its pipe (one killed halfway through its start).
    server = getattr(forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", None) is not None:
        _close_and_reap(server._forkserver_alive_fd, server._forkserver_pid)
        address = server._forkserver_address
        server._forkserver_alive_fd = server._forkserver_pid = server._forkserver_address = None
        if isinstance(address, str) and not util.is_abstract_socket_namespace(address):
            with contextlib.suppress(OSError):
                os.unlink(address)
    tracker = getattr(resource_tracker, "_resource_tracker", None)
    if tracker is not None and getattr(tracker, "_pid", None) is not None and tracker._fd is not None:
        _close_and_reap(tracker._fd, tracker._pid)
        tracker._fd = tracker._pid = None


def _close_and_reap(fd: int, pid: int, timeout: float = 2.0) -> None:
    """Close the helper's pipe (its cue to exit), wait for it a little, kill it if it will not go, and reap it."""
    with contextlib.suppress(OSError):
        os.close(fd)
    deadline = time.monotonic() + timeout
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.01)
    except ChildProcessError:
        pass


def die_with_parent() -> None:
    """In a child: get SIGKILL when the parent dies (Linux), and exit now if it is already gone.

    Under forkserver the parent is the fork server, which itself exits when the main process dies."""
    # A forkserver child inherits the fork server's "alive" pipe; while any child holds it, the fork server never
    # sees its parent die, so it never exits, and the parent-death signal below never fires. Workers start no
    # processes of their own: let it go.
    from multiprocessing import forkserver

    alive_fd = getattr(forkserver._forkserver, "_forkserver_alive_fd", None)
    if alive_fd is not None:
        with contextlib.suppress(OSError):
            os.close(alive_fd)
        forkserver._forkserver._forkserver_alive_fd = None  # type: ignore[attr-defined]
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:  # no parent-death signal: a watchdog thread notices re-parenting within a second
        def watchdog() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watchdog, name="pacer-watchdog", daemon=True).start()
    if os.getppid() != parent or parent == 1:
        os._exit(1)


def terminate_with_parent() -> None:
    """For `subprocess.Popen(preexec_fn=...)`: the child gets SIGTERM (a clean stop) when its parent dies (Linux;
    elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def describe_exit(code: int) -> str:
    """'signal SIGKILL' or 'exit code 3', for a process's exit code."""
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def join_all(processes: Iterable[Any], timeout: float, drain: Any = None) -> None:
    """Join every process within `timeout` seconds in all; kill whatever is left (our children ignore SIGTERM, see
    child_signals), and reap it. `drain()` is called while waiting, so a child blocked on a full pipe can finish."""
    procs = [p for p in processes if p is not None and getattr(p, "_popen", True) is not None]  # started ones
    deadline = time.monotonic() + timeout
    for step in ("wait", "kill"):
        if step == "kill":
            for p in procs:
                if p.is_alive():
                    p.kill()
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline and not (
                FORCE.is_set() and step == "wait"):
            if drain is not None and step == "wait":
                drain()
            wait_for([p.sentinel for p in procs if p.is_alive()], timeout=0.05)
        deadline = time.monotonic() + 2.0
    for p in procs:
        p.join(timeout=1.0)
        if hasattr(p, "close") and p.exitcode is not None:
            p.close()


_register_forkserver_cleanup()
