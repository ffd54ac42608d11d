"""A short real Atari run (ALE/Pong-v5 through ale-py) on 2 worker processes, then what a user does with it: load,
evaluate with a video, export to ONNX, resume. Marker `atari` (make test-atari; CI): about a minute."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import yaml

import pacer
from pacer.config import EnvConfig
from pacer.envs import make_vector_env
from pacer.presets import ATARI_ENV

pytest.importorskip("ale_py")
pytestmark = [pytest.mark.atari, pytest.mark.timeout(300)]


def pacer_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacer", *args], capture_output=True, text=True, timeout=240)


def test_pong_trains_evaluates_films_exports_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "pong"
    out = pacer_cmd("train", "--env", "ALE/Pong-v5", "--total-steps", "3000", "--run-dir", str(run), "--no-progress",
                    "--set", "runtime.final_eval_episodes=1")
    assert out.returncode == 0, out.stderr
    assert "ALE/Pong-v5 is an Atari game: preset 'atari'" in out.stderr
    assert "not plain data" not in out.stderr  # the emulator and the stacked frames are in the checkpoint
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["encoder"] == "cnn" and cfg["algo"]["clip_rewards"] == 1.0
    assert [next(iter(w)) for w in cfg["env"]["wrappers"]] == ["AtariPreprocessing", "FrameStackObservation"]

    out = pacer_cmd("eval", str(run), "--episodes", "1", "--workers", "1", "--video", str(tmp_path / "videos"),
                    "--json")
    assert out.returncode == 0, out.stderr
    score = json.loads(out.stdout)
    assert -21 <= score["mean"] <= 21  # a whole game, the real score
    [frames] = [int(line.split(": ")[1].split(" frames")[0]) for line in out.stderr.splitlines()
                if line.startswith("wrote ")]
    assert frames > 100  # one frame per action of the game (4 emulator frames each)

    out = pacer_cmd("export", str(run), "--out", str(tmp_path / "pong.onnx"), "--check", "100")
    assert out.returncode == 0, out.stderr
    assert "obs uint8[batch, 4, 84, 84]" in out.stdout and "match pacer's on 100" in out.stdout

    # the exported graph acts as pacer does on 1,000 frames recorded from real games
    agent = pacer.load(run)
    env = make_vector_env(EnvConfig(id="ALE/Pong-v5", kwargs=ATARI_ENV["kwargs"],
                                    wrappers=tuple(ATARI_ENV["wrappers"])), 8)
    obs, _ = env.reset(seed=1)
    frames = []
    for _ in range(125):
        frames.append(obs)
        obs, *_ = env.step(agent.act(obs, greedy=False))
    env.close()
    frames = np.concatenate(frames)
    session = onnxruntime.InferenceSession(str(tmp_path / "pong.onnx"), providers=["CPUExecutionProvider"])
    assert frames.shape == (1000, 4, 84, 84) and frames.dtype == np.uint8
    assert np.array_equal(session.run(["action"], {"obs": frames})[0], agent.act(frames))

    out = pacer_cmd("train", "--resume", str(run), "--total-steps", "5000", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "not bit-exact" not in out.stderr  # the games go on where they were (tests/test_envstate.py: exactly)
    assert json.loads((run / "summary.json").read_text())["env_steps"] >= 5000


def test_ale_vector_env_gives_the_wrapped_frames_and_trains(tmp_path: Path,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    """env.vector 'ale': ale-py's C++ vector env makes the frames Gymnasium's wrappers make, pixel for pixel, but at
    an episode's start, where it stacks black frames (the wrappers repeat the first one); a run trains on it, and
    its resume says that it starts new games (the C++ env's emulators cannot be saved)."""
    wrappers = copy.deepcopy(list(ATARI_ENV["wrappers"]))
    wrappers[0]["AtariPreprocessing"]["noop_max"] = 0  # no random no-ops: the same games on both paths
    pong = EnvConfig(id="ALE/Pong-v5", kwargs=ATARI_ENV["kwargs"], wrappers=tuple(wrappers))
    wrapped = make_vector_env(pong, 2)
    native = make_vector_env(dataclasses.replace(pong, vector="ale"), 2)
    a, _ = wrapped.reset(seed=0)
    b, _ = native.reset(seed=0)
    assert b.shape == a.shape == (2, 4, 84, 84) and b.dtype == np.uint8
    assert np.array_equal(a[:, 3], b[:, 3]) and not b[:, :3].any() and a[:, :3].any()
    rng = np.random.default_rng(0)
    for t in range(150):  # no Pong game ends within 150 random steps
        actions = rng.integers(0, 6, 2)
        a, reward_a, term_a, trunc_a, _ = wrapped.step(actions)
        b, reward_b, term_b, trunc_b, _ = native.step(actions)
        real = max(0, 2 - t)  # frames of the game in the stack (the rest is padding)
        assert np.array_equal(a[:, real:], b[:, real:]), t
        assert np.array_equal(reward_a, reward_b) and not (term_a | trunc_a | term_b | trunc_b).any()
    wrapped.close()
    native.close()

    settings = {"env": {"id": "ALE/Pong-v5", "vector": "ale", "envs_per_worker": 4},
                "algo": {"n_steps": 64}, "runtime": {"backend": "inline", "workers": 1, "total_steps": 512,
                                                     "final_eval_episodes": 0},
                "log": {"run_dir": str(tmp_path / "ale"), "progress": False, "tensorboard": False}}
    result = pacer.train(settings)
    assert result.env_steps >= 512
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["env"]["vector"] == "ale"
    capfd.readouterr()
    again = pacer.train(resume=result.run_dir, runtime__total_steps=1024)
    assert again.env_steps >= 1024
    assert "this resume is not bit-exact" in capfd.readouterr().err
