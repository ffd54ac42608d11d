"""Watching an agent: episodes rendered to mp4 files, or to a window where there is a display.

Videos are written by imageio through the ffmpeg binary that imageio-ffmpeg bundles (no system ffmpeg), H.264 in
yuv420p so that every player opens them. There is one frame per action: frame t shows the state the agent acted on
at step t, so a video has exactly as many frames as its episode has steps (the state after the last action is not
shown). Each file is written under a temporary name, decoded once to count its frames, and renamed when complete, so
a video that exists plays.

Rendering happens only here, on an env made for it: training envs never render (LunarLander's rgb_array mode piles
up particle bodies when nothing draws them).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from pacer import masks
from pacer.config import EnvConfig
from pacer.envs import EnvSpec, make_agents_env, make_single_env
from pacer.errors import PacerError, first_line, make_output_dir
from pacer.multiagent import is_pettingzoo

if TYPE_CHECKING:
    from pacer.agent import Agent

DEFAULT_FPS = 30  # for envs whose metadata gives no render_fps


@dataclass(frozen=True)
class Video:
    path: Path
    frames: int
    """Frames written: the episode's length in steps."""
    episode_return: float


def require_video_extra() -> Any:
    """imageio's v2 API, or a one-line error naming the extra that provides it and its ffmpeg."""
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the bundled ffmpeg binary imageio writes mp4 with)
    except ImportError:
        raise PacerError("video needs imageio and imageio-ffmpeg: pip install 'pacer-rl[video]'") from None
    return imageio


def env_name(env_id: Any) -> str:
    return getattr(env_id, "__qualname__", None) or str(env_id)


@contextlib.contextmanager
def frames_env(env: EnvConfig) -> Iterator[gym.Env]:
    """An env that renders rgb_array frames, closed afterwards. Where no display is named, SDL's dummy video driver
    is set meanwhile: pygame-drawn envs would otherwise probe for a display and complain on stderr."""
    headless = not _display_named() and "SDL_VIDEODRIVER" not in os.environ
    if headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    try:
        made = render_env(env, "rgb_array")
        try:
            yield made
        finally:
            made.close()
    finally:
        if headless:
            os.environ.pop("SDL_VIDEODRIVER", None)


def _missing_dependency(env_id: Any, exc: Exception) -> PacerError:
    return PacerError(f"rendering {env_name(env_id)} needs a package that is not installed "
                      f"({first_line(exc)}); pip install 'pacer-rl[video]'")


def render_env(env: EnvConfig, mode: str) -> Any:
    """One env that renders in `mode` ('rgb_array' or 'human'), or a one-line error saying why it cannot."""
    with warnings.catch_warnings():  # gym.make warns about a render mode the env lacks: we say so below
        warnings.filterwarnings("ignore", message=".*render_mode.*")
        try:
            made = make_single_env(env, render_mode=mode)
        except gym.error.DependencyNotInstalled as exc:
            raise _missing_dependency(env.id, exc) from None
    modes = list(made.metadata.get("render_modes") or [])
    if made.render_mode == mode and mode in modes:
        # many agents: one copy, its agents rows (pacer/multiagent.py)
        return make_agents_env(env, 1, made, mode) if is_pettingzoo(made) else made
    made.close()
    if mode in modes:  # the env could, but a factory did not pass the mode on
        raise PacerError(f"env factory {env_name(env.id)} made an env that does not render: let it take "
                         f"render_mode=None and pass it to the env (e.g. gym.make(..., render_mode=render_mode))")
    raise PacerError(f"env {env_name(env.id)} cannot render {mode!r} frames (its render modes: {modes})")


def frame(env: gym.Env, env_id: Any) -> NDArray[np.uint8]:
    """The env's current frame, ready for yuv420p; a renderer that needs a missing package (pygame is imported
    only at the first render()) is a one-line error."""
    try:
        return _even(env.render())
    except gym.error.DependencyNotInstalled as exc:
        raise _missing_dependency(env_id, exc) from None


def check_can_record(spec: EnvSpec) -> None:
    """Before a run that records videos starts: the extra is installed and the env renders a frame (the probe made
    one; `envs.probe(..., frames=True)`)."""
    require_video_extra()
    if not spec.frames_checked:
        raise ValueError("check_can_record needs a spec probed with frames=True")
    if spec.render_error is not None:
        raise PacerError(spec.render_error)


def record(agent: Agent, out_dir: str | Path, episodes: int, seed: int, greedy: bool = True,
           names: list[str] | None = None) -> list[Video]:
    """Play `episodes` episodes (episode i from seed + i, as `pacer eval` seeds them) and write episode i to
    `out_dir/episode-<i>.mp4`, or to `out_dir/<names[i]>.mp4`."""
    names = names or [f"episode-{i:03d}" for i in range(episodes)]
    if len(names) != episodes:
        raise PacerError(f"record: {len(names)} names for {episodes} episodes")
    imageio = require_video_extra()
    out_dir = Path(out_dir)
    make_output_dir(out_dir)  # an unwritable place fails here, before any rendering
    with frames_env(agent.config.env) as env:
        fps = float(env.metadata.get("render_fps") or DEFAULT_FPS)
        return [_record_episode(imageio, env, agent, out_dir / f"{names[i]}.mp4", seed + i, greedy, fps)
                for i in range(episodes)]


