"""Sharing an agent: `pacer package` writes a folder that `pacer eval` loads and whose ONNX policy runs under
onnxruntime; `hf://owner/name` loads such a folder from Hugging Face's cache (offline: no network here); `pacer
push` without network ends in one line. The Hub upload itself is not run here (docs/sharing.md says so)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import onnxruntime
import pytest
import yaml

import pacer
from pacer.share import model_card, package

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A brief inline CartPole run, packaged with 5 scored episodes."""
    root = tmp_path_factory.mktemp("share")
    run = pacer.train({
        "env": {"envs_per_worker": 4}, "algo": {"name": "a2c", "n_steps": 8},
        "runtime": {"backend": "inline", "workers": 1, "total_steps": 3000, "eval_every": 0,
                    "final_eval_episodes": 0},
        "log": {"run_dir": str(root / "run"), "progress": False, "tensorboard": False, "checkpoint_every": 0},
    }, preset="none").run_dir
    package(run, root / "agent", episodes=5, workers=1)
    return run, root / "agent"


def test_the_folder_describes_itself(packaged: tuple[Path, Path]) -> None:
    run, folder = packaged
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "checkpoint.pt", "config.yaml", "policy.onnx",
                                                        "replay.mp4", "score.json"]
    assert folder.stat().st_mode & 0o755 == 0o755  # readable by others, as a folder made by hand
    score = json.loads((folder / "score.json").read_text())
    assert score["episodes"] == len(score["returns"]) == 5 and score["env"] == "CartPole-v1"
    assert score["mean"] == pytest.approx(np.mean(score["returns"]))
    card = (folder / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])  # the Hub reads this front matter
    assert meta["library_name"] == "pacer" and "CartPole-v1" in meta["tags"]
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == f"{score['mean']:.2f} +/- {score['std']:.2f}"
    summary = json.loads((run / "summary.json").read_text())
    assert f"- command: `{summary['command']}`" in card and f"pacer version: {pacer.__version__}" in card
    assert "lr: " in card and "n_steps: 8" in card  # the hyperparameters, as config.yaml has them
    assert yaml.safe_load((folder / "config.yaml").read_text())["algo"]["n_steps"] == 8
    # the replay is one greedy episode: as many frames as the episode has steps (CartPole: one reward per step)
    frames = imageio.get_reader(str(folder / "replay.mp4")).count_frames()
    returns = pacer.evaluate(folder, episodes=1, seed=12345, workers=1).returns
    assert frames == int(returns[0])


def test_pacer_eval_loads_the_folder(packaged: tuple[Path, Path]) -> None:
    _, folder = packaged
    out = subprocess.run([sys.executable, "-m", "pacer", "eval", str(folder), "--episodes", "5", "--workers", "1",
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    score = json.loads((folder / "score.json").read_text())
    assert json.loads(out.stdout)["returns"] == pytest.approx(score["returns"])  # the same seeds, the same episodes


def test_its_onnx_policy_runs_under_onnxruntime(packaged: tuple[Path, Path]) -> None:
    _, folder = packaged
    agent = pacer.load(folder)
    space = gym.make("CartPole-v1").observation_space
    space.seed(1)
    obs = np.stack([space.sample() for _ in range(500)]).astype(np.float32)
    session = onnxruntime.InferenceSession(str(folder / "policy.onnx"), providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(["action"], {"obs": obs})[0], agent.act(obs))


def test_hf_address_loads_from_the_hub_cache(packaged: tuple[Path, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder laid out as huggingface_hub caches a downloaded model repo; offline, the library serves it."""
    _, folder = packaged
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--cartpole-a2c"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # read at import; set as a user's env
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    agent = pacer.load("hf://someone/cartpole-a2c")
    assert agent.checkpoint is not None and agent.checkpoint.name == "checkpoint.pt"
    assert agent.checkpoint.parent.name == commit
    with pytest.raises(pacer.PacerError, match=r"^could not fetch hf://someone/other: "):
        pacer.load("hf://someone/other")
    with pytest.raises(pacer.PacerError, match=r"^'hf://nobody' is not a Hub agent: write hf://owner/name"):
        pacer.load("hf://nobody")


def test_push_without_network_is_one_line(packaged: tuple[Path, Path], tmp_path: Path) -> None:
    _, folder = packaged
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-m", "pacer", "push", str(folder), "--repo", "someone/cartpole"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2
    assert out.stderr.startswith("pacer: error: could not push to someone/cartpole: ") and out.stderr.count("\n") == 1


def test_model_card_without_a_recorded_command() -> None:
    config = pacer.Config().to_dict()
    card = model_card(config, 1.0, 0.5, 3, 7, {}, ["README.md"])
    assert "(not recorded: the run predates pacer recording its command)" in card
    assert "seeds 7-9" in card and "**1.00 ± 0.50**" in card
