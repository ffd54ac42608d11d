"""Evaluation episodes on a parameter snapshot: greedy (the mode of the policy) unless asked otherwise.

Several evaluation processes are watched like training workers: each sends its result (or its error) through its
own pipe and beats a shared heartbeat every batched env step, so a process that dies or hangs ends the evaluation
with a one-line error within seconds instead of leaving the command waiting.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from pacer import masks
from pacer.config import EnvConfig
from pacer.envs import EnvSpec, ensure_registered, layout_of, make_vector_env
from pacer.errors import WorkerFailed, first_line
from pacer.heads import act, head_for, masked
from pacer.league import policy_opponent
from pacer.recurrence import initial_state, step
from pacer.runtime import processes, signals
from pacer.runtime.channel import Channel, Inbox, Sender
from pacer.selfplay import SelfPlayVectorEnv
from pacer.spaces import tree_map
from pacer.usercode import ByValue, unwrap

HANG_TIMEOUT_S = 10.0  # no batched env step for this long: the evaluation process is hung


class Played(NamedTuple):
    """Returns of evaluation episodes, in episode order, and how many of them a time cap cut short (scored with
    their return so far). With many agents an episode's return is its team's, and `agent_returns` [episodes,
    agents] holds each agent's."""

    returns: NDArray[np.float64]
    cut: int = 0
    agent_returns: NDArray[np.float64] | None = None


@torch.no_grad()
def run_episodes(model: nn.Module, env: EnvConfig, episodes: int, seed: int, greedy: bool = True,
                 on_step: Callable[[], None] | None = None, numpy_vectorized: bool = False,
                 max_seconds: float | None = None, opponent: nn.Module | None = None) -> Played:
    """`episodes` episodes, one per environment of a vector env, all stepped in one batch. Episode i starts from
    seed + i, so a split of the episodes over processes plays the same episodes; with `numpy_vectorized`, the env's
    NumPy-vectorized form is used where Gymnasium has one (CartPole: its 100 episodes cost ~10x less), seeded once
    with `seed` (the same episodes for the same seed, but not those of a split). With `max_seconds`, play stops
    then: the episodes still running are cut and scored with their return so far (an untrained Atari policy that
    never serves plays each game to the emulator's 27,000-step cap). `on_step` is called after every batched step
    (a heartbeat). A PettingZoo env's episode is one copy of it, its agents rows of the batch
    (pacer/multiagent.py). A game played by self-play is played against a random player, or against `opponent`
    (a model of the same game, sampling its moves: pacer/selfplay.py)."""
    venv = make_vector_env(env, episodes, numpy_vectorized=numpy_vectorized)
    deadline = math.inf if max_seconds is None else time.monotonic() + max_seconds
    try:
        if opponent is not None and isinstance(venv, SelfPlayVectorEnv):
            layout = layout_of(env, venv.single_observation_space, venv.single_action_space)
            venv.opponent = policy_opponent(opponent, head_for(venv.single_action_space), layout.cast)
        obs, info = venv.reset(seed=seed)
        head = head_for(venv.single_action_space)
        layout = layout_of(env, venv.single_observation_space, venv.single_action_space)
        source = masks.configured(env.action_mask)
        rows = venv.num_envs
        total = np.zeros(rows)
        running = np.ones(rows, dtype=bool)
        live = _live(info, rows)
        ended = np.zeros(rows, dtype=bool)  # rows showing an episode's final observation (the next step resets)
        state = initial_state(model, rows)  # a recurrent model's, per row: each plays one episode from it
        starts = torch.ones(rows, dtype=torch.bool)
        while running.any() and time.monotonic() < deadline:
            pi, _, state = step(model, tree_map(torch.as_tensor, layout.cast(obs)), state, starts)
            starts = torch.from_numpy(~live)  # an agent that is not acting yet starts afresh when it does
            if source is not None:  # only legal actions, greedy or sampled; also in a row's episodes after its
                # counted one (the env still plays them: a game may end on an illegal move, or raise)
                pi = masked(pi, torch.from_numpy(masks.read(source, venv, obs, info, ended | ~live)))
            actions = act(head, model, pi, greedy)
            obs, reward, terminated, truncated, info = venv.step(actions)
            ended = np.asarray(terminated | truncated, dtype=bool)
            total += np.asarray(reward) * running * live
            running &= ~np.asarray(info.get("episode_over", terminated | truncated), dtype=bool)
            live = _live(info, rows)
            if on_step is not None:
                on_step()
        group = rows // episodes
        if group == 1:
            return Played(total, int(running.sum()))
        per_agent = total.reshape(episodes, group)
        return Played(per_agent.sum(axis=1), int(running.reshape(episodes, group).any(axis=1).sum()), per_agent)
    finally:
        venv.close()


