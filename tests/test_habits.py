"""Meeting users of SB3, the RL Zoo and CleanRL halfway: their flag and key names answered with pacer's, defaults in
--help, the resolved config printed, `pacer --version`. The command runs as a subprocess, as a user types it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pacer
from pacer.aliases import FLAG_OF_KEY, KEYS
from pacer.config import Config

ROOT = Path(__file__).resolve().parents[1]


def pacer_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacer", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "error"), [
    (["train", "--total-timesteps", "1e6"], "pacer: error: unrecognized arguments: --total-timesteps 1e6 "
     "(SB3/CleanRL's --total-timesteps is pacer's --total-steps) (see 'pacer train --help')"),
    (["train", "--env-id", "Acrobot-v1"], "pacer: error: unrecognized arguments: --env-id Acrobot-v1 "
     "(SB3/CleanRL's --env-id is pacer's --env) (see 'pacer train --help')"),
    (["train", "--learning-rate=3e-4"], "pacer: error: unrecognized arguments: --learning-rate=3e-4 "
     "(SB3/CleanRL's --learning-rate is pacer's --set algo.lr=VALUE) (see 'pacer train --help')"),
    (["train", "--set", "algo.learning_rate=3e-4"],
     "pacer: error: unknown config key 'algo.learning_rate' (SB3/CleanRL's learning_rate is pacer's algo.lr)"),
    (["train", "--set", "algo.batch_size=64"], "pacer: error: unknown config key 'algo.batch_size' (SB3/CleanRL's "
     "batch_size is pacer's algo.minibatches: a count, not a size: minibatches = n_steps x envs / batch_size)"),
    (["train", "--set", "lr=3e-4"], "pacer: error: unknown config section 'lr' (did you mean algo.lr?)"),
    (["train", "--set", "n_envs=8"], "pacer: error: unknown config section 'n_envs' (SB3/CleanRL's n_envs is pacer's "
     "env.envs_per_worker: per worker: pacer runs runtime.workers x env.envs_per_worker envs)"),
    (["train", "--track", "tensorboard"],
     "pacer: error: log.track must be one of wandb, mlflow; got 'tensorboard'"),
])
def test_foreign_names_are_answered_with_pacers(args: list[str], error: str) -> None:
    out = pacer_cmd(*args)
    assert out.returncode == 2 and out.stderr == error + "\n" and out.stdout == ""


def test_every_alias_names_a_real_key_and_the_docs_list_it() -> None:
    fields = {f"{section}.{name}" for section, values in Config().to_dict().items() for name in values}
    doc = (ROOT / "docs" / "coming-from.md").read_text()
    for name, (key, _) in KEYS.items():
        assert key in fields or key in Config().to_dict(), f"{name} -> {key}: no such key"
        assert re.search(rf"^\| `{name}` \| .*`{re.escape(key)}`", doc, re.M), f"docs/coming-from.md misses {name}"
    assert set(FLAG_OF_KEY) <= fields


def test_print_config_prints_the_resolved_config_and_trains_nothing(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pacer", "train", "--env", "Acrobot-v1", "--seed", "7", "--set",
                          "algo.lr=0.0005", "--print-config"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = Config.from_dict(yaml.safe_load(out.stdout))
    assert (cfg.env.id, cfg.runtime.seed, cfg.algo.lr) == ("Acrobot-v1", 7, 0.0005)
    assert cfg.env.envs_per_worker == pacer.PRESETS["acrobot"]["env"]["envs_per_worker"]  # the preset applied
    assert "using preset 'acrobot'" in out.stderr and not (tmp_path / "runs").exists()


def test_help_shows_defaults_and_version_prints_it() -> None:
    help_text = " ".join(pacer_cmd("train", "--help").stdout.split())
    assert "worker count (default: 2)" in help_text and "env-step budget (default: 1000000)" in help_text
    assert "greedy episodes scored for the model card (default: 100)" in " ".join(
        pacer_cmd("package", "--help").stdout.split())
    out = pacer_cmd("--version")
    assert out.returncode == 0 and out.stdout.startswith(f"pacer {pacer.__version__} (Python ")


def test_track_takes_a_comma_separated_list() -> None:
    out = pacer_cmd("train", "--track", "wandb,mlflow", "--print-config")
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["log"]["track"] == ["wandb", "mlflow"]
