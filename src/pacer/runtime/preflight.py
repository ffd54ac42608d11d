"""Checks before any worker starts, each failing with the problem and its fix in one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import torch
from torch import nn

from pacer.config import Config
from pacer.errors import PacerError

FD_MARGIN = 256  # files, sockets and pipes a run opens besides shared tensors


def shared_bytes(model: nn.Module, cfg: Config) -> int:
    """Shared memory the run allocates: parameters plus optimizer state (2 moments for Adam, 1 for RMSprop)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    slots = 1 if cfg.algo.shared_optimizer else cfg.runtime.workers
    moments = 2 if cfg.algo.optimizer == "adam" else 1
    return params * (1 + moments * slots)


def status(cfg: Config, where: str, log: Callable[[str], None]) -> None:
    """The run's first line: how many workers, where, with how many threads, on how many cores."""
    rt = cfg.runtime
    cores = os.cpu_count() or 1
    log(f"pacer: {rt.workers} worker{'s' if rt.workers > 1 else ''} {where}, {rt.threads_per_worker} torch "
        f"thread{'s' if rt.threads_per_worker > 1 else ''} each, {cores} cores")
    if rt.workers * rt.threads_per_worker > cores:
        log(f"pacer: note: {rt.workers} workers x {rt.threads_per_worker} threads > {cores} cores: workers share "
            "cores and each runs slower (lower --workers or runtime.threads_per_worker for full speed)")


def check_shared_memory(cfg: Config, model: nn.Module) -> None:
    """Room in /dev/shm and enough file descriptors for the shared model and optimizer state."""
    rt = cfg.runtime
    _check_shm(shared_bytes(model, cfg))
    n_tensors = len(list(model.parameters())) * (1 + (2 if cfg.algo.optimizer == "adam" else 1) + 1)
    _check_open_files(n_tensors * (1 if cfg.algo.shared_optimizer else rt.workers) + FD_MARGIN)


def check_rollout_memory(cfg: Config, obs_bytes: int, described: str, state_size: int = 0) -> int:
    """Room in memory for every worker's rollout buffer (`obs_bytes` an observation; pixels are a byte each; a
    recurrent model's state, stored at every step, `state_size` float32s): the buffers live in the workers' own
    memory, allocated once. Returns the bytes they need."""
    rt, steps = cfg.runtime, cfg.algo.n_steps
    need = rt.workers * cfg.env.envs_per_worker * steps * (obs_bytes + 4 * state_size)
    available = _memory_available()
    if available is not None and need > available // 2:
        memory = f" and {state_size}-float states" if state_size else ""
        raise PacerError(f"the rollouts need {need / 2**20:,.0f} MiB ({rt.workers} workers x "
                         f"{cfg.env.envs_per_worker} envs x {steps} steps of {described} observations"
                         f"{memory}) but "
                         f"{available / 2**20:,.0f} MiB of memory is available: use fewer env.envs_per_worker or a "
                         "smaller algo.n_steps")
    return need


def _memory_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _check_shm(need: int) -> None:
    if not sys.platform.startswith("linux") or not os.path.isdir("/dev/shm"):
        return
    stat = os.statvfs("/dev/shm")
    free = stat.f_bavail * stat.f_frsize
    if free < 2 * need + (16 << 20):
        raise PacerError(f"/dev/shm has {free / 2**20:.0f} MiB free but the shared model and optimizer state need "
                         f"about {need / 2**20:.0f} MiB (twice that to be safe): give it more room (in Docker: "
                         "--shm-size=1g), use a smaller model, or run with --backend inline")


def _check_open_files(need: int) -> None:
    """torch's file_descriptor sharing keeps one descriptor per shared tensor open in every process."""
    if torch.multiprocessing.get_sharing_strategy() != "file_descriptor":
        return
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard == resource.RLIM_INFINITY or hard >= need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))  # children inherit the raised limit
        return
    raise PacerError(f"the open-file limit ({soft}, hard {hard}) is below the ~{need} descriptors that sharing "
                     f"this model needs: raise it (ulimit -n {need}) or use a smaller model")
