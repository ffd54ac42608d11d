"""What a run may leave behind: processes of a session (zombies included), /dev/shm segments, /tmp/pymp-* dirs.

Only this test's own files count. Other runs on the same machine (another `pacer train`, another test session)
make the same kinds of files at any time, so comparing the whole of /dev/shm and /tmp before and after a run would
blame their files on it. What names what (checked with strace on torch 2.13, Python 3.11):

- torch's shared tensors: /dev/shm/torch_<pid>_<random>_<n>, <pid> the creating process, under the
  file_descriptor strategy (unlinked at once, the descriptor is what is shared) and the file_system one (kept
  while shared, then removed by torch_shm_manager) alike; no other torch name (psm_*) appears in this version;
- multiprocessing's heap (Value, Array): /dev/shm/pym-<pid>-<random>, unlinked at once;
- multiprocessing's locks and queues under spawn and forkserver: named semaphores /dev/shm/sem.mp-<random>,
  with no pid, removed by their finalizer or, if the process is killed, by the resource tracker. Every process
  using one has it mapped, so its inode shows in /proc/<pid>/maps (the creator's line names the temporary file
  glibc made it as, since deleted: sem.XXXXXX, then hard-linked to the final name, so only the inode tells);
- /tmp/pymp-<random>: a process's multiprocessing temporary directory (the fork server's socket lives there),
  made by tempfile.mkdtemp(prefix='pymp-') and so under $TMPDIR.

`OwnFiles` therefore counts a /dev/shm entry as this test's if its name carries the pid of one of the test's
processes or one of them had its inode mapped, and a pymp-* directory if it is in the TMPDIR it gave the test's
subprocesses. The test's processes are this pytest process, its descendants and the sessions named to
`watch_session` (orphans stay in their session when re-parented); a thread samples them while the watch lasts.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

SHM = "/dev/shm"
_PID_NAMED = re.compile(r"^(?:torch_(\d+)_|pym-(\d+)-)")


def session_processes(sid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process in session `sid`, zombies included (they still answer `kill -0`)."""
    return [(pid, state) for pid, (state, _, session) in _process_table().items() if session == sid]


def _process_table() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, parent pid, session) of every process on the machine."""
    table = {}
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                text = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            table[int(entry.name)] = (fields[0], int(fields[1]), int(fields[3]))
    return table


def _shm() -> set[str]:
    return set(os.listdir(SHM)) if os.path.isdir(SHM) else set()


def shm_and_tmp() -> set[str]:
    """Every /dev/shm entry and /tmp/pymp-* dir on the machine, whoever made it (the benchmarks' coarse view; tests
    use OwnFiles, which another run on the machine cannot disturb)."""
    return {f"{SHM}/{n}" for n in _shm()} | set(glob.glob("/tmp/pymp-*"))


class OwnFiles:
    """/dev/shm entries and /tmp/pymp-* dirs that this test's processes made since the watch began and that are
    still there. Give subprocesses `env` (their own TMPDIR), or pass `monkeypatch` to set it for every child
    started during the test. Sampling every `interval` seconds: a process that lives shorter than that may go
    unseen (pacer's workers, fork server and resource tracker all live for the whole run)."""

    def __init__(self, monkeypatch: Any = None, interval: float = 0.25) -> None:
        self.before = _shm()
        self.root = os.getpid()
        self.sessions: set[int] = set()
        self.pids: set[int] = set()
        self.mapped: set[int] = set()  # inodes in /dev/shm
        self._tmpdir: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._finalize = weakref.finalize(self, _close, self._stop, None)
        self.sample()
        threading.Thread(target=_sample_while_alive, args=(weakref.ref(self), self._stop, interval),
                         name="own-files", daemon=True).start()
        if monkeypatch is not None:
            monkeypatch.setenv("TMPDIR", self.tmpdir)

    @property
    def tmpdir(self) -> str:
        """A TMPDIR for the test's subprocesses, made on first use. Short, under /tmp: a process's pymp-* dir
        holds its sockets, and a socket path must stay under 108 bytes."""
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="pt-", dir="/tmp")
            self._finalize.detach()
            self._finalize = weakref.finalize(self, _close, self._stop, self._tmpdir)
        return self._tmpdir

    @property
    def env(self) -> dict[str, str]:
        return {"TMPDIR": self.tmpdir}

    def watch_session(self, sid: int) -> None:
        with self._lock:
            self.sessions.add(sid)
        self.sample()

    def sample(self) -> None:
        """Note the test's processes now, and the inodes of the /dev/shm entries they have mapped."""
        table = _process_table()
        children: dict[int, list[int]] = {}
        for pid, (_, ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        with self._lock:
            mine = [pid for pid, (_, _, session) in table.items() if session in self.sessions]
        todo = [self.root, *mine]
        found: set[int] = set()
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo.extend(children.get(pid, ()))
        mapped = set()
        for pid in found:
            try:
                maps = Path(f"/proc/{pid}/maps").read_text()
            except OSError:
                continue
            for line in maps.splitlines():
                if f" {SHM}/" in line:  # address perms offset device inode path
                    mapped.add(int(line.split(maxsplit=5)[4]))
        with self._lock:
            self.pids |= found
            self.mapped |= mapped

    def shm(self) -> set[str]:
        """The test's /dev/shm entries made since the watch began and still there."""
        self.sample()
        with self._lock:
            pids, mapped = set(self.pids), set(self.mapped)
        out = set()
        for name in _shm() - self.before:
            match = _PID_NAMED.match(name)
            try:
                inode = os.stat(f"{SHM}/{name}").st_ino
            except OSError:  # gone meanwhile
                continue
            if inode in mapped or (match and int(match.group(1) or match.group(2)) in pids):
                out.add(f"{SHM}/{name}")
        return out

    def pymp(self) -> set[str]:
        """pymp-* dirs in the TMPDIR given to the test's subprocesses."""
        assert self._tmpdir is not None, "no process was given this watch's TMPDIR: there is nothing to check"
        return set(glob.glob(os.path.join(self._tmpdir, "pymp-*")))

    def files(self) -> set[str]:
        return self.shm() | self.pymp()

    def close(self) -> None:
        """Stop sampling and remove the TMPDIR (also done when the watch is garbage or the interpreter exits)."""
        self._finalize()


def _sample_while_alive(ref: weakref.ref[OwnFiles], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        watch = ref()
        if watch is None:
            return
        watch.sample()
        del watch


def _close(stop: threading.Event, tmpdir: str | None) -> None:
    stop.set()
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)
