"""Which Atari vector path steps faster per core: Gymnasium's wrappers (AtariPreprocessing + FrameStackObservation)
on a SyncVectorEnv, as pacer's `atari` preset builds it, or ale-py's own AtariVectorEnv (C++ preprocessing and a
thread pool), both with the same settings (84x84 grayscale, 4 frames a step max-pooled, 4 stacked, 30 no-ops).

    python benchmarks/atari_vector.py --game pong --envs 8 --seconds 10 --rounds 3 --threads 1

Random actions, one process; the two alternate round by round. Prints env steps/s (agent steps: 4 frames each).
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np

from pacer.config import EnvConfig
from pacer.envs import make_vector_env
from pacer.presets import ATARI_ENV


def gymnasium_path(game: str, envs: int, threads: int) -> Any:
    env_id = f"ALE/{game.capitalize()}-v5"
    env = EnvConfig(id=env_id, kwargs=ATARI_ENV["kwargs"], wrappers=tuple(ATARI_ENV["wrappers"]))
    return make_vector_env(env, envs)


def ale_path(game: str, envs: int, threads: int) -> Any:
    return ale_py.AtariVectorEnv(game=game, num_envs=envs, num_threads=threads, repeat_action_probability=0.0,
                                 frameskip=4, stack_num=4, img_height=84, img_width=84, grayscale=True, noop_max=30,
                                 episodic_life=False, reward_clipping=False, use_fire_reset=False)


def rate(make: Any, game: str, envs: int, threads: int, seconds: float) -> tuple[float, tuple[int, ...], str]:
    env = make(game, envs, threads)
    try:
        obs, _ = env.reset(seed=0)
        rng = np.random.default_rng(0)
        n = env.single_action_space.n
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            obs, *_ = env.step(rng.integers(0, n, envs))
            steps += envs
        return steps / (time.perf_counter() - start), obs.shape[1:], str(obs.dtype)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="pong")
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="AtariVectorEnv's thread pool (1: one core)")
    args = parser.parse_args()
    gym.register_envs(ale_py)
    print(f"{platform.processor() or platform.machine()}, ale-py {ale_py.__version__}, gymnasium {gym.__version__}")
    results: dict[str, list[float]] = {"gymnasium wrappers": [], "ale_py.AtariVectorEnv": []}
    for _ in range(args.rounds):
        for name, make in (("gymnasium wrappers", gymnasium_path), ("ale_py.AtariVectorEnv", ale_path)):
            steps_per_s, shape, dtype = rate(make, args.game, args.envs, args.threads, args.seconds)
            results[name].append(steps_per_s)
            print(f"{name:24s} {steps_per_s:8,.0f} env steps/s  obs {dtype}{list(shape)}", flush=True)
    for name, rates in results.items():
        print(f"median {name:24s} {float(np.median(rates)):8,.0f} env steps/s")


if __name__ == "__main__":
    main()
