"""What a run may leave behind: processes of a session (zombies included), /dev/shm segments, /tmp/pymp-* dirs."""

from __future__ import annotations

import glob
import os
from pathlib import Path


def session_processes(sid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process in session `sid`, zombies included (they still answer `kill -0`)."""
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid:
            out.append((int(stat.split("/")[2]), state))
    return out


def shm_and_tmp() -> set[str]:
    shm = {f"/dev/shm/{n}" for n in os.listdir("/dev/shm")} if os.path.isdir("/dev/shm") else set()
    return shm | set(glob.glob("/tmp/pymp-*"))
