"""Action masks: which actions are legal at each step, read from where the env puts them.

Three conventions are in use, and `env.action_mask` names one (`auto`, the default, finds it when the env is probed):
- 'observation': an `action_mask` key of a Dict observation (PettingZoo's classic games); the key is then the mask,
  not an input of the model;
- 'info': `info["action_mask"]` from `reset` and `step` (Gymnasium's convention: Taxi-v4);
- 'method': the env's `action_masks()` (sb3-contrib's MaskablePPO convention).
A mask holds one boolean per logit of the action head (Discrete: n; MultiDiscrete: sum(nvec), each component's in
turn); heads.masked applies it. An env that gives no mask on some step leaves every action legal there; one whose
mask leaves no legal action ends the run in one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from pacer.errors import PacerError

KEY = "action_mask"
SOURCES = ("info", "observation", "method")


def maskable(action_space: gym.Space[Any]) -> bool:
    return isinstance(action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete))


def resolve(setting: str, env: Any) -> str | None:
    """The source `env.action_mask` names for this env (one Gymnasium env, or a PettingZoo env as a vector env of
    its agents): 'auto' finds it (None where there is none, or the actions take no mask); a named source is
    checked."""
    if setting == "none":
        return None
    if setting == "auto":
        return detect(env) if maskable(spaces_of(env)[1]) else None
    check_source(setting, env)
    return setting


def spaces_of(env: Any) -> tuple[gym.Space[Any], gym.Space[Any]]:
    """One agent's observation and action spaces."""
    if isinstance(env, gym.vector.VectorEnv):
        return env.single_observation_space, env.single_action_space
    return env.observation_space, env.action_space


def _has_method(env: Any) -> bool:
    if isinstance(env, gym.vector.VectorEnv):
        return False
    try:
        return callable(env.get_wrapper_attr("action_masks"))
    except AttributeError:
        return False


def configured(setting: str) -> str | None:
    """The source a completed config names (runconfig writes what 'auto' found), or None."""
    return setting if setting in SOURCES else None


def mask_key(setting: str, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> str | None:
    """The Dict key that is the mask, not an input, under this setting (as `resolve` would find it)."""
    in_obs = isinstance(observation_space, gym.spaces.Dict) and KEY in observation_space.spaces
    if in_obs and (setting == "observation" or (setting == "auto" and maskable(action_space))):
        return KEY
    return None


def segments(action_space: gym.Space[Any]) -> list[int]:
    """The mask's groups: one per action component (Discrete: [n]; MultiDiscrete: nvec)."""
    if isinstance(action_space, gym.spaces.Discrete):
        return [int(action_space.n)]
    return [int(k) for k in np.asarray(action_space.nvec).reshape(-1)]  # type: ignore[attr-defined]


def detect(env: Any) -> str | None:
    """Where this env gives its action masks, or None. It may reset the env."""
    observation_space, _ = spaces_of(env)
    if isinstance(observation_space, gym.spaces.Dict) and KEY in observation_space.spaces:
        return "observation"
    if _has_method(env):
        return "method"
    _, info = env.reset(seed=0)
    return "info" if KEY in info else None


def check_source(source: str, env: Any) -> None:
    """Refuse, in one line, a source this env does not have or an action space that takes no mask."""
    observation_space, action_space = spaces_of(env)
    if not maskable(action_space):
        raise PacerError(f"env.action_mask {source!r}: masks apply to Discrete and MultiDiscrete actions, not "
                         f"{action_space}")
    if source == "observation" and not (isinstance(observation_space, gym.spaces.Dict)
                                        and KEY in observation_space.spaces):
        raise PacerError(f"env.action_mask 'observation' needs a Dict observation with an {KEY!r} key; this env's "
                         f"observation space is {observation_space}")
    if source == "method" and not _has_method(env):
        raise PacerError("env.action_mask 'method' needs an env with an action_masks() method")


def read(source: str, env: gym.vector.VectorEnv, obs: Any, info: Mapping[str, Any],
         skip: NDArray[np.bool_] | None = None) -> NDArray[np.bool_]:
    """The masks [num_envs, logits] of the observations `obs` (as the vector env returned them, with `info`),
    checked: each segment (a MultiDiscrete component) must leave some action legal. Rows in `skip` (an episode's
    final observation, whose action the next step's reset ignores; an agent that is not acting) are all legal,
    unchecked: a game's last position may leave no move."""
    groups = segments(env.single_action_space)
    n, size = env.num_envs, sum(groups)
    if source == "observation":
        masks = np.asarray(obs[KEY], dtype=bool).reshape(n, size)
    elif source == "method":
        masks = np.stack([np.asarray(m, dtype=bool).reshape(size) for m in env.call("action_masks")])  # type: ignore[attr-defined]
    else:
        masks = np.ones((n, size), dtype=bool)
        if KEY in info:  # a vector env's infos: the masks, and which envs gave one (the others' rows are zeros)
            given = np.asarray(info.get(f"_{KEY}", np.ones(n, dtype=bool)), dtype=bool)
            masks[given] = np.asarray(info[KEY], dtype=bool).reshape(n, size)[given]
    if skip is not None and skip.any():
        masks[skip] = True
    check(masks, groups, getattr(env.spec, "id", None) or "")
    return masks


def check(masks: NDArray[np.bool_], segments: Sequence[int], name: str) -> None:
    """Refuse masks with no legal action in some segment (the env has left its player no move)."""
    start = 0
    for component, width in enumerate(segments):
        legal = masks[:, start:start + width].any(axis=1)
        if not legal.all():
            row = int(np.argmin(legal))
            where = f"env {row} of the batch" + ("" if len(segments) == 1 else f", component {component}")
            raise PacerError(f"env {name or '(a factory)'} offered no legal action (its action mask is all false, "
                             f"{where}): an env with masks must end the episode before its player has no move")
        start += width


def of_single(source: str | None, env: gym.Env[Any, Any], obs: Any, info: Mapping[str, Any]) -> Any:
    """The legal actions of one (not vectorized) env's observation, as its source gives them (None: no masks, or
    they are in the observation, where `Agent.act` reads them)."""
    if source == "info":
        return info.get(KEY)
    if source == "method":
        return env.get_wrapper_attr("action_masks")()
    return None
