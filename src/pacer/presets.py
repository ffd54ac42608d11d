"""Named configurations. Each is a nested dict of overrides on the defaults (a general recipe for Discrete actions).

A preset that names an env (and, unless it is PPO, an algorithm) is picked automatically for a run of that env
with that algorithm: `pacer train --env LunarLander-v3` trains with "lunarlander". An env with no preset of its
own gets a recipe for its kind of actions: "continuous" for Box actions, "discrete" (the defaults) otherwise.
`--preset none` opts out; the config file and flags still override whatever a preset sets. Presets were tuned on
seeds other than the ones BENCHMARKS.md reports.
"""

from __future__ import annotations

from typing import Any

from pacer.config import AlgoConfig, Config, merge, nest
from pacer.errors import PacerError, did_you_mean

# For Box actions with no preset of their own: PPO as in the MuJoCo benchmarks of the PPO paper, CleanRL and SB3
# (normalized observations and rewards, orthogonal init, 10 epochs over 2,048-step rollouts). Minibatches tuned on
# HalfCheetah-v5 seed 101 for the greedy return after 300 s of training: 16 gave 4,646, 8 gave 4,478.
CONTINUOUS: dict[str, Any] = {
    "env": {"envs_per_worker": 8},
    "model": {"normalize_input": "running", "init": "orthogonal"},
    "algo": {"name": "ppo", "n_steps": 256, "epochs": 10, "minibatches": 16, "lr": 3e-4, "lr_schedule": "constant",
             "gamma": 0.99, "gae_lambda": 0.95, "scale_rewards": True},
    "runtime": {"total_steps": 3_000_000, "eval_every": 100_000, "eval_episodes": 5},
}
# For image observations with Box actions (CarRacing): the Nature CNN (which scales pixels itself: no running
# normalization, which the CNN refuses) with the Atari PPO preset's rollouts (8 envs x 128 steps, 4 epochs x 4
# minibatches, lr 2.5e-4 annealed), a Gaussian head starting narrow (log-std -1), rewards scaled. Evaluations of
# 5 (final: 10) whole episodes: a rendered env is slow to step (CarRacing's 1,000-step episodes, 10 at once: ~35 s).
PIXELS_CONTINUOUS: dict[str, Any] = {
    "env": {"envs_per_worker": 8},
    "model": {"encoder": "cnn", "log_std_init": -1.0},
    "algo": {"name": "ppo", "n_steps": 128, "epochs": 4, "minibatches": 4, "lr": 2.5e-4, "lr_schedule": "linear",
             "gamma": 0.99, "gae_lambda": 0.95, "scale_rewards": True},
    "runtime": {"total_steps": 2_000_000, "eval_every": 100_000, "eval_episodes": 5, "final_eval_episodes": 10,
                "eval_max_seconds": 90.0},
}
# What an env with no preset of its own gets, by its kind (`runconfig.kind_of`: its actions, and whether it sees
# pixels). The defaults are the general recipe for discrete actions, so "discrete" adds nothing to them.
FAMILIES: dict[str, dict[str, Any]] = {"continuous": CONTINUOUS, "pixels-continuous": PIXELS_CONTINUOUS,
                                       "discrete": {}}
FAMILY_ALGO = "ppo"  # the algorithm the families are recipes for
FAMILY_TEXT = {
    "continuous": "Box actions, so the continuous-control recipe 'continuous': PPO, 8 envs per worker, 256-step "
                  "rollouts, 10 epochs, running observation normalization, reward scaling",
    "pixels-continuous": "image observations and Box actions, so the recipe 'pixels-continuous': PPO with the "
                         "Nature CNN, 8 envs per worker, 128-step rollouts, 4 epochs x 4 minibatches, reward scaling",
    "discrete": "discrete actions, so the general recipe 'discrete' (the defaults): PPO, 32 envs per worker, 32-step "
                "rollouts, 4 epochs x 8 minibatches",
}


