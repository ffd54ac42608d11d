"""ale-py's C++ vector env (`env.vector: ale`): the Atari preprocessing of the `atari` preset done by the emulator's
own batch stepper instead of Gymnasium's wrappers, one thread per worker.

The env config stays the one source of truth: its `AtariPreprocessing` and `FrameStackObservation` entries (and
`repeat_action_probability`, `full_action_space`) are translated into `AtariVectorEnv`'s arguments, and anything
the C++ env cannot do the same way is refused in one line. Evaluation keeps the wrapped single envs: the same
frames, and the game's own screen for videos. The emulators' states cannot be read out of the C++ env, so a
checkpoint holds none: a resumed run starts new games (`env.vector: gym` resumes them exactly).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode, VectorEnv

from pacer.config import EnvConfig
from pacer.errors import PacerError
from pacer.wrappers import parse

# AtariPreprocessing's arguments and the AtariVectorEnv arguments they become; the rest must keep these values
PREPROCESSING = {"noop_max": "noop_max", "frame_skip": "frameskip", "screen_size": "img_height",
                 "terminal_on_life_loss": "episodic_life", "grayscale_obs": "grayscale"}
FIXED = {"scale_obs": False, "grayscale_newaxis": False}  # frames stay uint8 HxW, stacked by the C++ env
ENV_KWARGS = ("frameskip", "repeat_action_probability", "full_action_space", "max_num_frames_per_episode")


def arguments(env: EnvConfig) -> dict[str, Any]:
    """AtariVectorEnv's keyword arguments for the env the config describes, or one line on why it cannot be."""
    env_id, max_episode_steps, kwargs, wrappers = env.id, env.max_episode_steps, env.kwargs, env.wrappers
    if not isinstance(env_id, str) or not env_id.startswith("ALE/"):
        raise PacerError(f"env.vector 'ale' is for ALE/ ids (ALE/Pong-v5), not {env_id!r}")
    names = [getattr(cls, "__name__", str(cls)) for cls, _ in parse(wrappers)]
    if names != ["AtariPreprocessing", "FrameStackObservation"]:
        raise PacerError("env.vector 'ale' does the Atari preset's preprocessing itself: env.wrappers must be "
                         f"[AtariPreprocessing, FrameStackObservation], got {names}")
    (_, pre), (_, stack) = parse(wrappers)
    unknown = set(kwargs) - set(ENV_KWARGS)
    if unknown or kwargs.get("frameskip", 1) != 1:
        raise PacerError(f"env.vector 'ale' takes env.kwargs {sorted(ENV_KWARGS)} (frameskip 1: AtariPreprocessing "
                         f"skips), got {dict(kwargs)}")
    for name, value in FIXED.items():
        if pre.get(name, value) != value:
            raise PacerError(f"env.vector 'ale' needs AtariPreprocessing {name}={value}")
    unknown = set(pre) - set(PREPROCESSING) - set(FIXED)
    if unknown or set(stack) - {"stack_size"}:
        raise PacerError(f"env.vector 'ale' cannot translate {sorted(unknown | (set(stack) - {'stack_size'}))}")
    spec = gym.spec(env_id)
    defaults = {"noop_max": 30, "frame_skip": 4, "screen_size": 84, "terminal_on_life_loss": False,
                "grayscale_obs": True}  # AtariPreprocessing's own
    out: dict[str, Any] = {PREPROCESSING[k]: pre.get(k, v) for k, v in defaults.items()}
    out["img_width"] = out["img_height"]
    frames = kwargs.get("max_num_frames_per_episode", spec.kwargs.get("max_num_frames_per_episode", 108_000))
    if max_episode_steps is not None:  # TimeLimit counts agent steps; the C++ env counts frames
        frames = min(frames, max_episode_steps * out["frameskip"])
    out.update(game=spec.kwargs["game"], stack_num=stack.get("stack_size", 4), max_num_frames_per_episode=frames,
               repeat_action_probability=kwargs.get("repeat_action_probability",
                                                    spec.kwargs.get("repeat_action_probability", 0.25)),
               full_action_space=kwargs.get("full_action_space", spec.kwargs.get("full_action_space", False)),
               maxpool=True, reward_clipping=False, use_fire_reset=False, autoreset_mode=AutoresetMode.NEXT_STEP,
               num_threads=1)  # a worker is one core; rewards are clipped by the algorithm (algo.clip_rewards)
    return out


def make(env: EnvConfig, num_envs: int) -> VectorEnv:
    try:
        import ale_py
    except ImportError:
        raise PacerError("env.vector 'ale' needs ale-py: pip install 'pacer-rl[atari]'") from None
    venv: VectorEnv = ale_py.AtariVectorEnv(num_envs=num_envs, **arguments(env))
    return venv
