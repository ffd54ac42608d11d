"""Pixel observations: the Nature CNN chosen from the observation space, frames kept as uint8 in rollouts, env
wrappers from the config, a tiny image env (tests/image_envs.py) learned in seconds on the inline backend, and the
ONNX export taking uint8 frames."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import onnxruntime
import pytest
import torch

import pacer
from pacer.config import EnvConfig, ModelConfig
from pacer.envs import make_vector_env
from pacer.heads import head_for
from pacer.model import CNNActorCritic, MLPActorCritic, make_model
from pacer.rollout import Collector

pytestmark = pytest.mark.timeout(120)


def pixel_run(tmp_path: Path, name: str, **env: Any) -> pacer.TrainResult:
    return pacer.train({
        "env": {"id": "image_envs:make_lit_quadrant", "envs_per_worker": 16, **env},
        "algo": {"name": "ppo", "n_steps": 8, "epochs": 2, "minibatches": 4, "lr": 1e-3},
        "runtime": {"backend": "inline", "workers": 1, "total_steps": 6000, "eval_every": 0,
                    "final_eval_episodes": 100},
        "log": {"run_dir": str(tmp_path / name), "progress": False, "tensorboard": False, "checkpoint_every": 0},
    }, preset="none")


def test_the_encoder_follows_the_observation_space() -> None:
    discrete = gym.spaces.Discrete(4)
    for shape in [(84, 84, 3), (4, 84, 84), (84, 84)]:
        model = make_model(ModelConfig(), gym.spaces.Box(0, 255, shape, np.uint8), discrete)
        assert isinstance(model, CNNActorCritic)
        pi, value = model(torch.full((2, *shape), 255, dtype=torch.uint8))
        assert pi.shape == (2, 4) and value.shape == (2,)
    assert isinstance(make_model(ModelConfig(), gym.spaces.Box(-1, 1, (8,), np.float32), discrete), MLPActorCritic)
    assert isinstance(make_model(ModelConfig(encoder="mlp"), gym.spaces.Box(0, 255, (36, 36), np.uint8), discrete),
                      MLPActorCritic)
    with pytest.raises(pacer.PacerError, match=r"^model.encoder cnn needs image observations of at least 36x36 "):
        make_model(ModelConfig(encoder="cnn"), gym.spaces.Box(0, 255, (8, 8), np.uint8), discrete)


def test_channels_last_frames_see_what_channels_first_frames_see() -> None:
    torch.manual_seed(0)
    first = make_model(ModelConfig(), gym.spaces.Box(0, 255, (3, 40, 40), np.uint8), gym.spaces.Discrete(2))
    last = make_model(ModelConfig(), gym.spaces.Box(0, 255, (40, 40, 3), np.uint8), gym.spaces.Discrete(2))
    last.load_state_dict(first.state_dict())
    frames = torch.randint(0, 256, (5, 3, 40, 40), dtype=torch.uint8)
    torch.testing.assert_close(last(frames.permute(0, 2, 3, 1))[0], first(frames)[0])
    torch.testing.assert_close(first(frames)[0], first(frames.float())[0])  # scaled inside: uint8 or float in


def test_rollouts_keep_frames_as_uint8() -> None:
    env = make_vector_env(EnvConfig(id="image_envs:make_lit_quadrant"), 4)
    model = make_model(ModelConfig(), env.single_observation_space, env.single_action_space)
    rollout = Collector(env, model, head_for(env.single_action_space), seed=0).collect(8)
    assert rollout.obs.dtype == np.uint8 and rollout.obs.shape == (8, 4, 1, 36, 36)
    assert rollout.obs.nbytes == 8 * 4 * 36 * 36  # a byte a pixel: what a user expects of a rollout's memory
    env.close()


def test_a_cnn_learns_the_lit_quadrant_in_seconds(tmp_path: Path) -> None:
    result = pixel_run(tmp_path, "lit")
    assert result.eval_mean is not None and result.eval_mean >= 0.95  # a guess scores 0.25
    agent = pacer.load(result.run_dir)
    assert isinstance(agent.model, CNNActorCritic) and agent.layout.dtype == np.uint8


def test_wrappers_from_the_config_reach_training_and_evaluation(tmp_path: Path) -> None:
    """HxW frames stacked by Gymnasium's FrameStackObservation into 3xHxW: the CNN's input, in training and in
    `pacer.evaluate`'s processes alike."""
    result = pixel_run(tmp_path, "stacked", id="image_envs:make_flat_lit_quadrant",
                       wrappers=[{"FrameStackObservation": {"stack_size": 3}}])
    agent = pacer.load(result.run_dir)
    assert agent.obs_shape == (3, 36, 36)
    assert pacer.evaluate(result.run_dir, episodes=20, workers=2).mean >= 0.9


@pytest.mark.parametrize(("wrappers", "error"), [
    (["FrameStack"], "env.wrappers[0]: gymnasium.wrappers has no wrapper 'FrameStack' (did you mean "),
    ([{"FrameStackObservation": {"stack": 3}}], "env.wrappers[0] (FrameStackObservation): "),
    ([{"A": 1, "B": 2}], "env.wrappers[0] must be a wrapper's name or one 'name: {arguments}' mapping, got "),
    ("FrameStackObservation", "env.wrappers must be a list of wrappers, got 'FrameStackObservation'"),
])
def test_bad_wrappers_are_one_line(tmp_path: Path, wrappers: Any, error: str) -> None:
    with pytest.raises(pacer.PacerError) as info:
        pixel_run(tmp_path, "bad", id="image_envs:make_flat_lit_quadrant", wrappers=wrappers)
    assert str(info.value).startswith(error) and "\n" not in str(info.value)


