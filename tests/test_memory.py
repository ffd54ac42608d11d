"""Recurrent policies (model.memory): states reset exactly where episodes start and never cross envs; learning
recomputes each sequence from its stored state; every algorithm, backend and place a policy runs keeps the state."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import pacer
from pacer.algos import get_algo
from pacer.algos.losses import Batch, outputs, prepare, sequences
from pacer.config import AlgoConfig, Config, EnvConfig, ModelConfig
from pacer.envs import make_vector_env, probe
from pacer.heads import head_for
from pacer.model import RecurrentCore, make_model
from pacer.rollout import Collector, Rollout


def test_the_state_resets_exactly_where_an_episode_starts() -> None:
    """Envs with episodes of 2, 3 and 4 steps and a model whose state counts steps since its last reset: under
    NEXT_STEP autoreset the reset step still belongs to the ended episode (its value, the final observation's, is
    the count that goes on), and the next step starts from a reset state; no env's count touches another's."""
    env = make_vector_env(EnvConfig(id="helpers:EpisodesOfKnownLength"), 3)
    model = make_model(ModelConfig(factory="helpers:CountingMemory"), env.single_observation_space,
                       env.single_action_space)
    collector = Collector(env, model, head_for(env.single_action_space), seed=0)
    first, second = (Rollout(*(None if a is None else np.copy(a) for a in collector.collect(7))) for _ in range(2))
    for n, length in enumerate((2, 3, 4)):  # env n's episodes: `length` steps, then the reset step
        period = length + 1
        t = np.arange(14)
        values = np.concatenate([first.values[:, n], second.values[:, n]])
        starts = np.concatenate([first.starts[:, n], second.starts[:, n]])  # type: ignore[index]
        np.testing.assert_array_equal(values, t % period + 1)
        np.testing.assert_array_equal(starts, t % period == 0)
        valid = np.concatenate([first.valid[:, n], second.valid[:, n]])
        np.testing.assert_array_equal(valid, t % period != length)  # the reset step is no transition
    # the state stored before each step is the count so far (zero before a start's reset takes effect: any value)
    np.testing.assert_array_equal(second.states[1:, 0, 0], second.values[:-1, 0])  # type: ignore[index]
    env.close()


def test_the_core_resets_each_env_on_its_own() -> None:
    """An LSTM over [T, B] with resets at scattered steps equals each env stepped alone, its state zeroed at its
    own starts (the core runs stretches between resets in one call: none may reset another env)."""
    torch.manual_seed(0)
    core = RecurrentCore("lstm", 3, 5)
    x = torch.randn(9, 4, 3)
    starts = torch.zeros(9, 4, dtype=torch.bool)
    starts[0] = True
    starts[3, 1] = starts[5, 2] = starts[5, 3] = starts[8, 0] = True
    state = torch.randn(4, core.state_size)
    with torch.no_grad():
        out, final = core(x, state, starts)
        for b in range(4):
            h = state[b:b + 1]
            for t in range(9):
                if starts[t, b]:
                    h = torch.zeros_like(h)
                o, h = core(x[t:t + 1, b:b + 1], h, torch.zeros(1, 1, dtype=torch.bool))
                torch.testing.assert_close(o[0, 0], out[t, b])
            torch.testing.assert_close(h[0], final[b])


def _rollout(length: int) -> tuple[Batch, torch.nn.Module, object, Rollout]:
    cfg = Config.from_dict({"env": {"envs_per_worker": 4}, "model": {"memory": "lstm", "memory_size": 8},
                            "algo": {"n_steps": 32, "sequence_length": length}})
    spec = probe(cfg.env)
    torch.manual_seed(0)
    model = make_model(cfg.model, spec.observation_space, spec.action_space)
    head = head_for(spec.action_space)
    collector = Collector(make_vector_env(cfg.env, 4), model, head, seed=1)
    collector.collect(32)  # a rollout that starts mid-episode, from a state that is not the initial one
    rollout = collector.collect(32)
    return prepare(rollout, cfg.algo, "gae"), model, head, rollout


@pytest.mark.parametrize("length", [32, 8, 4])
def test_learning_recomputes_what_was_collected_from_each_sequences_stored_state(length: int) -> None:
    """Before any update, the model run over each sequence (whole rollouts, or chunks of 8 or 4 steps from the
    states stored at their first steps) gives back the log-probabilities and values the rollout recorded."""
    batch, model, head, rollout = _rollout(length)
    assert batch.memory is not None and batch.memory.mask.shape == (length, 4 * 32 // length)
    minibatch = sequences(batch, torch.arange(batch.memory.mask.shape[1]))
    with torch.no_grad():
        pi, value = outputs(model, minibatch)
        logp, _ = head.log_prob_entropy(model, pi, minibatch.actions)  # type: ignore[attr-defined]
    assert len(logp) == int(rollout.valid.sum())
    torch.testing.assert_close(logp, minibatch.logp, rtol=0, atol=1e-5)
    torch.testing.assert_close(value, minibatch.values, rtol=0, atol=1e-5)


def test_chunked_bptt_equals_whole_sequences_when_episodes_start_at_the_cuts() -> None:
    """Truncated backpropagation cuts the gradient at a chunk's first step; where every chunk begins an episode
    (the state is reset there anyway), the whole-sequence gradient is the chunked one."""
    torch.manual_seed(0)
    steps, envs, length = 12, 3, 4
    model = make_model(ModelConfig(memory="gru", memory_size=6), gym.spaces.Box(-1, 1, (2,), np.float32),
                       gym.spaces.Discrete(3))
    rng = np.random.default_rng(0)
    starts = np.zeros((steps, envs), bool)
    starts[::length] = True
    rollout = Rollout(obs=rng.normal(size=(steps, envs, 2)).astype(np.float32),
                      actions=rng.integers(0, 3, (steps, envs)), logp=np.zeros((steps, envs), np.float32),
                      values=rng.normal(size=(steps, envs)).astype(np.float32),
                      rewards=rng.normal(size=(steps, envs)).astype(np.float32),
                      terminated=np.zeros((steps, envs), bool), truncated=np.zeros((steps, envs), bool),
                      valid=np.ones((steps, envs), bool), last_values=np.zeros(envs, np.float32),
                      states=rng.normal(size=(steps, envs, model.state_size)).astype(np.float32), starts=starts)
    grads = []
    for cut in (steps, length):
        cfg = AlgoConfig(name="a2c", n_steps=steps, sequence_length=cut)
        batch = prepare(rollout, cfg, "gae")
        minibatch = sequences(batch, torch.arange(batch.memory.mask.shape[1]))  # type: ignore[union-attr]
        model.zero_grad()
        get_algo("a2c").loss(model, head_for(gym.spaces.Discrete(3)), minibatch, cfg).total(cfg).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algo", ["ppo", "a2c", "a3c", "mc"])
def test_every_algorithm_trains_a_recurrent_policy(algo: str, quiet: dict) -> None:
    quiet["env"]["id"] = "CartPoleNoVel-v1"
    quiet["model"] = {"memory": "gru", "memory_size": 16}
    quiet["algo"]["name"] = algo
    quiet["runtime"]["total_steps"] = 800
    result = pacer.train(quiet, preset="none")
    assert result.env_steps >= 800 and result.eval_mean is not None
    agent = pacer.load(result.run_dir)
    assert agent.recurrent
    player = agent.player()
    env = gym.make("CartPoleNoVel-v1")
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(player.act(obs))
    assert player.state is not None and player.state.shape == (agent.model.state_size,)


def test_a_recurrent_run_on_worker_processes_resumes_and_evaluates(quiet: dict, tmp_path: Path) -> None:
    """Local processes (the state crosses no process boundary: each worker keeps its own), a checkpoint with the
    workers' states, a parallel evaluation."""
    quiet["env"]["id"] = "CartPoleNoVel-v1"
    quiet["model"] = {"memory": "lstm", "memory_size": 16}
    quiet["runtime"].update(backend="local", workers=2, total_steps=1200)
    result = pacer.train(quiet, preset="none")
    saved = pacer.checkpoint.load(result.checkpoint)
    # 4 envs; the actor's and the critic's LSTM of 16 (memory_shared false), h and c each
    assert saved["workers"][0]["collector"]["memory"].shape == (4, 64)
    again = pacer.train(resume=result.run_dir, runtime__total_steps=2000)
    assert again.env_steps >= 2000
    assert len(pacer.evaluate(result.run_dir, episodes=4, workers=2).returns) == 4


