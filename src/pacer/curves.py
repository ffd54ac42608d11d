"""Learning curves from run directories' metrics: a matplotlib figure, or a PNG (needs the `plot` extra)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pacer.errors import PacerError, make_output_dir

if TYPE_CHECKING:
    from matplotlib.figure import Figure

AXES = {"env_steps": "environment steps", "time": "wall time (s)"}
Axis = Literal["env_steps", "time"]


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


def plot(run_dirs: Sequence[str | Path] | str | Path, x: Axis = "env_steps", y: str | None = None) -> Figure:
    """Learning curves of one or more runs as a matplotlib figure: the training return (mean of the last 100
    episodes, a line) and the greedy evaluations (dots) against `x` ('env_steps' or 'time'), or with `y` that
    column of the metrics (a line). In a notebook the figure shows inline; elsewhere `.savefig(path)` it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise PacerError("plotting needs matplotlib: pip install 'pacer-rl[plot]'") from None
    if x not in AXES:
        raise PacerError(f"x must be one of {', '.join(AXES)}, got {x!r}")
    runs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(run) for run in run_dirs]
    if not runs:
        raise PacerError("plot needs at least one run directory")
    curves = [(run.name, read_metrics(run)) for run in runs]  # every run is read before a figure exists
    if y is not None and not any(r.get(y) is not None for _, rows in curves for r in rows):
        known = sorted({key for _, rows in curves for r in rows for key in r})
        raise PacerError(f"no run has a metric {y!r}; its metrics: {', '.join(known)}")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    plt.close(fig)  # pyplot forgets it: a notebook shows the returned figure once, and scripts leak nothing
    for label, rows in curves:
        if y is not None:
            points = [(r[x], r[y]) for r in rows if r.get(y) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), label=label)
            continue
        train = [(r[x], r["return_recent"]) for r in rows if r.get("return_recent") is not None]
        evals = [(r[x], r["eval_return"]) for r in rows if r.get("eval_return") is not None]
        line = ax.plot(*zip(*train, strict=True), label=f"{label} (training, last 100 episodes)")[0] if train else None
        if evals:
            ax.plot(*zip(*evals, strict=True), "o", ms=4, color=line.get_color() if line else None,
                    label=f"{label} (greedy evaluation)")
    ax.set_xlabel(AXES[x])
    ax.set_ylabel("episode return" if y is None else y)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[1]:  # runs without any episode yet draw nothing to name
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_runs(run_dirs: list[Path], out: Path, x: Axis = "env_steps", y: str | None = None) -> Path:
    """`pacer plot`: the figure of `plot`, saved as an image in the format `out`'s suffix names (PNG when it has
    none, adding .png); the path written."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # the command never opens a window; `plot` itself leaves a notebook's backend alone
    except ImportError:
        raise PacerError("plotting needs matplotlib: pip install 'pacer-rl[plot]'") from None
    fig = plot(run_dirs, x, y)
    formats = fig.canvas.get_supported_filetypes()
    if not out.suffix:
        out = out.with_name(out.name + ".png")
    if out.suffix[1:].lower() not in formats:
        raise PacerError(f"cannot save a plot as {out.suffix!r} ({str(out)!r}); use one of: "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    make_output_dir(out.parent)
    fig.savefig(out)
    return out
