"""What every benchmark result carries: the machine, the versions, the git commit, the command, the date."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path("benchmarks/results")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    with contextlib.suppress(ValueError, OSError, AttributeError):  # sysconf names are platform-specific
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib, "os": platform.platform(),
            "python": platform.python_version()}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("pacer", "torch", "gymnasium", "numpy", "stable_baselines3"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        # results (records, plots) are outputs, not code: one benchmark's plot must not make the next one's
        # record '-dirty'
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                f":(top,exclude){RESULTS_DIR.as_posix()}"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def command() -> str:
    """The command line as the user typed it (`pacer ...`, also when run as `python -m pacer ...`)."""
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    program = Path(sys.argv[0])
    if program.name == "pacer" or (program.name == "__main__.py" and program.parent.name == "pacer"):
        return f"pacer {args}"
    return f"{shlex.quote(sys.argv[0])} {args}"


_COMMIT_AT_START: list[str | None] = []


def begin() -> None:
    """Read the git commit now, before the benchmark writes any file (run dirs, plots, the record itself would
    otherwise make a clean tree look '-dirty'); `write` records this one."""
    _COMMIT_AT_START[:] = [git_commit()]


def file_name(text: str) -> str:
    """A name for a file from a kind with an env id in it: 'ALE/Pong-v5' and 'pkg:make' name no folder."""
    return text.replace("/", "_").replace(":", "_")


def write(kind: str, payload: dict[str, Any], out_dir: Path = RESULTS_DIR) -> Path:
    """benchmarks/results/<kind>-<date>.json with the context that makes the numbers meaningful. The commit is the
    one `begin()` saw (else the current one)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"{file_name(kind)}-{stamp}.json"
    record = {"kind": kind, "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
              "command": command(),
              "machine": machine(), "versions": versions(),
              "commit": _COMMIT_AT_START[0] if _COMMIT_AT_START else git_commit(), **payload}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that exist (None: missing), or None if none do."""
    clean = sorted(v for v in values if v is not None)
    if not clean:
        return None
    mid = len(clean) // 2
    return clean[mid] if len(clean) % 2 else (clean[mid - 1] + clean[mid]) / 2
