"""Many agents (pacer/multiagent.py): a PettingZoo env's agents are rows of the batch, rows of agents that are not
acting are not trained on, an episode's return is its team's, and one shared policy learns for all of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import pacer
from agent_envs import Relay
from pacer.config import EnvConfig, ModelConfig
from pacer.envs import make_vector_env
from pacer.errors import PacerError
from pacer.heads import head_for
from pacer.model import make_model
from pacer.multiagent import AgentsVectorEnv
from pacer.rollout import Collector
from test_cli import pacer_cmd


def answers(obs: np.ndarray, agents: int = 3) -> np.ndarray:
    """Every row's scoring action: its cue, its agent's index."""
    return np.stack([obs.argmax(axis=1), np.arange(len(obs)) % agents], axis=1)


def test_rows_follow_agents_that_appear_and_die() -> None:
    env = AgentsVectorEnv(Relay, 2, "relay")
    obs, info = env.reset(seed=0)
    assert obs.shape == (6, 3) and env.num_envs == 6
    live_at = [info["agent_live"].tolist()]
    rewards, terminated, over = [], [], []
    for _ in range(6):
        obs, reward, term, trunc, info = env.step(answers(obs))
        live_at.append(info["agent_live"].tolist())
        rewards.append(reward.tolist())
        terminated.append(term.tolist())
        over.append(info["episode_over"].tolist())
        assert not trunc.any()

    def a(*per_agent: object) -> list[object]:  # the same for both copies: rows a, b, c of copy 0, then of copy 1
        return list(per_agent) * 2

    assert live_at == [a(True, True, False),  # 'c' is not there yet
                       a(True, True, True),   # it appears after the first step
                       a(True, False, True),  # 'b' dies at the second
                       a(True, False, True), a(True, False, True),
                       a(False, False, False),  # the episode is over: no agent left
                       a(True, True, False)]  # the reset step: a new episode, 'c' not there again
    assert rewards == [a(1.0, 1.0, 0.0), a(1.0, 1.0, 1.0)] + [a(1.0, 0.0, 1.0)] * 3 + [a(0.0, 0.0, 0.0)]
    assert terminated == [a(False, False, False), a(False, True, False), a(False, False, False),
                          a(False, False, False), a(True, False, True), a(False, False, False)]
    assert over == [[False] * 6] * 4 + [[True] * 6, [False] * 6]


def test_a_dead_agent_is_not_trained_on_and_the_team_return_adds_its_agents() -> None:
    env = make_vector_env(EnvConfig(id="agent_envs:relay"), 4)
    torch.manual_seed(0)
    model = make_model(ModelConfig(), env.single_observation_space, env.single_action_space)
    collector = Collector(env, model, head_for(env.single_action_space), seed=0)
    rollout = collector.collect(12)  # two whole episodes of 5 steps, each followed by its reset step
    valid_b = rollout.valid[:, 1::3]
    valid_c = rollout.valid[:, 2::3]
    one_episode_b = [True, True, False, False, False, False]  # acts twice, then dead until the reset step is over
    one_episode_c = [False, True, True, True, True, False]  # appears after the first step
    assert not rollout.valid[5::6].any()  # the reset steps
    assert valid_b.T.tolist() == [one_episode_b * 2] * 4
    assert valid_c.T.tolist() == [one_episode_c * 2] * 4
    assert int(rollout.valid.sum()) == 4 * 2 * 11  # agent steps: 5 + 2 + 4 an episode
    returns, lengths = collector.pop_episodes()
    agent_returns = collector.pop_agent_returns()
    assert len(returns) == 8 and lengths == [5] * 8
    per_agent = np.asarray(rollout.rewards * rollout.valid).reshape(12, 4, 3).sum(axis=(0, 1)) / 8
    assert agent_returns == pytest.approx({"return_a": per_agent[0], "return_b": per_agent[1],
                                           "return_c": per_agent[2]})
    assert sum(returns) == pytest.approx(float((rollout.rewards * rollout.valid).sum()))


def test_a_recurrent_state_starts_afresh_when_an_agent_first_acts() -> None:
    """'c' appears after a step it did not act in: its state resets at its first action, as after every death."""
    env = make_vector_env(EnvConfig(id="agent_envs:relay", agent_id=True), 2)  # a Dict observation into the core
    model = make_model(ModelConfig(memory="gru", memory_size=8), env.single_observation_space,
                       env.single_action_space)
    rollout = Collector(env, model, head_for(env.single_action_space), seed=0).collect(12)
    assert rollout.starts is not None
    starts_b, starts_c = rollout.starts[:, 1::3].T.tolist(), rollout.starts[:, 2::3].T.tolist()
    assert starts_c == [[True, True, False, False, False, False] * 2] * 2
    assert starts_b == [[True, False, False, True, True, True, True, False, False, True, True, True]] * 2


@pytest.fixture
def relay(quiet: dict) -> dict:
    quiet["env"].update(id="agent_envs:relay", envs_per_worker=8, agent_id=True)
    quiet["algo"].update(n_steps=12, epochs=4, minibatches=2, lr=3e-3)
    quiet["runtime"].update(total_steps=40_000, final_eval_episodes=20)
    return quiet


def test_one_shared_policy_learns_each_agents_part(relay: dict) -> None:
    result = pacer.train(relay, preset="none")
    assert result.eval_mean is not None and result.eval_mean >= 10.0  # of 11; a guess scores ~3.7
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if "return_c" in r][-1]
    assert 4.5 <= last["return_a"] <= 5 and 1.5 <= last["return_b"] <= 2 and 3.5 <= last["return_c"] <= 4
    agent = pacer.load(result.run_dir)
    evaluation = pacer.evaluate(agent, episodes=10, workers=1)
    assert evaluation.agent_returns is not None and list(evaluation.agent_returns) == ["a", "b", "c"]
    np.testing.assert_allclose(sum(evaluation.agent_returns.values()), evaluation.returns)
    # the PettingZoo loop a user writes: one call acts for every agent there
    env, total = Relay(), 0.0
    obs, infos = env.reset(seed=3)
    while env.agents:
        actions = agent.act_agents({name: obs[name] for name in env.agents}, infos=infos)
        obs, rewards, _, _, infos = env.step(actions)
        total += sum(rewards[name] for name in actions)
    assert total >= 10.0
    videos = pacer_cmd("eval", str(result.run_dir), "--episodes", "4", "--workers", "1", "--json", "--video",
                       str(result.run_dir / "videos"), "--video-episodes", "1")
    assert videos.returncode == 0, videos.stderr
    shown = json.loads(videos.stdout)
    assert set(shown["agents"]) == {"a", "b", "c"} and sum(shown["agents"].values()) == pytest.approx(shown["mean"])
    assert "5 frames" in videos.stderr  # one before each of the five steps of one copy of the env


def test_agents_that_differ_or_take_turns_are_refused_in_one_line(quiet: dict) -> None:
    quiet["env"]["id"] = "agent_envs:unequal"
    with pytest.raises(PacerError, match=r"^the agents of agent_envs:unequal differ: a observes Box\(0.0, 1.0, "
                                         r"\(3,\), float32\) and acts in MultiDiscrete\(\[3 3\]\), b observes "
                                         r"Box\(0.0, 1.0, \(4,\), float32\) and acts in MultiDiscrete\(\[3 3\]\); "
                                         r"pacer's agents share one policy: pad them to one space \(SuperSuit's "
                                         r"pad_observations_v0, pad_action_space_v0\) in an env factory$"):
        pacer.train(quiet, preset="none")
    quiet["env"]["id"] = "agent_envs:turn_based"
    with pytest.raises(PacerError, match=r"^agent_envs:turn_based is a turn-based PettingZoo game \(an AEC env that "
                                         r"cannot run in parallel\): train it by self-play, env.self_play: true "
                                         r"\(docs/multi-agent.md\)$"):
        pacer.train(quiet, preset="none")
    quiet["env"].update(id="agent_envs:relay", wrappers=["gymnasium.wrappers:RecordEpisodeStatistics"])
    with pytest.raises(PacerError, match=r"^env.wrappers are Gymnasium wrappers, and agent_envs:relay is a PettingZoo "
                                         r"env: wrap it in an env factory \(SuperSuit's wrappers\) instead$"):
        pacer.train(quiet, preset="none")


def test_many_agents_on_worker_processes_resume_and_evaluate(relay: dict) -> None:
    """Local processes: each steps its own copies; a checkpoint resumes; a parallel evaluation adds up teams."""
    relay["runtime"].update(backend="local", workers=2, total_steps=3000)
    result = pacer.train(relay, preset="none")
    again = pacer.train(resume=result.run_dir, runtime__total_steps=5000)
    assert again.env_steps >= 5000
    evaluation = pacer.evaluate(result.run_dir, episodes=4, workers=2)
    assert len(evaluation.returns) == 4 and evaluation.agent_returns is not None
    np.testing.assert_allclose(sum(evaluation.agent_returns.values()), evaluation.returns)


def test_a_pettingzoo_module_trains_from_the_command_line(tmp_path: Path) -> None:
    """`--env mpe2:simple_spread_v3`: the module's parallel_env (a submodule that is imported by name), three
    agents as rows, the team's return and each agent's in `pacer eval --json`."""
    pytest.importorskip("mpe2")
    run = tmp_path / "spread"
    trained = pacer_cmd("train", "--env", "mpe2:simple_spread_v3", "--run-dir", str(run), "--backend", "inline",
                        "--workers", "1", "--total-steps", "3000", "--no-progress", "--set", "env.envs_per_worker=4",
                        "--set", "runtime.final_eval_episodes=0", "--set", "log.tensorboard=false", timeout=120)
    assert trained.returncode == 0, trained.stderr
    shown = pacer_cmd("eval", str(run), "--episodes", "2", "--workers", "1", "--json", timeout=120)
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    assert list(result["agents"]) == ["agent_0", "agent_1", "agent_2"]
    assert sum(result["agents"].values()) == pytest.approx(result["mean"])


def test_a_turn_based_pettingzoo_game_points_to_self_play(quiet: dict) -> None:
    pytest.importorskip("pettingzoo.classic")
    quiet["env"]["id"] = "pettingzoo.classic:connect_four_v3"
    with pytest.raises(PacerError, match=r"^pettingzoo.classic:connect_four_v3 is a turn-based PettingZoo game"):
        pacer.train(quiet, preset="none")
