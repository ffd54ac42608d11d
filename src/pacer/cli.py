"""The `pacer` command: train, eval, plot and bench. Errors in the user's input end in one line and exit code 2."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from pacer.aliases import flag_hint
from pacer.errors import PacerError, WorkerFailed
from pacer.runtime.signals import Terminated
from pacer.version import __version__

EXIT_ERROR, EXIT_WORKER_FAILED, EXIT_SIGINT, EXIT_SIGTERM = 2, 1, 130, 143


def _integer(text: str) -> int:
    """An integer flag that also takes the 1e6 of `--total-steps 1e6`."""
    with contextlib.suppress(ValueError):
        return int(text)
    with contextlib.suppress(ValueError):
        if (value := float(text)).is_integer():
            return int(value)
    raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")


def _names(text: str) -> list[str]:
    """A comma-separated list flag: `--track wandb,mlflow`."""
    return [name.strip() for name in text.split(",") if name.strip()]


# flag -> dotted config key; every other key is reachable with --set KEY=VALUE or --config FILE
TRAIN_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--env": ("env.id", str, "Gymnasium id (CartPole-v1, Acrobot-v1, LunarLander-v3, Pendulum-v1) or module:factory"),
    "--algo": ("algo.name", str, "algorithm: mc, a2c, a3c, ppo, or a registered one"),
    "--workers": ("runtime.workers", _integer, "worker count"),
    "--envs-per-worker": ("env.envs_per_worker", _integer, "environments batched in each worker"),
    "--total-steps": ("runtime.total_steps", _integer, "env-step budget"),
    "--time-limit": ("runtime.time_limit", float, "stop after this many seconds of training (evaluations with the "
                     "workers held are not counted; the final evaluation comes after: runtime.eval_max_seconds caps "
                     "each evaluation)"),
    "--seed": ("runtime.seed", _integer, "base seed"),
    "--run-dir": ("log.run_dir", str, "where to save the run (default runs/<env>-<algo>-<time>)"),
    "--start-method": ("runtime.start_method", str, "fork, forkserver or spawn (default: forkserver where available)"),
    "--backend": ("runtime.backend", str, "local (processes), ray (actors, here or on a cluster) or inline"),
    "--address": ("runtime.address", str, "ray: the cluster to join ('auto' or host:port); default: a private one"),
    "--max-restarts": ("runtime.max_restarts", _integer, "worker crashes or hangs tolerated before the run stops"),
    "--track": ("log.track", _names, "also log the run to wandb and/or mlflow (comma-separated; their extras)"),
}


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


class _Help(argparse.HelpFormatter):
    """Shows each option's default, unless it has none or its help already speaks of it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default == [] or default is argparse.SUPPRESS
                or "default" in text or not action.option_strings):
            return text
        return f"{text} (default: {default})"


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line like every other error (the usage is one --help away); its
    subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise PacerError(f"{message} (see '{self.prog} --help')")


