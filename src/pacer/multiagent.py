"""Many agents: a PettingZoo env as a vector env whose rows are its agents.

A worker steps `env.envs_per_worker` copies of a PettingZoo ParallelEnv, and each agent of each copy is one row of
its batch (row = copy * agents + the agent's index in `possible_agents`), so one policy, its parameters shared by
every agent, acts for all of them in one forward pass and learns from all their transitions, as any other rows.
An AEC env that PettingZoo can run in parallel is converted (`aec_to_parallel`); a turn-based game is refused in one
line (a policy plays both sides of it by self-play: pacer/selfplay.py).

Agents may die or appear mid-episode. A row whose agent is not acting (dead, not there yet) holds its last
observation (zeros before its first), gets reward 0 and is not `live` (info['agent_live']): the collector does not
count its steps as transitions. A copy's episode is over when it has no agent left (or at `env.max_episode_steps`,
which truncates every agent still there); at the next step it is reset (Gymnasium's NEXT_STEP autoreset, as pacer's
single-agent envs), and info['episode_over'] marks all its rows in the step that ended it: its team return, the sum
of its agents' returns, is the episode's return in metrics and evaluation, with each agent's beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array
from numpy.typing import NDArray

from pacer.errors import PacerError

AGENT_ID = "agent_id"
"""The key of the agent's index in observations, with `env.agent_id`."""


def is_pettingzoo(env: Any) -> bool:
    """A PettingZoo env, parallel or AEC (duck-typed: pettingzoo is an optional extra)."""
    return hasattr(env, "possible_agents") and not isinstance(env, gym.Env)


def is_aec(env: Any) -> bool:
    """A PettingZoo AEC env: it has `agent_iter` (its `agent_selection` exists only once it is reset)."""
    return is_pettingzoo(env) and (hasattr(env, "agent_iter") or hasattr(env, "agent_selection"))


def as_parallel(env: Any, name: str) -> Any:
    """A ParallelEnv of a PettingZoo env: itself, or an AEC env converted where PettingZoo can."""
    if is_aec(env):
        if not env.metadata.get("is_parallelizable", False):
            raise PacerError(f"{name} is a turn-based PettingZoo game (an AEC env that cannot run in parallel): train "
                             "it by self-play, env.self_play: true (docs/multi-agent.md)")
        from pettingzoo.utils.conversions import aec_to_parallel

        return aec_to_parallel(env)
    return env


def with_agent_id(space: gym.Space[Any], agents: int) -> gym.spaces.Dict:
    """The observation space with the agent's index beside it (one-hot in the model)."""
    if isinstance(space, gym.spaces.Dict):
        return gym.spaces.Dict({**space.spaces, AGENT_ID: gym.spaces.Discrete(agents)})
    return gym.spaces.Dict({"observation": space, AGENT_ID: gym.spaces.Discrete(agents)})


def add_agent_id(obs: Any, index: int) -> Any:
    """One agent's observation with its index beside it (`with_agent_id`'s space)."""
    return {**obs, AGENT_ID: index} if isinstance(obs, dict) else {"observation": obs, AGENT_ID: index}


def _zeros(space: gym.Space[Any]) -> Any:
    """A zero observation of `space` (what a row holds before its agent's first)."""
    if isinstance(space, gym.spaces.Dict):
        return {key: _zeros(sub) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_zeros(sub) for sub in space.spaces)
    if isinstance(space, gym.spaces.Discrete):
        return int(space.start)
    return np.zeros(space.shape, space.dtype)


