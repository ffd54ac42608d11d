"""Run configuration: typed dataclasses, validation with one-line errors, YAML in and out.

Every field has a docstring (read it here or in docs/config.md). A config is built as
defaults <- preset <- YAML file <- command-line flags, and validated once, in `Config.from_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pacer.aliases import key_hint
from pacer.errors import PacerError, did_you_mean, first_line
from pacer.usercode import import_path
from pacer.validate import build_section


@dataclass(frozen=True)
class EnvConfig:
    id: Any = field(default="CartPole-v1", metadata={"required": True})
    """A Gymnasium id (CartPole-v1, Acrobot-v1, LunarLander-v3, Pendulum-v1, ...) or `package.module:factory`
    naming a callable that returns a `gymnasium.Env` or a PettingZoo env (from Python, also the picklable callable
    itself); a PettingZoo env module is its own factory (`mpe2:simple_spread_v3`)."""
    envs_per_worker: int = field(default=32, metadata={"min": 1})
    """Environments stepped together by one worker, with one batched forward pass per step. More envs step faster
    but learn less per env step: on CartPole 256 gave 4.6x the env steps/s of 32 and needed 5-7x the env steps to
    solve; a small custom env learned worse within a budget (BENCHMARKS.md, issue 21)."""
    termination_reward: float | None = None
    """If set, replaces the reward of a step that *terminates* an episode (not one that is truncated)."""
    max_episode_steps: int | None = field(default=None, metadata={"min": 1})
    """Truncate episodes after this many steps. Left out (null), the Gymnasium spec's own limit, which a run writes
    into its config.yaml (null stays for an env without one, or a factory: no limit is added)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for `gymnasium.make` (or the factory), e.g. `{continuous: true}` for LunarLander-v3;
    from the command line `--set env.kwargs.continuous=true`."""
    wrappers: tuple[Any, ...] = field(default=(), metadata={"wrapper_list": True})
    """Gymnasium wrappers applied in order to every training and evaluation env: each a name from
    `gymnasium.wrappers` (`FrameStackObservation`), an import path `module:Class`, or a one-key mapping of either to
    its arguments (`{FrameStackObservation: {stack_size: 4}}`)."""
    observation_keys: tuple[str, ...] = ()
    """For a Dict observation: the keys the model reads (empty: every key it can, leaving out, with one line, what no
    network reads, such as MiniGrid's Text `mission`); docs/spaces.md."""
    action_mask: Literal["auto", "none", "info", "observation", "method"] = "auto"
    """Where the env says which actions are legal: 'info' (`info["action_mask"]`, Taxi-v4), 'observation' (an
    `action_mask` key of a Dict observation, PettingZoo's games), 'method' (the env's `action_masks()`), 'none' (every
    action legal); 'auto' finds which one the env has (config.yaml says). Discrete and MultiDiscrete actions;
    docs/spaces.md."""
    agent_id: bool = False
    """Many agents (PettingZoo): give each agent its index as an input (one-hot), so that the policy all agents share
    can act differently for each; docs/multi-agent.md."""
    self_play: bool = False
    """A two-player turn-based PettingZoo game (connect_four_v3, ...): the policy plays both seats, against itself
    and a pool of its past snapshots; evaluation plays a random player (pacer/selfplay.py, docs/multi-agent.md)."""
    vector: Literal["gym", "ale"] = "gym"
    """How a worker steps its envs: 'gym' Gymnasium's NumPy-vectorized form where the env has one and no wrapper
    is set, else the wrapped envs one after another; 'ale' (ALE/ ids with the `atari` preset's wrappers) ale-py's
    C++ AtariVectorEnv doing the same preprocessing (the same frames, but black frames stack up an episode's start),
    whose games a checkpoint cannot hold: a resume starts new games. Evaluation always uses the wrapped envs."""


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple[int, ...] = field(default=(64, 64), metadata={"min": 1})
    """Sizes of the hidden layers of the trunk (or of each trunk when `shared_trunk` is false)."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Activation between hidden layers."""
    shared_trunk: bool = False
    """One trunk feeding both heads (true) or separate actor and critic networks (false)."""
    critic_hidden: tuple[int, ...] = field(default=(), metadata={"min": 1})
    """Extra hidden layers of the critic branch on top of a shared trunk."""
    detach_critic: bool = False
    """With a shared trunk, stop the critic's gradient at the trunk (the critic learns only its own branch)."""
    critic_output: Literal["linear", "tanh"] = "linear"
    """Squash the value with tanh (for returns normalized into [-1, 1])."""
    normalize_input: Literal["none", "l2", "running"] = "none"
    """'l2' divides each observation by its L2 norm before the first layer; 'running' standardizes it with the
    run's running mean and variance (shared by all workers, saved with the model, applied in eval and act)."""
    init: Literal["default", "orthogonal"] = "default"
    """'orthogonal': orthogonal weights (gain sqrt 2 for hidden layers, 0.01 for the policy head, 1 for the value
    head) and zero biases, as in the PPO implementations of OpenAI Baselines, SB3 and CleanRL; 'default': torch's."""
    encoder: Literal["auto", "mlp", "cnn"] = "auto"
    """What reads the observations: 'cnn' the Nature CNN (three convolutions and 512 units, as in DQN and A3C; for
    pixels, scaled to [0, 1] inside the model), 'mlp' the `hidden` layers, 'auto' the CNN for image observations
    (a uint8 Box of HxW, HxWxC or CxHxW) and the MLP for everything else."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (Box action spaces)."""
    memory: Literal["none", "lstm", "gru"] = "none"
    """A recurrent core between the encoder (the `hidden` MLP, or the CNN) and the heads, for tasks whose observation
    does not show the whole state (docs/memory.md): 'lstm' or 'gru' of `memory_size` units; its state is kept per
    env, reset where an episode starts, and learned through with truncated backpropagation (algo.sequence_length)."""
    memory_size: int = field(default=128, metadata={"min": 1})
    """Units of the recurrent core."""
    memory_shared: bool = False
    """One encoder and core feeding both heads (true, as CleanRL's Atari LSTM, whose rewards are clipped), or the critic
    with an encoder and core of its own (false, as sb3-contrib's RecurrentPPO by default: on CartPole with an LSTM of
    64, a shared core was still at a greedy 90 after 80k env steps, separate ones at 500)."""
    factory: Any = None
    """`module:callable` (or, from Python, a picklable callable or nn.Module subclass) called as
    `factory(observation_space, action_space)` and returning a module that follows the actor-critic interface
    (docs/models.md). When set, the layer spec above is ignored."""


@dataclass(frozen=True)
class AlgoConfig:
    name: str = "ppo"
    """Registered algorithm: 'mc' (Monte-Carlo advantage actor-critic), 'a2c' (n-step, GAE), 'a3c' (a2c with a
    Hogwild shared optimizer), 'ppo', or one registered with `pacer.register_algo`."""
    gamma: float = field(default=0.99, metadata={"min": 0.0, "max": 1.0})
    """Discount factor."""
    gae_lambda: float = field(default=0.95, metadata={"min": 0.0, "max": 1.0})
    """GAE lambda (1.0: n-step Monte-Carlo advantages bootstrapped at the rollout end)."""
    n_steps: int = field(default=32, metadata={"min": 1})
    """Steps per environment in one rollout (ignored by 'mc', which plays whole episodes)."""
    lr: float = field(default=1e-3, metadata={"min": 0.0})
    """Learning rate."""
    lr_schedule: Literal["constant", "linear"] = "linear"
    """'linear' decays the learning rate to zero at `runtime.total_steps` (a stable final policy)."""
    optimizer: Literal["adam", "rmsprop"] = "adam"
    """Optimizer applied to the shared parameters."""
    shared_optimizer: bool = True
    """One optimizer whose state lives in shared memory (A3C), or one optimizer state per worker."""
    value_coef: float = field(default=0.5, metadata={"min": 0.0})
    """Weight of the critic loss."""
    entropy_coef: float = field(default=0.0, metadata={"min": 0.0})
    """Weight of the entropy bonus."""
    max_grad_norm: float | None = field(default=0.5, metadata={"above": 0.0})
    """Clip the gradient's global norm to this (None: no clipping)."""
    normalize_returns: Literal["none", "l2", "std"] = "none"
    """'mc' only: scale the episode's returns by their L2 norm ('l2') or to zero mean, unit std ('std')."""
    normalize_advantages: bool = True
    """Standardize advantages within each batch."""
    scale_rewards: bool = False
    """Divide rewards by the running standard deviation of the discounted return (per worker), clipped to +-10,
    as SB3's VecNormalize does; reported episode returns stay unscaled."""
    clip_rewards: float | None = field(default=None, metadata={"above": 0.0})
    """Clip each training reward to [-c, c] (Atari: 1, as DQN, A3C and PPO do); episode returns, evaluations and
    videos keep the game's own score."""
    epochs: int | None = field(default=None, metadata={"min": 1})
    """Passes over each rollout. Left out (null), the algorithm's own: 4 for 'ppo', 1 for the others; a run writes
    the value it uses into its config.yaml."""
    minibatches: int | None = field(default=None, metadata={"min": 1})
    """Minibatches per pass. Left out (null), the algorithm's own: 8 for 'ppo', 1 for the others; a run writes the
    value it uses into its config.yaml."""
    clip_range: float = field(default=0.2, metadata={"min": 0.0})
    """PPO ratio clipping."""
    analytic_grad: bool = True
    """Compute the gradient by hand, without autograd, where the algorithm has such a path and it covers the run
    (a2c, a3c and ppo with the built-in MLP, Discrete or 1-D Box actions, no shared trunk, a linear critic output):
    the same gradient (to float rounding), in about half the time per minibatch (algos/analytic.py). A run writes
    what it used into its config.yaml: false where autograd computes the gradient. false: autograd always."""
    sequence_length: int | None = field(default=None, metadata={"min": 1})
    """Recurrent models: the steps of the rollout learned through at a time (truncated backpropagation), each chunk
    starting from the state stored when it was collected; it must divide `n_steps`. Left out (null), the whole
    rollout (each env's `n_steps` steps are one sequence); a run writes the value it uses into its config.yaml."""
    target_kl: float | None = field(default=None, metadata={"above": 0.0})
    """Skip the rest of a rollout's updates once a minibatch's approx-KL to the collecting policy exceeds
    1.5 x this (None: never; PPO and any algorithm whose loss reports 'approx_kl')."""


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str = "local"
    """'local': one process per worker on this machine; 'ray': one Ray actor per worker, on this machine or a
    cluster (`pip install 'pacer-rl[ray]'`); 'inline': the same worker code in this process (debugging, tests)."""
    address: str | None = None
    """Ray: the cluster to join ('auto', or the head's host:port), left running at the end; None starts a private
    Ray instance on this machine, on loopback only, and shuts it down at the end."""
    cpus_per_worker: float = field(default=1.0, metadata={"above": 0.0})
    """Ray: CPUs reserved for each worker actor (Ray places actors on nodes with that many free)."""
    group_minibatch: Literal["worker", "pooled"] = "worker"
    """Ray: how large one update is when the actors learn as one data-parallel group (each update's gradient is the
    mean over the group). 'worker': each member splits its rollout into `algo.minibatches` x the group's size, so an
    update is as large as a local worker's and the group makes as many updates per env step as that many local
    workers do: the same algorithm as on local processes (summary.json lists what each member used). 'pooled': each
    member splits its rollout into `algo.minibatches`, so the group learns like one worker holding all the envs
    (DD-PPO's large batches; 1/N the updates per env step of N local workers, fewer all-reduces; a run says so)."""
    workers: int = field(default=2, metadata={"min": 1})
    """Worker count."""
    start_method: Literal["auto", "fork", "forkserver", "spawn"] = "auto"
    """How worker processes start; 'auto' is forkserver where available (safe with threads), else spawn (a run
    writes the method it uses into its config.yaml)."""
    threads_per_worker: int = field(default=1, metadata={"min": 1})
    """torch threads in each worker; one is fastest for small networks."""
    total_steps: int = field(default=1_000_000, metadata={"min": 1})
    """Stop after this many environment steps (counted over all workers)."""
    total_episodes: int | None = field(default=None, metadata={"min": 1})
    """Also stop after this many finished episodes (the classic setup counts episodes, not steps)."""
    time_limit: float | None = field(default=None, metadata={"min": 0.0})
    """Stop after this many seconds of training in this session: wall time from the workers' start, evaluations
    included, less only the time the workers were held (`pause_for_eval`, a confirming evaluation), in which
    nothing trains. summary.json's steps_per_s divides by the same time. A resumed run gets the limit afresh."""
    seed: int = field(default=0, metadata={"min": 0})
    """Base seed; worker i uses seed + i."""
    eval_every: int = field(default=25_000, metadata={"min": 0})
    """Greedy evaluation every this many env steps during training (0: never)."""
    eval_share: float = field(default=0.08, metadata={"above": 0.0, "max": 1.0})
    """Most share of the wall time that greedy evaluations (and training videos) may take: after one that took d
    seconds, the next waits at least d x (1 - share) / share seconds, even when `eval_every` steps have passed.
    Evaluations run in this process on a core the workers could use, and a fast env reaches `eval_every` often.
    0.08 leaves room for the confirming evaluation that ends a solved run within 10% of its wall time."""
    eval_max_seconds: float | None = field(default=30.0, metadata={"above": 0.0})
    """Longest a greedy evaluation of a run plays (periodic, confirming or final): the episodes still running then
    are cut and scored with their return so far; the metrics row and summary.json count them (eval_cut), a line says
    so, and an evaluation with cut episodes confirms no solve. An untrained policy can play long: a greedy Breakout
    policy that never serves plays each game to the emulator's 27,000-step cap (10 games took 254 s). null: no cap."""
    eval_max_episode_steps: int | None = field(default=None, metadata={"min": 1})
    """Evaluation episodes end (truncated) after this many steps (at most the env's own time limit). Left out
    (null), the env's time limit, which a run writes into its config.yaml."""
    eval_episodes: int = field(default=10, metadata={"min": 1})
    """Episodes per evaluation during training, new ones each time; the final evaluation uses
    `final_eval_episodes`."""
    final_eval_episodes: int = field(default=20, metadata={"min": 0})
    """Episodes of the greedy evaluation written to summary.json at the end (0: skip)."""
    max_restarts: int = field(default=3, metadata={"min": 0})
    """Worker crashes or hangs tolerated over the run (each restarts that worker); one more ends the run."""
    heartbeat_timeout: float = field(default=60.0, metadata={"above": 0.0})
    """Seconds without a finished rollout after which a worker is declared hung, killed and restarted."""
    stop_at_return: float | Literal["auto"] | None = "auto"
    """Stop once a greedy evaluation's mean return reaches this, confirmed by `confirm_episodes` more episodes:
    'auto' is the env's `reward_threshold` from its Gymnasium spec (CartPole-v1 475, Acrobot-v1 -100,
    LunarLander-v3 200; none for Pendulum-v1 or a factory: no early stop), a number another target, null never.
    The step budget stays a cap. A run writes the target it uses (a number, or null) into its config.yaml."""
    confirm_episodes: int = field(default=100, metadata={"min": 1})
    """Episodes of the evaluation that confirms a reached `stop_at_return` before the run stops (the solved
    agent's score is this evaluation's mean): the run's first evaluation episodes, the same every time."""
    pause_for_eval: bool = True
    """Hold the workers while the parent evaluates (they finish their rollouts first), so that an evaluation runs on a
    free core and its time is left out of the training time; false evaluates while they train on, and the
    evaluation then counts as training time. On CartPole's default run (2 cores), holding spent 5.5-6.2% of the
    wall time evaluating instead of 9.3-10.7%, and solved sooner (BENCHMARKS.md, issue 19)."""


@dataclass(frozen=True)
class LogConfig:
    run_dir: str | None = None
    """Where the run is saved (default: runs/<env>-<algo>-<time>, written into its config.yaml)."""
    metrics_format: Literal["jsonl", "csv"] = "jsonl"
    """Format of the metrics file (one row per report)."""
    report_every: float = field(default=1.0, metadata={"min": 0.0})
    """Seconds between metric rows."""
    checkpoint_every: int = field(default=100_000, metadata={"min": 0})
    """Save a checkpoint every this many env steps (0: only the final one)."""
    keep_checkpoints: int = field(default=3, metadata={"min": 1})
    """How many periodic checkpoints to keep (plus `final`)."""
    video_every: int = field(default=0, metadata={"min": 0})
    """Record one greedy episode to videos/step_<N>.mp4 in the run directory every this many env steps, and
    videos/final.mp4 at the end (instead of a step_<N>.mp4 at the budget's end; 0: never; needs the video extra).
    A video that cannot be written is a warning; the run goes on."""
    progress: bool = True
    """Show a live progress bar."""
    tensorboard: bool = True
    """Write TensorBoard events when tensorboard is installed."""
    track: tuple[Literal["wandb", "mlflow"], ...] = ()
    """Also send the run to these trackers (`--track wandb`, `--track mlflow`; the wandb or mlflow extra): the
    config, library versions, metrics grouped as charts/, losses/ and perf/, evaluations and the final video (one
    is filmed for them when the env can render). W&B follows its own settings (WANDB_MODE=offline for no network);
    MLflow writes to MLFLOW_TRACKING_URI, by default a file store in ./mlruns."""
    project: str = "pacer"
    """The W&B project (WANDB_PROJECT wins) and the MLflow experiment the run is filed under."""


SECTIONS: dict[str, type] = {
    "env": EnvConfig,
    "model": ModelConfig,
    "algo": AlgoConfig,
    "runtime": RuntimeConfig,
    "log": LogConfig,
}


@dataclass(frozen=True)
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build and validate a config from nested plain data; raises PacerError naming the bad key."""
        if not isinstance(data, dict):
            raise PacerError(f"config must be a mapping of sections, got {type(data).__name__}")
        sections: dict[str, Any] = {}
        for name, value in data.items():
            if name not in SECTIONS:
                raise PacerError(f"unknown config section {name!r}{_section_hint(str(name))}")
            if not isinstance(value, dict):
                raise PacerError(f"config section {name!r} must be a mapping, got {type(value).__name__}")
            sections[name] = build_section(name, SECTIONS[name], value)
        config = cls(**sections)
        if isinstance(config.runtime.stop_at_return, float) and config.runtime.eval_every == 0:
            raise PacerError("runtime.stop_at_return needs evaluations: set runtime.eval_every > 0")
        length = config.algo.sequence_length
        if length is not None and config.algo.n_steps % length:
            raise PacerError(f"algo.sequence_length ({length}) must divide algo.n_steps ({config.algo.n_steps})")
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain nested data (lists, not tuples), ready for YAML; a callable factory becomes its import path."""
        out: dict[str, Any] = {}
        for name in SECTIONS:
            section = dataclasses.asdict(getattr(self, name))
            for key, value in section.items():
                if isinstance(value, tuple):
                    section[key] = [import_path(v) if callable(v) else v for v in value]
                elif callable(value):  # 'module:name', or 'by-value:module:name' when no process can import it
                    section[key] = import_path(value)
            out[name] = section
        return out

    def replace(self, overrides: dict[str, Any]) -> Config:
        """A new validated config with `overrides` (nested, or dotted keys such as 'runtime.workers') applied."""
        return Config.from_dict(merge(self.to_dict_raw(), nest(overrides)))

    def to_dict_raw(self) -> dict[str, Any]:
        """Like to_dict, but keeps callables (for in-process overrides)."""
        return {name: {f.name: getattr(getattr(self, name), f.name) for f in dataclasses.fields(SECTIONS[name])}
                for name in SECTIONS}


# values that earlier pacer versions wrote into config.yaml and checkpoints under another name: their runs still load
RENAMED_VALUES: dict[tuple[str, str], dict[Any, Any]] = {("env", "vector"): {"auto": "gym"}}


def from_saved(data: dict[str, Any]) -> Config:
    """A config an earlier run saved (its config.yaml, its checkpoint's), with renamed values read as today's."""
    if isinstance(data, dict):
        data = {name: dict(value) if isinstance(value, dict) else value for name, value in data.items()}
        for (section, key), renames in RENAMED_VALUES.items():
            values = data.get(section)
            if isinstance(values, dict) and isinstance(values.get(key), str) and values[key] in renames:
                values[key] = renames[values[key]]
    return Config.from_dict(data)


def _section_hint(name: str) -> str:
    """For a key given without its section (`lr: 3e-4`, `--set lr=3e-4`): the section that has it."""
    owners = [f"{section}.{name}" for section, cls in SECTIONS.items()
              if name in {f.name for f in dataclasses.fields(cls)}]
    if owners:
        return f" (did you mean {' or '.join(owners)}?)"
    return key_hint(name) or did_you_mean(name, SECTIONS)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Turn {'runtime.workers': 2} into {'runtime': {'workers': 2}}; nested dicts pass through."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if "." in key:
            section, _, sub = key.partition(".")
            out = merge(out, {section: nest({sub: value})})
        else:
            out = merge(out, {key: value})
    return out


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `over` wins."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_settings(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` items as {dotted key: YAML value}."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise PacerError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            first = first_line(exc)
            raise PacerError(f"--set {item!r}: the value is not valid YAML ({first}); quote it if it is text"
                             ) from None
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with safe_load: Python object tags are rejected, never executed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PacerError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PacerError(f"config file {str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                         f"{exc.start}): save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = first_line(exc)
        raise PacerError(f"config file {str(path)!r} is not valid YAML (Python tags are not allowed): {first}"
                         ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PacerError(f"config file {str(path)!r} must hold a mapping of sections ({', '.join(SECTIONS)}), "
                         f"got a {type(data).__name__}")
    return data


def save_yaml(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
