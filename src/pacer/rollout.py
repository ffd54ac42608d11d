"""Collecting experience from a batch of environments with one batched forward pass per step.

A recurrent model (model.is_recurrent) keeps a state per env between steps and rollouts. Under NEXT_STEP autoreset
the step after an episode's last one is the reset step: its observation is still the ended episode's final one, so
the state that saw the episode also gives that observation's value (what a truncated episode bootstraps from); the
state is reset before the step after it, the new episode's first (`starts`). A rollout stores each step's state and
`starts`, so that learning can run any stretch of it again, from the state it started with.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from numpy.typing import NDArray
from torch import nn

from pacer import masks
from pacer.heads import ActionHead, masked
from pacer.normalize import RewardScaler
from pacer.phases import Phases
from pacer.recurrence import initial_state, step
from pacer.spaces import ObsLayout, tree_leaves, tree_map


class Rollout(NamedTuple):
    """T steps of N environments, time first. `valid` is false on the reset steps of NEXT_STEP autoreset (and,
    for whole-episode rollouts, after an environment's episode ended); those rows are not transitions."""

    obs: Any  # [T, N, *obs_shape]: float32, or uint8 for pixels; a structured observation: a tree of such arrays
    actions: NDArray[Any]  # [T, N] or [T, N, d]
    logp: NDArray[np.float32]  # [T, N]
    values: NDArray[np.float32]  # [T, N]
    rewards: NDArray[np.float32]  # [T, N]
    terminated: NDArray[np.bool_]  # [T, N]
    truncated: NDArray[np.bool_]  # [T, N]
    valid: NDArray[np.bool_]  # [T, N]
    last_values: NDArray[np.float32]  # [N]: V of the observation after the last step
    states: NDArray[np.float32] | None = None  # [T, N, state_size]: a recurrent model's state before each step
    starts: NDArray[np.bool_] | None = None  # [T, N]: the state is reset before this step (a new episode's first)
    action_masks: NDArray[np.bool_] | None = None  # [T, N, logits]: the legal actions at each step (pacer/masks.py)

    @property
    def next_values(self) -> NDArray[np.float32]:
        """V(s_{t+1}); for a truncated step this is V(final observation), thanks to NEXT_STEP autoreset."""
        return np.concatenate([self.values[1:], self.last_values[None]], axis=0)


class Collector:
    """Steps one vector env with a policy; buffers are allocated once and reused."""

    def __init__(self, env: VectorEnv, model: nn.Module, head: ActionHead, seed: int,
                 termination_reward: float | None = None, reward_scaler: RewardScaler | None = None,
                 clip_rewards: float | None = None, phases: Phases | None = None,
                 layout: ObsLayout | None = None, mask_source: str | None = None) -> None:
        self.env, self.model, self.head = env, model, head
        self.mask_source = mask_source  # where the env gives action masks (pacer/masks.py), or None
        # what observations are kept as: one array (a Box; pixels stay uint8: 4x less to store and copy) or a tree
        self.layout = layout or ObsLayout(env.single_observation_space)
        self.structured = self.layout.structured
        self.reward_scaler = reward_scaler
        self.rng = torch.Generator().manual_seed(seed)  # this collector's own stream: exact resume, inline workers
        self.termination_reward = termination_reward
        self.clip_rewards = clip_rewards
        self.num_envs = env.num_envs
        # many agents (pacer/multiagent.py): a row per agent of each copy of the env, `group` rows a copy, some of
        # them not acting at times (`live`); an episode is a copy's, its return its agents' together
        self.agent_names: tuple[str, ...] = tuple(getattr(env, "possible_agents", ()))
        self.group = max(1, len(self.agent_names))
        self._everyone = np.ones(self.num_envs, dtype=bool)  # `live` of an env without agents: never written to
        obs, info = env.reset(seed=seed)
        env.action_space.seed(seed)
        self.live = self._live(info)
        self.mask = self._mask(obs, info, ~self.live)
        self.obs = self.layout.cast(obs)
        self.prev_done = np.zeros(self.num_envs, dtype=bool)
        self.episode_return = np.zeros(self.num_envs)
        self.episode_length = np.zeros(self.num_envs, dtype=np.int64)
        self.active = np.ones(self.num_envs, dtype=bool)  # whole-episode mode: envs still in their episode
        self.whole_episodes = False
        self.finished_returns: list[float] = []
        self.finished_lengths: list[int] = []
        self.finished_agent_returns: list[NDArray[np.float64]] = []  # many agents: each one's, per episode
        self.phases = phases or Phases()  # 'inference' and 'env' laps: the worker's timer, whose other laps it makes
        # a recurrent model's state per env, and which envs start an episode at the next step (all, at first)
        self.state = initial_state(model, self.num_envs)
        self.reset_next = np.ones(self.num_envs, dtype=bool)
        self.first_step_at: float | None = None  # epoch time of the first env.step (cold-start benchmarks)
        self._buffers: dict[int, Rollout] = {}

    def _alloc(self, steps: int) -> Rollout:
        n, t = self.num_envs, steps
        return Rollout(
            obs=self.layout.zeros((t, n)),
            actions=np.zeros((t, n, *self.head.shape), self.head.dtype),
            logp=np.zeros((t, n), np.float32), values=np.zeros((t, n), np.float32),
            rewards=np.zeros((t, n), np.float32), terminated=np.zeros((t, n), bool),
            truncated=np.zeros((t, n), bool), valid=np.zeros((t, n), bool), last_values=np.zeros(n, np.float32),
            states=None if self.state is None else np.zeros((t, n, self.state.shape[1]), np.float32),
            starts=None if self.state is None else np.zeros((t, n), bool),
            action_masks=None if self.mask is None else np.zeros((t, n, self.mask.shape[1]), bool))

    @torch.no_grad()
    def collect(self, steps: int) -> Rollout:
        """Run `steps` steps in every environment. The returned arrays are reused by the next call."""
        buf = self._buffers.get(steps)
        if buf is None:
            buf = self._buffers[steps] = self._alloc(steps)
        phases = self.phases
        for t in range(steps):
            obs_t = tree_map(torch.from_numpy, self.obs) if self.structured else torch.from_numpy(self.obs)
            if self.state is None:
                pi, value = self.model(obs_t)
            else:  # one batched recurrent step: the state goes on from the last one, reset where an episode starts
                buf.states[t] = self.state.numpy()  # type: ignore[index]
                buf.starts[t] = self.reset_next  # type: ignore[index]
                pi, value, self.state = step(self.model, obs_t, self.state, torch.from_numpy(self.reset_next))
            if self.mask is not None:
                buf.action_masks[t] = self.mask  # type: ignore[index]
                pi = masked(pi, torch.from_numpy(self.mask))
            actions, logp = self.head.sample(self.model, pi, generator=self.rng)
            if self.structured:
                for stored, now in zip(tree_leaves(buf.obs), tree_leaves(self.obs), strict=True):
                    stored[t] = now
            else:
                buf.obs[t] = self.obs
            buf.actions[t] = actions.numpy()  # as drawn: the log-probability is of this action
            buf.logp[t] = logp.numpy()
            buf.values[t] = value.numpy()
            actions_np = self.head.clip(actions).numpy()
            phases.lap("inference")
            if self.first_step_at is None:
                self.first_step_at = time.time()
            obs, reward, terminated, truncated, info = self.env.step(actions_np)
            valid = ~self.prev_done & self.active & self.live
            done = terminated | truncated
            live = self._live(info)
            if self.mask_source is not None:
                self.mask = self._mask(obs, info, done | ~live)
            if self.termination_reward is not None:
                shaped = np.where(terminated, self.termination_reward, reward)
            else:
                shaped = reward
            if self.clip_rewards is not None:  # training only: _track_episodes below counts the game's own score
                shaped = np.clip(shaped, -self.clip_rewards, self.clip_rewards)
            if self.reward_scaler is not None:
                shaped = self.reward_scaler(shaped, terminated | truncated, valid)
            buf.rewards[t] = shaped
            buf.terminated[t] = terminated
            buf.truncated[t] = truncated
            buf.valid[t] = valid
            # this was a reset step (or its agent was not acting): the next one starts an episode
            self.reset_next = self.prev_done | ~self.live
            self._track_episodes(np.asarray(reward, dtype=np.float64), valid, done, info.get("episode_over"))
            self.live = live
            self.obs = self.layout.cast(obs)
            phases.lap("env")  # the step, and recording its transition
        # the value of the observation the next rollout starts from, with the state the next step will have
        last_obs = tree_map(torch.from_numpy, self.obs) if self.structured else torch.from_numpy(self.obs)
        _, last_value, _ = step(self.model, last_obs, self.state,
                                None if self.state is None else torch.from_numpy(self.reset_next))
        buf.last_values[:] = last_value.numpy()
        phases.lap("inference")
        return buf

    def collect_episodes(self, chunk: int = 64) -> Rollout:
        """One whole episode from every environment: all start fresh, and an env's steps after its episode ended
        are invalid (not trained on, not counted)."""
        obs, info = self.env.reset()
        self.live = self._live(info)
        self.mask = self._mask(obs, info, ~self.live)
        self.obs = self.layout.cast(obs)
        self.reset_next[:] = True
        self.prev_done[:] = False
        self.episode_return[:] = 0.0
        self.episode_length[:] = 0
        self.active[:] = True
        self.whole_episodes = True
        parts: list[Rollout] = []
        try:
            while self.active.any():
                part = self.collect(chunk)
                # the collector reuses its buffers: each part is copied out
                parts.append(part._replace(**{f: tree_map(np.copy, a) for f, a in part._asdict().items()
                                              if a is not None}))
        finally:
            self.whole_episodes = False
            self.active[:] = True
        merged = {f: tree_map(lambda *xs: np.concatenate(xs), *[getattr(p, f) for p in parts]) for f in Rollout._fields
                  if f != "last_values" and getattr(parts[0], f) is not None}
        return Rollout(**merged, last_values=parts[-1].last_values)

    def _mask(self, obs: Any, info: dict[str, Any], skip: NDArray[np.bool_]) -> NDArray[np.bool_] | None:
        """The legal actions of the observations `obs` (None: the env gives no masks); rows in `skip` take no action
        that counts (all legal)."""
        return None if self.mask_source is None else masks.read(self.mask_source, self.env, obs, info, skip)

    def _live(self, info: dict[str, Any]) -> NDArray[np.bool_]:
        """The rows whose agent acts at the next step (every row but for many agents: pacer/multiagent.py)."""
        live = info.get("agent_live")
        return self._everyone if live is None else np.asarray(live, dtype=bool)

    def _track_episodes(self, reward: NDArray[np.float64], valid: NDArray[np.bool_], done: NDArray[np.bool_],
                        over: NDArray[np.bool_] | None = None) -> None:
        """Add up the game's own score of each row's episode. An episode ends where an env says it is `done` (for
        many agents, where the env says its copy's episode is `over`: each agent's rows ended before or then)."""
        self.episode_return += reward * valid
        self.episode_length += valid
        ended = done & valid if over is None else np.asarray(over, dtype=bool) & self.active
        if ended.any():
            if self.group == 1:
                self.finished_returns.extend(self.episode_return[ended].tolist())
                self.finished_lengths.extend(self.episode_length[ended].tolist())
            else:
                copies = ended.reshape(-1, self.group).all(axis=1)
                per_agent = self.episode_return.reshape(-1, self.group)[copies]
                self.finished_returns.extend(per_agent.sum(axis=1).tolist())  # the team's return
                self.finished_lengths.extend(self.episode_length.reshape(-1, self.group)[copies].max(axis=1).tolist())
                self.finished_agent_returns.extend(per_agent.copy())
            self.episode_return[ended] = 0.0
            self.episode_length[ended] = 0
            if self.whole_episodes:
                self.active &= ~ended
        self.prev_done = done

    STATE = ("obs", "prev_done", "episode_return", "episode_length", "reset_next", "live")

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this collector is: RNG, env, current observations, the
        recurrent state."""
        from pacer import envstate

        state = {"rng": self.rng.get_state().numpy(), "env": envstate.capture(self.env),
                 **{name: tree_map(np.copy, getattr(self, name)) for name in self.STATE}}
        if self.state is not None:
            state["memory"] = self.state.numpy().copy()
        if self.mask is not None:
            state["mask"] = self.mask.copy()
        if self.reward_scaler is not None:
            state["reward_scaler"] = self.reward_scaler.get_state()
        return state

    def set_state(self, state: dict[str, Any]) -> bool:
        """Restore get_state(); returns False when the env's state could only be partly restored (fresh
        episodes were started instead)."""
        from pacer import envstate

        self.rng.set_state(torch.from_numpy(np.asarray(state["rng"], dtype=np.uint8)))
        scaler = state.get("reward_scaler") if self.reward_scaler is not None else None
        if not envstate.is_exact(state["env"]):
            if scaler is not None:  # fresh episodes: their running returns start at zero, the scale carries on
                self.reward_scaler.stats = np.array(scaler["stats"])  # type: ignore[union-attr]
            return False
        envstate.restore(self.env, state["env"])
        for name in self.STATE:
            if name in state:  # 'reset_next' is new: a checkpoint of an earlier version has the fresh value
                setattr(self, name, self.layout.cast(state[name]) if name == "obs" else np.array(state[name]))
        if self.mask is not None and state.get("mask") is not None:
            self.mask = np.array(state["mask"], dtype=bool)
        if self.state is not None and state.get("memory") is not None:
            self.state = torch.from_numpy(np.array(state["memory"], dtype=np.float32))
        if scaler is not None:
            self.reward_scaler.set_state(scaler)  # type: ignore[union-attr]
        return True

    def pop_episodes(self) -> tuple[list[float], list[int]]:
        returns, lengths = self.finished_returns, self.finished_lengths
        self.finished_returns, self.finished_lengths = [], []
        return returns, lengths

    def pop_agent_returns(self) -> dict[str, float]:
        """Many agents: each one's mean return over the episodes finished since the last call (`return_<agent>`)."""
        if not self.finished_agent_returns:
            return {}
        means = np.mean(self.finished_agent_returns, axis=0)
        self.finished_agent_returns = []
        return {f"return_{name}": float(mean) for name, mean in zip(self.agent_names, means, strict=True)}
