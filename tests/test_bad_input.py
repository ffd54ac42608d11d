"""Every bad input ends in one line on stderr (`pacer: error: ...`) and exit code 2, early or late.

A few cases run `python -m pacer` as a subprocess: errors raised before the command's own setup (argument parsing,
config checks before the fork server starts) and one after it. The rest call `pacer.cli.main` in this process,
the same code path without the ~2 s torch import per case; the checkpoint and resume cases share one small run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pacer import checkpoint
from pacer.cli import build_parser, main
from pacer.config import Config
from pacer.training import train


def pacer_cmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    return subprocess.run([sys.executable, "-m", "pacer", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def assert_one_line(code: int, stderr: str, message: str, expected_code: int = 2) -> None:
    assert stderr.startswith(message), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert code == expected_code, stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bad config files, and a directory with no run in it."""
    folder = tmp_path_factory.mktemp("files")
    (folder / "latin1.yaml").write_bytes("runtime:\n  seed: 1  # café\n".encode("latin-1"))
    (folder / "list.yaml").write_text("- runtime\n- algo\n")
    (folder / "evil.yaml").write_text("runtime: !!python/object/apply:os.system ['true']\n")
    (folder / "not-a-run").mkdir()
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished CartPole PPO run (inline, one worker with its own optimizer state), trained once for the module."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    train({"env": {"id": "CartPole-v1", "envs_per_worker": 4},
           "algo": {"n_steps": 32, "epochs": 1, "minibatches": 1, "shared_optimizer": False},
           "runtime": {"backend": "inline", "workers": 1, "total_steps": 500, "eval_every": 0,
                       "final_eval_episodes": 0},
           "log": {"run_dir": str(run_dir), "progress": False, "tensorboard": False, "report_every": 0.0}})
    return run_dir


def copy_of(run: Path, tmp_path: Path) -> Path:
    """A private copy of the shared run, for a case that damages it (copytree keeps write times)."""
    return Path(shutil.copytree(run, tmp_path / "run"))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# Errors raised before the command's own setup, and the unknown env after the fork server started: the whole
# process, exit code and stderr included.
@pytest.mark.parametrize(("args", "message"), [
    (["train", "--start-method", "teleport"],
     "pacer: error: runtime.start_method must be one of auto, fork, forkserver, spawn; got 'teleport'"),
    (["train", "--workers", "two"], "pacer: error: argument --workers: expected an integer, got 'two' "
                                    "(see 'pacer train --help')"),
    (["train", "--config", "{files}/latin1.yaml"], "pacer: error: config file '{files}/latin1.yaml' is not UTF-8 "
                                                   "text (byte 0xe9 at offset 25): save it as UTF-8"),
    (["train", "--env", "CartPole-v2"], "pacer: error: unknown environment 'CartPole-v2' (did you mean 'CartPole-v1'"),
    ([], "pacer: error: the following arguments are required: command (see 'pacer --help')"),
], ids=["start-method", "argparse-type", "non-utf8-config", "unknown-env", "no-command"])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, files: Path) -> None:
    out = pacer_cmd(*(a.format(files=files) for a in args))
    assert "Traceback" not in out.stderr
    assert_one_line(out.returncode, out.stderr, message.format(files=files))


INLINE = ["--backend", "inline", "--total-steps", "500", "--no-progress"]  # should a case not fail: a short run

