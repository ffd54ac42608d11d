"""Config validation: every bad value gets one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacer.config import Config, load_yaml
from pacer.envs import check_env_id
from pacer.errors import PacerError
from pacer.presets import PRESETS, resolve


def err(data: dict) -> str:
    with pytest.raises(PacerError) as info:
        Config.from_dict(data)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_suggests() -> None:
    assert err({"runtime": {"worker": 2}}) == "unknown config key 'runtime.worker' (did you mean 'workers'?)"
    assert err({"runtim": {}}) == "unknown config section 'runtim' (did you mean 'runtime'?)"


def test_types_and_ranges() -> None:
    assert err({"runtime": {"workers": "two"}}) == "runtime.workers must be an integer, got 'two'"
    assert err({"runtime": {"workers": 0}}) == "runtime.workers must be >= 1, got 0"
    assert err({"algo": {"gamma": 1.5}}) == "algo.gamma must be <= 1.0, got 1.5"
    assert err({"log": {"progress": "yes"}}) == "log.progress must be true or false, got 'yes'"
    assert err({"model": {"hidden": 64}}) == "model.hidden must be a list of integers, got 64"


def test_lossless_coercions() -> None:
    cfg = Config.from_dict({"algo": {"lr": 1}, "runtime": {"total_steps": 1e5}, "model": {"hidden": [8, 8]}})
    assert cfg.algo.lr == 1.0 and isinstance(cfg.algo.lr, float)
    assert cfg.runtime.total_steps == 100_000
    assert cfg.model.hidden == (8, 8)


def test_yaml_round_trip(tmp_path: Path) -> None:
    from pacer.config import save_yaml

    cfg = resolve(None, "classic-da2c")
    save_yaml(cfg, tmp_path / "c.yaml")
    assert Config.from_dict(load_yaml(tmp_path / "c.yaml")) == cfg


def test_yaml_with_python_tags_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("runtime: !!python/object/apply:os.system ['touch PWNED']\n")
    with pytest.raises(PacerError, match="not valid YAML"):
        load_yaml(path)
    assert not (tmp_path / "PWNED").exists()


def test_presets_are_valid_and_unknown_ones_suggest() -> None:
    for name in PRESETS:
        resolve(None, name)
    with pytest.raises(PacerError,
                       match=r"unknown preset 'clasic-da2c' \(did you mean 'classic-da2c' or 'atari-a2c'\?\)"):
        resolve(None, "clasic-da2c")


def test_classic_preset_is_the_textbook_setup() -> None:
    cfg = resolve(None, "classic-da2c")
    assert (cfg.algo.name, cfg.algo.gamma, cfg.algo.value_coef, cfg.algo.lr) == ("mc", 0.95, 0.1, 1e-4)
    assert cfg.algo.normalize_returns == "l2" and not cfg.algo.shared_optimizer
    assert cfg.env.termination_reward == -10.0 and cfg.env.envs_per_worker == 1
    assert cfg.runtime.workers == 7


def test_unknown_env_suggests() -> None:
    with pytest.raises(PacerError, match=r"unknown environment 'CartPole-v2' \(did you mean 'CartPole-v1'"):
        check_env_id("CartPole-v2")
    with pytest.raises(PacerError, match="cannot import env factory module 'nowhere'"):
        check_env_id("nowhere:make")
    with pytest.raises(PacerError, match="module 'helpers' has no 'missing'"):
        check_env_id("helpers:missing")


def test_values_that_would_break_later() -> None:
    assert err({"algo": {"lr": float("nan")}}) == "algo.lr must be a finite number, got nan"
    assert err({"algo": {"gamma": float("inf")}}) == "algo.gamma must be a finite number, got inf"
    assert err({"algo": {"max_grad_norm": 0}}) == "algo.max_grad_norm must be > 0.0, got 0.0"
    assert err({"model": {"hidden": [64, 0]}}) == "model.hidden must be >= 1, got 0"
    assert err({"runtime": {"stop_at_return": 400, "eval_every": 0}}) == (
        "runtime.stop_at_return needs evaluations: set runtime.eval_every > 0")
    assert err({"env": {"id": ""}}) == "env.id must be an import path 'module:name' or a callable, got ''"


def test_worker_seeds_are_distinct_streams() -> None:
    from pacer.training import worker_seed

    seeds = {worker_seed(0, rank, steps) for rank in range(8) for steps in (0, 1000)}
    assert len(seeds) == 16
    assert all(abs(a - b) > 10_000 for a in seeds for b in seeds if a != b)  # no overlapping seed+i ranges
