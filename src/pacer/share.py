"""Sharing a trained agent: `pacer package RUN --out DIR` writes a folder that describes itself (a model card with
the score, hyperparameters, the command and the versions; a replay video; config.yaml; the checkpoint; the ONNX
policy), which `pacer eval DIR` loads; `pacer push` uploads such a folder to the Hugging Face Hub, from where
`pacer eval hf://user/name` and `pacer.load("hf://user/name")` load it again."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pacer import hub
from pacer.agent import evaluate, load
from pacer.errors import PacerError
from pacer.export import export
from pacer.version import __version__
from pacer.video import record

CHECKPOINT, CARD, CONFIG, POLICY, REPLAY = "checkpoint.pt", "README.md", "config.yaml", "policy.onnx", "replay.mp4"


@dataclass(frozen=True)
class Packaged:
    folder: Path
    mean: float
    std: float
    episodes: int
    replay_frames: int | None
    """Frames of replay.mp4 (the episode's length), or None when the env cannot render or the video extra is
    missing (said in `notes`)."""
    notes: list[str]


def package(source: str | Path, out: str | Path, episodes: int = 100, seed: int = 12345, workers: int = 2,
            video: bool = True, onnx: bool = True) -> Packaged:
    """Evaluate the run's agent on `episodes` greedy episodes and write the folder `out` (built beside it and
    moved into place: an existing folder is replaced only by a complete one)."""
    agent = load(source)
    run_dir = _run_dir_of(Path(source), agent.checkpoint)
    out = Path(out)
    if out.exists() and not (out / CARD).is_file():
        raise PacerError(f"--out {str(out)!r} exists and is not a packaged agent: choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        build = Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        build.chmod(0o777 & ~umask)  # a folder like any other (the temporary one is private)
        assert agent.checkpoint is not None
        shutil.copyfile(agent.checkpoint, build / CHECKPOINT)
        (build / CONFIG).write_text(yaml.safe_dump(agent.config.to_dict(), sort_keys=False))
        result = evaluate(agent, episodes=episodes, greedy=True, workers=workers, seed=seed)
        frames = None
        if video:
            try:
                frames = record(agent, build, 1, seed, names=[REPLAY.removesuffix(".mp4")])[0].frames
            except PacerError as exc:
                notes.append(f"no {REPLAY}: {exc}")
        if onnx:
            try:
                done = export(agent, build / POLICY, "onnx", check=1000)
                if done.verdict is not None:
                    notes.append(done.verdict)
            except PacerError as exc:
                notes.append(f"no {POLICY}: {exc}")
        summary = _summary(run_dir)
        card = model_card(agent.config.to_dict(), float(result.mean), float(result.std), episodes, seed, summary,
                          files=sorted([*(p.name for p in build.iterdir()), CARD, "score.json"]))
        (build / CARD).write_text(card)
        (build / "score.json").write_text(json.dumps(
            {"env": str(agent.config.env.id), "algo": agent.config.algo.name, "episodes": episodes, "seed": seed,
             "mean": float(result.mean), "std": float(result.std), "returns": result.returns.tolist()}) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(build, out)
        build.mkdir()  # for TemporaryDirectory's own clean-up
    return Packaged(out, float(result.mean), float(result.std), episodes, frames, notes)


def push(source: str | Path, repo: str, private: bool = False, episodes: int = 100) -> str:
    """Upload a packaged folder (or package a run directory first, into RUN/package) to the Hub repo `repo`."""
    folder = Path(source)
    if not (folder / CARD).is_file():
        folder = package(source, folder / "package", episodes=episodes).folder
    score = json.loads((folder / "score.json").read_text())
    card = folder / CARD
    card.write_text(card.read_text().replace("OWNER/NAME", repo))  # the card's usage lines name the real repo
    message = f"pacer {__version__}: {score['algo']} on {score['env']}, {score['mean']:.2f} ± {score['std']:.2f}"
    return hub.upload(folder, repo, message, private)


def model_card(config: dict[str, Any], mean: float, std: float, episodes: int, seed: int, summary: dict[str, Any],
               files: list[str]) -> str:
    """The folder's README.md: Hub metadata (a model-index with the score, as SB3's and CleanRL's agents have),
    then the score, how to use the agent, what trained it and with which settings."""
    env, algo = str(config["env"]["id"]), str(config["algo"]["name"])
    meta = {"library_name": "pacer", "tags": ["reinforcement-learning", "deep-reinforcement-learning", "pacer", env,
                                              algo],
            "model-index": [{"name": f"{algo.upper()} {env}", "results": [{
                "task": {"type": "reinforcement-learning", "name": "reinforcement-learning"},
                "dataset": {"name": env, "type": env},
                "metrics": [{"type": "mean_reward", "value": f"{mean:.2f} +/- {std:.2f}", "name": "mean_reward",
                             "verified": False}]}]}]}
    command = summary.get("command") or "(not recorded: the run predates pacer recording its command)"
    trained = (f"{summary['env_steps']:,} env steps in {summary['wall_time_s']:.0f} s"
               if "env_steps" in summary and "wall_time_s" in summary else "unknown")
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "",
        f"# {algo.upper()} agent for {env}, trained with pacer", "",
        f"Greedy score: **{mean:.2f} ± {std:.2f}** (mean ± std over {episodes} episodes, seeds {seed}-"
        f"{seed + episodes - 1}), measured by `pacer package` with pacer {__version__}.", "",
        "## Use it", "",
        "```bash",
        "pip install 'pacer-rl[hub]'",
        "pacer eval hf://OWNER/NAME --episodes 100      # this folder's repo; or: pacer eval ./this-folder",
        "```", "",
        "```python",
        "import pacer",
        'agent = pacer.load("hf://OWNER/NAME")  # or the folder\'s path',
        "action = agent.act(observation)",
        "```", "",
        f"`{POLICY}` is the greedy policy for any ONNX runtime (observation in, action out); `{CHECKPOINT}` the "
        "full checkpoint (`torch.load(..., weights_only=True)` reads it).", "",
        "## How it was trained", "",
        f"- command: `{command}`",
        f"- pacer version: {summary.get('pacer_version', 'unknown')} (packaged with {__version__})",
        f"- training: {trained}, {config['runtime']['workers']} workers on the {config['runtime']['backend']} "
        "backend",
        f"- files: {', '.join(files)}", "",
        "## Hyperparameters (config.yaml)", "",
        "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```", "",
    ]
    return "\n".join(lines)


def _run_dir_of(source: Path, ckpt: Path | None) -> Path | None:
    """The run directory a checkpoint came from (its summary.json holds the command), if there is one."""
    if source.is_dir():
        return source
    if ckpt is not None and ckpt.parent.name == "checkpoints":
        return ckpt.parent.parent
    return None


def _summary(run_dir: Path | None) -> dict[str, Any]:
    path = None if run_dir is None else run_dir / "summary.json"
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}

