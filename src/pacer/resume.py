"""What a run's checkpoint holds, and how a later session continues from one (`pacer train --resume`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from pacer import checkpoint, normalize
from pacer.clock import Clock
from pacer.config import Config
from pacer.errors import PacerError
from pacer.runtime import optim
from pacer.runtime import shared as shared_state


def check_resume(saved: dict[str, Any], cfg: Config, run_dir: Path) -> None:
    """Refuse a resume whose saved state does not fit the config, or whose budget is spent."""
    # the saved weights and optimizer state are only meaningful for what they were trained with
    trained, now = saved.get("config") or {}, cfg.to_dict()
    kept = ["env.id", "algo.name", "algo.optimizer", "algo.shared_optimizer", *(f"model.{k}" for k in now["model"])]
    if not cfg.algo.shared_optimizer:
        kept.append("runtime.workers")  # one optimizer state per worker
    for key in kept:
        section, _, name = key.partition(".")
        after = now[section][name]
        before = trained.get(section, {}).get(name, after)  # not in the checkpoint: nothing to compare
        if before != after:
            why = ("with algo.shared_optimizer false, each worker has its own optimizer state"
                   if name == "workers" else "a resume keeps the env, algorithm, optimizer and model")
            raise PacerError(f"cannot resume {str(run_dir)!r} with {key}={after!r}: it was trained with "
                             f"{before!r} ({why}); drop the override, or start a new run")
    steps, episodes = int(saved["counters"]["env_steps"]), int(saved["counters"]["episodes"])
    episode_budget = cfg.runtime.total_episodes
    if steps >= cfg.runtime.total_steps or (episode_budget is not None and episodes >= episode_budget):
        raise PacerError(f"the run already spent its budget ({steps} env steps, {episodes} episodes): pass a "
                         "larger --total-steps (or runtime.total_episodes) to train further")


def checkpoint_payload(cfg: Config, shared: shared_state.SharedState, clock: Clock, workers: list[Any]
                       ) -> dict[str, Any]:
    """Everything a later session needs to continue exactly: plain data and tensors only (weights_only)."""
    return {
        "workers": [checkpoint.to_tensors(state) for state in workers],
        "model": shared.snapshot(),
        "optimizer": {"kind": cfg.algo.optimizer,
                      "states": [[{k: v.clone() for k, v in e.items()} for e in s] for s in shared.optimizer_states]},
        "counters": shared.counters(),
        "obs_moments": None if shared.obs is None else torch.from_numpy(shared.obs.read()),
        "reward_moments": None if shared.rewards is None else torch.from_numpy(shared.rewards.read()),
        "wall_time": clock.elapsed(),
        "eval_time": clock.eval_time,
        "config": cfg.to_dict(),
        "rng": checkpoint.rng_state(),
    }


def save(path: Path, cfg: Config, shared: shared_state.SharedState, clock: Clock, workers: list[Any]) -> Path:
    """Write a checkpoint atomically; `workers` holds each worker's state for an exact resume (final only)."""
    left_out = left_out_of(workers)
    if left_out:
        print(f"pacer: note: {cfg.env.id}'s state holds objects that are not plain data ({left_out}): left out of "
              "the checkpoint, so a resume starts fresh episodes (not bit-exact)", file=sys.stderr, flush=True)
    checkpoint.save(path, checkpoint_payload(cfg, shared, clock, workers))
    return path


def left_out_of(worker_states: list[Any]) -> str:
    """What the env state capture could not store (the same for every worker: report one), for a note."""
    from pacer.envstate import opaque_items

    for state in worker_states:
        if state is not None:
            # every sub-env holds the same kinds of objects: name each attribute once
            names = dict.fromkeys(item.rsplit(".", 1)[-1] for item in opaque_items(state["collector"]["env"]))
            if names:
                more = f" and {len(names) - 3} more" if len(names) > 3 else ""
                return ", ".join(list(names)[:3]) + more
    return ""


def restore_run(saved: dict[str, Any], shared: shared_state.SharedState, cfg: Config, clock: Clock) -> list[Any]:
    """Load a checkpoint into the shared state; returns each worker's saved state (None where there is none)."""
    try:
        assert shared.model is not None
        shared.model.load_state_dict(saved["model"])
    except RuntimeError as exc:
        # the first line only names the model's class; the next one says which parameter does not fit
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise PacerError(f"checkpoint does not fit this run's model ({lines[min(1, len(lines) - 1)]}): was the "
                         "env or the model changed since it was saved?") from None
    states = saved["optimizer"]["states"]
    if saved["optimizer"]["kind"] != cfg.algo.optimizer or len(states) != len(shared.optimizer_states):
        raise PacerError("checkpoint optimizer state does not match the config (optimizer kind, or worker count "
                         "with per-worker optimizers): keep algo.optimizer and runtime.workers when resuming")
    for target, source in zip(shared.optimizer_states, states, strict=True):
        optim.load_state(target, source)
    shared.set_counters(saved["counters"])
    _restore_obs_moments(saved.get("obs_moments"), shared)
    _restore_reward_moments(saved.get("reward_moments"), shared)
    clock.before = float(saved["wall_time"])
    clock.eval_time = float(saved.get("eval_time", 0.0))
    checkpoint.set_rng_state(saved["rng"])
    saved_workers = saved.get("workers") or []
    # a periodic checkpoint, another worker count, or env settings the saved envs do not have: fresh workers
    if len(saved_workers) != cfg.runtime.workers or (saved.get("config") or {}).get("env") != cfg.to_dict()["env"]:
        return [None] * cfg.runtime.workers
    return [None if state is None else checkpoint.to_arrays(state) for state in saved_workers]


def _restore_obs_moments(saved: torch.Tensor | None, shared: shared_state.SharedState) -> None:
    """Row for row when the worker count is the same (a bit-exact resume); else all in the earlier-sessions row."""
    if shared.obs is None or saved is None:
        return
    rows = shared.obs.values
    if saved.shape == rows.shape:
        rows.copy_(saved)
        return
    rows.zero_()
    rows[-1] = torch.from_numpy(normalize.total(saved.numpy()))


def _restore_reward_moments(saved: torch.Tensor | None, shared: shared_state.SharedState) -> None:
    """Each worker's reward-scaling moments, row for row; with another worker count, every worker starts from all
    of them combined (the same returns' scale, measured on more of them)."""
    if shared.rewards is None or saved is None:
        return
    rows = shared.rewards.values
    if saved.shape == rows.shape:
        rows.copy_(saved)
    else:
        rows[:] = torch.from_numpy(normalize.total(saved.numpy()))
