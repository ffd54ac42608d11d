"""Evaluation episodes on a parameter snapshot: greedy (the mode of the policy) unless asked otherwise."""

from __future__ import annotations

import queue
import traceback
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from pacer.envs import make_vector_env
from pacer.errors import PacerError
from pacer.model import sample
from pacer.runtime import processes

EVAL_TIMEOUT_S = 600.0


@torch.no_grad()
def run_episodes(model: nn.Module, kind: str, env_id: Any, episodes: int, seed: int, greedy: bool = True,
                 max_episode_steps: int | None = None) -> NDArray[np.float64]:
    """Returns of `episodes` episodes, one per environment of a vector env, all stepped in one batch.
    Episode i always starts from seed + i."""
    env = make_vector_env(env_id, episodes, max_episode_steps, numpy_vectorized=False)
    try:
        obs, _ = env.reset(seed=seed)
        space = env.single_action_space
        total = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            pi, _ = model(torch.as_tensor(np.asarray(obs, dtype=np.float32)))
            actions = sample(kind, model, pi, greedy=greedy)[0].numpy()
            if kind == "gaussian":
                actions = np.clip(actions, space.low, space.high)  # type: ignore[attr-defined]
            obs, reward, terminated, truncated, _ = env.step(actions)
            total += np.asarray(reward) * running
            running &= ~(terminated | truncated)
        return total
    finally:
        env.close()


def _eval_process(index: int, args: tuple[Any, ...], results: Any) -> None:
    processes.die_with_parent()
    processes.child_signals()
    torch.set_num_threads(1)
    try:
        results.put((index, "ok", run_episodes(*args)))
    except BaseException:
        results.put((index, "error", traceback.format_exc()))


def run_episodes_parallel(model: nn.Module, kind: str, env_id: Any, episodes: int, seed: int, greedy: bool,
                          max_episode_steps: int | None, workers: int, start_method: str) -> NDArray[np.float64]:
    """Split `episodes` over `workers` processes (each a different seed range); 1 worker runs here."""
    workers = max(1, min(workers, episodes))
    if workers == 1:
        return run_episodes(model, kind, env_id, episodes, seed, greedy, max_episode_steps)
    ctx = processes.context(start_method)
    results = ctx.Queue()
    shares = np.array_split(np.arange(episodes), workers)
    procs = []
    try:
        for index, share in enumerate(shares):
            args = (model, kind, env_id, len(share), seed + int(share[0]), greedy, max_episode_steps)
            proc = ctx.Process(target=_eval_process, args=(index, args, results), name="pacer-eval", daemon=True)
            with processes.signals_deferred(), processes.children_ignore_sigint():
                proc.start()
            procs.append(proc)
        out: dict[int, NDArray[np.float64]] = {}
        for _ in procs:
            try:
                index, status, value = results.get(timeout=EVAL_TIMEOUT_S)
            except queue.Empty:
                raise PacerError(f"evaluation workers gave no result within {EVAL_TIMEOUT_S:.0f} s") from None
            if status == "error":
                raise PacerError(f"an evaluation worker failed:\n{value}")
            out[index] = value
        return np.concatenate([out[i] for i in range(len(procs))])  # in episode order, not in finishing order
    finally:
        processes.join_all(procs, 10.0)
        results.close()
        results.join_thread()
