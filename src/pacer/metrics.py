"""Metrics: reports in, rows out (JSONL or CSV, TensorBoard when installed) and a live progress bar."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pacer.reports import Report

RECENT_EPISODES = 100


class Metrics:
    def __init__(self, run_dir: Path, fmt: str, tensorboard: bool, progress: bool, total_steps: int,
                 start_steps: int = 0) -> None:
        self.recent: deque[float] = deque(maxlen=RECENT_EPISODES)
        self.latest: dict[str, float] = {}
        self.timings: dict[str, float] = {}
        self.last_eval: float | None = None
        self.first_env_step_at: dict[int, float] = {}
        """Epoch time of each worker's first env step (its first incarnation's), for cold-start benchmarks."""
        self.last_rate: float | None = None
        self.last_steps, self.last_time = start_steps, 0.0
        self.fmt = fmt
        self.path = run_dir / f"metrics.{fmt}"
        self.file = open(self.path, "a", newline="")  # noqa: SIM115 - kept open for the run
        self.csv_writer: csv.DictWriter[str] | None = None
        self.tb = _tensorboard_writer(run_dir) if tensorboard else None
        self.bar = _progress_bar(total_steps, start_steps) if progress else None
        self.reports = 0  # absorbed so far: none means the workers are still on their first rollouts
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with every row written (the experiment trackers)."""

    def absorb(self, report: Report) -> None:
        self.reports += 1
        if report.first_env_step_at is not None:
            self.first_env_step_at.setdefault(report.worker, report.first_env_step_at)
        self.recent.extend(report.episode_returns.tolist())
        for key, seconds in report.timings.items():
            self.timings[key] = self.timings.get(key, 0.0) + seconds
        self.latest.update(report.stats)

    def recent_return(self) -> float:
        return float(np.mean(self.recent)) if self.recent else math.nan

    def row(self, counters: dict[str, int], elapsed: float, eval_mean: float | None = None,
            eval_time: float = 0.0, eval_cut: int = 0) -> dict[str, Any]:
        """Write one row: counters, throughput since the last row, recent returns, latest losses, eval (and, in an
        evaluation's row, how many of its episodes the time cap cut)."""
        steps = counters["env_steps"]
        if steps != self.last_steps or self.last_rate is None:
            self.last_rate = (steps - self.last_steps) / max(elapsed - self.last_time, 1e-9)
            self.last_steps, self.last_time = steps, elapsed
        rate = self.last_rate
        if eval_mean is not None:
            self.last_eval = eval_mean
        row: dict[str, Any] = {"time": round(elapsed, 3), "eval_time": round(eval_time, 3), **counters,
                               "steps_per_s": round(rate, 1),
                               "return_recent": _clean(self.recent_return()),
                               "eval_return": _clean(eval_mean) if eval_mean is not None else None,
                               **({"eval_cut": eval_cut} if eval_mean is not None else {}),
                               **{k: _clean(v) for k, v in sorted(self.latest.items())}}
        self._write(row)
        for listener in self.listeners:
            listener(row)
        if self.tb is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "env_steps":
                    self.tb.add_scalar(key, value, steps)
        if self.bar is not None:
            self.bar.n = min(steps, self.bar.total)
            # steps count once a rollout and its updates are done: a large one (pixels) shows nothing for seconds
            self.bar.set_postfix_str("first rollouts under way" if not self.reports else
                                     f"{rate:,.0f} steps/s | return {self.recent_return():.1f} | eval "
                                     + (f"{self.last_eval:.1f}" if self.last_eval is not None else "-"),
                                     refresh=False)
            self.bar.refresh()
        return row

    def log(self, message: str) -> None:
        """A line for the user, on stderr, without breaking the progress bar."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def _write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.file.write(json.dumps(row) + "\n")
        else:
            if self.csv_writer is None or any(key not in self.csv_writer.fieldnames for key in row):
                # losses arrive after the first row: the header grows, the rows written so far get empty cells
                self.csv_writer = self._csv_writer(list(row))
            self.csv_writer.writerow(row)
        self.file.flush()

    def _csv_writer(self, columns: list[str]) -> csv.DictWriter[str]:
        """A writer appending to metrics.csv under the file's header (a resumed run's) widened by `columns`; the
        file is rewritten (atomically) when its header changes."""
        self.file.flush()
        with open(self.path, newline="") as existing:
            reader = csv.reader(existing)
            header = next(reader, [])
            body = list(reader)
        columns = [*header, *(c for c in columns if c not in header)]
        if columns != header:
            self.file.close()
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(columns)
                writer.writerows(line + [""] * (len(columns) - len(line)) for line in body)
            os.replace(tmp, self.path)
            self.file = open(self.path, "a", newline="")  # noqa: SIM115 - kept open for the run
        return csv.DictWriter(self.file, fieldnames=columns, extrasaction="ignore")

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
        if self.bar is not None:
            self.bar.close()


def _clean(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _tensorboard_writer(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        return None
    return SummaryWriter(log_dir=str(run_dir / "tb"))


def _progress_bar(total: int, start: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, unit="step", unit_scale=True, dynamic_ncols=True, file=sys.stderr,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