class AgentsVectorEnv(VectorEnv):
    """`copies` copies of a PettingZoo ParallelEnv, one row per (copy, agent)."""

    def __init__(self, make: Callable[[], Any], copies: int, name: str, agent_id: bool = False,
                 max_episode_steps: int | None = None) -> None:
        self.copies = [as_parallel(make(), name) for _ in range(copies)]
        first = self.copies[0]
        self.possible_agents: tuple[str, ...] = tuple(first.possible_agents)
        agents = len(self.possible_agents)
        obs_spaces = [first.observation_space(a) for a in self.possible_agents]
        act_spaces = [first.action_space(a) for a in self.possible_agents]
        for agent, obs_space, act_space in zip(self.possible_agents, obs_spaces, act_spaces, strict=True):
            if obs_space != obs_spaces[0] or act_space != act_spaces[0]:
                raise PacerError(f"the agents of {name} differ: {self.possible_agents[0]} observes {obs_spaces[0]} and "
                                 f"acts in {act_spaces[0]}, {agent} observes {obs_space} and acts in {act_space}; "
                                 "pacer's agents share one policy: pad them to one space (SuperSuit's "
                                 "pad_observations_v0, pad_action_space_v0) in an env factory")
        self.base_space = obs_spaces[0]
        self.agent_id = agent_id
        self.num_envs = copies * agents
        self.single_observation_space = with_agent_id(self.base_space, agents) if agent_id else self.base_space
        self.single_action_space = act_spaces[0]
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        meta = getattr(first, "metadata", {})
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": list(meta.get("render_modes", [])),
                         "render_fps": meta.get("render_fps")}
        self.render_mode = getattr(first, "render_mode", None)
        self.spec = None
        self.max_episode_steps = max_episode_steps
        self.name = name
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self._last: list[Any] = [_zeros(self.base_space)] * self.num_envs
        self._needs_reset = np.zeros(copies, dtype=bool)
        self._steps = np.zeros(copies, dtype=np.int64)
        self._obs: Any = create_empty_array(self.single_observation_space, self.num_envs)
        self._live = np.zeros(self.num_envs, dtype=bool)

    @property
    def agents_per_copy(self) -> int:
        return len(self.possible_agents)

    def _row_obs(self, row: int, obs: Any) -> Any:
        return add_agent_id(obs, row % self.agents_per_copy) if self.agent_id else obs

    def _pad(self, row: int) -> Any:
        """A row whose agent is not acting: its last observation, every action legal (no mask check trips on it)."""
        obs = self._last[row]
        if isinstance(obs, dict) and "action_mask" in obs:
            obs = {**obs, "action_mask": np.ones_like(obs["action_mask"])}
        return obs

    def _reset_copy(self, c: int, seed: int | None) -> dict[str, Any]:
        obs, infos = self.copies[c].reset(seed=seed)
        self._steps[c] = 0
        self._needs_reset[c] = False
        live = set(self.copies[c].agents)
        for agent, i in self._index.items():
            row = c * self.agents_per_copy + i
            self._last[row] = obs[agent] if agent in obs else _zeros(self.base_space)
            self._live[row] = agent in live
        return infos

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        infos = []
        for c in range(len(self.copies)):
            copy_seed = seed[c] if isinstance(seed, list) else None if seed is None else seed + c
            infos.append(self._reset_copy(c, copy_seed))
        return self._batch(), self._info(infos, np.zeros(self.num_envs, dtype=bool))

    def step(self, actions: Any) -> tuple[Any, NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_],
                                          dict[str, Any]]:
        n, per = self.num_envs, self.agents_per_copy
        rewards = np.zeros(n)
        terminated, truncated = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        over = np.zeros(n, dtype=bool)
        infos: list[dict[str, Any]] = []
        for c, env in enumerate(self.copies):
            if self._needs_reset[c]:  # the episode ended at the last step: this step resets it (NEXT_STEP)
                infos.append(self._reset_copy(c, None))
                continue
            base = c * per
            acting = [agent for agent in env.agents if self._live[base + self._index[agent]]]
            obs, rew, term, trunc, info = env.step({agent: _action(actions[base + self._index[agent]])
                                                    for agent in acting})
            self._steps[c] += 1
            limit = self.max_episode_steps is not None and self._steps[c] >= self.max_episode_steps
            still = set(env.agents)
            for agent, i in self._index.items():
                row = base + i
                if agent in obs:
                    self._last[row] = obs[agent]
                if agent in acting:
                    rewards[row] = float(rew.get(agent, 0.0))
                    terminated[row] = bool(term.get(agent, False))
                    truncated[row] = bool(trunc.get(agent, False)) or (limit and not terminated[row])
                self._live[row] = agent in still and not (terminated[row] or truncated[row] or limit)
            if not self._live[base:base + per].any():  # no agent left to act: the copy's episode is over
                self._needs_reset[c] = True
                over[base:base + per] = True
            infos.append(info)
        return self._batch(), rewards, terminated, truncated, self._info(infos, over)

    def _batch(self) -> Any:
        rows = [self._row_obs(row, self._last[row] if self._live[row] else self._pad(row))
                for row in range(self.num_envs)]
        return concatenate(self.single_observation_space, rows, self._obs)

    def _info(self, infos: list[dict[str, Any]], over: NDArray[np.bool_]) -> dict[str, Any]:
        """What the collector reads: which rows act next, which copies' episodes just ended, and action masks
        the env gives in its agents' infos."""
        out: dict[str, Any] = {"agent_live": self._live.copy(), "episode_over": over}
        masks = [(c * self.agents_per_copy + self._index[agent], agent_info["action_mask"])
                 for c, info in enumerate(infos) for agent, agent_info in info.items()
                 if isinstance(agent_info, dict) and "action_mask" in agent_info and agent in self._index]
        if masks:
            width = np.asarray(masks[0][1]).size
            out["action_mask"] = np.ones((self.num_envs, width), dtype=bool)
            out["_action_mask"] = np.zeros(self.num_envs, dtype=bool)
            for row, mask in masks:
                out["action_mask"][row] = np.asarray(mask, dtype=bool).reshape(width)
                out["_action_mask"][row] = True
        return out

    def render(self) -> Any:
        return self.copies[0].render()

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.copies:
            env.close()


def _action(action: Any) -> Any:
    """One agent's action as PettingZoo envs expect it: a Python int for a Discrete one."""
    return int(action) if np.ndim(action) == 0 and np.issubdtype(np.asarray(action).dtype, np.integer) else action