def _zoo_mujoco(env_id: str, batch: int, hp: dict[str, Any], budget: int = 2_000_000) -> dict[str, Any]:
    """PPO with an rl-baselines3-zoo MuJoCo recipe (hyperparams/ppo.yml): one env per worker, `batch`-row
    minibatches of each 512-step rollout, 256x256 ReLU actor and critic with torch's init, a small initial action
    noise (log-std -2), observations and rewards normalized with the algorithm's discount (VecNormalize)."""
    return {
        "env": {"id": env_id, "envs_per_worker": 1},
        "model": {"hidden": [256, 256], "activation": "relu", "normalize_input": "running", "log_std_init": -2.0},
        "algo": merge({"name": "ppo", "n_steps": 512, "minibatches": 512 // batch, "lr_schedule": "constant",
                       "scale_rewards": True}, hp),
        "runtime": {"total_steps": budget, "eval_every": 50_000, "eval_episodes": 5},
    }


# Atari through Gymnasium's own wrappers (the ALE's frame skip off, so that AtariPreprocessing skips and max-pools):
# no-op starts, 4 frames a step, 84x84 grayscale, 4 frames stacked; rewards clipped for training only. No sticky
# actions, no episodic life: evaluations play whole games of the real score. An Atari id gets these by itself.
ATARI_ENV: dict[str, Any] = {
    "kwargs": {"frameskip": 1, "repeat_action_probability": 0.0},
    "wrappers": [{"AtariPreprocessing": {"noop_max": 30, "frame_skip": 4, "screen_size": 84,
                                         "terminal_on_life_loss": False, "grayscale_obs": True, "scale_obs": False}},
                 {"FrameStackObservation": {"stack_size": 4}}],
}
ATARI = {  # CleanRL's ppo_atari, per worker: 8 envs x 128 steps, 4 epochs x 4 minibatches, lr 2.5e-4 annealed
    "env": {**ATARI_ENV, "envs_per_worker": 8},
    "model": {"encoder": "cnn"},
    "algo": {"name": "ppo", "n_steps": 128, "epochs": 4, "minibatches": 4, "lr": 2.5e-4, "lr_schedule": "linear",
             "clip_range": 0.1, "entropy_coef": 0.01, "value_coef": 0.5, "max_grad_norm": 0.5, "gamma": 0.99,
             "gae_lambda": 0.95, "clip_rewards": 1.0},
    "runtime": {"total_steps": 10_000_000, "eval_every": 250_000, "eval_episodes": 10, "final_eval_episodes": 10,
                "stop_at_return": None},
}


def _atari_actor_critic(algo: str) -> dict[str, Any]:
    """A3C's Atari recipe (Mnih et al. 2016) on batched workers: 5-step returns, RMSprop at 7e-4 annealed, entropy
    0.01, gradients clipped at 40 (a3c: one optimizer state shared by the workers; a2c: one each)."""
    return {
        "env": {**ATARI_ENV, "envs_per_worker": 8},
        "model": {"encoder": "cnn"},
        "algo": {"name": algo, "n_steps": 5, "lr": 7e-4, "lr_schedule": "linear", "optimizer": "rmsprop",
                 "shared_optimizer": algo == "a3c", "gae_lambda": 1.0, "entropy_coef": 0.01, "value_coef": 0.5,
                 "max_grad_norm": 40.0, "clip_rewards": 1.0},
        "runtime": {**ATARI["runtime"]},
    }


def is_atari(env_id: Any) -> bool:
    return isinstance(env_id, str) and (env_id.startswith("ALE/") or "NoFrameskip" in env_id)