def test_onnx_with_state_plays_whole_episodes_as_pacer_does(quiet: dict, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from pacer.export import export, run_file

    quiet["env"]["id"] = "CartPoleNoVel-v1"
    quiet["model"] = {"memory": "lstm", "memory_size": 16, "normalize_input": "running"}
    quiet["runtime"]["total_steps"] = 3000
    agent = pacer.load(pacer.train(quiet, preset="none").run_dir)
    done = export(agent, tmp_path / "policy.onnx", check=200)
    assert done.verdict is not None and done.verdict.startswith("checked")
    env = gym.make("CartPoleNoVel-v1")
    steps = 0
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        player, state, start, over = agent.player(), np.zeros((1, agent.model.state_size), np.float32), True, False
        while not over:
            action, _, _, state = run_file(done.path, "onnx", obs[None], state, np.array([start]))
            assert int(action[0]) == int(player.act(obs))  # the same action, step after step
            obs, _, terminated, truncated, _ = env.step(int(action[0]))
            start, over, steps = False, terminated or truncated, steps + 1
    assert steps > 3 * 5


def test_a_recurrent_checkpoint_resumes_bit_exactly(quiet: dict, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from test_resume import resumed_and_whole

    quiet["env"]["id"] = "CartPoleNoVel-v1"
    quiet["model"] = {"memory": "lstm", "memory_size": 8}
    quiet["algo"].update(epochs=2, minibatches=2)
    quiet["runtime"].update(total_steps=2000, final_eval_episodes=0)
    resumed, reference = resumed_and_whole(quiet, tmp_path, monkeypatch)
    assert resumed["counters"] == reference["counters"]
    for name, value in reference["model"].items():
        assert torch.equal(resumed["model"][name], value), name


def test_a_recurrent_agent_is_filmed_with_its_state(quiet: dict, tmp_path: Path) -> None:
    """The video's episode is the one the player plays: a frame per step, the episode's own return."""
    pytest.importorskip("imageio_ffmpeg")
    from pacer.video import record

    quiet["env"]["id"] = "CartPoleNoVel-v1"
    quiet["model"] = {"memory": "gru", "memory_size": 8}
    quiet["runtime"]["total_steps"] = 400
    agent = pacer.load(pacer.train(quiet, preset="none").run_dir)
    [video] = record(agent, tmp_path / "videos", 1, seed=3)
    env = gym.make("CartPoleNoVel-v1")
    obs, _ = env.reset(seed=3)
    player, total, steps, over = agent.player(), 0.0, 0, False
    while not over:
        obs, reward, terminated, truncated, _ = env.step(player.act(obs))
        total, steps, over = total + float(reward), steps + 1, terminated or truncated
    assert (video.frames, video.episode_return) == (steps, total)