CASES: list[tuple[list[str], str]] = [
    # argparse's own errors
    (["train", "--bogus"], "pacer: error: unrecognized arguments: --bogus (see 'pacer train --help')"),
    (["train", "--time-limit", "soon"],
     "pacer: error: argument --time-limit: invalid float value: 'soon' (see 'pacer train --help')"),
    (["nope"], "pacer: error: argument command: invalid choice: 'nope'"),
    # config files
    (["train", "--config", "/nonexistent.yaml"],
     "pacer: error: cannot read config file '/nonexistent.yaml': No such file or directory"),
    (["train", "--config", "{files}"], "pacer: error: cannot read config file '{files}': Is a directory"),
    (["train", "--config", "{files}/list.yaml"],
     "pacer: error: config file '{files}/list.yaml' must hold a mapping of sections (env, model, algo, runtime, "
     "log), got a list"),
    (["train", "--config", "{files}/evil.yaml"],
     "pacer: error: config file '{files}/evil.yaml' is not valid YAML (Python tags are not allowed)"),
    # keys, values, --set
    (["train", "--preset", "nope"], "pacer: error: unknown preset 'nope'"),
    (["train", "--set", "runtime.worker=3"],
     "pacer: error: unknown config key 'runtime.worker' (did you mean 'workers'?)"),
    (["train", "--set", "runtim.workers=3"],
     "pacer: error: unknown config section 'runtim' (did you mean 'runtime'?)"),
    (["train", "--set", "runtime.workers"], "pacer: error: --set takes KEY=VALUE, got 'runtime.workers'"),
    (["train", "--set", "algo.lr=[3e-4"],
     "pacer: error: --set 'algo.lr=[3e-4': the value is not valid YAML (while parsing a flow sequence)"),
    (["train", "--set", "runtime.workers=two"], "pacer: error: runtime.workers must be an integer, got 'two'"),
    (["train", "--set", "log.progress=maybe"], "pacer: error: log.progress must be true or false, got 'maybe'"),
    (["train", "--set", "model.hidden=64"], "pacer: error: model.hidden must be a list of integers, got 64"),
    (["train", "--workers", "0"], "pacer: error: runtime.workers must be >= 1, got 0"),
    (["train", "--time-limit", "-1"], "pacer: error: runtime.time_limit must be >= 0.0, got -1.0"),
    (["train", "--time-limit", "nan"], "pacer: error: runtime.time_limit must be a finite number, got nan"),
    (["train", "--backend", "threads"], "pacer: error: unknown backend 'threads'; choose from inline, local, ray"),
    # names that resolve to nothing usable
    (["train", "--algo", "ppo2", *INLINE], "pacer: error: unknown algorithm 'ppo2' (did you mean 'ppo'?)"),
    (["train", "--env", "nowhere.envs:make", *INLINE],
     "pacer: error: cannot import env factory module 'nowhere.envs': No module named 'nowhere'"),
    (["train", "--env", "helpers:make_not_an_env", *INLINE],
     "pacer: error: env factory 'helpers:make_not_an_env' returned object, not a gymnasium.Env"),
    (["train", "--set", "model.factory=helpers:make_not_a_model", *INLINE],
     "pacer: error: model factory 'helpers:make_not_a_model' returned str, not a torch.nn.Module"),
    # run directories and checkpoints
    (["train", "--resume", "{files}/not-a-run"],
     "pacer: error: cannot resume '{files}/not-a-run': it holds no config.yaml from an earlier run"),
    (["train", "--resume", "{run}", "--preset", "acrobot"],
     "pacer: error: --resume continues a run with its saved config; drop --config and --preset"),
    (["train", "--resume", "{run}", "--config", "{files}/list.yaml"],
     "pacer: error: --resume continues a run with its saved config; drop --config and --preset"),
    (["train", "--resume", "{run}"], "pacer: error: the run already spent its budget ("),
    (["train", "--resume", "{run}", "--total-steps", "5000", "--env", "Acrobot-v1"],
     "pacer: error: cannot resume '{run}' with env.id='Acrobot-v1': it was trained with 'CartPole-v1'"),
    (["train", "--resume", "{run}", "--total-steps", "5000", "--algo", "a2c"],
     "pacer: error: cannot resume '{run}' with algo.name='a2c': it was trained with 'ppo'"),
    (["train", "--resume", "{run}", "--total-steps", "5000", "--workers", "2"],
     "pacer: error: cannot resume '{run}' with runtime.workers=2: it was trained with 1 (with "
     "algo.shared_optimizer false, each worker has its own optimizer state)"),
    (["train", "--resume", "{run}", "--total-steps", "5000", "--set", "model.hidden=[32]"],
     "pacer: error: cannot resume '{run}' with model.hidden=[32]: it was trained with [64, 64]"),
    (["train", "--run-dir", "{run}", *INLINE], "pacer: error: run directory '{run}' already exists; continue it "
                                               "with --resume"),
    (["train", "--run-dir", "{run}/config.yaml", *INLINE], "pacer: error: Not a directory: '{run}/config.yaml'"),
    (["eval", "/nonexistent"], "pacer: error: no run directory or checkpoint at '/nonexistent'"),
    (["eval", "{files}/not-a-run"], "pacer: error: run directory '{files}/not-a-run' has no checkpoint in "
                                    "checkpoints/"),
    (["eval", "{run}", "--episodes", "0"], "pacer: error: --episodes must be >= 1, got 0"),
    (["eval", "{run}", "--workers", "0"], "pacer: error: --workers must be >= 1, got 0"),
    (["plot", "{files}/not-a-run"], "pacer: error: no metrics.jsonl or metrics.csv in '{files}/not-a-run'"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(args) for args, _ in CASES])
def test_bad_input_in_process(args: list[str], message: str, files: Path, run: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    paths = {"files": files, "run": run}
    code = main([a.format(**paths) for a in args])
    assert_one_line(code, capsys.readouterr().err, message.format(**paths))


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_truncated_checkpoint(command: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damaged = copy_of(run, tmp_path)
    final = damaged / "checkpoints" / "final.pt"
    truncate(final)
    args = ["eval", str(damaged)] if command == "eval" else ["train", "--resume", str(damaged), "--total-steps", "5000"]
    code = main(args)
    assert_one_line(code, capsys.readouterr().err, f"pacer: error: checkpoint '{final}' is corrupt or truncated")


def test_resume_of_a_checkpoint_whose_model_does_not_fit(run: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """As if the env's observations changed shape since the run was saved (CartPole's 4 numbers became 6)."""
    damaged = copy_of(run, tmp_path)
    final = damaged / "checkpoints" / "final.pt"
    data = checkpoint.load(final)
    data["model"]["actor_body.0.weight"] = torch.zeros(64, 6)
    torch.save(data, final)
    code = main(["train", "--resume", str(damaged), "--total-steps", "5000"])
    lines = capsys.readouterr().err.strip().splitlines()
    # the run had started (its one status line), then stops with one line
    assert [line for line in lines if not line.startswith("pacer: error:")] == [lines[0]]
    assert_one_line(code, lines[-1], "pacer: error: checkpoint does not fit this run's model (size mismatch for "
                                     "actor_body.0.weight: ")


def test_readme_spellings_of_numbers_are_accepted() -> None:
    """`--total-steps 1e6` and `--set algo.lr=3e-4` (PyYAML reads 3e-4 as text) are numbers, as the README says."""
    args = build_parser().parse_args(["train", "--total-steps", "1e6"])
    assert getattr(args, "runtime.total_steps") == 1_000_000
    cfg = Config.from_dict({"algo": {"lr": "3e-4"}, "runtime": {"total_steps": "1e6"}})
    assert cfg.algo.lr == 3e-4 and cfg.runtime.total_steps == 1_000_000