def _one_step(env_id: str, algo: str, entropy_coef: float) -> dict[str, Any]:
    """a2c/a3c: 8-step rollouts, RMSprop, one update each; a3c shares the optimizer state, a2c does not."""
    return {
        "env": {"id": env_id, "envs_per_worker": 8},
        "algo": {"name": algo, "n_steps": 8, "lr": 1e-3, "optimizer": "rmsprop", "shared_optimizer": algo == "a3c",
                 "gae_lambda": 1.0, "entropy_coef": entropy_coef},
        "runtime": {"total_steps": 500_000, "eval_every": 20_000},
    }


PRESETS: dict[str, dict[str, Any]] = {
    # The classic Monte-Carlo distributed advantage actor-critic, as in the textbook notebook: one CartPole per
    # worker stepped with a batch-1 forward pass, one Adam per worker over the shared model, whole episodes,
    # L2-normalized returns. The slow baseline: do not "improve" it.
    "classic-da2c": {
        "env": {"id": "CartPole-v1", "envs_per_worker": 1, "termination_reward": -10.0},
        "model": {"hidden": [25, 50], "activation": "relu", "shared_trunk": True, "critic_hidden": [25],
                  "detach_critic": True, "critic_output": "tanh", "normalize_input": "l2"},
        "algo": {"name": "mc", "gamma": 0.95, "value_coef": 0.1, "entropy_coef": 0.0, "lr": 1e-4,
                 "optimizer": "adam", "shared_optimizer": False, "max_grad_norm": None, "normalize_returns": "l2",
                 "lr_schedule": "constant", "normalize_advantages": False},
        "runtime": {"workers": 7, "total_episodes": 7000, "total_steps": 10_000_000, "eval_every": 50_000},
    },
    # CartPole-v1 with PPO trains on the defaults (tuned on it, seeds 100-104, for the time from the command to a
    # solved policy); named so that `pacer train` need not make an env to choose a recipe.
    "cartpole": {"env": {"id": "CartPole-v1"}},
    "acrobot": {
        # as validated in BENCHMARKS.md, not the later CartPole defaults (256 envs, 8 minibatches)
        "env": {"id": "Acrobot-v1", "envs_per_worker": 16},
        "algo": {"minibatches": 4},
        "runtime": {"total_steps": 300_000, "eval_every": 50_000},
    },
    "pendulum": {
        "env": {"id": "Pendulum-v1", "envs_per_worker": 16},
        "algo": {"name": "ppo", "n_steps": 64, "epochs": 10, "minibatches": 8, "lr": 1e-3, "gamma": 0.9},
        "runtime": {"total_steps": 200_000, "eval_every": 20_000},
    },
    "lunarlander": {
        "env": {"id": "LunarLander-v3", "envs_per_worker": 16},
        # longer rollouts and smaller minibatches than the CartPole defaults (measured: with n_steps 64, 4
        # minibatches and lr 5e-4 the greedy policy still hovered at 1M steps, eval -65). Running observation
        # statistics, orthogonal init and reward scaling: solved at 314k-363k steps on tuning seeds 101-103, where
        # the same preset without them needed 1.1M or more (seed 101)
        "model": {"normalize_input": "running", "init": "orthogonal"},
        "algo": {"name": "ppo", "n_steps": 256, "minibatches": 32, "lr": 3e-4, "lr_schedule": "constant",
                 "gamma": 0.999, "gae_lambda": 0.98, "entropy_coef": 0.01, "scale_rewards": True},
        "runtime": {"total_steps": 1_500_000, "eval_every": 50_000},
    },
    # Taxi-v4 (masks from info): the defaults' greedy policy settled near 7.3 of the optimal 7.93 and reached the
    # bench's 7.5 on 1 of 3 tuning seeds (10-12); a smaller learning rate and orthogonal init (a near-uniform first
    # policy) on 3 of 3, at 8.6 s median (BENCHMARKS.md, "Spaces and agents")
    "taxi": {
        "env": {"id": "Taxi-v4"},
        "model": {"init": "orthogonal"},
        "algo": {"lr": 3e-4},
    },
    "lunarlander-continuous": {
        "env": {"id": "LunarLander-v3", "kwargs": {"continuous": True}, "envs_per_worker": 16},
        "model": {"normalize_input": "running", "init": "orthogonal", "log_std_init": -0.5},
        "algo": {"name": "ppo", "n_steps": 256, "minibatches": 32, "lr": 3e-4, "lr_schedule": "constant",
                 "gamma": 0.999, "gae_lambda": 0.98, "entropy_coef": 0.0, "scale_rewards": True},
        "runtime": {"total_steps": 2_000_000, "eval_every": 100_000},
    },
    # MuJoCo: the continuous-control recipe, tuned on HalfCheetah-v5 (see CONTINUOUS); for Swimmer, whose reward
    # needs a long horizon, rl-baselines3-zoo's tuned entry (4 envs x 1,024 steps, 256-row minibatches, lr 6e-4,
    # gamma 0.9999, lambda 0.98) on it. The zoo's own tuned HalfCheetah and Hopper entries, ported,
    # are here by name (not picked automatically): on pacer's two workers they made fewer env steps in 300 s (20
    # and 5 epochs of 64- and 32-row minibatches) and scored lower at 300 s on tuning seed 101 (HalfCheetah 4,304 vs
    # 4,646; Hopper 986, stuck near standing; BENCHMARKS.md, issue 21).
    "halfcheetah": merge(CONTINUOUS, {"env": {"id": "HalfCheetah-v5"}}),
    "hopper": merge(CONTINUOUS, {"env": {"id": "Hopper-v5"}}),
    "halfcheetah-zoo": _zoo_mujoco("HalfCheetah-v5", 64, {
        "gamma": 0.98, "gae_lambda": 0.92, "lr": 2.0633e-5, "entropy_coef": 4.01762e-4, "clip_range": 0.1,
        "epochs": 20, "max_grad_norm": 0.8, "value_coef": 0.58096}),
    "hopper-zoo": _zoo_mujoco("Hopper-v5", 32, {
        "gamma": 0.999, "gae_lambda": 0.99, "lr": 9.80828e-5, "entropy_coef": 2.29519e-3, "clip_range": 0.2,
        "epochs": 5, "max_grad_norm": 0.7, "value_coef": 0.835671}),
    "ant": merge(CONTINUOUS, {"env": {"id": "Ant-v5"}}),
    "swimmer": merge(CONTINUOUS, {"env": {"id": "Swimmer-v5", "envs_per_worker": 4},
                                  "algo": {"n_steps": 1024, "minibatches": 16, "lr": 6e-4, "gamma": 0.9999,
                                           "gae_lambda": 0.98}}),
    # a2c and a3c: one update per short rollout. On pacer's runtime both run asynchronously (Hogwild); a3c shares
    # its optimizer's statistics between workers (shared RMSprop, as in the A3C paper), a2c keeps one per worker.
    "cartpole-a2c": _one_step("CartPole-v1", "a2c", entropy_coef=0.0),
    "cartpole-a3c": _one_step("CartPole-v1", "a3c", entropy_coef=0.0),
    "acrobot-a2c": _one_step("Acrobot-v1", "a2c", entropy_coef=0.01),
    "acrobot-a3c": _one_step("Acrobot-v1", "a3c", entropy_coef=0.01),
    # CartPole without velocities (pacer.tasks): an LSTM after one ReLU layer, the critic with its own, observations
    # normalized, after the RL Zoo's RecurrentPPO entry (32-step rollouts, gamma .98, lambda .8, one minibatch a
    # pass). On pacer's two Hogwild workers, tuning seeds 100-102, `pacer bench solve` (evaluations left out): the
    # zoo's 8 envs, 20 epochs at lr 1e-3 took 60-77 s of wall; 10 epochs at 2e-3 13.1-16.9 s; 16 envs 8.3-11.1 s
    # (32 envs: 1 of 3 unsolved; 2 minibatches: 11.8-15.2 s)
    "cartpole-novel": {
        "env": {"id": "CartPoleNoVel-v1", "envs_per_worker": 16},
        "model": {"hidden": [64], "activation": "relu", "memory": "lstm", "memory_size": 64, "memory_shared": False,
                  "normalize_input": "running"},
        "algo": {"name": "ppo", "n_steps": 32, "epochs": 10, "minibatches": 1, "lr": 2e-3, "lr_schedule": "linear",
                 "gamma": 0.98, "gae_lambda": 0.8},
        "runtime": {"total_steps": 300_000, "eval_every": 10_000},
    },
    # the same task for A3C: Hogwild workers, one RMSprop state shared, one update per 32-step rollout (tuning seed
    # 100: solved at 441k env steps, 20 s; 16-step rollouts at lr 1e-3 had reached 427 at 743k)
    "cartpole-novel-a3c": {
        "env": {"id": "CartPoleNoVel-v1", "envs_per_worker": 16},
        "model": {"hidden": [64], "activation": "relu", "memory": "lstm", "memory_size": 64, "memory_shared": False,
                  "normalize_input": "running"},
        "algo": {"name": "a3c", "n_steps": 32, "lr": 7e-4, "optimizer": "rmsprop", "shared_optimizer": True,
                 "gamma": 0.98, "gae_lambda": 0.8, "entropy_coef": 0.01},
        "runtime": {"total_steps": 1_000_000, "eval_every": 20_000},
    },
    # MiniGrid's memory task: a cue seen at the start decides which of two objects at a corridor's end to reach. The
    # 7x7 egocentric view (minigrid's ImgObsWrapper: the image key, as object, colour and state codes) through an
    # MLP into an LSTM; PPO over whole 128-step rollouts of 16 envs per worker, 4 minibatches of 4 envs
    "minigrid-memory": {
        "env": {"id": "MiniGrid-MemoryS7-v0", "envs_per_worker": 16, "wrappers": ["minigrid.wrappers:ImgObsWrapper"]},
        "model": {"hidden": [128], "activation": "relu", "memory": "lstm", "memory_size": 128,
                  "normalize_input": "running", "init": "orthogonal"},
        "algo": {"name": "ppo", "n_steps": 128, "epochs": 4, "minibatches": 4, "lr": 5e-4, "lr_schedule": "linear",
                 "gamma": 0.99, "gae_lambda": 0.95, "entropy_coef": 0.01},
        "runtime": {"total_steps": 10_000_000, "eval_every": 100_000, "eval_episodes": 20, "stop_at_return": None},
    },
    "atari": ATARI,
    # CleanRL's ppo_atari_lstm: one frame (no stacking: the LSTM remembers), the Nature CNN into an LSTM of 128 that
    # both heads share (rewards are clipped), otherwise the `atari` preset's PPO
    "atari-lstm": merge(ATARI, {
        "env": {"wrappers": [ATARI_ENV["wrappers"][0]]},
        "model": {"encoder": "cnn", "memory": "lstm", "memory_size": 128, "memory_shared": True}}),
    "atari-a2c": _atari_actor_critic("a2c"),
    "atari-a3c": _atari_actor_critic("a3c"),
    **FAMILIES,  # by name too: `--preset continuous`
}
ATARI_PRESETS = {"ppo": "atari", "a2c": "atari-a2c", "a3c": "atari-a3c"}  # chosen for any Atari id


