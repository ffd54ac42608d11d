"""Every space users bring: structured observations (pacer/spaces.py) read leaf by leaf, MultiDiscrete actions, and
action masks from each source honoured wherever a policy acts (training, evaluation, Agent.act, video, ONNX)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import pacer
from pacer.config import ModelConfig
from pacer.errors import PacerError
from pacer.model import Features, MLPActorCritic, make_model
from pacer.spaces import ObsLayout
from space_envs import Match


@pytest.fixture
def match(quiet: dict) -> dict:
    quiet["env"].update(id="space_envs:make_match", envs_per_worker=8)
    quiet["algo"].update(n_steps=16, epochs=2, minibatches=2)
    quiet["runtime"].update(total_steps=6000, final_eval_episodes=10)
    return quiet


def test_each_leaf_becomes_what_its_space_holds() -> None:
    space = gym.spaces.Dict({
        "image": gym.spaces.Box(0, 255, (40, 40, 3), np.uint8), "grid": gym.spaces.Box(0, 10, (7, 7, 3), np.uint8),
        "pos": gym.spaces.Tuple((gym.spaces.Box(-1, 1, (2,), np.float32), gym.spaces.Discrete(5, start=1))),
        "keys": gym.spaces.MultiDiscrete([2, 3]), "doors": gym.spaces.MultiBinary(4), "mission": gym.spaces.Text(9)})
    layout = ObsLayout(space)  # Gymnasium sorts a Dict's keys
    assert [(leaf.path, leaf.kind, leaf.dtype) for leaf in layout.leaves] == [
        ("doors", "binary", np.float32), ("grid", "vector", np.uint8), ("image", "pixels", np.uint8),
        ("keys", "multidiscrete", np.int64), ("pos.0", "vector", np.float32), ("pos.1", "discrete", np.int64)]
    assert layout.dropped == ["mission"]
    assert layout.vector_size == 7 * 7 * 3 + 2  # standardized together
    features = Features(layout, normalize=False)
    assert features.size == 147 + 2 + 4 + 512 + (2 + 3) + 5  # the vectors, then bits, the CNN's 512, one-hots
    obs = {"image": np.zeros((40, 40, 3), np.uint8), "grid": np.full((7, 7, 3), 2, np.uint8),
           "pos": (np.array([0.5, -0.5], np.float32), 5), "keys": np.array([1, 2]), "doors": np.array([1, 0, 0, 1]),
           "mission": "go"}
    batch = torch.utils.data.default_collate([layout.cast(obs)])
    x = features(batch)[0]
    assert x.shape == (features.size,)
    assert x[:149].tolist() == [2.0] * 147 + [0.5, -0.5]  # grid codes and position as they are (no norm here)
    assert x[149:153].tolist() == [1, 0, 0, 1]
    keys, position = [0, 1, 0, 0, 1], [0, 0, 0, 0, 1]  # one-hot per component; Discrete(5, start=1): 5 is the last
    assert x[153 + 512:].tolist() == [*keys, *position]


def test_unreadable_or_unknown_parts_are_refused_in_one_line() -> None:
    with pytest.raises(PacerError, match=r"^nothing in observation space .* can be learned from: pacer reads Box, "
                                         r"Discrete, MultiDiscrete and MultiBinary observations, nested in Dict and "
                                         r"Tuple$"):
        ObsLayout(gym.spaces.Dict({"mission": gym.spaces.Text(5)}))
    with pytest.raises(PacerError, match=r"^observation space is a Tuple with a part pacer cannot read .*: wrap the "
                                         r"env to leave it out$"):
        ObsLayout(gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Text(5))))
    with pytest.raises(PacerError, match=r"^env.observation_keys \['colour'\] are not keys of the observation: "
                                         r"parity, target$"):
        ObsLayout(gym.spaces.Dict({"target": gym.spaces.Discrete(2), "parity": gym.spaces.MultiBinary(1)}),
                  keys=["colour"])


def test_a_dict_observation_with_multidiscrete_actions_and_masks_learns(match: dict) -> None:
    """The env raises on an illegal action: every sampled and greedy action obeyed the mask."""
    match["runtime"]["total_steps"] = 12000
    result = pacer.train(match, preset="none")
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["env"]["action_mask"] == "observation"
    assert result.eval_mean is not None and result.eval_mean >= 6.5  # of 8; a guess scores ~3.7
    agent = pacer.load(result.run_dir)
    assert agent.masked and isinstance(agent.model, MLPActorCritic) and agent.model.features is not None
    env = Match()
    obs, _ = env.reset(seed=0)
    for _ in range(8):  # Agent.act reads the mask from the observation by itself
        obs, *_ = env.step(agent.act(obs))


def test_observation_keys_choose_what_the_model_reads(match: dict) -> None:
    match["env"]["observation_keys"] = ["noise", "parity"]
    match["runtime"]["total_steps"] = 300
    agent = pacer.load(pacer.train(match, preset="none").run_dir)
    assert [leaf.path for leaf in agent.layout.leaves] == ["noise", "parity"]
    assert agent.model.features.size == 1 + 2


@pytest.mark.parametrize("factory", ["make_info_masked", "make_method_masked"])
def test_masks_from_info_or_from_action_masks_are_honoured(factory: str, quiet: dict) -> None:
    quiet["env"]["id"] = f"space_envs:{factory}"
    quiet["runtime"].update(total_steps=1000, final_eval_episodes=4)
    result = pacer.train(quiet, preset="none")
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["env"]["action_mask"] == ("info" if factory == "make_info_masked" else "method")
    assert saved["algo"]["analytic_grad"] is True  # masks are covered by the hand-written gradient
    assert result.eval_mean == 10.0  # every step legal, greedy or sampled: the env would have raised
    assert pacer.evaluate(result.run_dir, episodes=3, workers=1, greedy=False).mean == 10.0


def test_masks_off_reaches_the_env_unmasked(quiet: dict) -> None:
    quiet["env"].update(id="space_envs:make_info_masked", action_mask="none")
    quiet["runtime"]["total_steps"] = 2000
    with pytest.raises(RuntimeError, match="illegal action"):  # inline: the worker's own exception
        pacer.train(quiet, preset="none")


def test_an_env_with_no_legal_action_ends_the_run_in_one_line(quiet: dict) -> None:
    quiet["env"]["id"] = "space_envs:make_dead_end"
    with pytest.raises(PacerError, match=r"^env \(a factory\) offered no legal action \(its action mask is all "
                                                  r"false, env 0 of the batch\): an env with masks must end the "
                                                  r"episode before its player has no move$"):
        pacer.train(quiet, preset="none")


def test_a_source_the_env_lacks_is_refused(quiet: dict) -> None:
    quiet["env"].update(id="space_envs:make_info_masked", action_mask="method")
    with pytest.raises(PacerError, match=r"^env.action_mask 'method' needs an env with an action_masks\(\) method$"):
        pacer.train(quiet, preset="none")
    quiet["env"].update(id="Pendulum-v1", action_mask="info")
    with pytest.raises(PacerError, match=r"^env.action_mask 'info': masks apply to Discrete and MultiDiscrete "
                                         r"actions, not Box"):
        pacer.train(quiet, preset="none")


@pytest.mark.parametrize("memory", ["none", "lstm"])
def test_a_structured_masked_checkpoint_resumes_bit_exactly(match: dict, tmp_path: Path, memory: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A Dict observation (into an LSTM core too), MultiDiscrete actions with masks."""
    from test_resume import resumed_and_whole

    match["model"] = {"normalize_input": "running", "memory": memory, "memory_size": 16}
    match["runtime"].update(total_steps=2000, final_eval_episodes=0)
    resumed, reference = resumed_and_whole(match, tmp_path, monkeypatch)
    assert resumed["counters"] == reference["counters"]
    for name, value in reference["model"].items():
        assert torch.equal(resumed["model"][name], value), name


