"""`--track mlflow` and `--track wandb` against the real libraries in their local modes (an MLflow file store, W&B
offline), read back with their own readers; and metrics.csv keeping every column metrics.jsonl has."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest

import pacer
from pacer.metrics import Metrics
from pacer.reports import Report
from pacer.tracking import grouped, metric_name

pytestmark = pytest.mark.timeout(180)


def tracked(tmp_path: Path, track: str, **log: Any) -> pacer.TrainResult:
    """A brief inline CartPole run with one greedy evaluation, a final video and the tracker."""
    return pacer.train({
        "env": {"envs_per_worker": 4}, "algo": {"name": "a2c", "n_steps": 8},
        "runtime": {"backend": "inline", "workers": 1, "total_steps": 2000, "eval_every": 1000, "eval_episodes": 2,
                    "final_eval_episodes": 2, "eval_share": 1.0, "stop_at_return": None},
        "log": {"run_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False, "report_every": 0.0,
                "checkpoint_every": 0, "track": [track], "project": "pacer-tests", **log},
    }, preset="none")


def rows_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_metric_names_are_grouped() -> None:
    assert [metric_name(k) for k in ("return_recent", "eval_return", "steps_per_s", "actor_loss", "entropy")] == [
        "charts/episodic_return", "charts/eval_return", "perf/steps_per_s", "losses/actor_loss", "losses/entropy"]
    assert grouped({"env_steps": 5, "time": 1.5, "eval_return": None, "loss": 2}) == {"perf/time_s": 1.5,
                                                                                      "losses/loss": 2.0}


def test_mlflow_file_store_holds_metrics_params_and_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps file stores behind this switch
    result = tracked(tmp_path, "mlflow")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("pacer-tests")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["algo.n_steps"] == "8" and run.data.params["env.id"] == "CartPole-v1"
    assert run.data.tags["versions.pacer"] == pacer.__version__ and "versions.torch" in run.data.tags
    rows = rows_of(result.run_dir)
    history = client.get_metric_history(run.info.run_id, "perf/steps_per_s")
    assert [(m.step, m.value) for m in history] == [(r["env_steps"], r["steps_per_s"]) for r in rows]
    losses = client.get_metric_history(run.info.run_id, "losses/actor_loss")
    assert [m.value for m in losses] == [r["actor_loss"] for r in rows if r.get("actor_loss") is not None]
    evals = client.get_metric_history(run.info.run_id, "charts/eval_return")
    assert [m.value for m in evals] == [r["eval_return"] for r in rows if r["eval_return"] is not None] and evals
    final = client.get_metric_history(run.info.run_id, "charts/final_eval_mean")
    assert [m.value for m in final] == [pytest.approx(result.eval_mean)]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "videos")] == ["videos/final.mp4"]


def wandb_records(path: Path) -> list[bytes]:
    """The records of a .wandb file: a 7-byte header (':W&B', magic, version), then LevelDB's log format (32 KiB
    blocks of chunks: CRC-32 (4 bytes), length (2), type (1: full, 2: first, 3: middle, 4: last), payload)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, at, block = [], b"", 7, 32768
    while at + 7 <= len(data):
        if block - at % block < 7:  # a block's tail too short for a chunk header is padding
            at += block - at % block
            continue
        length, kind = int.from_bytes(data[at + 4:at + 6], "little"), data[at + 6]
        if at + 7 + length > len(data):  # a chunk still being written
            break
        payload, at = data[at + 7:at + 7 + length], at + 7 + length
        if kind == 0 and length == 0:
            break
        pending += payload
        if kind in (1, 4):
            records.append(pending)
            pending = b""
    return records


