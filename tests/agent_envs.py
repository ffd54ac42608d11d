"""Tiny PettingZoo-style envs for the many-agent tests, duck-typed so that they need no pettingzoo install."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

CUE = gym.spaces.Box(0.0, 1.0, (3,), np.float32)


class Relay:
    """A ParallelEnv of three agents, each seeing a cue of its own (one-hot of 0-2) and scoring 0.5 for naming it
    (the first action) and 0.5 for naming its own index (the second): a shared policy can score every step only if
    each row gets its own agent's observation and knows which agent it acts for (`env.agent_id`). Agent 'c' appears
    after the first step, 'b' dies after its second and the episode ends after step 5: the best team return is
    5 + 2 + 4 = 11, a guess scores a third of that, and a policy that knows no agent ids at most 7.3."""

    metadata: ClassVar[dict[str, Any]] = {"name": "relay_v0", "render_modes": ["rgb_array"], "is_parallelizable": True}
    possible_agents: ClassVar[list[str]] = ["a", "b", "c"]

    def __init__(self, render_mode: str | None = None, length: int = 5) -> None:
        self.render_mode = render_mode
        self.length = length
        self.rng = np.random.default_rng()
        self.agents: list[str] = []
        self.t = 0
        self.cues = np.zeros(3, dtype=np.int64)

    def observation_space(self, agent: str) -> gym.spaces.Box:
        return CUE

    def action_space(self, agent: str) -> gym.spaces.MultiDiscrete:
        return gym.spaces.MultiDiscrete([3, 3])

    def _obs(self, agent: str) -> np.ndarray:
        return np.eye(3, dtype=np.float32)[self.cues[self.possible_agents.index(agent)]]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        self.agents = ["a", "b"]
        self.cues = self.rng.integers(3, size=3)
        return {agent: self._obs(agent) for agent in self.agents}, {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        assert set(actions) == set(self.agents), f"actions for {sorted(actions)}, agents {self.agents}"
        rewards = {agent: 0.5 * float(actions[agent][0] == self.cues[i]) + 0.5 * float(actions[agent][1] == i)
                   for agent in self.agents for i in [self.possible_agents.index(agent)]}
        self.t += 1
        self.cues = self.rng.integers(3, size=3)
        terminated = {agent: self.t >= self.length or (agent == "b" and self.t == 2) for agent in self.agents}
        truncated = {agent: False for agent in self.agents}
        if self.t == 1:  # 'c' appears: its first observation comes with this step
            self.agents = [*self.agents, "c"]
            rewards["c"], terminated["c"], truncated["c"] = 0.0, False, False
        obs = {agent: self._obs(agent) for agent in self.agents}
        infos: dict[str, Any] = {agent: {} for agent in self.agents}
        self.agents = [agent for agent in self.agents if not terminated[agent]]
        return obs, rewards, terminated, truncated, infos

    def render(self) -> np.ndarray:
        frame = np.zeros((24, 24, 3), np.uint8)
        frame[:, :, self.cues[0]] = 255
        return frame

    def close(self) -> None:
        pass


class Unequal(Relay):
    """Agents that observe different spaces: one shared policy cannot read both."""

    def observation_space(self, agent: str) -> gym.spaces.Box:
        return CUE if agent == "a" else gym.spaces.Box(0.0, 1.0, (4,), np.float32)


class TurnBased(Relay):
    """An AEC game that cannot run in parallel (as a board game)."""

    metadata: ClassVar[dict[str, Any]] = {"name": "turns_v0", "is_parallelizable": False}
    agent_selection = "a"


def relay(render_mode: str | None = None) -> Relay:
    return Relay(render_mode)


def unequal() -> Unequal:
    return Unequal()


def turn_based() -> TurnBased:
    return TurnBased()


class Race:
    """A two-player turn-based game (PettingZoo's AEC API, duck-typed): from 0, players in turn add 1 or 2 to a
    count; whoever makes it exactly 5 wins (+1, the other -1). At 4 only 1 may be added: the mask says so, and an
    illegal move raises. The first player wins with best play (to 2, then to 5); a random player wins half its
    games against another, and best play wins 7 of 8 against it (all as first, 3 of 4 as second)."""

    metadata: ClassVar[dict[str, Any]] = {"name": "race_v0", "render_modes": ["rgb_array"],
                                          "is_parallelizable": False}
    possible_agents: ClassVar[list[str]] = ["first", "second"]
    GOAL = 5

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.count = 0
        self.agents: list[str] = []
        self.agent_selection = "first"
        self.rewards: dict[str, float] = {}
        self.terminations: dict[str, bool] = {}
        self.truncations: dict[str, bool] = {}
        self.infos: dict[str, dict] = {}

    def observation_space(self, agent: str) -> gym.spaces.Dict:
        return gym.spaces.Dict({"observation": gym.spaces.Box(0.0, 1.0, (self.GOAL + 1,), np.float32),
                                "action_mask": gym.spaces.Box(0, 1, (2,), np.int8)})

    def action_space(self, agent: str) -> gym.spaces.Discrete:
        return gym.spaces.Discrete(2)  # add 1, add 2

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        legal = np.array([self.count + 1 <= self.GOAL, self.count + 2 <= self.GOAL], np.int8)
        return {"observation": np.eye(self.GOAL + 1, dtype=np.float32)[self.count], "action_mask": legal}

    def agent_iter(self) -> Any:
        while self.agents:
            yield self.agent_selection

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.count = 0
        self.agents = list(self.possible_agents)
        self.agent_selection = "first"
        self.rewards = {agent: 0.0 for agent in self.agents}
        self.terminations = {agent: False for agent in self.agents}
        self.truncations = {agent: False for agent in self.agents}
        self.infos = {agent: {} for agent in self.agents}

    def step(self, action: int) -> None:
        me = self.agent_selection
        other = self.possible_agents[1 - self.possible_agents.index(me)]
        assert not self.terminations[me], "a finished game was stepped"
        assert self.observe(me)["action_mask"][action], f"illegal move {action} at {self.count}"
        self.count += int(action) + 1
        self.rewards = {me: 0.0, other: 0.0}
        if self.count == self.GOAL:
            self.rewards = {me: 1.0, other: -1.0}
            self.terminations = {me: True, other: True}
        self.agent_selection = other

    def render(self) -> np.ndarray:
        frame = np.zeros((8, 8 * (self.GOAL + 1), 3), np.uint8)
        frame[:, : 8 * self.count] = 255
        return frame

    def close(self) -> None:
        pass


class Trio(Race):
    possible_agents: ClassVar[list[str]] = ["a", "b", "c"]


def race(render_mode: str | None = None) -> Race:
    return Race(render_mode)


def trio() -> Trio:
    return Trio()


class SlowStart(Race):
    """Race whose opening move may only add 1, to 5 or (every other game) to 25: games of very different lengths."""

    GOAL = 25

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        super().reset(seed, options)
        if seed is not None:
            self.games = seed  # copies seeded seed, seed + 1, ...: their first games alternate too
        self.games = getattr(self, "games", 0) + 1
        self.goal = 5 if self.games % 2 else 25

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        obs = super().observe(agent)
        obs["action_mask"] = np.array([self.count + 1 <= self.goal, self.count > 0 and self.count + 2 <= self.goal],
                                      np.int8)
        return obs

    def step(self, action: int) -> None:
        super().step(action)
        if self.count == self.goal:
            me = self.possible_agents[1 - self.possible_agents.index(self.agent_selection)]
            self.rewards = {me: 1.0, self.agent_selection: -1.0}
            self.terminations = {agent: True for agent in self.possible_agents}


def slow_start() -> SlowStart:
    return SlowStart()
