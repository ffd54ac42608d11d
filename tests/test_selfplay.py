"""Self-play (pacer/selfplay.py): a two-player turn-based game as the learner's env, its opponent's replies, the
league's snapshots and rating, evaluation against a random player and against another agent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pacer
from agent_envs import Race
from pacer.errors import PacerError
from pacer.selfplay import SelfPlayVectorEnv


def test_the_learner_sees_its_own_turns_and_the_outcome_of_each_game() -> None:
    env = SelfPlayVectorEnv(Race, 6, "race", seed=1)
    replies: list[int] = []

    def add_one(obs: dict, legal: np.ndarray) -> np.ndarray:  # the opponent, batched over the games it moves in
        replies.append(len(legal))
        return np.zeros(len(legal), dtype=np.int64)

    def learner(obs: dict) -> np.ndarray:  # adds 2 where it may
        return obs["action_mask"][:, 1].astype(np.int64)

    env.opponent = add_one
    obs, _ = env.reset(seed=1)
    seats = env.seat.copy()
    assert 0 < seats.sum() < 6  # both seats are played
    assert obs["observation"].argmax(axis=1).tolist() == seats.tolist()  # as second, after the opponent's 1
    # first: 0 -2-> 2 -1-> 3 -2-> 5; second: 1 -2-> 3 -1-> 4 -1-> 5 (at 4 the mask allows 1 only): won at move two
    obs, reward, terminated, _, _ = env.step(learner(obs))
    assert reward.tolist() == [0.0] * 6 and not terminated.any()
    assert obs["observation"].argmax(axis=1).tolist() == (3 + seats).tolist()
    obs, reward, terminated, _, _ = env.step(learner(obs))
    assert reward.tolist() == [1.0] * 6 and terminated.all() and env.results == [1.0] * 6
    before = replies.copy()
    obs, reward, terminated, _, _ = env.step(learner(obs))  # the next step starts new games (next-step autoreset)
    assert reward.tolist() == [0.0] * 6 and not terminated.any()
    assert obs["observation"].argmax(axis=1).tolist() == env.seat.tolist()
    # one batched call per round of replies: the opening moves, the replies to move one (move two wins), and the
    # new games' opening moves
    assert before == [int(seats.sum()), 6] and replies == [*before, int(env.seat.sum())]


def test_masks_bind_the_learner_and_a_random_opponent() -> None:
    env = SelfPlayVectorEnv(Race, 16, "race", seed=0)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    games = 0
    while games < 100:  # the game raises on an illegal move
        legal = obs["action_mask"].astype(bool)  # none at a game's final position: that move is not played
        moves = np.array([rng.choice(np.flatnonzero(row)) if row.any() else 0 for row in legal])
        obs, _, terminated, _, _ = env.step(moves)
        games += int(terminated.sum())
    assert 0.35 <= np.mean(np.asarray(env.results) > 0) <= 0.65  # random against random
    assert set(env.results) <= {-1.0, 1.0}


@pytest.fixture
def race(quiet: dict) -> dict:
    quiet["env"].update(id="agent_envs:race", envs_per_worker=16, self_play=True)
    quiet["algo"].update(n_steps=8, epochs=4, minibatches=2, lr=3e-3)
    quiet["runtime"].update(total_steps=12_000, final_eval_episodes=200)
    return quiet


def test_self_play_learns_to_beat_a_random_player(race: dict) -> None:
    result = pacer.train(race, preset="none")
    assert result.eval_mean is not None
    won = pacer.evaluate(result.run_dir, episodes=400, workers=1)
    assert np.mean(won.returns > 0) >= 0.8  # best play wins 7 of 8; a random player half
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    rated = [r for r in records if "rating" in r and "win_rate" in r]
    assert rated and rated[-1]["rating"] > 1000.0  # it beat its past selves
    # against another agent of the game: itself, sampling its moves
    mirror = pacer.evaluate(result.run_dir, episodes=100, workers=1, opponent=result.run_dir)
    assert set(np.unique(mirror.returns)) <= {-1.0, 1.0}


def test_what_self_play_cannot_train_is_refused_in_one_line(race: dict) -> None:
    race["env"]["id"] = "agent_envs:trio"
    with pytest.raises(PacerError, match=r"^env.self_play plays two-player games; agent_envs:trio has 3 players: "
                                         r"\['a', 'b', 'c'\]$"):
        pacer.train(race, preset="none")
    race["env"]["id"] = "CartPole-v1"
    with pytest.raises(PacerError, match=r"^env.self_play needs a turn-based PettingZoo game \(an AEC env, as "
                                         r"connect_four_v3\); CartPole-v1 is not one$"):
        pacer.train(race, preset="none")
    race["env"]["id"] = "agent_envs:race"
    race["model"] = {"memory": "lstm"}
    with pytest.raises(PacerError, match=r"^env.self_play trains feedforward policies"):
        pacer.train(race, preset="none")


def test_evaluation_keeps_to_legal_moves_in_every_game_it_plays() -> None:
    """A row whose counted game is over goes on playing (the batch steps together): those games obey the masks too.
    A policy that always wants to add 2 must open with 1 there (the game raises on an illegal move)."""
    from pacer.config import EnvConfig
    from pacer.evaluation import run_episodes

    class AddTwo(torch.nn.Module):
        def forward(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
            rows = obs["observation"].shape[0]
            return torch.tensor([[0.0, 5.0]]).repeat(rows, 1), torch.zeros(rows)

    env = EnvConfig(id="agent_envs:slow_start", self_play=True, action_mask="observation")
    played = run_episodes(AddTwo(), env, 32, seed=0)
    assert len(played.returns) == 32 and set(np.unique(played.returns)) <= {-1.0, 1.0}
