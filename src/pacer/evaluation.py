"""Evaluation episodes on a parameter snapshot: greedy (the mode of the policy) unless asked otherwise.

Several evaluation processes are watched like training workers: each sends its result (or its error) through its
own pipe and beats a shared heartbeat every batched env step, so a process that dies or hangs ends the evaluation
with a one-line error within seconds instead of leaving the command waiting.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import wait
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from pacer.envs import make_vector_env, obs_dtype
from pacer.errors import WorkerFailed, first_line
from pacer.heads import act, head_for
from pacer.runtime import processes, signals
from pacer.runtime.channel import EOF_MARK, Channel, Inbox, Sender
from pacer.usercode import ByValue, unwrap

HANG_TIMEOUT_S = 10.0  # no batched env step for this long: the evaluation process is hung
STARTUP_S = 120.0  # allowance before the first step (a spawned process imports torch; a busy machine)


@torch.no_grad()
def run_episodes(model: nn.Module, env_id: Any, episodes: int, seed: int, greedy: bool = True,
                 max_episode_steps: int | None = None, on_step: Callable[[], None] | None = None,
                 env_kwargs: Mapping[str, Any] | None = None, numpy_vectorized: bool = False,
                 wrappers: Sequence[Any] = ()) -> NDArray[np.float64]:
    """Returns of `episodes` episodes, one per environment of a vector env, all stepped in one batch. Episode i
    starts from seed + i, so a split of the episodes over processes plays the same episodes; with
    `numpy_vectorized`, the env's NumPy-vectorized form is used where Gymnasium has one (CartPole: its 100
    episodes cost ~10x less), seeded once with `seed` (the same episodes for the same seed, but not those of a
    split). `on_step` is called after every batched step (a heartbeat)."""
    env = make_vector_env(env_id, episodes, max_episode_steps, numpy_vectorized=numpy_vectorized, kwargs=env_kwargs,
                          wrappers=wrappers)
    try:
        obs, _ = env.reset(seed=seed)
        head = head_for(env.single_action_space)
        dtype = obs_dtype(env.single_observation_space)
        total = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            pi, _ = model(torch.as_tensor(np.asarray(obs, dtype=dtype)))
            actions = act(head, model, pi, greedy)
            obs, reward, terminated, truncated, _ = env.step(actions)
            total += np.asarray(reward) * running
            running &= ~(terminated | truncated)
            if on_step is not None:
                on_step()
        return total
    finally:
        env.close()


def _eval_process(index: int, args: Any, channel: Sender, beats: Any) -> None:
    """Entry point of an evaluation process (top-level, so every start method can import it)."""
    processes.die_with_parent()
    signals.child_signals()
    processes.set_name("pacer-eval")
    torch.set_num_threads(1)

    def beat() -> None:
        beats[index] = time.monotonic()

    try:
        model, env_id, episodes, seed, greedy, max_episode_steps, env_kwargs, wrappers = unwrap(args)
        channel.send(("ok", run_episodes(model, env_id, episodes, seed, greedy, max_episode_steps, beat,
                                         env_kwargs, wrappers=wrappers)))
    except BaseException as exc:
        channel.send(("error", _one_line(exc)))


def _one_line(exc: BaseException) -> str:
    """'RuntimeError: boom (helpers.py:87, in step)': the error and the innermost place it came from."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}, in {frames[-1].name})" if frames else ""
    text = first_line(exc)
    return f"{type(exc).__name__}{': ' + text if text else ''}{where}"


def run_episodes_parallel(model: nn.Module, env_id: Any, episodes: int, seed: int, greedy: bool,
                          max_episode_steps: int | None, workers: int, start_method: str,
                          hang_timeout: float = HANG_TIMEOUT_S, env_kwargs: Mapping[str, Any] | None = None,
                          wrappers: Sequence[Any] = ()) -> NDArray[np.float64]:
    """Split `episodes` over `workers` processes (each a different seed range); 1 worker runs here."""
    workers = max(1, min(workers, episodes))
    if workers == 1:
        return run_episodes(model, env_id, episodes, seed, greedy, max_episode_steps, env_kwargs=env_kwargs,
                            wrappers=wrappers)
    ctx = processes.context(start_method)
    beats = ctx.Array("d", workers, lock=False)
    inbox = Inbox()
    shares = np.array_split(np.arange(episodes), workers)
    procs: list[Any] = []
    pumps = []
    finished = False
    try:
        for index, share in enumerate(shares):
            args = (model, env_id, len(share), seed + int(share[0]), greedy, max_episode_steps, env_kwargs, wrappers)
            channel = Channel(ctx, index, inbox)
            proc = ctx.Process(target=_eval_process, args=(index, ByValue(args), channel.sender(), beats),
                               name="pacer-eval", daemon=True)  # by value: a notebook's env or model class too
            with signals.signals_deferred(), signals.children_ignore_sigint():
                proc.start()
            procs.append(proc)
            pumps.append(channel.after_start())
        returns = _collect(procs, inbox, beats, time.monotonic(), hang_timeout)
        finished = True
        return returns
    finally:
        # a failed evaluation is abandoned: its other processes (maybe hung too) are killed now, not waited for
        processes.join_all(procs, 10.0 if finished else 0.0)
        for pump in pumps:  # each ends at its pipe's EOF, right after its process exits
            pump.join(timeout=2.0)
        inbox.close()


def _collect(procs: list[Any], inbox: Inbox, beats: Any, started: float, hang_timeout: float
             ) -> NDArray[np.float64]:
    """Every process's returns, in episode order (not finishing order); raise on a death, an error or a hang."""
    out: dict[int, NDArray[np.float64]] = {}
    while len(out) < len(procs):
        wait([inbox.wake_r, *(p.sentinel for i, p in enumerate(procs) if i not in out)], timeout=0.25)
        _take(inbox, out)
        now = time.monotonic()
        for index, proc in enumerate(procs):
            if index in out:
                continue
            if proc.exitcode is not None:
                time.sleep(0.05)  # its result (or error) may still be on its way through the pipe
                _take(inbox, out)
                if index not in out:
                    raise WorkerFailed(f"evaluation process {index} died ({processes.describe_exit(proc.exitcode)})"
                                       " before returning its episodes")
                continue
            limit = hang_timeout if beats[index] else max(hang_timeout, STARTUP_S)
            silent = now - max(beats[index], started)
            if silent > limit:
                proc.kill()
                raise WorkerFailed(f"evaluation process {index} made no env step for {silent:.1f} s (a hung env?) "
                                   "and was killed")
    return np.concatenate([out[i] for i in range(len(procs))])


def _take(inbox: Inbox, out: dict[int, NDArray[np.float64]]) -> None:
    for index, message in inbox.take_all():
        if message == EOF_MARK:
            continue
        status, value = message
        if status == "error":
            raise WorkerFailed(f"evaluation process {index} failed: {value}")
        out[index] = value
