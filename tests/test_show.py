"""Showing and shipping an agent: `pacer eval --video/--render`, training videos, `pacer export`, `pacer.plot`.

Each env's run is trained once per module, inline and briefly: what is checked is the plumbing (frames against
episode lengths, the exported graph against `Agent.act`), which does not need a good policy.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import pacer
import pacer.agent
import pacer.export
import pacer.video
from pacer.cli import main
from pacer.envs import make_single_env

ENVS = ["CartPole-v1", "Pendulum-v1", "LunarLander-v3"]


def brief_training(folder: Path, env: Any, steps: int, envs: int = 4, normalize: str = "none",
                   video_every: int = 0) -> pacer.TrainResult:
    """A short inline a2c run: no evaluations, no periodic checkpoints; a video at every `video_every` steps (no
    share of the wall time holds one back)."""
    return pacer.train({
        "env": {"id": env, "envs_per_worker": envs},
        "model": {"normalize_input": normalize},
        "algo": {"name": "a2c", "n_steps": 8},
        "runtime": {"backend": "inline", "workers": 1, "total_steps": steps, "eval_every": 0,
                    "final_eval_episodes": 0, "eval_share": 1.0},
        "log": {"run_dir": str(folder), "progress": False, "tensorboard": False, "report_every": 0.0,
                "video_every": video_every, "checkpoint_every": 0},
    }, preset="none")


def tiny_run(folder: Path, env: Any, steps: int = 2000, normalize: str = "none") -> Path:
    return brief_training(folder, env, steps, normalize=normalize).run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {env: tiny_run(tmp_path_factory.mktemp("runs") / env, env) for env in ENVS}


def episode_length(agent: pacer.Agent, seed: int) -> int:
    """The episode's length on an env that does not render: what the video's frame count must equal."""
    env = make_single_env(agent.config.env)
    obs, _ = env.reset(seed=seed)
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, _ = env.step(agent.act(obs))
        steps, done = steps + 1, terminated or truncated
    env.close()
    return steps


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def one_line_error(code: int, capsys: pytest.CaptureFixture[str], message: str) -> str:
    err = capsys.readouterr().err
    # a factory env without a preset is first told which recipe it gets (one line), then the error
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("pacer: no preset for "))
    assert err.startswith(f"pacer: error: {message}"), err
    assert len(err.strip().splitlines()) == 1, err
    assert code == 2
    return err


@pytest.mark.parametrize("env", ENVS)
def test_eval_video_has_one_playable_mp4_per_episode_with_a_frame_per_step(
        env: str, runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos = tmp_path / "videos"
    code = main(["eval", str(runs[env]), "--episodes", "3", "--video-episodes", "2", "--video", str(videos),
                 "--workers", "1", "--seed", "7"])
    out = capsys.readouterr().out
    assert code == 0
    assert sorted(p.name for p in videos.iterdir()) == ["episode-000.mp4", "episode-001.mp4"]  # no partial file
    agent = pacer.load(runs[env])
    for i in range(2):
        path = videos / f"episode-{i:03d}.mp4"
        length = episode_length(agent, 7 + i)
        assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == length  # ffmpeg decodes every frame
        assert f"wrote {path}: {length} frames" in out
        reader = imageio.get_reader(path)
        meta = reader.get_meta_data()
        assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p"), meta  # what players open
        assert meta["fps"] == gym.make(env).metadata["render_fps"]  # real time
        frame = reader.get_data(0)
        reader.close()
        assert frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0  # a picture, not a blank
    assert "3 greedy episodes" in out  # the evaluation itself still covers --episodes


def test_training_records_greedy_videos_and_its_envs_never_render(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    real_make = gym.make
    monkeypatch.setattr(gym, "make", lambda *a, **k: made.append(k.get("render_mode")) or real_make(*a, **k))
    result = brief_training(tmp_path / "run", "LunarLander-v3", 1500, envs=2, video_every=500)
    videos = list((result.run_dir / "videos").iterdir())
    steps = sorted(int(p.stem.removeprefix("step_")) for p in videos if p.name != "final.mp4")
    assert len(steps) >= 2 and steps[0] >= 500 and (result.run_dir / "videos" / "final.mp4") in videos, videos
    assert steps[-1] < 1500  # the budget's end is final.mp4 alone, not also a step_N.mp4 of the same parameters
    for path in videos:
        assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] > 0
    # rendering envs: one to check at the start, one per video; every other env (training's) renders nothing
    assert made.count("rgb_array") == 1 + len(videos) and set(made) == {None, "rgb_array"}, made


def test_render_plays_in_a_window_where_a_display_exists(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from pacer.video import watch

    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # pygame opens its "window" without an X server
    agent = pacer.load(runs["CartPole-v1"])
    returns = watch(agent, 1, seed=3)
    assert returns == [float(episode_length(agent, 3))]


@pytest.mark.parametrize("env", ENVS)
def test_onnx_greedy_actions_match_pacer_on_2000_random_observations(env: str, runs: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    from pacer.export import export

    agent = pacer.load(runs[env])
    path = export(agent, tmp_path / "policy.onnx").path
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    space = gym.make(env).observation_space
    space.seed(0)
    obs = np.stack([space.sample() for _ in range(2000)]).astype(np.float32)
    action, pi, value = session.run(None, {"obs": obs})
    with torch.no_grad():
        want_pi, want_value = agent.model(torch.as_tensor(obs))
    want = agent.act(obs)
    if agent.head.name == "discrete":
        assert action.dtype == np.int64 and np.array_equal(action, want)
    else:
        assert action.shape == want.shape and np.abs(action - want).max() <= 1e-4
        assert (action >= agent.action_space.low).all() and (action <= agent.action_space.high).all()
    np.testing.assert_allclose(pi, want_pi.numpy(), atol=1e-4)
    np.testing.assert_allclose(value, want_value.numpy(), atol=1e-4)
    assert session.run(["action"], {"obs": obs[:1]})[0].shape[0] == 1  # any batch size
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["pacer.env"] == env and props["pacer.outputs"].startswith("action,")


def test_onnx_graph_normalizes_observations_and_clips_actions_itself(tmp_path: Path) -> None:
    from pacer.export import compare, export, random_observations

    run = tiny_run(tmp_path / "run", "Pendulum-v1", normalize="running")
    agent = pacer.load(run)
    with torch.no_grad():
        agent.model.obs_norm.mean.fill_(5.0)  # far from zero: a graph without the normalization would disagree
        agent.model.obs_norm.var.fill_(4.0)
        agent.model.pi_head.weight.mul_(10.0)  # means far outside [-2, 2]: pacer clips them, so must the graph
    clipped = np.abs(agent.act(random_observations(agent, 500, 0))) == 2.0
    assert 0.2 < clipped.mean() < 0.98  # both cases are exercised
    differ, largest = compare(agent, export(agent, tmp_path / "p.onnx").path, count=500)
    assert differ == 0 and largest <= 1e-4


def test_torch_format_is_a_torch_export_program(runs: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "policy.pt2"
    assert main(["export", str(runs["Pendulum-v1"]), "--format", "torch", "--out", str(out)]) == 0
    assert f"wrote {out}: obs float32[batch, 3] -> action float32[batch, 1]" in capsys.readouterr().out
    program = torch.export.load(out).module()
    agent = pacer.load(runs["Pendulum-v1"])
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    with torch.no_grad():
        action = program(torch.as_tensor(obs))[0].numpy()
    np.testing.assert_allclose(action, agent.act(obs), atol=1e-6)


def test_eval_json_with_videos_keeps_stdout_json(runs: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", str(runs["CartPole-v1"]), "--episodes", "1", "--video", str(tmp_path / "v"), "--json",
                 "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out)["episodes"] == 1  # stdout is the JSON document alone
    assert f"wrote {tmp_path / 'v' / 'episode-000.mp4'}: " in captured.err


def test_eval_render_plays_then_evaluates(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    calls: list[tuple[str, int]] = []
    real_watch, real_evaluate = pacer.video.watch, pacer.agent.evaluate
    monkeypatch.setattr(pacer.video, "watch",
                        lambda agent, n, *args, **kw: calls.append(("watch", n)) or real_watch(agent, n, *args, **kw))
    monkeypatch.setattr(pacer.agent, "evaluate", lambda agent, **kw: calls.append(("evaluate", kw["episodes"]))
                        or real_evaluate(agent, **kw))
    code = main(["eval", str(runs["CartPole-v1"]), "--episodes", "2", "--video-episodes", "1", "--render",
                 "--workers", "1"])
    assert code == 0 and calls == [("watch", 1), ("evaluate", 2)]
    assert "2 greedy episodes" in capsys.readouterr().out


def test_a_renderer_that_breaks_mid_episode_leaves_no_video(tmp_path: Path) -> None:
    from pacer.video import record

    agent = pacer.load(tiny_run(tmp_path / "run", "helpers:make_buggy_renderer", steps=200))
    with pytest.raises(RuntimeError, match="renderer bug"):  # a bug in the user's renderer keeps its traceback
        record(agent, tmp_path / "v", 1, seed=0)
    assert list((tmp_path / "v").iterdir()) == []  # no partial file


def test_training_goes_on_when_a_video_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = brief_training(tmp_path / "run", "helpers:make_buggy_renderer", 600, envs=2, video_every=250)
    assert result.env_steps >= 600 and (result.run_dir / "checkpoints" / "final.pt").is_file()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "not written" in line]
    assert len(warnings) == 3 and warnings[-1] == "pacer: warning: video final not written: RuntimeError: renderer bug"
    assert list((result.run_dir / "videos").iterdir()) == []


def test_a_renderer_whose_package_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_run(tmp_path / "run", "helpers:make_renderer_without_pygame", steps=200)
    capsys.readouterr()
    code = main(["eval", str(run), "--episodes", "1", "--video", str(tmp_path / "v")])
    one_line_error(code, capsys, "rendering helpers:make_renderer_without_pygame needs a package that is not "
                   "installed (pygame is not installed, run `pip install pygame`); pip install 'pacer-rl[video]'")
    assert list((tmp_path / "v").iterdir()) == []
    code = main(["train", "--env", "helpers:make_renderer_without_pygame", "--backend", "inline", "--set",
                 "log.video_every=100", "--total-steps", "200", "--run-dir", str(tmp_path / "never")])
    one_line_error(code, capsys, "rendering helpers:make_renderer_without_pygame needs a package")
    assert not (tmp_path / "never").exists()


def test_an_export_that_fails_is_one_line_and_leaves_nothing(runs: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    def unsupported(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("unsupported operator\n(a long explanation)")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    code = main(["export", str(runs["CartPole-v1"]), "--out", str(tmp_path / "p.onnx")])
    one_line_error(code, capsys, "cannot export MLPActorCritic with onnx: RuntimeError: unsupported operator")
    assert list(tmp_path.iterdir()) == []

    def interrupted(*args: Any, **kwargs: Any) -> None:
        assert [p.name for p in tmp_path.iterdir()] == [f".p.onnx.{os.getpid()}.partial.onnx"]  # Ctrl-C removes it
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", interrupted)
    assert main(["export", str(runs["CartPole-v1"]), "--out", str(tmp_path / "p.onnx")]) == 130
    assert capsys.readouterr().err.strip() == "pacer: interrupted"  # no checkpoint talk: only train saves one
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_fails_its_check_is_not_written(runs: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.onnx"
    out.write_text("an earlier export")
    monkeypatch.setattr(pacer.export, "compare", lambda *args, **kwargs: (3, 0.5))
    code = main(["export", str(runs["CartPole-v1"]), "--out", str(out), "--check", "100"])
    one_line_error(code, capsys, "onnxruntime's greedy actions differ from pacer's on 3 of 100 random observations "
                   f"(largest difference 0.5); '{out}' was not written")
    assert list(tmp_path.iterdir()) == [out] and out.read_text() == "an earlier export"  # kept, and no temp file

    def unreadable(*args: Any, **kwargs: Any) -> None:
        raise ValueError("bad graph\n(details)")

    monkeypatch.undo()  # compare is real again; only the runner it calls fails
    monkeypatch.setattr(pacer.export, "run_file", unreadable)
    code = main(["export", str(runs["CartPole-v1"]), "--out", str(out), "--check", "100"])
    one_line_error(code, capsys, f"onnxruntime cannot run the exported file: ValueError: bad graph; '{out}' was not "
                   "written")
    assert list(tmp_path.iterdir()) == [out]


def test_export_command_checks_its_file_against_pacer(runs: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "policy.onnx"
    assert main(["export", str(runs["CartPole-v1"]), "--out", str(out), "--check", "300"]) == 0
    text = capsys.readouterr().out
    assert "checked: onnxruntime's greedy actions match pacer's on 300 random observations" in text
    assert sorted(p.name for p in out.parent.iterdir()) == ["policy.onnx"]  # no temporary file left
    assert out.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # permissions as any written file's
    assert main(["export", str(runs["Pendulum-v1"]), "--out", str(tmp_path / "p.pt2"), "--format", "torch",
                 "--check", "300"]) == 0
    text = capsys.readouterr().out
    assert "checked: torch.export.load's greedy actions match pacer's on 300 random observations" in text


def test_plot_command_names_the_file_it_wrote(runs: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(runs["CartPole-v1"]), "--out", str(tmp_path / "curve")]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'curve.png'}\n" and (tmp_path / "curve.png").is_file()
    code = main(["plot", str(runs["CartPole-v1"]), "--out", str(tmp_path / "curve.txt")])
    one_line_error(code, capsys, f"cannot save a plot as '.txt' ('{tmp_path / 'curve.txt'}'); use one of: ")
    assert main(["plot", str(runs["CartPole-v1"]), "--y", "entropy", "--out", str(tmp_path / "entropy")]) == 0
    assert (tmp_path / "entropy.png").is_file()
    capsys.readouterr()
    code = main(["plot", str(runs["CartPole-v1"]), "--y", "ratings", "--out", str(tmp_path / "r")])
    one_line_error(code, capsys, "no run has a metric 'ratings'; its metrics: actor_loss, critic_loss, entropy, ")


# bad input: one line each, exit code 2

def test_an_env_that_cannot_render(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_run(tmp_path / "blind", "helpers:make_blind", steps=200)
    capsys.readouterr()
    code = main(["eval", str(run), "--episodes", "1", "--video", str(tmp_path / "v")])
    one_line_error(code, capsys, "env helpers:make_blind cannot render 'rgb_array' frames (its render modes: [])")
    run = tiny_run(tmp_path / "factory", "helpers:make_cartpole", steps=200)
    capsys.readouterr()
    code = main(["eval", str(run), "--episodes", "1", "--video", str(tmp_path / "v")])
    one_line_error(code, capsys, "env factory helpers:make_cartpole made an env that does not render: let it take "
                   "render_mode=None")
    code = main(["train", "--env", "helpers:make_blind", "--backend", "inline", "--set", "log.video_every=100",
                 "--run-dir", str(tmp_path / "never")])
    one_line_error(code, capsys, "env helpers:make_blind cannot render")
    assert not (tmp_path / "never").exists()  # refused before anything started


def test_a_factory_that_passes_render_mode_on_records(tmp_path: Path) -> None:
    from pacer.video import record

    agent = pacer.load(tiny_run(tmp_path / "run", "helpers:make_rendering_cartpole", steps=200))
    video = record(agent, tmp_path / "v", 1, seed=0)[0]
    assert imageio_ffmpeg.count_frames_and_secs(str(video.path))[0] == video.frames == episode_length(agent, 0)


@pytest.mark.parametrize(("blocked", "argv", "message"), [
    ("imageio", ["eval", "{run}", "--episodes", "1", "--video", "{tmp}/v"],
     "video needs imageio and imageio-ffmpeg: pip install 'pacer-rl[video]'"),
    ("imageio_ffmpeg", ["eval", "{run}", "--episodes", "1", "--video", "{tmp}/v"],
     "video needs imageio and imageio-ffmpeg: pip install 'pacer-rl[video]'"),
    ("onnxscript", ["export", "{run}", "--out", "{tmp}/p.onnx"],
     "ONNX export needs onnx and onnxscript: pip install 'pacer-rl[export]'"),
    ("matplotlib", ["plot", "{run}", "--out", "{tmp}/c.png"],
     "plotting needs matplotlib: pip install 'pacer-rl[plot]'"),
])
def test_a_missing_extra(blocked: str, argv: list[str], message: str, runs: dict[str, Path], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in [m for m in sys.modules if m == blocked or m.startswith(f"{blocked}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, blocked, None)  # `import blocked` now raises ImportError
    code = main([a.format(run=runs["CartPole-v1"], tmp=tmp_path) for a in argv])
    one_line_error(code, capsys, message)
    assert not any(tmp_path.iterdir())  # nothing half-made


@pytest.mark.parametrize("argv", [
    ["eval", "{run}", "--episodes", "1", "--video", "{file}/videos"],
    ["export", "{run}", "--out", "{file}/policy.onnx"],
    ["export", "{run}", "--format", "torch", "--out", "{file}/policy.pt2"],
    ["plot", "{run}", "--out", "{file}/curve.png"],
])
def test_an_unwritable_output_path(argv: list[str], runs: dict[str, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "a-file"
    file.write_text("not a directory")
    code = main([a.format(run=runs["CartPole-v1"], file=file) for a in argv])
    assert one_line_error(code, capsys, "cannot write into ").endswith(f"'{file}' is a file, not a directory\n")


def test_render_without_a_display(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code = main(["eval", str(runs["CartPole-v1"]), "--render"])
    one_line_error(code, capsys, "--render needs a display and there is none here")


def test_video_episodes_out_of_range(runs: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", str(runs["CartPole-v1"]), "--episodes", "2", "--video-episodes", "3", "--video",
                 str(tmp_path)])
    one_line_error(code, capsys, "--video-episodes must be between 1 and --episodes (2), got 3")


def test_plot_returns_a_figure_and_leaves_the_backend_alone(runs: dict[str, Path]) -> None:
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # not the default: a plot() that switched backends would show here
    try:
        fig = pacer.plot([runs["CartPole-v1"], runs["Pendulum-v1"]], x="time")
        assert isinstance(fig, Figure) and matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == []  # pyplot holds no reference: nothing leaks, a notebook shows it once
    finally:
        matplotlib.use(backend)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "wall time (s)"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["CartPole-v1 (training, last 100 episodes)", "Pendulum-v1 (training, last 100 episodes)"]
    assert len(ax.get_lines()[0].get_xdata()) > 1
