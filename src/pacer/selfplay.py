"""Self-play: a two-player turn-based PettingZoo game (AEC) as a single-agent vector env.

`SelfPlayVectorEnv` steps copies of the game. In each, the learner holds one seat (drawn at every new game) and an
opponent the other: a step is the learner's move, then the opponent's replies until it is the learner's turn again
or the game is over, all copies' opponent moves batched in one call. The learner sees the game as any other env:
its observation at its turn (PettingZoo's classic games put the legal moves in it: `action_mask`), the reward its
moves earned (+1 a win, -1 a loss, 0 a draw in the classic games), and Gymnasium's next-step autoreset. Without an
opponent set (evaluation, `pacer eval`), the opponent is a player that moves at random among legal moves: the fixed
reference a win rate is measured against. Whom the learner plays in training: pacer/league.py.
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

Opponent = Callable[[Any, NDArray[np.bool_]], NDArray[Any]]
"""Moves for a batch of observations (as the env batches them) and their legal-move masks [n, actions]."""


def check_game(env: Any, name: str) -> None:
    """Refuse, in one line, what self-play cannot train: not a turn-based two-player PettingZoo game."""
    if not (hasattr(env, "possible_agents") and (hasattr(env, "agent_iter") or hasattr(env, "agent_selection"))):
        raise PacerError(f"env.self_play needs a turn-based PettingZoo game (an AEC env, as connect_four_v3); {name} "
                         "is not one")
    if len(env.possible_agents) != 2:
        raise PacerError(f"env.self_play plays two-player games; {name} has {len(env.possible_agents)} players: "
                         f"{list(env.possible_agents)}")
    first, second = env.possible_agents
    if env.observation_space(first) != env.observation_space(second) or \
            env.action_space(first) != env.action_space(second):
        raise PacerError(f"env.self_play: the players of {name} observe or act in different spaces; one policy "
                         "plays both seats")


class SelfPlayVectorEnv(VectorEnv):
    """`copies` games, the learner in one seat of each, an opponent (a callable, or random) in the other."""

    def __init__(self, make: Callable[[], Any], copies: int, name: str, seed: int = 0) -> None:
        self.games = [make() for _ in range(copies)]
        first = self.games[0]
        check_game(first, name)
        self.players: tuple[str, str] = tuple(first.possible_agents)
        self.num_envs = copies
        self.single_observation_space = first.observation_space(self.players[0])
        self.single_action_space = first.action_space(self.players[0])
        if not isinstance(self.single_action_space, gym.spaces.Discrete):
            raise PacerError(f"env.self_play plays games of Discrete moves; {name} acts in {self.single_action_space}")
        self.observation_space = batch_space(self.single_observation_space, copies)
        self.action_space = batch_space(self.single_action_space, copies)
        meta = getattr(first, "metadata", {})
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": list(meta.get("render_modes", [])),
                         "render_fps": meta.get("render_fps")}
        self.render_mode = getattr(first, "render_mode", None)
        self.spec = None
        self.opponent: Opponent | None = None
        self.rng = np.random.default_rng(seed)
        self.seat = np.zeros(copies, dtype=np.int64)  # the learner's: 0 moves first
        self._needs_reset = np.zeros(copies, dtype=bool)
        self._obs: Any = create_empty_array(self.single_observation_space, copies)
        self.results: list[float] = []  # finished games' returns for the learner, in order (League reads them)

    def _learner(self, c: int) -> str:
        return self.players[int(self.seat[c])]

    def _reward(self, c: int) -> float:
        return float(self.games[c].rewards.get(self._learner(c), 0.0))

    def _over(self, c: int) -> tuple[bool, bool]:
        game, me = self.games[c], self._learner(c)
        if not game.agents:
            return True, False
        return bool(game.terminations.get(me, False)), bool(game.truncations.get(me, False))

    def _legal(self, c: int, agent: str) -> NDArray[np.bool_]:
        game = self.games[c]
        obs = game.observe(agent)
        mask = obs.get("action_mask") if isinstance(obs, dict) else None
        if mask is None:
            mask = game.infos.get(agent, {}).get("action_mask")
        size = int(self.single_action_space.n)  # type: ignore[attr-defined]
        return np.ones(size, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)

    def _reply(self, copies: list[int], earned: NDArray[np.float64]) -> None:
        """The opponents move in `copies` until it is each learner's turn again or its game is over."""
        while True:
            waiting = [c for c in copies if not any(self._over(c)) and
                       self.games[c].agent_selection != self._learner(c)]
            if not waiting:
                return
            opponents = [self.games[c].agent_selection for c in waiting]
            legal = np.stack([self._legal(c, a) for c, a in zip(waiting, opponents, strict=True)])
            if self.opponent is None:  # a uniformly random legal move
                moves = np.array([self.rng.choice(np.flatnonzero(row)) for row in legal])
            else:
                seen = [self.games[c].observe(a) for c, a in zip(waiting, opponents, strict=True)]
                empty: Any = create_empty_array(self.single_observation_space, len(seen))
                moves = self.opponent(concatenate(self.single_observation_space, seen, empty), legal)
            for c, move in zip(waiting, moves, strict=True):
                self.games[c].step(int(move))
                earned[c] += self._reward(c)

    def _reset_copy(self, c: int, seed: int | None) -> None:
        """A new game, the learner's seat drawn; the opponent's opening move comes with the round of replies."""
        self.games[c].reset(seed=seed)
        self.seat[c] = self.rng.integers(2)
        self._needs_reset[c] = False

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        if isinstance(seed, int):
            self.rng = np.random.default_rng(seed)
        for c in range(self.num_envs):
            self._reset_copy(c, seed[c] if isinstance(seed, list) else None if seed is None else seed + c)
        self._reply(list(range(self.num_envs)), np.zeros(self.num_envs))
        return self._observe(), {}

    def step(self, actions: Any) -> tuple[Any, NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_],
                                          dict[str, Any]]:
        n = self.num_envs
        earned = np.zeros(n)
        terminated, truncated = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        moved, restarted = [], []
        for c in range(n):
            if self._needs_reset[c]:  # the game ended at the last step: this step starts the next (NEXT_STEP)
                self._reset_copy(c, None)
                restarted.append(c)
                continue
            self.games[c].step(int(np.asarray(actions[c])))
            earned[c] += self._reward(c)
            moved.append(c)
        self._reply(sorted(moved + restarted), earned)
        earned[restarted] = 0.0  # a reset step earns nothing
        for c in moved:
            terminated[c], truncated[c] = self._over(c)
            if terminated[c] or truncated[c]:
                self._needs_reset[c] = True
                self.results.append(float(earned[c]))  # the classic games pay only the final outcome
        return self._observe(), earned, terminated, truncated, {}

    def _observe(self) -> Any:
        rows = [self.games[c].observe(self._learner(c)) for c in range(self.num_envs)]
        return concatenate(self.single_observation_space, rows, self._obs)

    def render(self) -> Any:
        return self.games[0].render()

    def close_extras(self, **kwargs: Any) -> None:
        for game in self.games:
            game.close()
