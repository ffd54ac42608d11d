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
from typing import TYPE_CHECKING, Any

from pacer.backends import check_name
from pacer.config import Config, from_saved, load_yaml, merge, nest
from pacer.errors import PacerError
from pacer.presets import announce, needs_kind
from pacer.presets import resolve as with_preset
from pacer.runtime.processes import resolve_start_method

if TYPE_CHECKING:
    from pacer.envs import EnvSpec

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
    if cfg.env.self_play and cfg.model.memory != "none":
        raise PacerError("env.self_play trains feedforward policies (its opponents keep no memory): set "
                         "model.memory: none")
    return cfg, notes


def kind_of(wanted: dict[str, Any]) -> str | None:
    """The env's kind, for an env with no preset of its own: 'continuous' or 'discrete' by its actions,
    'pixels-continuous' for Box actions from image observations (pacer.presets.FAMILIES). This probes the env
    (`envs.probe`), which the run's own probe then reuses."""
    from pacer.config import EnvConfig
    from pacer.envs import probe

    env = wanted.get("env", {})
    spec = probe(EnvConfig(id=env.get("id", EnvConfig.id), kwargs=env.get("kwargs") or {},
                           wrappers=tuple(env.get("wrappers") or ()), agent_id=bool(env.get("agent_id", False)),
                           self_play=bool(env.get("self_play", False))), frames=wants_frames(wanted))
    if spec.action_kind == "continuous" and spec.image:
        return "pixels-continuous"
    return spec.action_kind


def wants_frames(config: Config | dict[str, Any]) -> bool:
    """Whether the run films (`log.video_every`, or a tracker's final video): its probe checks a frame renders."""
    if isinstance(config, Config):
        return bool(config.log.video_every) or bool(config.log.track)
    log = nest(config).get("log", {})
    return bool(log.get("video_every")) or bool(log.get("track"))


def check(cfg: Config) -> None:
    """What a run would refuse at its start, checked without starting it (`pacer train --print-config`): the
    algorithm, the env id or factory, the start method."""
    from pacer.algos import get_algo
    from pacer.envs import check_env_id

    get_algo(cfg.algo.name)
    check_env_id(cfg.env.id)
    resolve_start_method(cfg.runtime.start_method)


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


def complete(cfg: Config, run_dir: Path, spec: EnvSpec | None = None) -> Config:
    """`cfg` with every value the run decides at its start written in, in place of null or 'auto': the algorithm's
    epochs and minibatches, the env's time limit and stop target, the encoder for its observations, whether the
    hand-written gradient covers the run, the start method, the run directory. `spec`: the env's probe (made here
    when not given)."""
    from pacer.algos import get_algo  # torch and gymnasium: only once the run starts, not before the fork server
    from pacer.envs import probe
    from pacer.heads import head_for
    from pacer.model import cnn_fits

    spec = spec or probe(cfg.env)
    algorithm = get_algo(cfg.algo.name)
    rt = cfg.runtime
    encoder = cfg.model.encoder
    if encoder == "auto":
        encoder = "cnn" if spec.image and cnn_fits(spec.obs_shape) and cfg.model.factory is None else "mlp"
    time_limit = cfg.env.max_episode_steps or spec.max_episode_steps
    cfg = cfg.replace({
        "algo.epochs": cfg.algo.epochs or algorithm.epochs,
        "algo.minibatches": cfg.algo.minibatches or algorithm.minibatches,
        "env.max_episode_steps": time_limit,
        "runtime.eval_max_episode_steps": rt.eval_max_episode_steps or time_limit,
        "runtime.stop_at_return": spec.stop_target(rt.stop_at_return) if rt.eval_every else None,
        "runtime.start_method": resolve_start_method(rt.start_method),
        "model.encoder": encoder,
        "env.action_mask": spec.action_mask or "none",
        "algo.sequence_length": cfg.algo.sequence_length or (cfg.algo.n_steps if cfg.model.memory != "none" else None),
        "log.run_dir": str(run_dir),
    })
    if cfg.algo.analytic_grad and algorithm.fast_grad_refusal(cfg.model, cfg.algo, head_for(spec.action_space),
                                                              spec.layout):
        cfg = cfg.replace({"algo.analytic_grad": False})  # config.yaml says what computed the gradient
    return cfg
