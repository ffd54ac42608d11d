"""Environment construction: a Gymnasium id or a `module:factory` path, batched into one vector env per worker.

Every function here takes the run's `EnvConfig` (id, kwargs, wrappers, time limit, vector path) whole. `probe`
makes one env in the parent and returns what the rest of a run asks of it (`EnvSpec`: spaces, time limit, reward
threshold, whether it renders, its registration), so that the parent opens the env once.

Every vector env here uses Gymnasium's NEXT_STEP autoreset: the step after an episode ends resets that sub-env
and is not a real transition. The rollout masks those steps out, and gets the true final observation of a
truncated episode for free (it is the observation fed into the reset step).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec as Registration
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from pacer import masks, multiagent, tasks
from pacer.config import EnvConfig
from pacer.errors import PacerError, did_you_mean, first_line
from pacer.spaces import ObsLayout
from pacer.usercode import check_signature, resolve_import
from pacer.wrappers import apply as apply_wrappers

tasks.register()  # pacer's own ids (CartPoleNoVel-v1), wherever envs are made


def factory_of(env_id: Any) -> Callable[..., Any] | None:
    """The env factory an id names (a callable, or 'module:name'), or None for a Gymnasium id."""
    if callable(env_id) or (isinstance(env_id, str) and ":" in env_id):
        return resolve_import(env_id, "env factory")
    return None


def check_env_id(env_id: Any) -> None:
    """Fail early, in the parent, for an unknown Gymnasium id or an unimportable factory."""
    if factory_of(env_id) is not None:
        return
    register_atari(env_id)
    if env_id not in gym.registry:
        raise PacerError(f"unknown environment {env_id!r}{did_you_mean(env_id, gym.registry.keys())}")


def make_single_env(env: EnvConfig, render_mode: str | None = None) -> gym.Env:
    """One environment; `env.kwargs` go to `gym.make` (or to the factory), then `env.wrappers` wrap it in order.
    Training envs never render: LunarLander's rgb_array mode piles up particle bodies. A factory gets
    `render_mode` only when one is asked for and it takes that argument (whether the env then renders is the
    caller's check: `env.render_mode`). A PettingZoo env comes back as it is (pacer/multiagent.py)."""
    made = _make(env.id, env.max_episode_steps, render_mode, dict(env.kwargs))
    if multiagent.is_pettingzoo(made):
        if env.wrappers:
            raise PacerError(f"env.wrappers are Gymnasium wrappers, and {env.id} is a PettingZoo env: wrap it in an "
                             "env factory (SuperSuit's wrappers) instead")
        return made
    return apply_wrappers(made, env.wrappers)


def make_agents_env(env: EnvConfig, copies: int, first: Any = None, render_mode: str | None = None
                    ) -> VectorEnv:
    """`copies` copies of a PettingZoo env, a row per agent (pacer/multiagent.py), or with `env.self_play` one
    row per game, the learner's seat (pacer/selfplay.py); `first`: one already made."""
    made = iter([first] if first is not None else [])

    def make() -> Any:
        return next(made, None) or _make(env.id, None, render_mode, dict(env.kwargs))

    name = str(getattr(env.id, "__qualname__", env.id))
    if env.self_play:
        from pacer.selfplay import SelfPlayVectorEnv

        return SelfPlayVectorEnv(make, copies, name)
    return multiagent.AgentsVectorEnv(make, copies, name, env.agent_id, env.max_episode_steps)


def _make(env_id: Any, max_episode_steps: int | None, render_mode: str | None, kwargs: dict[str, Any]) -> gym.Env:
    factory = factory_of(env_id)
    if factory is not None:
        check_signature(factory, (), "env factory", "factory()", kwargs)
        if render_mode is not None and _accepts(factory, "render_mode"):
            kwargs["render_mode"] = render_mode
        env = factory(**kwargs)
        if multiagent.is_pettingzoo(env):
            return env
        if not isinstance(env, gym.Env):
            raise PacerError(f"env factory {env_id!r} returned {type(env).__name__}, not a gymnasium.Env or a "
                             "PettingZoo env")
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


def make_vector_env(env: EnvConfig, num_envs: int, numpy_vectorized: bool = True) -> VectorEnv:
    """A batch of `num_envs` environments: NumPy-vectorized where Gymnasium has it (and it is asked for, and no
    wrapper is), else synchronous, where sub-env i is seeded with seed + i, so episode i is the same however
    episodes are split; with `env.vector` 'ale', ale-py's own Atari vector env (pacer.atari_vector)."""
    if env.vector == "ale":
        from pacer import atari_vector  # ale-py only when asked for

        register_atari(env.id)
        return atari_vector.make(env, num_envs)
    if numpy_vectorized and not env.wrappers and factory_of(env.id) is None:
        entry = gym.spec(env.id).vector_entry_point
        if isinstance(entry, str) and "jax" not in entry.lower():
            options = dict(env.kwargs)
            if env.max_episode_steps is not None:
                options["max_episode_steps"] = env.max_episode_steps
            venv = gym.make_vec(env.id, num_envs=num_envs, vectorization_mode="vector_entry_point", **options)
            if venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP) == AutoresetMode.NEXT_STEP:
                return venv
            venv.close()
    first = make_single_env(env)
    if multiagent.is_pettingzoo(first):
        return make_agents_env(env, num_envs, first)
    made = iter([first])
    return SyncVectorEnv([lambda: next(made, None) or make_single_env(env) for _ in range(num_envs)],
                         autoreset_mode=AutoresetMode.NEXT_STEP)


