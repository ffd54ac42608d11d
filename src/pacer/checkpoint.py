"""Checkpoints: atomic writes (temp file, fsync, os.replace), safe loads (weights_only), rotation, lookup.

A checkpoint is a dict of tensors and plain data: model parameters, optimizer state, counters, the config, and
RNG states as tensors or lists, so that `torch.load(weights_only=True)` can read it without running any code.
Every save checks this twice: the payload is walked before writing (naming any value that is not plain data), and
the written file is loaded back the way `load` will before it replaces the previous one.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pacer.errors import PacerError

FORMAT = "pacer-checkpoint"
VERSION = 1
STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
PLAIN_TYPES = (bool, int, float, str, type(None))


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write so that `path` is always either the old complete file or the new complete file. A Ctrl-C or SIGTERM
    during the write is held until it is done (the write takes milliseconds), then acted on."""
    from pacer.runtime.signals import signals_deferred

    check_plain(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with signals_deferred(), open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
            _check_loads(tmp, path)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def check_plain(tree: Any, where: str = "checkpoint") -> None:
    """Raise naming the first value that `torch.load(weights_only=True)` would refuse: only tensors, Python
    numbers, strings, None and dicts, lists and tuples of them pass (a NumPy scalar is a float, yet refused)."""
    if isinstance(tree, torch.Tensor) or type(tree) in PLAIN_TYPES:
        return
    if isinstance(tree, dict) and type(tree) is dict:
        for key, value in tree.items():
            if type(key) not in (str, int):
                raise PacerError(f"cannot save {where}: key {key!r} is a {type(key).__name__}, not plain data")
            check_plain(value, f"{where}[{key!r}]")
        return
    if type(tree) in (list, tuple):
        for i, value in enumerate(tree):
            check_plain(value, f"{where}[{i}]")
        return
    raise PacerError(f"cannot save {where}: a {type(tree).__module__}.{type(tree).__qualname__} is not plain data "
                     "(checkpoints are loaded with weights_only=True)")


def _check_loads(written: Path, path: Path) -> None:
    """Load the file just written as `load` will; a file pacer would refuse never replaces a good one."""
    try:
        torch.load(written, map_location="cpu", weights_only=True)
    except Exception as exc:  # whatever the unpickler refuses, report it in one line
        first = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line), type(exc).__name__)
        raise PacerError(f"not writing {str(path)!r}: the file would not load back ({first})") from None


def load(path: Path) -> dict[str, Any]:
    """Load and check a checkpoint; a missing, corrupt, unsafe or foreign file gives a one-line PacerError."""
    if not path.is_file():
        raise PacerError(f"no checkpoint at {str(path)!r}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if unsafe:  # the safe unpickler met an object that would import and run code: never load it
            raise PacerError(f"refusing to load {str(path)!r}: it is not a plain-data checkpoint ({unsafe[0]})"
                             ) from None
        raise PacerError(f"checkpoint {str(path)!r} is corrupt or truncated (not a readable torch file)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise PacerError(f"checkpoint {str(path)!r} is corrupt or truncated ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PacerError(f"{str(path)!r} is not a pacer checkpoint")
    if data.get("version") != VERSION:
        raise PacerError(f"checkpoint {str(path)!r} has format version {data.get('version')}, expected {VERSION}")
    return data


def find(source: str | Path) -> Path:
    """A checkpoint file itself, a run directory's newest checkpoint (by write time, `final.pt` on a tie), or a
    packaged agent's checkpoint.pt.

    Write time, not the name: a resumed session killed before its final save leaves an older `final.pt` next to
    newer `step_*.pt` files, and must not go back in time."""
    path = Path(source)
    if path.is_file():
        return path
    if not path.is_dir():
        raise PacerError(f"no run directory or checkpoint at {str(path)!r}")
    if (path / "checkpoint.pt").is_file() and not (path / "checkpoints").is_dir():
        return path / "checkpoint.pt"  # a packaged agent (`pacer package`)
    folder = path / "checkpoints"
    final = folder / "final.pt"
    candidates = _step_files(folder) + ([final] if final.is_file() else [])
    if not candidates:
        raise PacerError(f"run directory {str(path)!r} has no checkpoint in checkpoints/")
    return max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name == "final.pt"))


def rotate(folder: Path, keep: int) -> None:
    """Keep the `keep` newest periodic checkpoints (final.pt is never removed)."""
    steps = sorted(_step_files(folder), key=lambda p: int(STEP_FILE.match(p.name).group(1)))  # type: ignore[union-attr]
    for old in steps[:-keep]:
        old.unlink(missing_ok=True)


def _step_files(folder: Path) -> list[Path]:
    return [p for p in folder.glob("step_*.pt") if STEP_FILE.match(p.name)] if folder.is_dir() else []


def rng_state() -> dict[str, Any]:
    """The parent's RNG states as tensors and lists (no NumPy objects: weights_only would reject them)."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    return {
        "torch": torch.get_rng_state(),
        "numpy": [str(np_state[0]), torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": [list(random.getstate()[1]), random.getstate()[0]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    internal, version = state["python"]
    random.setstate((version, tuple(internal), None))


def to_tensors(tree: Any) -> Any:
    """NumPy arrays -> tensors, recursively (weights_only loads tensors, not arrays)."""
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(tree.copy())
    if isinstance(tree, dict):
        return {k: to_tensors(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [to_tensors(v) for v in tree]
    return tree


def to_arrays(tree: Any) -> Any:
    """Tensors -> NumPy arrays, recursively (the inverse of to_tensors)."""
    if isinstance(tree, torch.Tensor):
        return tree.numpy().copy()
    if isinstance(tree, dict):
        return {k: to_arrays(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_arrays(v) for v in tree]
    return tree
