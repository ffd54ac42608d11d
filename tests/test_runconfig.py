"""The run's one front door: `pacer train` and `pacer.train()` build a config the same way, and config.yaml holds
every value the run used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import pacer
from pacer import runconfig
from pacer.cli import main
from pacer.config import Config
from pacer.errors import PacerError

# keys whose null is itself the value used ("no limit", "none", "never"), not a choice left to later code
NULL_MEANS_NONE = {"model.factory", "algo.max_grad_norm", "algo.target_kl", "runtime.address",
                   "runtime.total_episodes", "runtime.time_limit", "env.termination_reward", "runtime.stop_at_return",
                   "algo.clip_rewards", "algo.sequence_length"}


def flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key != "kwargs":
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_config_yaml_of_a_default_run_lists_every_value_it_used(quiet: dict, tmp_path: Path) -> None:
    quiet["algo"] = {}  # PPO's own epochs and minibatches
    quiet["runtime"] = {**quiet["runtime"], "total_steps": 600, "eval_every": 10**6}  # a target, never reached
    result = pacer.train(quiet, preset="none")
    saved = flat(yaml.safe_load((result.run_dir / "config.yaml").read_text()))
    assert {key for key, value in saved.items() if value is None} <= NULL_MEANS_NONE
    assert "auto" not in saved.values()
    assert (saved["algo.epochs"], saved["algo.minibatches"]) == (4, 8)
    assert saved["env.max_episode_steps"] == 500  # CartPole-v1's own limit
    assert saved["runtime.start_method"] in ("forkserver", "spawn")
    assert saved["log.run_dir"] == str(result.run_dir)
    assert saved["runtime.stop_at_return"] == 475.0  # 'auto': CartPole-v1's reward_threshold


def test_the_stop_target_is_written_as_the_number_used(tmp_path: Path) -> None:
    cfg = runconfig.complete(Config.from_dict({"env": {"id": "Acrobot-v1"}}), tmp_path)
    assert cfg.runtime.stop_at_return == -100.0  # Acrobot-v1's reward_threshold
    cfg = runconfig.complete(Config.from_dict({"env": {"id": "Pendulum-v1"}}), tmp_path)
    assert cfg.runtime.stop_at_return is None  # no reward_threshold: no early stop
    cfg = runconfig.complete(Config.from_dict({"runtime": {"stop_at_return": 300}}), tmp_path)
    assert cfg.runtime.stop_at_return == 300.0
    again = runconfig.complete(cfg, tmp_path)
    assert again == cfg  # completing a completed config changes nothing (a resume completes config.yaml again)


def test_the_command_and_the_python_api_build_the_same_config(tmp_path: Path) -> None:
    file = tmp_path / "my.yaml"
    file.write_text("algo: {lr: 0.0005, n_steps: 8}\nenv: {envs_per_worker: 4}\n")
    flags = {"runtime.backend": "inline", "runtime.workers": 1, "runtime.total_steps": 400, "runtime.eval_every": 0,
             "runtime.final_eval_episodes": 1, "log.progress": False, "log.tensorboard": False}
    args = ["train", "--env", "Acrobot-v1", "--config", str(file), "--run-dir", str(tmp_path / "cli")]
    for key, value in flags.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    assert main(args) == 0
    pacer.train(str(file), env__id="Acrobot-v1", log__run_dir=str(tmp_path / "api"),
                **{key.replace(".", "__"): value for key, value in flags.items()})
    by_cli, by_api = (yaml.safe_load((tmp_path / name / "config.yaml").read_text()) for name in ("cli", "api"))
    assert by_cli["algo"]["lr"] == 0.0005 and by_cli["env"]["envs_per_worker"] == 4  # file, then the preset's rest
    assert by_cli["env"]["id"] == "Acrobot-v1" and by_cli["runtime"]["total_steps"] == 400
    del by_cli["log"]["run_dir"], by_api["log"]["run_dir"]
    assert by_cli == by_api


def test_resolve_reports_the_preset_it_picked_and_refuses_a_config_with_a_resume(tmp_path: Path) -> None:
    cfg, notes = runconfig.resolve({"env": {"id": "LunarLander-v3"}})
    assert cfg.env.envs_per_worker == 16 and notes == [
        "pacer: using preset 'lunarlander', tuned for LunarLander-v3 (--preset none for the plain defaults)"]
    assert runconfig.resolve({"env": {"id": "LunarLander-v3"}}, preset="none")[1] == []
    with pytest.raises(PacerError, match=r"^unknown backend 'threads'; choose from inline, local, ray$"):
        runconfig.resolve({"runtime": {"backend": "threads"}})
    with pytest.raises(PacerError, match=r"holds no config\.yaml"):
        runconfig.resolve(resume=tmp_path)
    with pytest.raises(PacerError, match="pass overrides only, not a config or a preset"):
        runconfig.resolve({"algo": {"lr": 0.1}}, resume=tmp_path)


def test_a_run_saved_under_an_earlier_value_name_still_loads_and_resumes(quiet: dict) -> None:
    """env.vector was 'auto' before it was 'gym': runs saved then load, evaluate and resume as today's."""
    import torch

    from pacer import checkpoint

    result = pacer.train(quiet, preset="none")
    config_yaml = result.run_dir / "config.yaml"
    saved = yaml.safe_load(config_yaml.read_text())
    saved["env"]["vector"] = "auto"
    config_yaml.write_text(yaml.safe_dump(saved))
    final = checkpoint.find(result.run_dir)
    data = checkpoint.load(final)
    data["config"]["env"]["vector"] = "auto"
    torch.save(data, final)
    cfg, _ = runconfig.resolve(None, preset=None, overrides={"runtime.total_steps": 4000}, resume=result.run_dir)
    assert cfg.env.vector == "gym"
    assert pacer.load(result.run_dir).act(np.zeros(4, dtype=np.float32)) in (0, 1)