def layout_of(env: EnvConfig, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> ObsLayout:
    """What a run keeps of this env's observations: `env.observation_keys`, less the action mask's key."""
    return ObsLayout(observation_space, env.observation_keys,
                     masks.mask_key(env.action_mask, observation_space, action_space))


def is_image(space: gym.Space[Any]) -> bool:
    """Pixels: a uint8 Box of 2 or 3 dimensions (HxW, HxWxC or CxHxW). Kept as uint8 wherever observations are
    stored or sent, and scaled to [0, 1] inside the model."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3)


def obs_dtype(space: gym.Space[Any]) -> type[np.generic]:
    """The dtype observations are kept in: uint8 for pixels, float32 for everything else."""
    return np.uint8 if is_image(space) else np.float32


@dataclass(frozen=True)
class EnvSpec:
    """What a run knows of its env, from the one env `probe` made in the parent. Plain and picklable: it travels
    to workers, so that an env registered only in the parent (say, under a script's `__main__` guard) is made
    there too."""

    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    max_episode_steps: int | None = None
    """The Gymnasium registration's time limit (None for a factory, or an id without one)."""
    reward_threshold: float | None = None
    """The registration's `reward_threshold` (the default stop-when-solved target)."""
    render_error: str | None = None
    """Why the env cannot film rgb_array frames, when `probe` was asked to check (None: it can, or unchecked)."""
    frames_checked: bool = False
    registration: Registration | None = None
    """How the id was registered in the parent (None for a factory)."""
    observation_keys: tuple[str, ...] = ()
    """`env.observation_keys`: the Dict keys kept (empty: every key a network can read)."""
    action_mask: str | None = None
    """Where the env gives action masks ('info', 'observation', 'method'; pacer/masks.py), or None."""
    agents: tuple[str, ...] = ()
    """A PettingZoo env's `possible_agents`, each a row of the batch (pacer/multiagent.py); empty for one agent."""

    @functools.cached_property
    def layout(self) -> ObsLayout:
        """What observations are kept as (pacer/spaces.py)."""
        return ObsLayout(self.observation_space, self.observation_keys,
                         masks.KEY if self.action_mask == "observation" else None)

    @property
    def kept_space(self) -> gym.Space[Any]:
        """The observation space of what is kept: what models are built for."""
        return self.layout.kept_space

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.observation_space.shape or ())

    @property
    def obs_dtype(self) -> type[np.generic]:
        return obs_dtype(self.observation_space)

    @property
    def image(self) -> bool:
        return self.layout.image

    @property
    def action_kind(self) -> str | None:
        """'continuous' for Box actions, 'discrete' for Discrete, MultiDiscrete and MultiBinary ones, None
        otherwise: which recipe an env without a preset of its own gets (pacer.presets.FAMILIES)."""
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            return "continuous"
        if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
            return "discrete"
        return None

    def stop_target(self, stop_at_return: float | str | None) -> float | None:
        """The mean return at which a run stops: a number as given, or for 'auto' the registration's
        `reward_threshold` (None when it has none, or is a factory)."""
        if stop_at_return == "auto":
            return self.reward_threshold
        return None if stop_at_return is None else float(stop_at_return)


_probed: tuple[tuple[Any, ...], EnvSpec] | None = None  # the last probe: a run asks several times, the env is made once


def probe(env: EnvConfig, frames: bool = False) -> EnvSpec:
    """Make one env of the config, read what a run needs of it, and close it; with `frames`, also check that it
    films rgb_array frames (render_error). The last answer is kept: probing the same env again makes nothing."""
    global _probed
    key = (env.id, dict(env.kwargs), tuple(env.wrappers), tuple(env.observation_keys), env.action_mask, env.agent_id,
           env.max_episode_steps)
    if _probed is not None and _same(_probed[0], key) and (_probed[1].frames_checked or not frames):
        return _probed[1]
    check_env_id(env.id)
    made: Any
    made, render_error = _probe_env(env, frames)
    if multiagent.is_pettingzoo(made):  # one copy, its agents as rows: their spaces (with the agent id, if asked)
        made = make_agents_env(env, 1, made)
    elif env.self_play:
        raise PacerError(f"env.self_play needs a turn-based PettingZoo game (an AEC env, as connect_four_v3); "
                         f"{env.id} is not one")
    try:
        registration = None if factory_of(env.id) is not None else gym.spec(env.id)
        observation_space, action_space = masks.spaces_of(made)
        spec = EnvSpec(observation_space, action_space,
                       max_episode_steps=None if registration is None else registration.max_episode_steps,
                       reward_threshold=None if registration is None or registration.reward_threshold is None
                       else float(registration.reward_threshold),
                       render_error=render_error, frames_checked=frames, registration=registration,
                       observation_keys=tuple(env.observation_keys),
                       action_mask=masks.resolve(env.action_mask, made),
                       agents=tuple(getattr(made, "possible_agents", ())))
        spec.layout  # noqa: B018 - checked here, in the parent: a space pacer cannot read is one line now
    finally:
        made.close()
    _probed = (key, spec)
    return spec


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """The same env: the same id (the very factory object, or an equal string), kwargs and wrappers."""
    same_id = a[0] is b[0] or (isinstance(a[0], str) and a[0] == b[0])
    return same_id and a[1:] == b[1:]


def _probe_env(env: EnvConfig, frames: bool) -> tuple[gym.Env, str | None]:
    """The probe's env and, with `frames`, why it cannot film (None: it can). One env either way, unless the
    renderer's own package is missing (then a plain one)."""
    if not frames:
        return make_single_env(env), None
    name = getattr(env.id, "__qualname__", None) or str(env.id)
    with warnings.catch_warnings():  # gym.make warns about a render mode the env lacks: we say so below
        warnings.filterwarnings("ignore", message=".*render_mode.*")
        try:
            made = make_single_env(env, render_mode="rgb_array")
        except gym.error.DependencyNotInstalled as exc:
            return make_single_env(env), (f"rendering {name} needs a package that is not installed "
                                          f"({first_line(exc)}); pip install 'pacer-rl[video]'")
    modes = list(made.metadata.get("render_modes") or [])
    if made.render_mode != "rgb_array":
        if "rgb_array" in modes:  # the env could, but a factory did not pass the mode on
            return made, (f"env factory {name} made an env that does not render: let it take render_mode=None and "
                          "pass it to the env (e.g. gym.make(..., render_mode=render_mode))")
        return made, f"env {name} cannot render 'rgb_array' frames (its render modes: {modes})"
    try:
        made.reset(seed=0)
        frame = np.asarray(made.render())
    except gym.error.DependencyNotInstalled as exc:
        return made, (f"rendering {name} needs a package that is not installed ({first_line(exc)}); "
                      "pip install 'pacer-rl[video]'")
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        return made, f"render() returned an array of shape {frame.shape}, not an RGB image [height, width, 3]"
    return made, None


def ensure_registered(spec: EnvSpec | None) -> None:
    """In a worker: register the parent's registration of the run's id, if this process lacks it (an id a script
    registered under its `__main__` guard, which a spawned worker never runs)."""
    registration = None if spec is None else spec.registration
    if registration is not None and registration.id not in gym.registry:
        gym.registry[registration.id] = dataclasses.replace(registration)


def register_atari(env_id: Any) -> None:
    """Atari ids (ALE/Pong-v5, PongNoFrameskip-v4) exist once ale-py has registered them, MiniGrid's and BabyAI's
    once minigrid has: done on first need."""
    if not isinstance(env_id, str) or ":" in env_id or env_id in gym.registry:
        return
    if env_id.startswith(("MiniGrid-", "BabyAI-")):
        try:
            import minigrid
        except ImportError:
            raise PacerError(f"{env_id} needs minigrid: pip install 'pacer-rl[minigrid]'") from None
        gym.register_envs(minigrid)
        return
    try:
        import ale_py
    except ImportError:
        if env_id.startswith("ALE/") or "NoFrameskip" in env_id:
            raise PacerError(f"{env_id} needs ale-py: pip install 'pacer-rl[atari]'") from None
        return
    gym.register_envs(ale_py)
