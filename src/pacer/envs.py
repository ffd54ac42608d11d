"""Environment construction: a Gymnasium id or a `module:factory` path, batched into one vector env per worker.

Every vector env here uses Gymnasium's NEXT_STEP autoreset: the step after an episode ends resets that sub-env
and is not a real transition. The rollout masks those steps out, and gets the true final observation of a
truncated episode for free (it is the observation fed into the reset step).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from pacer.errors import PacerError, did_you_mean
from pacer.usercode import check_signature, resolve_import
from pacer.wrappers import apply as apply_wrappers


def check_env_id(env_id: Any) -> None:
    """Fail early, in the parent, for an unknown Gymnasium id or an unimportable factory."""
    if callable(env_id) or (isinstance(env_id, str) and ":" in env_id):
        resolve_import(env_id, "env factory")
        return
    register_atari(env_id)
    if env_id not in gym.registry:
        raise PacerError(f"unknown environment {env_id!r}{did_you_mean(env_id, gym.registry.keys())}")


def make_single_env(env_id: Any, max_episode_steps: int | None = None, render_mode: str | None = None,
                    kwargs: Mapping[str, Any] | None = None, wrappers: Sequence[Any] = ()) -> gym.Env:
    """One environment; `kwargs` go to `gym.make` (or to the factory), then `wrappers` (env.wrappers) wrap it in
    order. Training envs never render: LunarLander's rgb_array mode piles up particle bodies. A factory gets
    `render_mode` only when one is asked for and it takes that argument (whether the env then renders is the
    caller's check: `env.render_mode`)."""
    return apply_wrappers(_make(env_id, max_episode_steps, render_mode, dict(kwargs or {})), wrappers)


def _make(env_id: Any, max_episode_steps: int | None, render_mode: str | None, kwargs: dict[str, Any]) -> gym.Env:
    if callable(env_id) or ":" in env_id:
        factory = resolve_import(env_id, "env factory")
        check_signature(factory, (), "env factory", "factory()", kwargs)
        if render_mode is not None and _accepts(factory, "render_mode"):
            kwargs["render_mode"] = render_mode
        env = factory(**kwargs)
        if not isinstance(env, gym.Env):
            raise PacerError(f"env factory {env_id!r} returned {type(env).__name__}, not a gymnasium.Env")
        if max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
        return env
    kwargs["render_mode"] = render_mode
    register_atari(env_id)
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    try:
        return gym.make(env_id, **kwargs)
    except TypeError as exc:  # an env kwarg its constructor does not take
        raise PacerError(f"cannot make {env_id} with env.kwargs {dict(kwargs)}: {exc}") from None


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except ValueError:
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def make_vector_env(env_id: Any, num_envs: int, max_episode_steps: int | None = None,
                    numpy_vectorized: bool = True, kwargs: Mapping[str, Any] | None = None,
                    wrappers: Sequence[Any] = (), vector: str = "gym") -> VectorEnv:
    """A batch of `num_envs` environments: NumPy-vectorized where Gymnasium has it (and it is asked for, and no
    wrapper is), else synchronous, where sub-env i is seeded with seed + i, so episode i is the same however
    episodes are split; with `vector` 'ale', ale-py's own Atari vector env (pacer.atari_vector)."""
    if vector == "ale":
        from pacer import atari_vector  # ale-py only when asked for

        register_atari(env_id)
        return atari_vector.make(env_id, num_envs, max_episode_steps, dict(kwargs or {}), wrappers)
    if numpy_vectorized and not wrappers and isinstance(env_id, str) and ":" not in env_id:
        spec = gym.spec(env_id)
        entry = spec.vector_entry_point
        if isinstance(entry, str) and "jax" not in entry.lower():
            options = dict(kwargs or {})
            if max_episode_steps is not None:
                options["max_episode_steps"] = max_episode_steps
            venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **options)
            if venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP) == AutoresetMode.NEXT_STEP:
                return venv
            venv.close()
    fns = [lambda: make_single_env(env_id, max_episode_steps, kwargs=kwargs, wrappers=wrappers)
           for _ in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)


def spaces_of(env_id: Any, max_episode_steps: int | None = None, kwargs: Mapping[str, Any] | None = None,
              wrappers: Sequence[Any] = ()) -> tuple[gym.Space[Any], gym.Space[Any]]:
    """Observation and action space of one environment, wrapped (for building models in the parent)."""
    env = make_single_env(env_id, max_episode_steps, kwargs=kwargs, wrappers=wrappers)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def is_image(space: gym.Space[Any]) -> bool:
    """Pixels: a uint8 Box of 2 or 3 dimensions (HxW, HxWxC or CxHxW). Kept as uint8 wherever observations are
    stored or sent, and scaled to [0, 1] inside the model."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3)


def obs_dtype(space: gym.Space[Any]) -> type[np.generic]:
    """The dtype observations are kept in: uint8 for pixels, float32 for everything else."""
    return np.uint8 if is_image(space) else np.float32


def register_atari(env_id: Any) -> None:
    """Atari ids (ALE/Pong-v5, PongNoFrameskip-v4) exist once ale-py has registered them: done on first need."""
    if not isinstance(env_id, str) or ":" in env_id or env_id in gym.registry:
        return
    try:
        import ale_py
    except ImportError:
        if env_id.startswith("ALE/") or "NoFrameskip" in env_id:
            raise PacerError(f"{env_id} needs ale-py: pip install 'pacer-rl[atari]'") from None
        return
    gym.register_envs(ale_py)


def action_kind(env_id: Any, kwargs: Mapping[str, Any] | None = None, wrappers: Sequence[Any] = ()) -> str | None:
    """'continuous' for Box actions, 'discrete' for Discrete, MultiDiscrete and MultiBinary ones, None otherwise:
    which recipe an env without a preset of its own gets (pacer.presets.FAMILIES)."""
    action_space = spaces_of(env_id, kwargs=kwargs, wrappers=wrappers)[1]
    if isinstance(action_space, gym.spaces.Box):
        return "continuous"
    if isinstance(action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        return "discrete"
    return None


def spec_max_episode_steps(env_id: Any) -> int | None:
    """The time limit of a registered Gymnasium id (None for a factory, or an id without one)."""
    register_atari(env_id)
    if callable(env_id) or ":" in env_id or env_id not in gym.registry:
        return None
    return gym.spec(env_id).max_episode_steps


def stop_target(env_id: Any, stop_at_return: float | str | None) -> float | None:
    """The mean return at which a run stops: a number as given, or for 'auto' the env's Gymnasium
    `reward_threshold` (None when it has none, or is a factory)."""
    if stop_at_return != "auto":
        return None if stop_at_return is None else float(stop_at_return)
    register_atari(env_id)
    if callable(env_id) or ":" in env_id or env_id not in gym.registry:
        return None
    threshold = gym.spec(env_id).reward_threshold
    return None if threshold is None else float(threshold)