def wandb_history(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The history rows and the config of the run's offline .wandb file, each record parsed with W&B's own
    protobuf message."""
    from wandb.proto import wandb_internal_pb2

    [path] = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    deadline = time.monotonic() + 30
    while True:  # W&B's service writes the file's tail after run.finish() returns (seen on a loaded machine)
        records = [wandb_internal_pb2.Record.FromString(data) for data in wandb_records(path)]
        if (records and records[-1].WhichOneof("record_type") == "exit") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert records and records[-1].WhichOneof("record_type") == "exit", "the .wandb file never got its exit record"
    history, config = [], {}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
        elif kind == "run":
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
    return history, config


def test_wandb_offline_run_holds_the_same_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = tracked(tmp_path, "wandb")
    rows = rows_of(result.run_dir)
    history, config = wandb_history(result.run_dir)
    by_step = {h["_step"]: h for h in history}
    expected: dict[int, dict[str, float]] = {}
    for row in rows:  # rows at the same env step (an evaluation's, say) are one W&B step: the later values win
        expected.setdefault(row["env_steps"], {}).update(grouped(row))
    assert set(expected) <= set(by_step) and len(expected) > 2
    for step, values in expected.items():
        for key, value in values.items():
            assert by_step[step][key] == pytest.approx(value), key
    assert by_step[result.env_steps]["charts/final_eval_mean"] == pytest.approx(result.eval_mean)
    [video] = [h for h in history if "videos/final/path" in h]  # a wandb.Video: its metadata in the history
    assert video["videos/final/_type"] == "video-file" and video["_step"] == result.env_steps
    assert (next((result.run_dir / "wandb").glob("offline-run-*")) / "files" / video["videos/final/path"]).is_file()
    config = {k: v.get("value", v) if isinstance(v, dict) else v for k, v in config.items()}
    assert config["env"]["id"] == "CartPole-v1" and config["versions"]["pacer"] == pacer.__version__


def test_a_missing_tracker_is_one_line_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(pacer.PacerError, match=r"^log.track 'mlflow' needs the mlflow package: "
                                               r"pip install 'pacer-rl\[mlflow\]'$"):
        tracked(tmp_path, "mlflow")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_bad_tracker_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(pacer.PacerError, match=r"^log.track must be one of wandb, mlflow; got 'tensorbord'"):
        tracked(tmp_path, "tensorbord")


def test_metrics_csv_has_every_column_of_metrics_jsonl(tmp_path: Path) -> None:
    """A first row written before any worker reported (as with worker processes) has no losses: the columns that
    arrive later must reach the CSV file too, as they reach the JSONL file; a resumed run appends under them."""
    files = {}
    for fmt in ("jsonl", "csv"):
        (tmp_path / fmt).mkdir()
        metrics = Metrics(tmp_path / fmt, fmt, tensorboard=False, progress=False, total_steps=100)
        metrics.row({"env_steps": 0, "episodes": 0, "updates": 0}, 0.5)
        metrics.absorb(Report(worker=0, env_steps=64, stats={"actor_loss": 0.25, "entropy": 0.69}))
        metrics.row({"env_steps": 64, "episodes": 1, "updates": 2}, 1.0, eval_mean=12.0)
        metrics.close()
        files[fmt] = metrics.path
    jsonl = [json.loads(line) for line in files["jsonl"].read_text().splitlines()]
    with open(files["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(jsonl[1]) and "actor_loss" in rows[0]
    assert rows[0]["actor_loss"] == "" and rows[1]["actor_loss"] == "0.25" and rows[1]["eval_return"] == "12.0"
    again = Metrics(tmp_path / "csv", "csv", tensorboard=False, progress=False, total_steps=100, start_steps=64)
    again.absorb(Report(worker=0, env_steps=64, stats={"actor_loss": 0.5, "entropy": 0.6, "approx_kl": 0.01}))
    again.row({"env_steps": 128, "episodes": 2, "updates": 4}, 2.0)
    again.close()
    with open(files["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["env_steps"] for r in rows] == ["0", "64", "128"] and rows[2]["approx_kl"] == "0.01"
    assert rows[1]["approx_kl"] == "" and rows[2]["actor_loss"] == "0.5"


def test_a_csv_run_has_the_columns_of_a_jsonl_run(tmp_path: Path, quiet: dict) -> None:
    quiet["runtime"].update({"eval_every": 1000, "stop_at_return": None})
    jsonl = pacer.train(quiet).run_dir
    quiet["log"].update({"run_dir": str(tmp_path / "csv"), "metrics_format": "csv"})
    run = pacer.train(quiet).run_dir
    with open(run / "metrics.csv", newline="") as f:
        header = next(csv.reader(f))
    assert set(header) == {key for row in rows_of(jsonl) for key in row} and "actor_loss" in header