def _live(info: dict[str, Any], rows: int) -> NDArray[np.bool_]:
    live = info.get("agent_live")
    return np.ones(rows, dtype=bool) if live is None else np.asarray(live, dtype=bool)


def _eval_process(index: int, args: Any, channel: Sender, beats: Any) -> None:
    """Entry point of an evaluation process (top-level, so every start method can import it)."""
    processes.die_with_parent()
    signals.child_signals()
    processes.set_name("pacer-eval")
    torch.set_num_threads(1)

    def beat() -> None:
        beats[index] = time.monotonic()

    try:
        model, env, registration, episodes, seed, greedy, max_seconds, opponent = unwrap(args)
        ensure_registered(registration)
        channel.send(run_episodes(model, env, episodes, seed, greedy, beat, max_seconds=max_seconds,
                                  opponent=opponent))
    except BaseException as exc:
        channel.send(EvalError(_one_line(exc)))


@dataclass(frozen=True)
class EvalError:
    """An evaluation process's last message when it raised: the error and where, in one line."""

    message: str


def _one_line(exc: BaseException) -> str:
    """'RuntimeError: boom (helpers.py:87, in step)': the error and the innermost place it came from."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}, in {frames[-1].name})" if frames else ""
    text = first_line(exc)
    return f"{type(exc).__name__}{': ' + text if text else ''}{where}"


def run_episodes_parallel(model: nn.Module, env: EnvConfig, episodes: int, seed: int, greedy: bool, workers: int,
                          start_method: str, hang_timeout: float = HANG_TIMEOUT_S, spec: EnvSpec | None = None,
                          max_seconds: float | None = None, opponent: nn.Module | None = None) -> Played:
    """Split `episodes` over `workers` processes (each a different seed range); 1 worker runs here. `spec` (the
    env's registration) goes with them, for an id this process registered itself."""
    workers = max(1, min(workers, episodes))
    if workers == 1:
        return run_episodes(model, env, episodes, seed, greedy, max_seconds=max_seconds, opponent=opponent)
    processes.check_main_guard(start_method)
    ctx = processes.context(start_method)
    beats = ctx.Array("d", workers, lock=False)
    inbox = Inbox()
    shares = np.array_split(np.arange(episodes), workers)
    procs: list[Any] = []
    pumps = []
    finished = False
    try:
        for index, share in enumerate(shares):
            args = (model, env, spec, len(share), seed + int(share[0]), greedy, max_seconds, opponent)
            channel = Channel(ctx, index, inbox)
            proc = ctx.Process(target=_eval_process, args=(index, ByValue(args), channel.sender(), beats),
                               name="pacer-eval", daemon=True)  # by value: a notebook's env or model class too
            with signals.signals_deferred(), signals.children_ignore_sigint():
                proc.start()
            procs.append(proc)
            pumps.append(channel.after_start())
        played = _collect(procs, inbox, beats, time.monotonic(), hang_timeout)
        finished = True
        agents = None if played[0].agent_returns is None else \
            np.concatenate([p.agent_returns for p in played])
        return Played(np.concatenate([p.returns for p in played]), sum(p.cut for p in played), agents)
    finally:
        # a failed evaluation is abandoned: its other processes (maybe hung too) are killed now, not waited for
        processes.join_all(procs, 10.0 if finished else 0.0)
        for pump in pumps:  # each ends at its pipe's EOF, right after its process exits
            pump.join(timeout=2.0)
        inbox.close()


def _collect(procs: list[Any], inbox: Inbox, beats: Any, started: float, hang_timeout: float) -> list[Played]:
    """Every process's episodes, in episode order (not finishing order); raise on a death, an error or a hang."""
    out: dict[int, Played] = {}
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
            limit = hang_timeout if beats[index] else max(hang_timeout, processes.STARTUP_S)
            silent = now - max(beats[index], started)
            if silent > limit:
                proc.kill()
                raise WorkerFailed(f"evaluation process {index} made no env step for {silent:.1f} s (a hung env?) "
                                   "and was killed")
    return [out[i] for i in range(len(procs))]


def _take(inbox: Inbox, out: dict[int, Played]) -> None:
    for index, message in inbox.take_all():
        if isinstance(message, EvalError):
            raise WorkerFailed(f"evaluation process {index} failed: {message.message}")
        if isinstance(message, Played):
            out[index] = message
        # else EOF_MARK: the pipe closed; the process's exit is judged from the process itself