# chosen only by name: a historical baseline, and the zoo's MuJoCo entries as ported
AUTO_EXCLUDED = ("classic-da2c", "halfcheetah-zoo", "hopper-zoo")


def choose(config: dict[str, Any] | None, preset: str | None, kind: str | None = None) -> str | None:
    """The preset a run uses: 'auto' picks the one made for the config's env and algorithm, or when there is none
    the family for `kind`, the env's kind of actions ('continuous', 'discrete'; None: no family); 'none' (or None)
    uses none; anything else is a preset name (checked by `resolve`)."""
    if preset in (None, "none"):
        return None
    if preset != "auto":
        return preset
    wanted = nest(config or {})
    env = wanted.get("env", {})
    env_id, kwargs = env.get("id", "CartPole-v1"), env.get("kwargs") or {}
    algo = wanted.get("algo", {}).get("name", AlgoConfig.name)
    if is_atari(env_id):
        return ATARI_PRESETS.get(algo)
    named = named_for(env_id, kwargs, algo)
    # the families are PPO recipes: another algorithm without a preset of its own gets the plain defaults
    return named if named is not None or kind not in FAMILIES or algo != FAMILY_ALGO else kind


def named_for(env_id: Any, kwargs: dict[str, Any], algo: str) -> str | None:
    """The preset made for this env (with these kwargs) and algorithm, if any."""
    for name, body in PRESETS.items():
        if name in AUTO_EXCLUDED or body.get("env", {}).get("id") != env_id:
            continue
        if (body["env"].get("kwargs") or {}) != kwargs:  # LunarLander-v3 vs LunarLander-v3 continuous=True
            continue
        if body.get("algo", {}).get("name", AlgoConfig.name) == algo:
            return name
    return None


