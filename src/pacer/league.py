"""Self-play's league: whom the learner plays, rollout by rollout, and how it fares.

For each rollout a worker's `League` sets the opponent of its games (pacer/selfplay.py): with probability 1/2 the
learner's current policy (self-play proper), else one of its past snapshots, a pool of up to `POOL` taken every
`SNAPSHOT_EVERY` rollouts (the first is the untrained policy). Each finished game against a snapshot moves the
learner's Elo rating (snapshots keep the rating they had when taken): a rating that keeps rising says the learner
keeps beating its past selves. Metrics get `win_rate` (games won, of those finished, against any opponent) and
`rating`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from pacer.heads import ActionHead, act, masked
from pacer.selfplay import Opponent, SelfPlayVectorEnv
from pacer.spaces import tree_map

POOL = 8
SNAPSHOT_EVERY = 10
ELO_K = 16.0


def policy_opponent(model: nn.Module, head: ActionHead, cast: Callable[[Any], Any]) -> Opponent:
    """An opponent that samples its moves from `model`'s policy (legal ones only): a greedy one would play the
    same game every time it meets the same position."""

    @torch.no_grad()
    def move(obs: Any, legal: NDArray[np.bool_]) -> NDArray[Any]:
        pi, _ = model(tree_map(torch.as_tensor, cast(obs)))
        return act(head, model, masked(pi, torch.from_numpy(legal)), greedy=False)

    return move


class League:
    """Whom the learner plays, rollout by rollout, and how it fares (module docstring)."""

    def __init__(self, model: nn.Module, head: ActionHead, cast: Callable[[Any], Any], env: SelfPlayVectorEnv,
                 seed: int) -> None:
        self.model, self.head, self.cast, self.env = model, head, cast, env
        self.opponent_model = copy.deepcopy(model)
        self.opponent_model.requires_grad_(False)
        self.pool: list[tuple[list[torch.Tensor], float]] = []  # snapshots: parameters, rating when taken
        self.rating = 1000.0
        self.rollouts = 0
        self.rng = np.random.default_rng(seed + 7)
        self.facing: int | None = None  # the pool index played this rollout; None: the current policy or random
        self.move = policy_opponent(self.opponent_model, head, cast)

    def choose(self) -> None:
        """Set this rollout's opponent."""
        self.env.results.clear()
        if self.rollouts % SNAPSHOT_EVERY == 0:
            self.pool.append(([p.detach().clone() for p in self.model.parameters()], self.rating))
            del self.pool[:-POOL]
        self.rollouts += 1
        if self.rng.random() < 0.5:
            self.facing, source = None, [p.detach() for p in self.model.parameters()]
        else:
            self.facing = int(self.rng.integers(len(self.pool)))
            source = self.pool[self.facing][0]
        with torch.no_grad():
            for mine, theirs in zip(self.opponent_model.parameters(), source, strict=True):
                mine.copy_(theirs)
        self.env.opponent = self.move


    def results(self) -> dict[str, float]:
        """This rollout's finished games: the win rate, and the rating after those against a snapshot."""
        games = self.env.results
        if not games:
            return {"rating": self.rating}
        if self.facing is not None:
            theirs = self.pool[self.facing][1]
            for outcome in games:
                expected = 1.0 / (1.0 + math.pow(10.0, (theirs - self.rating) / 400.0))
                self.rating += ELO_K * ((outcome + 1.0) / 2.0 - expected)  # win 1, draw 0.5, loss 0
        return {"win_rate": float(np.mean(np.asarray(games) > 0)), "rating": self.rating}