def test_onnx_takes_uint8_frames_and_acts_as_pacer(tmp_path: Path) -> None:
    from pacer.export import export

    result = pixel_run(tmp_path, "onnx")
    agent = pacer.load(result.run_dir)
    done = export(agent, tmp_path / "policy.onnx", check=200)
    assert done.inputs == "obs uint8[batch, 1, 36, 36]" and done.verdict is not None
    session = onnxruntime.InferenceSession(str(done.path), providers=["CPUExecutionProvider"])
    frames = np.random.default_rng(0).integers(0, 256, (300, 1, 36, 36), dtype=np.uint8)
    assert np.array_equal(session.run(["action"], {"obs": frames})[0], agent.act(frames))


def test_clipped_rewards_train_while_returns_keep_the_score() -> None:
    env = make_vector_env(EnvConfig(), 4)
    model = make_model(ModelConfig(), env.single_observation_space, env.single_action_space)
    collector = Collector(env, model, head_for(env.single_action_space), seed=0, clip_rewards=0.5)
    rollout = collector.collect(64)
    assert set(np.unique(rollout.rewards[rollout.valid])) == {0.5}  # CartPole pays 1 a step
    returns, lengths = collector.pop_episodes()
    assert returns and returns == [float(n) for n in lengths]  # the game's own score: 1 a step
    env.close()


def test_rollout_memory_is_a_byte_a_pixel_and_is_checked_before_start(tmp_path: Path) -> None:
    from pacer.config import Config
    from pacer.runtime.preflight import check_rollout_memory

    pong = Config.from_dict({"env": {"envs_per_worker": 8}, "algo": {"n_steps": 128}, "runtime": {"workers": 1}})
    assert check_rollout_memory(pong, 4 * 84 * 84, "obs pixels[4, 84, 84]") == 8 * 128 * 4 * 84 * 84  # 28.9 MB
    with pytest.raises(pacer.PacerError, match=r"^the rollouts need 24,719 MiB \(1 workers x 1000 envs x 20000 "
                                               r"steps of obs pixels\[1, 36, 36\] observations\) but "):
        pacer.train({"env": {"id": "image_envs:make_lit_quadrant", "envs_per_worker": 1000},
                     "algo": {"n_steps": 20000},
                     "runtime": {"backend": "inline", "workers": 1},
                     "log": {"run_dir": str(tmp_path / "big"), "progress": False}}, preset="none")
    assert not (tmp_path / "big").exists()


def test_the_ale_vector_env_gets_the_presets_preprocessing_as_its_own_arguments() -> None:
    """env.vector 'ale': the config's wrappers become AtariVectorEnv's arguments (tests/test_atari.py checks the
    frames); what it cannot do the same way is refused in one line, before any worker starts."""
    pytest.importorskip("ale_py")
    from pacer import atari_vector
    from pacer.envs import register_atari
    from pacer.presets import ATARI_ENV

    register_atari("ALE/Pong-v5")
    pong = EnvConfig(id="ALE/Pong-v5", kwargs=ATARI_ENV["kwargs"], wrappers=tuple(ATARI_ENV["wrappers"]))
    args = atari_vector.arguments(pong)
    assert {k: v for k, v in args.items() if k != "autoreset_mode"} == {
        "game": "pong", "noop_max": 30, "frameskip": 4, "img_height": 84, "img_width": 84, "episodic_life": False,
        "grayscale": True, "stack_num": 4, "max_num_frames_per_episode": 108_000, "repeat_action_probability": 0.0,
        "full_action_space": False, "maxpool": True, "reward_clipping": False, "use_fire_reset": False,
        "num_threads": 1}
    assert atari_vector.arguments(dataclasses.replace(pong, kwargs={}, max_episode_steps=1000))[
        "max_num_frames_per_episode"] == 4000  # agent steps of 4 frames; v5's own sticky actions (0.25) kept
    bad = [("CartPole-v1", {}, ATARI_ENV["wrappers"], "env.vector 'ale' is for ALE/ ids (ALE/Pong-v5), not "),
           ("ALE/Pong-v5", {}, ["AtariPreprocessing"], "env.vector 'ale' does the Atari preset's preprocessing "),
           ("ALE/Pong-v5", {"frameskip": 4}, ATARI_ENV["wrappers"], "env.vector 'ale' takes env.kwargs "),
           ("ALE/Pong-v5", {}, [{"AtariPreprocessing": {"scale_obs": True}}, "FrameStackObservation"],
            "env.vector 'ale' needs AtariPreprocessing scale_obs=False")]
    for env_id, kwargs, wrappers, error in bad:
        with pytest.raises(pacer.PacerError) as info:
            atari_vector.arguments(EnvConfig(id=env_id, kwargs=kwargs, wrappers=tuple(wrappers)))
        assert str(info.value).startswith(error) and "\n" not in str(info.value)
    with pytest.raises(pacer.PacerError, match=r"^env.vector 'ale' is for ALE/ ids"):
        pacer.train({"env": {"id": "CartPole-v1", "vector": "ale"}, "runtime": {"backend": "inline"}})
