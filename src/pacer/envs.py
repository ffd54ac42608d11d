"""Environment construction: a Gymnasium id or a `module:factory` path, batched into one vector env per worker.

Every vector env here uses Gymnasium's NEXT_STEP autoreset: the step after an episode ends resets that sub-env
and is not a real transition. The rollout masks those steps out, and gets the true final observation of a
truncated episode for free (it is the observation fed into the reset step).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from pacer.errors import PacerError, did_you_mean
from pacer.usercode import BY_VALUE


def resolve_import(path: Any, what: str) -> Callable[..., Any]:
    """Import `package.module:name` (or pass a callable through), with a one-line error when it fails."""
    if callable(path):
        return path
    if isinstance(path, str) and path.startswith(BY_VALUE):
        name = path.removeprefix(BY_VALUE).rpartition(":")[2]
        keyword, key = ("model", "model__factory") if what.startswith("model") else ("env", "env__id")
        raise PacerError(f"this run's {what} {name!r} was passed by value from Python (a notebook or an interactive "
                         f"session) and cannot be imported here: pass it again, e.g. pacer.evaluate(run, "
                         f"{keyword}={name}) or pacer.train(resume=run, {key}={name})")
    if not isinstance(path, str) or ":" not in path:
        raise PacerError(f"{what} must be 'package.module:name', got {path!r}")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PacerError(f"cannot import {what} module {module_name!r}: {exc}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PacerError(f"module {module_name!r} has no {part!r} (from {what} {path!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PacerError(f"{what} {path!r} is not callable")
    return obj


def check_signature(fn: Callable[..., Any], args: tuple[Any, ...], what: str, expected: str,
                    kwargs: Mapping[str, Any] | None = None) -> None:
    """A one-line error for a factory that cannot take the arguments pacer passes it."""
    try:
        inspect.signature(fn).bind(*args, **(kwargs or {}))
    except TypeError:
        if kwargs:
            expected = f"{expected[:-1]}**env.kwargs) with env.kwargs {dict(kwargs)}"
        raise PacerError(f"{what} {getattr(fn, '__qualname__', fn)!r} must be callable as {expected}") from None
    except ValueError:  # builtins without a signature: let the call itself decide
        pass


def check_env_id(env_id: Any) -> None:
    """Fail early, in the parent, for an unknown Gymnasium id or an unimportable factory."""
    if callable(env_id) or (isinstance(env_id, str) and ":" in env_id):
        resolve_import(env_id, "env factory")
        return
    if env_id not in gym.registry:
        raise PacerError(f"unknown environment {env_id!r}{did_you_mean(env_id, gym.registry.keys())}")


def make_single_env(env_id: Any, max_episode_steps: int | None = None, render_mode: str | None = None,
                    kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """One environment; `kwargs` go to `gym.make` (or to the factory). Training envs never render: LunarLander's
    rgb_array mode piles up particle bodies. A factory gets `render_mode` only when one is asked for and it takes
    that argument (whether the env then renders is the caller's check: `env.render_mode`)."""
    kwargs = dict(kwargs or {})
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
                    numpy_vectorized: bool = True, kwargs: Mapping[str, Any] | None = None) -> VectorEnv:
    """A batch of `num_envs` environments: NumPy-vectorized where Gymnasium has it (and it is asked for), else
    synchronous, where sub-env i is seeded with seed + i, so episode i is the same however episodes are split."""
    if numpy_vectorized and isinstance(env_id, str) and ":" not in env_id:
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
    fns = [lambda: make_single_env(env_id, max_episode_steps, kwargs=kwargs) for _ in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)


def spaces_of(env_id: Any, max_episode_steps: int | None = None, kwargs: Mapping[str, Any] | None = None
              ) -> tuple[gym.Space[Any], gym.Space[Any]]:
    """Observation and action space of one environment (for building models in the parent)."""
    env = make_single_env(env_id, max_episode_steps, kwargs=kwargs)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def stop_target(env_id: Any, stop_at_return: float | str | None) -> float | None:
    """The mean return at which a run stops: a number as given, or for 'auto' the env's Gymnasium
    `reward_threshold` (None when it has none, or is a factory)."""
    if stop_at_return != "auto":
        return None if stop_at_return is None else float(stop_at_return)
    if callable(env_id) or ":" in env_id or env_id not in gym.registry:
        return None
    threshold = gym.spec(env_id).reward_threshold
    return None if threshold is None else float(threshold)