def _config_default(key: str) -> Any:
    """A config key's default, for --help (the preset an env gets may change it: --print-config shows the result)."""
    from pacer.config import Config

    section, _, name = key.partition(".")
    return getattr(getattr(Config(), section), name)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pacer", description="Parallel actor-critic RL on CPU processes.")
    parser.add_argument("--version", action="version",
                        version=f"pacer {__version__} (Python {platform.python_version()})")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train an agent (default: CartPole-v1 on local worker processes)",
                        epilog="The defaults shown are the plain ones; an env's preset may change some of them: "
                        "--print-config shows what a run will use. Names from SB3, the RL Zoo and CleanRL "
                        "(--total-timesteps, learning_rate, ...) are answered with pacer's own.")
    for flag, (key, kind, text) in TRAIN_FLAGS.items():
        default = _config_default(key)
        shown = f" (default: {default})" if default not in (None, (), "") and "default" not in text else ""
        tr.add_argument(flag, dest=key, type=kind, default=None, help=text + shown,
                        metavar=flag.removeprefix("--").upper().replace("-", "_"))
    tr.add_argument("--config", type=Path, help="YAML file with any config keys; flags override it")
    tr.add_argument("--preset", help="named configuration (pacer.PRESETS); by default the one tuned for the env "
                    "and algorithm, if any ('none': the plain defaults)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any config key, e.g. --set algo.lr=3e-4 (repeatable)")
    tr.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a stopped run")
    tr.add_argument("--no-progress", action="store_true", help="no live progress bar")
    tr.add_argument("--print-config", action="store_true", help="print the resolved config (defaults, preset, file "
                    "and flags) as YAML and exit without training")

    ev = sub.add_parser("eval", help="evaluate a run directory or checkpoint")
    ev.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory, a checkpoint, a packaged "
                    "agent's folder or hf://owner/name (the hub extra)")
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mode")
    ev.add_argument("--workers", type=int, default=2, help="evaluation processes")
    ev.add_argument("--seed", type=int, default=12345)
    ev.add_argument("--json", action="store_true", help="print machine-readable output")
    ev.add_argument("--hang-timeout", type=float, default=10.0, metavar="SECONDS",
                    help="an evaluation process that makes no env step for this long is killed (default 10)")
    ev.add_argument("--opponent", metavar="RUN_DIR_OR_CHECKPOINT", help="a game trained by self-play: play "
                    "this agent of the same game (e.g. an earlier checkpoint) instead of a random player")
    ev.add_argument("--video", type=Path, metavar="DIR", help="also write the episodes as mp4 files into DIR "
                    "(episode-000.mp4, ...; needs the video extra)")
    ev.add_argument("--render", action="store_true", help="also play the episodes in a window (needs a display)")
    ev.add_argument("--video-episodes", type=int, metavar="N",
                    help="record or show only the first N episodes (default: every episode evaluated)")

    ex = sub.add_parser("export", help="write the greedy policy as an ONNX file (or a torch.export program)")
    ex.add_argument("source", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    ex.add_argument("--out", type=Path, help="the file to write (default: policy.onnx, or policy.pt2 with "
                    "--format torch)")
    ex.add_argument("--format", choices=["onnx", "torch"], default="onnx",
                    help="onnx (needs the export extra) or torch (torch.export.save)")
    ex.add_argument("--check", type=int, default=1000, metavar="N", help="before writing, run the file (onnx: "
                    "with onnxruntime, when installed; torch: with torch.export.load) and compare its greedy actions "
                    "with pacer's on N random observations; a file that disagrees is not written (0: skip)")

    pk = sub.add_parser("package", help="write a shareable folder: model card (score, settings, command), "
                        "replay.mp4, config.yaml, checkpoint.pt, policy.onnx")
    pk.add_argument("source", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    pk.add_argument("--out", type=Path, help="the folder to write (default: RUN_DIR/package)")
    pk.add_argument("--episodes", type=_integer, default=100, help="greedy episodes scored for the model card")
    pk.add_argument("--seed", type=_integer, default=12345, help="the first episode's seed")
    pk.add_argument("--workers", type=_integer, default=2, help="evaluation processes")
    pk.add_argument("--no-video", action="store_true", help="no replay.mp4")
    pk.add_argument("--no-onnx", action="store_true", help="no policy.onnx")
    pu = sub.add_parser("push", help="upload a packaged agent (a run directory is packaged first, into "
                        "RUN_DIR/package) to the Hugging Face Hub (the hub extra; `huggingface-cli login` first)")
    pu.add_argument("source", type=Path, metavar="PACKAGE_OR_RUN_DIR")
    pu.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the model repository (created if needed)")
    pu.add_argument("--private", action="store_true", help="create the repository private")

    pl = sub.add_parser("plot", help="learning curves of one or more runs, as a PNG (or the format --out's "
                        "suffix names)")
    pl.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    pl.add_argument("--out", type=Path, default=Path("learning-curve.png"))
    pl.add_argument("--x", choices=["env_steps", "time"], default="env_steps", help="horizontal axis")
    pl.add_argument("--y", metavar="METRIC", help="another column of metrics.jsonl instead of the returns, e.g. "
                    "rating or win_rate (self-play), return_agent_0 (an agent's), entropy")
    tu = sub.add_parser("tune", help="search an env's hyperparameters with Optuna (TPE sampler, median pruner), "
                        "trials in parallel; writes the best as a config YAML (needs the tune extra)")
    tu.add_argument("--env", default="CartPole-v1", help="Gymnasium id or module:factory")
    tu.add_argument("--algo", default="ppo", help="the algorithm whose settings are searched")
    tu.add_argument("--config", type=Path, help="YAML with fixed settings; the search overrides what it samples")
    tu.add_argument("--preset", default="auto", help="what the trials start from (default: the env's preset or "
                    "recipe)")
    tu.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fixed setting (repeatable)")
    tu.add_argument("--trials", type=_integer, default=20, help="trials in the study, earlier runs of it included")
    tu.add_argument("--parallel", type=_integer, default=2, help="trials trained at once")
    tu.add_argument("--steps", type=_integer, default=100_000, help="env steps per trial (and evaluations every "
                    "steps / evaluations)")
    tu.add_argument("--seconds", type=float, help="also a training-time limit per trial (MuJoCo: the return after "
                    "a time is the question)")
    tu.add_argument("--workers", type=_integer, default=1, help="workers per trial")
    tu.add_argument("--backend", default="local", help="where each trial's workers run: local, inline or ray")
    tu.add_argument("--address", help="ray: the cluster the trials' workers join ('auto' or host:port)")
    tu.add_argument("--seed", type=_integer, default=100, help="the trials' seed (tune on seeds you do not report)")
    tu.add_argument("--evaluations", type=_integer, default=10, help="greedy evaluations per trial (pruning points)")
    tu.add_argument("--dir", type=Path, help="the study's directory (default runs/tune-<env>): study.db, trials/, "
                    "best.yaml; the same command continues the study in it")
    tu.add_argument("--study-name", help="default: the env id")
    from pacer.bench.commands import add_parser as add_bench

    add_bench(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # `pacer train --env mymodule:make_env` finds mymodule in the current directory, as `python -m pacer` does (and
    # so do the workers: spawn and forkserver children start with this process's sys.path)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_IGN:  # inherited as ignored (nohup-like launchers): it stays ignored
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = _run(argv)
    finally:
        if previous is not None:  # called from Python (tests), leave the handler as it was
            signal.signal(signal.SIGTERM, previous)
    # only now, with the run's objects (and any exception's traceback) gone, is it safe to stop the helpers
    from pacer.runtime.processes import stop_helpers

    stop_helpers()
    return code


def _run(argv: list[str] | None) -> int:
    """Parse and run a command; every error from here on, parsing included, is one line on stderr."""
    command: str | None = None
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        command = args.command
        if extra:  # reported here, where the subcommand is known, so that the hint names its --help
            where = " ".join(["pacer", args.command, *([args.bench] if args.command == "bench" else [])])
            hint = next((h for h in map(flag_hint, extra) if h), "") if args.command == "train" else ""
            raise PacerError(f"unrecognized arguments: {' '.join(extra)}{hint} (see '{where} --help')")
        commands = {"train": _train, "eval": _eval, "export": _export, "plot": _plot, "bench": _bench,
                    "tune": _tune, "package": _package, "push": _push}
        return commands[args.command](args)
    except (Terminated, KeyboardInterrupt) as stop:
        saved = "; the run stopped cleanly and saved a final checkpoint" if command == "train" else ""
        if isinstance(stop, Terminated):
            print(f"pacer: terminated{saved}", file=sys.stderr)
            return EXIT_SIGTERM
        print(f"\npacer: interrupted{saved}", file=sys.stderr)
        return EXIT_SIGINT
    except PacerError as exc:
        print(f"pacer: error: {exc}", file=sys.stderr)
        return EXIT_WORKER_FAILED if isinstance(exc, WorkerFailed) else EXIT_ERROR
    except OSError as exc:  # an unwritable --run-dir or --out, a full disk: the system's own words suffice
        where = f": {str(exc.filename)!r}" if exc.filename is not None else ""
        print(f"pacer: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ERROR


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {key: getattr(args, key) for key, _, _ in TRAIN_FLAGS.values()
                           if getattr(args, key) is not None}
    from pacer.config import parse_settings

    out.update(parse_settings(args.set))
    if args.no_progress:
        out["log.progress"] = False
    return out


def _train(args: argparse.Namespace) -> int:
    from pacer import runconfig

    if args.resume is not None and (args.config is not None or args.preset is not None):
        raise PacerError("--resume continues a run with its saved config; drop --config and --preset")
    # The config is built and checked here, before torch is imported: a mistake is reported at once, and the fork
    # server is started early only when the config (file included) asks for worker processes that use it.
    cfg, notes = runconfig.resolve(args.config, preset="auto" if args.preset is None else args.preset,
                                   overrides=_overrides(args), resume=args.resume)
    for line in notes:
        print(line, file=sys.stderr)
    if args.print_config:
        import yaml

        runconfig.check(cfg)  # what the run would refuse, refused here too
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    from pacer.backends import early_start

    early_start(cfg)  # the local backend's fork server, whose torch import then overlaps ours
    from pacer.training import train

    result = train(cfg, resume=args.resume, preset=None)
    print(f"done ({result.stop_reason}): {result.env_steps:,} env steps; {result.train_time:.1f} s of training "
          f"({result.steps_per_s:,.0f} steps/s) in {result.session_time:.1f} s")
    if result.eval_mean is not None:
        cut = f" ({result.eval_cut} episodes cut at runtime.eval_max_seconds)" if result.eval_cut else ""
        print(f"greedy evaluation: {result.eval_mean:.1f} ± {result.eval_std:.1f}{cut}")
    print(f"saved in {result.run_dir}; evaluate with: pacer eval {result.run_dir} --episodes 100")
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise PacerError(f"--episodes must be >= 1, got {args.episodes}")
    if args.workers < 1:
        raise PacerError(f"--workers must be >= 1, got {args.workers}")
    if not args.hang_timeout > 0:
        raise PacerError(f"--hang-timeout must be > 0 seconds, got {args.hang_timeout}")
    shown = args.episodes if args.video_episodes is None else args.video_episodes
    if not 1 <= shown <= args.episodes:
        raise PacerError(f"--video-episodes must be between 1 and --episodes ({args.episodes}), got {shown}")
    if args.render:
        from pacer.video import require_display

        require_display()  # before loading anything
    from pacer.agent import evaluate, load  # after the checks: it imports torch (~2 s)

    agent = load(args.source)
    if args.video is not None:  # first: a missing extra or an env that cannot render is reported at once
        from pacer.video import record

        for video in record(agent, args.video, shown, args.seed, greedy=not args.stochastic):
            print(f"wrote {video.path}: {video.frames} frames, return {video.episode_return:.2f}",
                  file=sys.stderr if args.json else sys.stdout)  # --json: stdout is the JSON alone
    if args.render:
        from pacer.video import watch

        watch(agent, shown, args.seed, greedy=not args.stochastic)
    result = evaluate(agent, episodes=args.episodes, greedy=not args.stochastic, workers=args.workers,
                      seed=args.seed, hang_timeout=args.hang_timeout, opponent=args.opponent)
    agents = result.agent_returns or {}
    # self-play: the games' outcomes against the reference, a player that moves at random (pacer/selfplay.py)
    outcomes = {"won": float((result.returns > 0).mean()), "drew": float((result.returns == 0).mean()),
                "lost": float((result.returns < 0).mean())} if agent.config.env.self_play else {}
    against = "random" if args.opponent is None else "opponent"
    if args.json:
        print(json.dumps({"checkpoint": str(result.checkpoint), "episodes": len(result.returns),
                          "greedy": not args.stochastic, "mean": result.mean, "std": result.std,
                          "min": float(result.returns.min()), "max": float(result.returns.max()),
                          "returns": result.returns.tolist(),
                          **({"agents": {name: float(r.mean()) for name, r in agents.items()}} if agents else {}),
                          **({f"against_{against}": outcomes} if outcomes else {})}))
    else:
        mode = "stochastic" if args.stochastic else "greedy"
        team = " (the team's: its agents' together)" if agents else ""
        print(f"{result.checkpoint}: {len(result.returns)} {mode} episodes, return{team} {result.mean:.2f} ± "
              f"{result.std:.2f} (min {result.returns.min():.1f}, max {result.returns.max():.1f})")
        if agents:
            print("  per agent: " + ", ".join(f"{name} {r.mean():.2f}" for name, r in agents.items()))
        if outcomes:
            rival = "a random player" if args.opponent is None else args.opponent
            print(f"  against {rival}: " + ", ".join(f"{k} {v:.0%}" for k, v in outcomes.items()))
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.check < 0:
        raise PacerError(f"--check must be >= 0, got {args.check}")
    from pacer.agent import load
    from pacer.export import FORMATS, export

    out = args.out if args.out is not None else Path(f"policy{FORMATS[args.format]}")
    done = export(load(args.source), out, args.format, check=args.check)
    print(f"wrote {done.path}: {done.inputs} -> {done.outputs}")
    if done.verdict is not None:
        print(done.verdict)
    return 0


def _package(args: argparse.Namespace) -> int:
    for flag in ("episodes", "workers"):
        if getattr(args, flag) < 1:
            raise PacerError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    from pacer.share import package

    out = args.out if args.out is not None else args.source / "package"
    done = package(args.source, out, args.episodes, args.seed, args.workers, video=not args.no_video,
                   onnx=not args.no_onnx)
    for note in done.notes:
        print(f"pacer: {note}", file=sys.stderr)
    print(f"wrote {done.folder}: {done.episodes} greedy episodes, {done.mean:.2f} ± {done.std:.2f}; "
          f"evaluate with: pacer eval {done.folder}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from pacer.share import push

    print(f"pushed to {push(args.source, args.repo, args.private)}; load with: pacer eval hf://{args.repo}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from pacer.bench.commands import run

    return run(args)


def _tune(args: argparse.Namespace) -> int:
    import importlib.util

    from pacer import runconfig
    from pacer.config import parse_settings

    for flag in ("trials", "parallel", "steps", "workers", "evaluations"):
        if getattr(args, flag) < 1:
            raise PacerError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if importlib.util.find_spec("optuna") is None:
        raise PacerError("pacer tune needs Optuna: pip install 'pacer-rl[tune]'")
    overrides = {"env.id": args.env, "algo.name": args.algo, "runtime.workers": args.workers,
                 "runtime.backend": args.backend, **parse_settings(args.set)}
    if args.address is not None:
        overrides["runtime.address"] = args.address
    cfg, notes = runconfig.resolve(args.config, preset=args.preset, overrides=overrides)
    for line in notes:
        print(line, file=sys.stderr)
    from pacer.tune import TuneSpec, tune

    base = {name: section for name, section in cfg.to_dict().items() if name != "log"}
    name = str(cfg.env.id).replace(":", "_").replace("/", "_")
    if args.seconds is not None and not args.seconds > 0:
        raise PacerError(f"--seconds must be > 0, got {args.seconds:g}")
    spec = TuneSpec(base, args.trials, args.parallel, args.steps, args.dir or Path("runs") / f"tune-{name}",
                    args.seed, args.evaluations, study_name=args.study_name, seconds=args.seconds)
    kind = runconfig.kind_of({"env": {"id": cfg.env.id, "kwargs": cfg.env.kwargs}})
    gaussian = kind in ("continuous", "pixels-continuous")  # the search includes the Gaussian head's settings
    result = tune(spec, cfg.algo.name, gaussian, lambda line: print(line, flush=True))
    counts = ", ".join(f"{n} {state}" for state, n in result["trials"].items())
    print(f"study {result['study']!r}: {counts}; best trial {result['best_trial']}: {result['best_value']:.1f}")
    print(f"wrote {result['config']}; train with: pacer train --config {result['config']}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from pacer.curves import plot_runs

    print(f"wrote {plot_runs(args.runs, args.out, args.x, args.y)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