def needs_kind(config: dict[str, Any] | None, preset: str | None) -> bool:
    """Whether 'auto' must know the env's kind of actions: no preset is made for its env and algorithm, PPO."""
    algo = nest(config or {}).get("algo", {}).get("name", AlgoConfig.name)
    return preset == "auto" and algo == FAMILY_ALGO and choose(config, preset) is None


def resolve(config: Config | dict[str, Any] | None = None, preset: str | None = None, kind: str | None = None
            ) -> Config:
    """defaults <- preset <- config (a dict of overrides, or a whole Config). `preset` may be 'auto' (see
    `choose`, and `kind` there) or 'none'."""
    if isinstance(config, Config):
        if preset not in (None, "none", "auto"):
            raise PacerError("give either a Config object or a preset (a dict config may be combined with one)")
        return config
    name = choose(config, preset, kind)
    base: dict[str, Any] = {}
    if name is not None:
        if name not in PRESETS:
            raise PacerError(f"unknown preset {name!r}{did_you_mean(name, PRESETS)}; "
                             f"choose from {', '.join(PRESETS)}, auto or none")
        base = PRESETS[name]
    return Config.from_dict(merge(base, nest(config or {})))


def announce(config: dict[str, Any] | None, preset: str | None, kind: str | None = None) -> str | None:
    """The one line that says which preset 'auto' picked (None when it picked none, or was not asked to)."""
    name = choose(config, preset, kind) if preset == "auto" else None
    if name is None:
        return None
    if name in FAMILIES:
        env_id = nest(config or {}).get("env", {}).get("id", "CartPole-v1")
        shown = env_id if isinstance(env_id, str) else getattr(env_id, "__name__", type(env_id).__name__)
        hint = " (--preset none for the plain defaults)" if FAMILIES[name] else ""
        return f"pacer: no preset for {shown}; {FAMILY_TEXT[name]}{hint}"
    if name in ATARI_PRESETS.values():
        env_id = nest(config or {}).get("env", {}).get("id")
        return (f"pacer: {env_id} is an Atari game: preset {name!r} (no-op starts, 4 frames a step, 84x84 grayscale, "
                f"4 frames stacked, training rewards clipped, the Nature CNN) (--preset none for the plain defaults)")
    if PRESETS[name] == {"env": {"id": PRESETS[name]["env"]["id"]}}:
        return None  # a preset that is the defaults (cartpole): nothing to say
    env_id = PRESETS[name]["env"]["id"]
    return f"pacer: using preset {name!r}, tuned for {env_id} (--preset none for the plain defaults)"
