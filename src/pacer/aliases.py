"""Names users bring from Stable-Baselines3, the RL Baselines3 Zoo and CleanRL, and pacer's own for the same thing:
a mistyped flag or config key is answered with the name to use (docs/coming-from.md is this table in prose)."""

from __future__ import annotations

# a hyperparameter's name in SB3 / rl-zoo YAML / CleanRL (snake case; flags are matched with '-' as '_')
# -> pacer's config key, and what differs when the meaning is not one to one
KEYS: dict[str, tuple[str, str]] = {
    "learning_rate": ("algo.lr", ""),
    "anneal_lr": ("algo.lr_schedule", "linear or constant"),
    "total_timesteps": ("runtime.total_steps", ""),
    "n_timesteps": ("runtime.total_steps", ""),
    "env_id": ("env.id", ""),
    "n_envs": ("env.envs_per_worker", "per worker: pacer runs runtime.workers x env.envs_per_worker envs"),
    "num_envs": ("env.envs_per_worker", "per worker: pacer runs runtime.workers x env.envs_per_worker envs"),
    "n_steps": ("algo.n_steps", ""),
    "num_steps": ("algo.n_steps", ""),
    "n_epochs": ("algo.epochs", ""),
    "update_epochs": ("algo.epochs", ""),
    "batch_size": ("algo.minibatches", "a count, not a size: minibatches = n_steps x envs / batch_size"),
    "num_minibatches": ("algo.minibatches", ""),
    "gae_lambda": ("algo.gae_lambda", ""),
    "ent_coef": ("algo.entropy_coef", ""),
    "vf_coef": ("algo.value_coef", ""),
    "clip_coef": ("algo.clip_range", ""),
    "clip_range": ("algo.clip_range", ""),
    "max_grad_norm": ("algo.max_grad_norm", ""),
    "target_kl": ("algo.target_kl", ""),
    "norm_adv": ("algo.normalize_advantages", ""),
    "normalize_advantage": ("algo.normalize_advantages", ""),
    "use_rms_prop": ("algo.optimizer", "rmsprop or adam"),
    "normalize": ("model.normalize_input", "'running' normalizes observations; algo.scale_rewards the rewards"),
    "norm_obs": ("model.normalize_input", "running"),
    "norm_reward": ("algo.scale_rewards", ""),
    "net_arch": ("model.hidden", "a list of layer sizes"),
    "activation_fn": ("model.activation", "tanh or relu"),
    "ortho_init": ("model.init", "orthogonal or default"),
    "log_std_init": ("model.log_std_init", ""),
    "policy_kwargs": ("model", "its keys are model.hidden, model.activation, model.init, model.log_std_init"),
    "num_workers": ("runtime.workers", ""),
    "n_workers": ("runtime.workers", ""),
    "eval_freq": ("runtime.eval_every", "in env steps over all workers"),
    "n_eval_episodes": ("runtime.eval_episodes", ""),
    "capture_video": ("log.video_every", "env steps between videos (0: none)"),
    "wandb_project_name": ("log.project", ""),
    "exp_name": ("log.run_dir", ""),
    "log_folder": ("log.run_dir", ""),
    "tensorboard_log": ("log.tensorboard", "true: events in the run directory's tb/"),
    "cuda": ("runtime.threads_per_worker", "pacer trains on CPU processes; there is no GPU switch"),
    "device": ("runtime.threads_per_worker", "pacer trains on CPU processes; there is no GPU switch"),
}

# pacer's train flags by config key (the rest are reached with --set KEY=VALUE)
FLAG_OF_KEY = {"env.id": "--env", "runtime.total_steps": "--total-steps", "env.envs_per_worker": "--envs-per-worker",
               "runtime.seed": "--seed", "runtime.workers": "--workers", "log.run_dir": "--run-dir"}


def key_hint(name: str) -> str:
    """' (SB3/CleanRL's learning_rate is pacer's algo.lr)' for a known foreign name (the last dotted part of
    `name` counts: algo.learning_rate too), else ''."""
    last = name.rpartition(".")[2].lower().replace("-", "_")
    if last not in KEYS:
        return ""
    key, note = KEYS[last]
    return f" (SB3/CleanRL's {last} is pacer's {key}{': ' + note if note else ''})"


def flag_hint(flag: str) -> str:
    """For an unknown train flag: pacer's flag, or the --set that does it, for a known foreign name; else ''."""
    name = flag.split("=", 1)[0].lstrip("-").lower().replace("-", "_")
    if name not in KEYS:
        return ""
    key, note = KEYS[name]
    use = FLAG_OF_KEY.get(key) or f"--set {key}=VALUE"
    return f" (SB3/CleanRL's {flag.split('=', 1)[0]} is pacer's {use}{': ' + note if note else ''})"
