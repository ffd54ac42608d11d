"""Stable-Baselines3 A2C/PPO (and sb3-contrib's RecurrentPPO) with rl-baselines3-zoo hyperparameters, timed and
judged by pacer's own evaluator.

    python -m pacer.bench.sb3 --algo ppo --env CartPole-v1 --mode solve --target 475 --eval-every 10000
    python -m pacer.bench.sb3 --algo ppo --env HalfCheetah-v5 --mode timed --max-seconds 1500 --eval-every 50000

The last line of stdout is one JSON object; everything else goes to stderr. Times are time.time() epoch seconds.
"""
# ruff: noqa: E402
import time

# First statement, before torch and SB3 load, so start-up cost shows. `python -m` imports the parent packages
# `pacer` and `pacer.bench` before this line; both are light (pacer imports its submodules lazily).
STARTED_AT = time.time()

import argparse
import contextlib
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3 as sb3
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize
from torch import Tensor, nn

from pacer.config import EnvConfig
from pacer.envs import make_single_env, register_atari
from pacer.evaluation import run_episodes
from pacer.jobs import EVAL_SEED_OFFSET
from pacer.presets import ATARI_ENV, is_atari

# rl-baselines3-zoo hyperparams/a2c.yml and hyperparams/ppo.yml (DLR-RM/rl-baselines3-zoo @ 22e3ff2, 2026-04-23),
# copied as written; "lin_X" is a linear schedule from X to 0. The zoo renamed its LunarLander-v2 entries to
# LunarLander-v3 in June 2025 (#495) without changing any value, so these are also the older v2 numbers.
MUJOCO_POLICY = {"log_std_init": -2, "ortho_init": False, "activation_fn": nn.ReLU,
                 "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
ZOO: dict[str, dict[str, dict[str, Any]]] = {
    "a2c": {
        "CartPole-v1": {"n_envs": 8, "n_timesteps": 500_000, "policy": "MlpPolicy", "ent_coef": 0.0},
        "LunarLander-v3": {"n_envs": 8, "n_timesteps": 200_000, "policy": "MlpPolicy", "gamma": 0.995,
                           "n_steps": 5, "learning_rate": "lin_0.00083", "ent_coef": 0.00001},
        "Acrobot-v1": {"normalize": True, "n_envs": 16, "n_timesteps": 500_000, "policy": "MlpPolicy",
                       "ent_coef": 0.0},
    },
    "ppo": {
        "CartPole-v1": {"n_envs": 8, "n_timesteps": 100_000, "policy": "MlpPolicy", "n_steps": 32,
                        "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
                        "learning_rate": "lin_0.001", "clip_range": "lin_0.2"},
        "LunarLander-v3": {"n_envs": 16, "n_timesteps": 1_000_000, "policy": "MlpPolicy", "n_steps": 1024,
                           "batch_size": 64, "gae_lambda": 0.98, "gamma": 0.999, "n_epochs": 4, "ent_coef": 0.01},
        "Acrobot-v1": {"normalize": True, "n_envs": 16, "n_timesteps": 1_000_000, "policy": "MlpPolicy",
                       "n_steps": 256, "gae_lambda": 0.94, "gamma": 0.99, "n_epochs": 4, "ent_coef": 0.0},
        # The zoo's tuned MuJoCo entries (named HalfCheetah-v3/-v4, Hopper-v3/-v4 there), applied to v5.
        "HalfCheetah-v5": {"normalize": True, "n_envs": 1, "n_timesteps": 1_000_000, "policy": "MlpPolicy",
                           "batch_size": 64, "n_steps": 512, "gamma": 0.98, "learning_rate": 2.0633e-05,
                           "ent_coef": 0.000401762, "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.92,
                           "max_grad_norm": 0.8, "vf_coef": 0.58096, "policy_kwargs": MUJOCO_POLICY},
        "Hopper-v5": {"normalize": True, "n_envs": 1, "n_timesteps": 1_000_000, "policy": "MlpPolicy",
                      "batch_size": 32, "n_steps": 512, "gamma": 0.999, "learning_rate": 9.80828e-05,
                      "ent_coef": 0.00229519, "clip_range": 0.2, "n_epochs": 5, "gae_lambda": 0.99,
                      "max_grad_norm": 0.7, "vf_coef": 0.835671, "policy_kwargs": MUJOCO_POLICY},
        # Ant: the zoo's "mujoco-defaults" (SB3's PPO defaults with VecNormalize); Swimmer: its tuned entry.
        "Ant-v5": {"normalize": True, "n_envs": 1, "n_timesteps": 1_000_000, "policy": "MlpPolicy"},
        "Swimmer-v5": {"normalize": True, "n_envs": 4, "n_timesteps": 1_000_000, "policy": "MlpPolicy",
                       "gamma": 0.9999, "n_steps": 1024, "batch_size": 256, "learning_rate": 6e-4,
                       "gae_lambda": 0.98},
        # Not the zoo's (it has no PettingZoo entries): PettingZoo's own SB3 tutorial (SuperSuit's
        # pettingzoo_env_to_vec_env_v1, then 8 copies concatenated; PPO with learning_rate 1e-3, batch_size 256)
        "mpe2:simple_spread_v3": {"n_envs": 8, "n_timesteps": 10_000_000, "policy": "MlpPolicy",
                                  "learning_rate": 1e-3, "batch_size": 256},
        # MiniGrid: the zoo's MiniGrid settings (hyperparams/ppo.yml "minigrid-defaults", after lcswillems'
        # rl-starter-files) on the Dict observation through MultiInputPolicy instead of the zoo's FlatObsWrapper, its
        # keys read as pacer reads them (`MiniGridKeys`); observations not normalized (the zoo's VecNormalize would
        # need its keys named, and pacer's default does not normalize them either)
        "MiniGrid-DoorKey-8x8-v0": {"n_envs": 8, "n_timesteps": 10_000_000, "policy": "MultiInputPolicy",
                                    "n_steps": 128, "batch_size": 64, "gae_lambda": 0.95, "gamma": 0.99,
                                    "n_epochs": 10, "ent_coef": 0.0, "learning_rate": 2.5e-4, "clip_range": 0.2},
    },
    # sb3-contrib's RecurrentPPO, the zoo's hyperparams/ppo_lstm.yml (its entry as the published sb3/ppo_lstm model
    # card lists it): observations normalized, rewards not
    "recurrentppo": {
        "CartPoleNoVel-v1": {"normalize": True, "normalize_kwargs": {"norm_obs": True, "norm_reward": False},
                             "n_envs": 8, "n_timesteps": 100_000, "policy": "MlpLstmPolicy", "n_steps": 32,
                             "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
                             "learning_rate": "lin_0.001", "clip_range": "lin_0.2",
                             "policy_kwargs": {"ortho_init": False, "activation_fn": nn.ReLU, "lstm_hidden_size": 64,
                                               "enable_critic_lstm": True,
                                               "net_arch": {"pi": [64], "vf": [64]}}},
    },
    # sb3-contrib's MaskablePPO as its documentation runs it: the library's defaults, masks from the env (here
    # Gymnasium's info["action_mask"], read through `InfoMasks`); the zoo has no entry for it
    "maskableppo": {
        "Taxi-v4": {"n_envs": 1, "n_timesteps": 1_000_000, "policy": "MlpPolicy"},
    },
}
# The zoo's Atari entry (hyperparams/ppo.yml "atari"), run on pacer's own preprocessing (presets.ATARI_ENV: the same
# Gymnasium wrappers pacer trains on) with rewards clipped as the zoo's AtariWrapper clips them: the same frames.
ZOO_ATARI: dict[str, Any] = {"n_envs": 8, "n_timesteps": 10_000_000, "policy": "CnnPolicy", "n_steps": 128,
                             "n_epochs": 4, "batch_size": 256, "learning_rate": "lin_2.5e-4", "clip_range": "lin_0.1",
                             "vf_coef": 0.5, "ent_coef": 0.01}
# What a user gets from SB3 without the zoo: the library's own defaults, one env, no normalization.
LIBRARY_DEFAULTS: dict[str, Any] = {"n_envs": 1, "n_timesteps": 1_000_000, "policy": "MlpPolicy"}
# zoo keys that are not the algorithm's arguments
NOT_ALGO_KWARGS = {"n_envs", "n_timesteps", "policy", "normalize", "normalize_kwargs", "policy_kwargs"}


def schedule(value: Any) -> Any:
    """The zoo's "lin_X" string as SB3 schedule; other values pass through."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])

        def linear(progress_remaining: float) -> float:
            return progress_remaining * start
        return linear
    return value


class SB3ActorCritic(nn.Module):
    """pacer's actor-critic interface, (pi, value), over an SB3 policy, with VecNormalize's observation scaling
    frozen at construction, so pacer's evaluator judges SB3 exactly as it judges pacer."""

    def __init__(self, policy: ActorCriticPolicy, vec_norm: VecNormalize | None) -> None:
        super().__init__()
        self.policy = policy
        if isinstance(getattr(policy, "log_std", None), nn.Parameter):
            self.log_std = policy.log_std
        self.obs_mean: Tensor | None = None
        self.obs_std = torch.ones(())
        self.clip = 0.0
        if vec_norm is not None and vec_norm.norm_obs:
            rms = vec_norm.obs_rms
            assert isinstance(rms, RunningMeanStd)
            # float64 and the same epsilon/clip as VecNormalize.normalize_obs, copied so training cannot move them
            self.obs_mean = torch.tensor(rms.mean, dtype=torch.float64)
            self.obs_std = torch.tensor(np.sqrt(rms.var + vec_norm.epsilon), dtype=torch.float64)
            self.clip = float(vec_norm.clip_obs)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        if self.obs_mean is not None:
            obs = ((obs.double() - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip).float()
        features = self.policy.extract_features(obs)
        pi_features, vf_features = features if isinstance(features, tuple) else (features, features)
        pi = self.policy.action_net(self.policy.mlp_extractor.forward_actor(pi_features))
        value = self.policy.value_net(self.policy.mlp_extractor.forward_critic(vf_features))
        return pi, value.squeeze(-1)


class SB3Recurrent(SB3ActorCritic):
    """pacer's recurrent interface over sb3-contrib's RecurrentActorCriticPolicy: its actor's and critic's LSTM states
    (h and c) side by side as one flat state, one step at a time (what pacer's evaluator asks)."""

    def __init__(self, policy: Any, vec_norm: VecNormalize | None) -> None:
        super().__init__(policy, vec_norm)
        lstm = policy.lstm_actor
        self.shape = (lstm.num_layers, lstm.hidden_size)
        self.cores = 2 if policy.lstm_critic is not None else 1
        self.state_size = 2 * self.cores * lstm.num_layers * lstm.hidden_size

    def initial_state(self, batch: int) -> Tensor:
        return torch.zeros(batch, self.state_size)

    def forward(self, obs: Tensor, state: Tensor, starts: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        assert obs.shape[0] == 1, "one step at a time"
        x, batch = obs[0], obs.shape[1]
        if self.obs_mean is not None:
            x = ((x.double() - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip).float()
        layers, size = self.shape
        parts = state.reshape(batch, 2 * self.cores, layers, size).permute(1, 2, 0, 3).contiguous()
        starts_f = starts[0].float()
        policy: Any = self.policy  # sb3-contrib's RecurrentActorCriticPolicy
        features = policy.extract_features(x)
        pi_features, vf_features = features if isinstance(features, tuple) else (features, features)
        latent_pi, (h, c) = policy._process_sequence(pi_features, (parts[0], parts[1]), starts_f, policy.lstm_actor)
        new = [h, c]
        if policy.lstm_critic is not None:
            latent_vf, (hv, cv) = policy._process_sequence(vf_features, (parts[2], parts[3]), starts_f,
                                                           policy.lstm_critic)
            new += [hv, cv]
        else:
            latent_vf = policy.critic(vf_features) if policy.critic is not None else latent_pi
        pi = policy.action_net(policy.mlp_extractor.forward_actor(latent_pi))
        value = policy.value_net(policy.mlp_extractor.forward_critic(latent_vf)).squeeze(-1)
        state = torch.stack(new).permute(2, 0, 1, 3).reshape(batch, self.state_size)
        return pi.unsqueeze(0), value.unsqueeze(0), state


class BenchCallback(BaseCallback):
    """Evaluates every `eval_every` env steps and keeps the clock: evaluation time is taken out of training time,
    and steady-state throughput counts from the end of the first rollout."""

    def __init__(self, args: argparse.Namespace, evaluate: Callable[[], float]) -> None:
        super().__init__()
        self.args, self.evaluate = args, evaluate
        self.train_started_at = 0.0
        self.eval_time = 0.0
        self.next_eval = args.eval_every
        self.curve: list[list[float]] = []
        self.steady: tuple[float, int, float] | None = None  # (time, env steps, eval time so far)
        self.end: tuple[float, int, float] | None = None
        self.solved_at: float | None = None

    def _stop(self, now: float) -> None:
        if self.end is None:
            self.end = (now, self.num_timesteps, self.eval_time)

    def _on_rollout_start(self) -> None:
        # Throughput mode stops on a rollout boundary, after the last update, so every timed step was trained on.
        if self.args.mode == "throughput" and self.num_timesteps >= self.args.steps:
            self._stop(time.time())

    def _on_rollout_end(self) -> None:
        if self.steady is None:
            self.steady = (time.time(), self.num_timesteps, self.eval_time)

    def _on_training_end(self) -> None:
        self._stop(time.time())

    def _on_step(self) -> bool:
        if self.end is not None:
            return False
        if self.args.mode == "throughput":
            return True
        now = time.time()
        if self.args.max_seconds is not None and now - self.train_started_at - self.eval_time >= self.args.max_seconds:
            self._stop(now)
            return False
        if self.num_timesteps < self.next_eval:
            return True
        self.next_eval = (self.num_timesteps // self.args.eval_every + 1) * self.args.eval_every
        mean = self.evaluate()
        self.curve.append([round(now - self.train_started_at - self.eval_time, 3), self.num_timesteps, round(mean, 2)])
        print(f"eval at {self.num_timesteps} steps: {mean:.2f}", file=sys.stderr)
        if self.args.target is not None and mean >= self.args.target:
            self.solved_at = now
            self._stop(now)  # before adding this evaluation's time: it is not part of the run up to solving
        self.eval_time += time.time() - now
        return self.solved_at is None


class MiniGridKeys(gym.ObservationWrapper):
    """MiniGrid's Dict observation as SB3's MultiInputPolicy can read it and as pacer reads it: the 7x7 `image`
    (object, colour and state codes, not pixels) declared float32, so SB3 flattens it into its MLP where it would
    give a uint8 image the Nature CNN (which cannot read 7x7); `direction` as it is (one-hot in both); the Text
    `mission` left out (pacer leaves it out too)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        spaces = {key: space for key, space in env.observation_space.spaces.items()  # type: ignore[attr-defined]
                  if key != "mission"}
        spaces["image"] = gym.spaces.Box(0.0, 255.0, spaces["image"].shape, np.float32)
        self.observation_space = gym.spaces.Dict(spaces)

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {key: np.asarray(value, np.float32) if key == "image" else value
                for key, value in observation.items() if key != "mission"}


class InfoMasks(gym.Wrapper):
    """An env whose masks are in `info["action_mask"]` (Taxi-v4) with MaskablePPO's `action_masks()` method."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.mask: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        self.mask = info.get("action_mask")
        return obs, info

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.mask = info.get("action_mask")
        return obs, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        assert self.mask is not None, "the env gave no action_mask in its info"
        return np.asarray(self.mask, dtype=bool)


def run(args: argparse.Namespace) -> dict[str, Any]:
    atari = is_atari(args.env)
    hp = LIBRARY_DEFAULTS if args.hyperparams == "defaults" else ZOO_ATARI if atari else ZOO[args.algo][args.env]
    env_kwargs = {"render_mode": None} if args.render_mode == "none" else None
    venv: VecEnv
    pettingzoo = ":" in args.env  # a PettingZoo env module, as `pacer train --env` names one
    minigrid = args.env.startswith("MiniGrid-")
    if atari:
        venv = DummyVecEnv([functools.partial(_atari_env, args.env) for _ in range(hp["n_envs"])])
        venv.seed(args.seed)
    elif pettingzoo:
        venv = _supersuit(args.env, hp["n_envs"])
    else:
        register_atari(args.env)  # and MiniGrid's ids
        wrapper = InfoMasks if args.algo == "maskableppo" else MiniGridKeys if minigrid else None
        venv = make_vec_env(args.env, n_envs=hp["n_envs"], seed=args.seed, env_kwargs=env_kwargs,
                            wrapper_class=wrapper)
    wrappers = ATARI_ENV["wrappers"] if atari else ("pacer.bench.sb3:MiniGridKeys",) if minigrid else ()
    eval_kwargs = ATARI_ENV["kwargs"] if atari else None
    kwargs = {key: schedule(value) for key, value in hp.items() if key not in NOT_ALGO_KWARGS}
    vec_norm = None
    if hp.get("normalize", False):
        # The zoo's default: observations and rewards normalized, with the algorithm's discount.
        venv = vec_norm = VecNormalize(venv, gamma=kwargs.get("gamma", 0.99), **hp.get("normalize_kwargs", {}))
    algo_cls: Any
    if args.algo == "recurrentppo":
        from sb3_contrib import RecurrentPPO  # the bench extra

        algo_cls = RecurrentPPO
    elif args.algo == "maskableppo":
        from sb3_contrib import MaskablePPO

        algo_cls = MaskablePPO
    else:
        algo_cls = {"a2c": A2C, "ppo": PPO}[args.algo]
    if pettingzoo:  # SuperSuit's concatenated env has no seed(): the policy and SB3's sampling are seeded
        from stable_baselines3.common.utils import set_random_seed

        set_random_seed(args.seed)
    model = algo_cls(hp["policy"], venv, seed=None if pettingzoo else args.seed, device="cpu", verbose=0,
                     policy_kwargs=hp.get("policy_kwargs"), **kwargs)

    last: list[Any] = []  # the latest evaluation's returns

    def evaluate() -> float:
        policy: Any = model.policy  # an ActorCriticPolicy, or sb3-contrib's sibling with the same parts
        wrapped = SB3Recurrent(policy, vec_norm) if args.algo == "recurrentppo" else SB3ActorCritic(policy, vec_norm)
        with torch.no_grad():
            played = run_episodes(wrapped,
                                  EnvConfig(id=args.env, kwargs=eval_kwargs or {}, wrappers=tuple(wrappers),
                                            action_mask="info" if args.algo == "maskableppo" else "none"),
                                  args.eval_episodes, args.seed + EVAL_SEED_OFFSET)
        last[:] = [round(float(r), 6) for r in played.returns]
        return float(np.mean(played.returns))

    callback = BenchCallback(args, evaluate)
    # Schedules run over the zoo's n_timesteps, as in the zoo; a longer throughput run stretches them.
    total = max(hp["n_timesteps"], args.steps) if args.mode == "throughput" else hp["n_timesteps"]
    callback.train_started_at = time.time()
    model.learn(total_timesteps=total, callback=callback)
    final = None
    if args.mode == "timed":  # the policy as it is when the time (or the zoo's step budget) ran out
        final = evaluate()
        print(f"final evaluation at {callback.num_timesteps} steps: {final:.2f}", file=sys.stderr)
    venv.close()

    assert callback.end is not None
    end_t, end_steps, end_eval = callback.end
    steps_per_s = None
    if callback.steady is not None and end_steps > callback.steady[1]:
        steady_t, steady_steps, steady_eval = callback.steady
        steps_per_s = round((end_steps - steady_steps) / (end_t - steady_t - (end_eval - steady_eval)), 1)
    solved = callback.solved_at is not None
    return {
        "framework": "sb3", "algo": args.algo, "env": args.env, "seed": args.seed, "mode": args.mode,
        "render_mode": args.render_mode, "hyperparams": hp, "hyperparams_from": args.hyperparams,
        "started_at": round(STARTED_AT, 3), "train_started_at": round(callback.train_started_at, 3),
        "env_steps": end_steps, "train_time_s": round(end_t - callback.train_started_at - end_eval, 3),
        "eval_time_s": round(callback.eval_time, 3), "steps_per_s": steps_per_s,
        "solved": solved if args.mode == "solve" else None,
        "solved_at": round(callback.solved_at, 3) if callback.solved_at is not None else None,
        "eval_time_before_solve_s": round(end_eval, 3) if solved else None,
        "solve_env_steps": end_steps if solved else None,
        "curve": callback.curve, "final_return": None if final is None else round(final, 2),
        "final_returns": None if final is None else last,
        "versions": {"sb3": sb3.__version__, "torch": torch.__version__, "gymnasium": gym.__version__},
    }


def _supersuit(env_id: str, copies: int) -> VecEnv:
    """A PettingZoo env as PettingZoo's SB3 tutorial trains it: each agent an env of SuperSuit's vector env,
    `copies` of it concatenated (in this process)."""
    import supersuit as ss  # the bench extra

    from pacer.multiagent import as_parallel
    from pacer.usercode import resolve_import

    parallel = as_parallel(resolve_import(env_id, "env factory")(), env_id)
    venv: VecEnv = ss.concat_vec_envs_v1(ss.pettingzoo_env_to_vec_env_v1(parallel), copies, num_cpus=1,
                                         base_class="stable_baselines3")
    return venv


def _atari_env(env_id: str) -> gym.Env:
    """One Atari env as pacer's `atari` preset makes it, its training rewards clipped to [-1, 1]."""
    env = make_single_env(EnvConfig(id=env_id, kwargs=ATARI_ENV["kwargs"], wrappers=tuple(ATARI_ENV["wrappers"])))
    return gym.wrappers.ClipReward(env, -1.0, 1.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pacer.bench.sb3", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=sorted(ZOO), required=True)
    parser.add_argument("--env", required=True, help=f"with zoo hyperparameters one of {', '.join(ZOO['ppo'])}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["solve", "timed", "throughput"], required=True,
                        help="solve: until --target; timed: --max-seconds of training, then a final evaluation; "
                        "throughput: --steps env steps")
    parser.add_argument("--target", type=float, help="solve mode: stop when the greedy evaluation mean reaches it")
    parser.add_argument("--eval-every", type=int, default=10_000, help="env steps over all envs (solve mode)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, help="solve mode: cap on training time, evaluation excluded")
    parser.add_argument("--steps", type=int, default=100_000, help="throughput mode: env steps to run")
    parser.add_argument("--render-mode", choices=["none", "default"], default="none",
                        help="none: render_mode=None (as the zoo does); default: SB3's make_vec_env default, rgb_array")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest for small networks)")
    parser.add_argument("--hyperparams", choices=["zoo", "defaults"], default="zoo",
                        help="zoo: rl-baselines3-zoo's for the env; defaults: SB3's library defaults, any env")
    args = parser.parse_args(argv)
    if args.hyperparams == "zoo" and args.env not in ZOO[args.algo] and not (args.algo == "ppo" and is_atari(args.env)):
        parser.error(f"no zoo hyperparameters for {args.algo} on {args.env}; have {', '.join(ZOO[args.algo])}")
    if args.mode == "solve" and args.target is None:
        parser.error("--mode solve needs --target")
    if args.mode == "timed" and args.max_seconds is None:
        parser.error("--mode timed needs --max-seconds")
    if args.eval_every <= 0 or args.eval_episodes <= 0 or args.steps <= 0 or args.threads <= 0:
        parser.error("--eval-every, --eval-episodes, --steps and --threads must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # One thread by default: these nets are tiny, so intra-op threads only add overhead (measured on CartPole A2C);
    # a CNN (Atari) may use more (--threads).
    torch.set_num_threads(args.threads)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the result line
        result = run(args)
    print(json.dumps(result, default=str), flush=True)  # default: the policy's activation class, by name


if __name__ == "__main__":
    main()
