"""PNG pictures of benchmark records: learning curves against wall time, and the speed-up curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pacer.bench.suite import amdahl

COLORS = {"pacer": "tab:blue", "sb3-a2c": "tab:orange", "sb3-ppo": "tab:green",
          "sb3-ppo-render-default": "tab:gray", "classic-da2c": "tab:red", "default": "tab:blue"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def compare_curves(record: dict[str, Any], out: Path) -> Path:
    """Greedy-evaluation mean against seconds since the command started (evaluation time excluded)."""
    plt = _pyplot()
    panels = 2 if record.get("classic") else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    ax = axes[0][0]
    for name, rs in record["runs"].items():
        for i, run in enumerate(rs):
            curve = run.get("curve") or []
            if curve:
                ax.plot([p[0] for p in curve], [p[2] for p in curve], color=COLORS.get(name, "black"),
                        alpha=0.8, lw=1.2, label=name if i == 0 else None)
    ax.axhline(record["target"], color="black", ls=":", lw=1, label=f"solved ({record['target']:g})")
    ax.set(xscale="log", xlabel="seconds since the command started (evaluation excluded)",
           ylabel="greedy evaluation mean", title=f"{record['env']}: time to solve")
    ax.legend(fontsize=8)
    if panels == 2:
        ax = axes[0][1]
        for name in ("default", "classic-da2c"):
            curve = record["classic"][name].get("recent_curve") or []
            ax.plot([p[0] for p in curve], [p[2] for p in curve], color=COLORS[name], label=f"pacer {name}")
        ax.axhline(record["classic"]["target"], color="black", ls=":", lw=1)
        ax.set(xscale="log", xlabel="seconds since the command started", ylabel="mean of the last 100 episodes",
               title="default config vs classic-da2c (training returns)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def timed_curves(record: dict[str, Any], out: Path) -> Path:
    """Greedy return against training time since the command started: pacer's and SB3's runs of `bench timed`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, rs in record["runs"].items():
        for i, run in enumerate(rs):
            curve = run.get("curve") or []
            if curve:
                ax.plot([p[0] for p in curve], [p[2] for p in curve], color=COLORS.get(name, "black"), alpha=0.8,
                        lw=1.2, marker=".", label=name if i == 0 else None)
    for seconds, name in ((record["pacer_s"], "pacer"), (record["sb3_s"], "sb3-ppo")):
        if seconds > 0:
            ax.axvline(seconds, color=COLORS[name], ls=":", lw=1)
    published = record.get("published")
    if published:
        ax.axhline(published["mean"], color="gray", ls="--", lw=1,
                   label=f"zoo's published PPO, 1M steps ({published['mean']:.0f})")
    ax.set(xscale="log", xlabel="seconds of training since the command started (evaluation excluded)",
           ylabel=f"{record['eval_episodes']}-episode greedy mean", title=f"{record['env']}: return against time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def speedup_curve(record: dict[str, Any], out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    table = record["table"]
    ns = [row["workers"] for row in table]
    ax.plot(ns, [row["speedup"] for row in table], "o-", color="tab:blue", label="measured")
    top = max(64, *ns)
    xs = [1, 2, 4, 8, 16, 32, 64]
    ax.plot(xs, xs, color="gray", ls=":", label="ideal")
    f = record["amdahl_serial_fraction"]
    ax.plot(xs, [amdahl(f, n) for n in xs], color="tab:red", ls="--",
            label=f"Amdahl fit, serial {f:.3f} (projection beyond {record['cores']} cores)")
    worst = max(record.get("serial_fraction_per_repeat") or [f])
    if worst > f:
        ax.plot(xs, [amdahl(worst, n) for n in xs], color="tab:red", ls=":",
                label=f"Amdahl fit of the worst repeat, serial {worst:.3f} (projection)")
    ax.axvline(record["cores"], color="black", lw=0.8, alpha=0.5)
    ax.set(xscale="log", yscale="log", xlim=(0.9, top * 1.1), xlabel="workers",
           ylabel="speed-up over 1 worker",
           title=f"{record['env']}: scaling on a {record['cores']}-core machine")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
