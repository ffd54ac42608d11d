"""Learning curves from run directories' metrics, as a PNG (needs the `plot` extra: matplotlib)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pacer.errors import PacerError


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl or metrics.csv."""
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        lines = [line for line in path.read_text().splitlines() if line]
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if number < len(lines):  # only the last line may be cut: a run killed while writing it
                    raise PacerError(f"{str(path)!r} line {number} is not JSON") from None
        return rows
    if (run_dir / "metrics.csv").is_file():
        with open(run_dir / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in rows]
    raise PacerError(f"no metrics.jsonl or metrics.csv in {str(run_dir)!r}")


def plot_runs(run_dirs: list[Path], out: Path, x: str = "env_steps") -> Path:
    """Recent training return (line) and greedy evaluations (dots) of each run against `x`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PacerError("plotting needs matplotlib: pip install -e '.[plot]'") from None
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for run in run_dirs:
        rows = read_metrics(run)
        label = run.name
        train = [(r[x], r["return_recent"]) for r in rows if r.get("return_recent") is not None]
        evals = [(r[x], r["eval_return"]) for r in rows if r.get("eval_return") is not None]
        line = ax.plot(*zip(*train, strict=True), label=f"{label} (training, last 100 episodes)")[0] if train else None
        if evals:
            ax.plot(*zip(*evals, strict=True), "o", ms=4, color=line.get_color() if line else None,
                    label=f"{label} (greedy evaluation)")
    ax.set_xlabel({"env_steps": "environment steps", "time": "wall time (s)"}.get(x, x))
    ax.set_ylabel("episode return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
