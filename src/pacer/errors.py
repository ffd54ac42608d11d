"""User-facing errors: one line that says what is wrong and, where possible, how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class PacerError(Exception):
    """A problem with the user's input or environment, shown as a one-line message without a traceback."""


class WorkerFailed(PacerError):
    """A worker (or evaluation) process died, raised or hung; the message says which and why."""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line ('' when it has none), for one-line errors and warnings."""
    return (str(exc).strip().splitlines() or [""])[0]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest choices, or '' when nothing is close."""
    matches = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"


def make_output_dir(path: Path) -> Path:
    """Create a directory to write into, or say in one line which file is in the way (mkdir would only say
    'File exists'); other failures (permissions, a full disk) are OSErrors the command reports as they are."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        raise PacerError(f"cannot write into {str(path)!r}: {str(blocker)!r} is a file, not a directory") from None
    return path
