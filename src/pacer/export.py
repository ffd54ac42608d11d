"""A trained policy outside Python: an ONNX graph (onnxruntime, C++, C#, the browser) or a torch.export program.

The graph maps raw observations, float32 [batch, *obs_shape] (uint8 frames for pixel observations, scaled inside),
to the greedy action, the policy's output and the value. Observation normalization is part of the model, so it is
part of the graph; nothing else is needed to act.
  Discrete actions: `action` int64 [batch] (the argmax), `logits` float32 [batch, n], `value` float32 [batch].
  Box actions:      `action` float32 [batch, d] (the mean clipped to the action bounds, as `Agent.act` does),
                    `mean` float32 [batch, d] (unclipped), `value` float32 [batch].
  MultiDiscrete:    `action` int64 [batch, k], `logits` float32 [batch, sum(nvec)]; MultiBinary: `action` int8
                    [batch, n] (the bits whose logit is > 0), `logits` float32 [batch, n].
A structured observation (Dict, Tuple) is one input per leaf, `obs.<keys>` (obs.image, obs.direction), each of its
stored dtype (float32, uint8 pixels, int64 indices). A recurrent policy (model.memory) also takes `state` float32
[batch, state_size] (zeros at an episode's start) and `start` bool [batch] (true at an episode's first step), and
returns the next `state` last. A policy trained with action masks takes `action_mask` bool [batch, logits] last
(true: legal); its logits are the masked ones (illegal: -1e8), its action a legal one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from pacer import masks
from pacer.agent import Agent
from pacer.errors import PacerError, first_line, make_output_dir
from pacer.heads import masked
from pacer.recurrence import state_size, step
from pacer.spaces import tree_leaves, tree_map
from pacer.version import __version__

FORMATS = {"onnx": ".onnx", "torch": ".pt2"}
RUNNERS = {"onnx": "onnxruntime", "torch": "torch.export.load"}  # what runs a file of each format in the check


class GreedyPolicy(nn.Module):
    """The agent's model with its greedy action on top: what an exported file computes (one step)."""

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.model, self.head = agent.model, agent.head
        self.recurrent, self.masked = agent.recurrent, agent.masked

    def forward(self, obs: Any, second: Tensor | None = None, third: Tensor | None = None,
                fourth: Tensor | None = None) -> tuple[Tensor, ...]:
        # the inputs after the observation, as input_names lists them: state and start, then action_mask
        rest = [x for x in (second, third, fourth) if x is not None]
        state, start = (rest[0], rest[1]) if self.recurrent else (None, None)
        pi, value, state = step(self.model, obs, state, start)
        if self.masked:
            pi = masked(pi, rest[-1])
        outputs = (self.head.clip(self.head.mode(pi)), pi, value)
        return outputs if state is None else (*outputs, state)


def output_names(agent: Agent) -> list[str]:
    return ["action", agent.head.output, "value", *(["next_state"] if agent.recurrent else [])]


def input_names(agent: Agent) -> list[str]:
    """'obs' for a Box; a structured observation's leaves as 'obs.<keys>' (obs.image, obs.direction), in order."""
    layout = agent.layout
    obs = [f"obs.{leaf.path}" for leaf in layout.leaves] if layout.structured else ["obs"]
    return [*obs, *(["state", "start"] if agent.recurrent else []), *(["action_mask"] if agent.masked else [])]


@dataclass(frozen=True)
class Exported:
    path: Path
    format: str
    inputs: str
    outputs: str
    verdict: str | None = None
    """The check's result in one line, when one was asked for."""


