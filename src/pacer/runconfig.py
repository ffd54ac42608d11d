"""A run's one front door: the config a run uses, built the same way by `pacer train` and `pacer.train()`.

`resolve` builds it: defaults <- preset (by default the one made for the env and algorithm) <- a config file or
dict <- overrides (flags, `--set`, keyword arguments); to resume, the run's config.yaml <- overrides. It imports
neither torch nor gymnasium, so the `pacer` command resolves and checks a config before its ~2 s of imports, and
starts the fork server first. `complete` then writes
down every value a run decides at its start (the algorithm's epochs and minibatches, the stop target, the env's
time limit, the start method, the run directory), so that config.yaml holds every value the run used.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pacer.backends import check_name
from pacer.config import Config, from_saved, load_yaml, merge, nest
from pacer.errors import PacerError
from pacer.presets import announce, needs_kind
from pacer.presets import resolve as with_preset
from pacer.runtime.processes import resolve_start_method

ConfigSource = Config | dict[str, Any] | str | Path | None
"""A whole Config, a nested dict of overrides on the preset, a YAML file's path, or nothing."""


def resolve(config: ConfigSource = None, *, preset: str | None = "auto", overrides: dict[str, Any] | None = None,
            resume: str | Path | None = None) -> tuple[Config, list[str]]:
    """The run's config and the lines to tell the user (which preset was picked). `overrides` use dotted keys
    ('runtime.workers'). With `resume`, the config is the run's config.yaml with `overrides` on top; a Config
    passed along with it is taken as that resolved config (the `pacer` command resolves before it trains)."""
    overrides = overrides or {}
    notes: list[str] = []
    if resume is not None:
        if isinstance(config, Config):
            cfg = config.replace(overrides)
        elif config is not None or preset not in (None, "auto", "none"):
            raise PacerError("a resume continues the run with its saved config: pass overrides only, not a config "
                             "or a preset")
        else:
            cfg = from_saved(load_yaml(saved_config(resume))).replace(overrides)
    elif isinstance(config, Config):
        cfg = with_preset(config, preset).replace(overrides)
    else:
        data = load_yaml(config) if isinstance(config, (str, Path)) else (config or {})
        # the preset is chosen for the env and algorithm that the file and overrides ask for; they override it
        wanted = merge(nest(data), nest(overrides))
        kind = kind_of(wanted) if needs_kind(wanted, preset) else None
        cfg = with_preset(wanted, preset, kind)
        line = announce(wanted, preset, kind)
        if line is not None:
            notes.append(line)
    check_name(cfg.runtime.backend)
    return cfg, notes


def kind_of(wanted: dict[str, Any]) -> str | None:
    """The env's kind of actions, for an env with no preset of its own (this makes one env, with gymnasium)."""
    from pacer.envs import action_kind, check_env_id

    env = wanted.get("env", {})
    env_id = env.get("id", "CartPole-v1")
    check_env_id(env_id)
    return action_kind(env_id, env.get("kwargs") or {}, env.get("wrappers") or ())


def saved_config(run_dir: str | Path) -> Path:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise PacerError(f"cannot resume {str(run_dir)!r}: it holds no config.yaml from an earlier run")
    return path


def run_dir_for(cfg: Config, resume: str | Path | None) -> Path:
    """The run's directory: the resumed one, `log.run_dir` (which must be new or empty), or a new name."""
    if resume is not None:
        return Path(resume)
    if cfg.log.run_dir is not None:
        path = Path(cfg.log.run_dir)
        if path.exists() and any(path.iterdir()):
            raise PacerError(f"run directory {str(path)!r} already exists; continue it with --resume {path} "
                             "or choose another --run-dir")
        return path
    env_name = str(cfg.env.id).replace(":", "_").replace("/", "_")
    base = Path("runs") / f"{env_name}-{cfg.algo.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():  # two runs started in the same second
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def complete(cfg: Config, run_dir: Path) -> Config:
    """`cfg` with every value the run decides at its start written in, in place of null or 'auto'."""
    from pacer.algos import get_algo  # torch and gymnasium: only once the run starts, not before the fork server
    from pacer.envs import spec_max_episode_steps, stop_target

    algorithm = get_algo(cfg.algo.name)
    rt = cfg.runtime
    return cfg.replace({
        "algo.epochs": cfg.algo.epochs or algorithm.epochs,
        "algo.minibatches": cfg.algo.minibatches or algorithm.minibatches,
        "env.max_episode_steps": cfg.env.max_episode_steps or spec_max_episode_steps(cfg.env.id),
        "runtime.stop_at_return": stop_target(cfg.env.id, rt.stop_at_return) if rt.eval_every else None,
        "runtime.start_method": resolve_start_method(rt.start_method),
        "log.run_dir": str(run_dir),
    })