def test_onnx_of_a_structured_masked_policy_acts_as_pacer_does(match: dict, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from pacer.export import export, run_file

    match["model"] = {"normalize_input": "running"}
    agent = pacer.load(pacer.train(match, preset="none").run_dir)
    done = export(agent, tmp_path / "policy.onnx", check=500)
    assert done.verdict is not None and done.verdict.startswith("checked")  # with random masks
    assert done.inputs == ("obs.noise float32[batch, 2], obs.parity float32[batch, 1], obs.target int64[batch], "
                           "action_mask bool[batch, 6]")
    assert done.outputs.startswith("action int64[batch, 2], logits float32[batch, 6]")
    env = Match()
    obs, _ = env.reset(seed=1)
    for _ in range(8):
        kept = agent.layout.cast(obs)
        action, logits, _ = run_file(done.path, "onnx", {k: np.asarray(v)[None] for k, v in kept.items()},
                                     mask=np.asarray(obs["action_mask"], bool)[None])
        assert action[0].tolist() == agent.act(obs).tolist()
        assert logits[0][obs["action_mask"] == 0].max() <= -1e7  # the illegal logit, masked in the graph
        obs, *_ = env.step(action[0])


def test_a_masked_agent_is_filmed_obeying_its_masks(match: dict, tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    from pacer.video import record

    match["runtime"]["total_steps"] = 300
    agent = pacer.load(pacer.train(match, preset="none").run_dir)
    [video] = record(agent, tmp_path / "videos", 1, seed=3)
    assert video.frames == 8


def test_a_discrete_observation_is_one_hot(quiet: dict) -> None:
    model = make_model(ModelConfig(hidden=(4,)), gym.spaces.Discrete(16), gym.spaces.Discrete(4))
    assert isinstance(model, MLPActorCritic) and model.features is not None and model.features.size == 16
    quiet["env"]["id"] = "FrozenLake-v1"
    quiet["runtime"]["total_steps"] = 500
    assert pacer.train(quiet, preset="none").eval_mean is not None