def export(agent: Agent, out: str | Path, fmt: str = "onnx", check: int = 0) -> Exported:
    """Write the agent's greedy policy to `out`, atomically: a file that exists is complete. With `check` > 0 the
    new file is first run on that many random observations and must act as `agent.act` does (see `compare`), or
    nothing is written (a previous file at `out` stays)."""
    if fmt not in FORMATS:
        raise PacerError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401  (torch.onnx's exporter needs both)
            import onnxscript  # noqa: F401
        except ImportError:
            raise PacerError("ONNX export needs onnx and onnxscript: pip install 'pacer-rl[export]'") from None
    out = Path(out)
    make_output_dir(out.parent)
    # a hidden name in the target's directory (same file system, so the rename is atomic), created new (O_EXCL: never
    # through a planted link) with the permissions the umask gives any file; made first, so an unwritable place fails
    # before the export's seconds of work
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial{FORMATS[fmt]}")
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        try:
            _write(agent, partial, fmt)
        except (OSError, PacerError):
            raise
        except Exception as exc:
            raise PacerError(f"cannot export {type(agent.model).__name__} with {fmt}: {type(exc).__name__}: "
                             f"{first_line(exc)}") from None
        verdict = _check(agent, partial, fmt, check, out) if check else None
        os.replace(partial, out)
    finally:  # whatever stopped it, Ctrl-C included, leaves no partial file
        partial.unlink(missing_ok=True)
    n = agent.head.size
    action = f"{np.dtype(agent.head.dtype).name}[{', '.join(['batch', *map(str, agent.head.shape)])}]"
    names = output_names(agent)
    width = f"float32[batch, {state_size(agent.model)}]"
    memory_in = f", state {width}, start bool[batch]" if agent.recurrent else ""
    memory_out = f", next_state {width}" if agent.recurrent else ""
    memory_in += f", action_mask bool[batch, {n}]" if agent.masked else ""
    observations = ", ".join(f"{name} {np.dtype(leaf.dtype).name}[{', '.join(['batch', *map(str, leaf.shape)])}]"
                             for name, leaf in zip(input_names(agent), agent.layout.leaves, strict=False))
    return Exported(path=out, format=fmt, inputs=f"{observations}{memory_in}",
                    outputs=f"{names[0]} {action}, {names[1]} float32[batch, {n}], value float32[batch]{memory_out}",
                    verdict=verdict)


def _write(agent: Agent, path: Path, fmt: str) -> None:
    policy = GreedyPolicy(agent).eval()
    # batch 2: a batch of 1 could be specialized into the graph; pixels go in as uint8 frames, as the env gives them
    example: tuple[Any, ...] = (tree_map(torch.from_numpy, agent.layout.zeros((2,))),)
    batch = torch.export.Dim("batch")
    dynamic: tuple[Any, ...] = (tree_map(lambda _: {0: batch}, example[0]),)
    if agent.recurrent:
        example = (*example, torch.zeros(2, state_size(agent.model)), torch.zeros(2, dtype=torch.bool))
        dynamic = (*dynamic, {0: batch}, {0: batch})
    if agent.masked:
        example = (*example, torch.ones(2, agent.head.size, dtype=torch.bool))
        dynamic = (*dynamic, {0: batch})
    with _quiet_exporter(), torch.no_grad():
        if fmt == "torch":
            torch.export.save(torch.export.export(policy, example, dynamic_shapes=dynamic), path)
            return
        program = torch.onnx.export(policy, example, None, dynamo=True, input_names=input_names(agent),
                                    output_names=output_names(agent), dynamic_shapes=dynamic, verbose=False)
        if program is None:  # only when given a file name, which this call is not
            raise PacerError("torch.onnx.export returned no program")
        program.model.metadata_props.update(metadata(agent))
        program.save(str(path))


def metadata(agent: Agent) -> dict[str, str]:
    """What a user of the file needs to know, stored in the ONNX model's metadata_props."""
    return {"pacer.version": __version__, "pacer.env": str(agent.config.env.id), "pacer.action_kind": agent.head.name,
            "pacer.action_space": str(agent.action_space), "pacer.outputs": ",".join(output_names(agent))}


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.onnx logs and warns about things irrelevant here (torchvision ops it skips, deprecations)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def random_observations(agent: Agent, count: int, seed: int) -> Any:
    """`count` observations drawn from the env's (kept) observation space (uniform where bounded, normal where not),
    as stored: one array, or a tree of arrays."""
    space = agent.spec.kept_space
    space.seed(seed)
    return agent.layout.cast(tree_map(lambda *xs: np.stack(xs), *[space.sample() for _ in range(count)]))


def random_masks(agent: Agent, count: int, seed: int) -> NDArray[np.bool_] | None:
    """`count` action masks, each action legal with probability 1/2 and at least one of each component's legal
    (None for an agent trained without masks)."""
    if not agent.masked:
        return None
    rng = np.random.default_rng(seed)
    legal = rng.random((count, agent.head.size)) < 0.5
    start = 0
    for width in masks.segments(agent.action_space):
        legal[np.arange(count), start + rng.integers(0, width, count)] = True
        start += width
    return legal


def run_file(path: str | Path, fmt: str, obs: Any, state: NDArray[Any] | None = None,
             start: NDArray[Any] | None = None, mask: NDArray[Any] | None = None) -> list[NDArray[Any]]:
    """An exported file's outputs (action, logits or mean, value; and the next state for a recurrent policy, given
    its `state` and `start`) for a batch of observations (an array, or a tree of them) and, for a masked policy,
    their action masks, run by onnxruntime or by torch.export's loader."""
    extra = [*([] if state is None else [state, start]), *([] if mask is None else [mask])]
    if fmt == "torch":
        program = torch.export.load(path).module()
        with torch.no_grad():
            return [out.numpy() for out in program(tree_map(torch.as_tensor, obs), *map(torch.as_tensor, extra))]
    inputs = [*tree_leaves(obs), *extra]
    try:
        import onnxruntime
    except ImportError:
        raise PacerError("running an ONNX file needs onnxruntime: pip install onnxruntime") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    outputs: list[NDArray[Any]] = session.run(None, dict(zip(names, inputs, strict=True)))
    return outputs


def compare(agent: Agent, path: str | Path, fmt: str = "onnx", count: int = 2000, seed: int = 0
            ) -> tuple[int, float]:
    """Compare the file's greedy actions with `agent.act` on `count` random observations: (actions that differ,
    largest absolute difference of the policy's outputs, the logits or the means). Actions differ when they are more
    than 1e-4 apart (for discrete ones: when they are not the same)."""
    obs = random_observations(agent, count, seed)
    legal = random_masks(agent, count, seed)
    if agent.recurrent:
        return _compare_sequences(agent, path, fmt, obs, legal)
    action, policy_out, _ = run_file(path, fmt, obs, mask=legal)
    ours = agent.act(obs, mask=legal)
    with torch.no_grad():
        legal_t = None if legal is None else torch.from_numpy(legal)
        pi = masked(agent.model(tree_map(torch.as_tensor, obs))[0], legal_t).numpy()
    differ = np.abs(np.asarray(action, np.float64) - ours).reshape(count, -1) > 1e-4
    return int(differ.any(axis=-1).sum()), float(np.abs(policy_out - pi).max())


def _compare_sequences(agent: Agent, path: str | Path, fmt: str, obs: NDArray[Any],
                       legal: NDArray[np.bool_] | None, envs: int = 8) -> tuple[int, float]:
    """A recurrent policy: the observations as `envs` sequences, each side carrying its own state from step to step
    (episodes starting at the first step and at random ones after); actions compared at every step, and the policy
    outputs and states too (the largest difference of either)."""
    steps = len(obs) // envs
    rng = np.random.default_rng(0)
    ours = theirs = np.zeros((envs, state_size(agent.model)), np.float32)
    differ, largest = 0, 0.0
    for t in range(steps):
        batch = tree_map(lambda x: x[t * envs:(t + 1) * envs], obs)  # noqa: B023 - used at once
        mask = None if legal is None else legal[t * envs:(t + 1) * envs]
        start = np.ones(envs, bool) if t == 0 else rng.random(envs) < 0.05
        action, _, _, theirs = run_file(path, fmt, batch, theirs, start, mask)
        mine, ours = agent.act(batch, state=ours, start=start, mask=mask)
        differ += int((np.abs(np.asarray(action, np.float64) - mine).reshape(envs, -1) > 1e-4).any(axis=-1).sum())
        largest = max(largest, float(np.abs(theirs - ours).max()))
    return differ, largest


def _check(agent: Agent, path: Path, fmt: str, count: int, out: Path) -> str:
    """The new file against `agent.act`: a one-line verdict, or a PacerError that keeps it from being written."""
    runner = RUNNERS[fmt]
    if fmt == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        return "(not checked: onnxruntime is not installed)"
    try:
        differ, largest = compare(agent, path, fmt, count)
    except PacerError:
        raise
    except Exception as exc:
        raise PacerError(f"{runner} cannot run the exported file: {type(exc).__name__}: {first_line(exc)}; "
                         f"{str(out)!r} was not written") from None
    if differ:
        raise PacerError(f"{runner}'s greedy actions differ from pacer's on {differ} of {count} random observations "
                         f"(largest difference {largest:.3g}); {str(out)!r} was not written")
    return (f"checked: {runner}'s greedy actions match pacer's on {count:,} random observations "
            f"(largest difference {largest:.2g})")