def play(env: Any, agent: Agent, seed: int, greedy: bool, before_step: Callable[[], None] | None = None) -> float:
    """One episode; its return. `before_step` is called before each step (a frame to take). A PettingZoo env plays
    as one copy of it whose rows are its agents (pacer/multiagent.py): the team's return."""
    if isinstance(env, gym.vector.VectorEnv):
        return _play_copy(env, agent, seed, greedy, before_step)
    obs, info = env.reset(seed=seed)
    player = agent.player(greedy)  # one episode: a recurrent agent keeps its state from step to step
    total, done = 0.0, False
    while not done:
        if before_step is not None:
            before_step()
        action = player.act(obs, masks.of_single(agent.spec.action_mask, env, obs, info))
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        done = bool(terminated or truncated)
    return total


def _play_copy(env: gym.vector.VectorEnv, agent: Agent, seed: int, greedy: bool,
               before_step: Callable[[], None] | None) -> float:
    """One copy of a PettingZoo env: its agents are the rows (a game played by self-play: one row, the learner's
    seat against a random player)."""
    obs, info = env.reset(seed=seed)
    source = agent.spec.action_mask
    state: Any = None
    total, over = 0.0, False
    while not over:
        if before_step is not None:
            before_step()
        live = np.asarray(info.get("agent_live", np.ones(env.num_envs, dtype=bool)), dtype=bool)
        mask = None if source is None or source == "observation" else masks.read(source, env, obs, info, ~live)
        if agent.recurrent:  # an agent that is not acting starts afresh when it does
            actions, state = agent.act(obs, greedy, state=state, start=~live, mask=mask)
        else:
            actions = agent.act(obs, greedy, mask=mask)
        obs, reward, terminated, truncated, info = env.step(actions)
        total += float(np.sum(np.asarray(reward) * live))
        over = bool(np.asarray(info.get("episode_over", terminated | truncated)).any())
    return total


def _record_episode(imageio: Any, env: gym.Env, agent: Agent, path: Path, seed: int, greedy: bool, fps: float
                    ) -> Video:
    import imageio_ffmpeg

    # hidden, this process's own (two commands may film into one folder); ffmpeg picks the container from the suffix
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.mp4")
    frames, total = 0, 0.0
    try:
        writer = imageio.get_writer(partial, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                                    macro_block_size=1, ffmpeg_log_level="error")
        try:
            def take() -> None:
                nonlocal frames
                writer.append_data(frame(env, agent.config.env.id))
                frames += 1

            total = play(env, agent, seed, greedy, take)
        finally:
            writer.close()
        # ffmpeg decodes what it wrote: a file that is renamed into place plays, whole
        try:
            decoded = imageio_ffmpeg.count_frames_and_secs(str(partial))[0]
        except RuntimeError as exc:
            raise PacerError(f"ffmpeg cannot read back the video it wrote for {str(path)!r}: {first_line(exc)}"
                             ) from None
        if decoded != frames:
            raise PacerError(f"ffmpeg wrote {decoded} of {frames} frames to {str(path)!r}")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return Video(path=path, frames=frames, episode_return=total)


def _even(frame: Any) -> NDArray[np.uint8]:
    """yuv420p needs even width and height: pad an odd edge with one black row or column (never rescale)."""
    frame = np.asarray(frame, dtype=np.uint8)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise PacerError(f"render() returned an array of shape {frame.shape}, not an RGB image [height, width, 3]")
    pad = ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0))
    return np.pad(frame[:, :, :3], pad) if any(p[1] for p in pad[:2]) else frame[:, :, :3]


def _display_named() -> bool:
    """Whether a window can open: on Linux and the BSDs an X11 or Wayland display must be named."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def require_display() -> None:
    """A one-line error where no window can open."""
    if _display_named():
        return
    raise PacerError("--render needs a display and there is none here (neither DISPLAY nor WAYLAND_DISPLAY is set); "
                     "write videos instead: pacer eval RUN --video DIR")


def watch(agent: Agent, episodes: int, seed: int, greedy: bool = True) -> list[float]:
    """Play episodes in a window (the env's 'human' render mode, which draws at every step); their returns."""
    require_display()
    cfg = agent.config.env
    env = render_env(cfg, "human")
    returns = []
    try:
        for i in range(episodes):
            returns.append(play(env, agent, seed + i, greedy))  # the window draws each step
    except gym.error.DependencyNotInstalled as exc:
        raise _missing_dependency(cfg.id, exc) from None
    finally:
        env.close()
    return returns
