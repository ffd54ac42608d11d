"""A trained agent, loaded from a run directory or checkpoint, and evaluation of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from pacer import checkpoint, hub
from pacer.config import Config, from_saved
from pacer.envs import EnvSpec, probe
from pacer.errors import PacerError
from pacer.evaluation import HANG_TIMEOUT_S, run_episodes_parallel
from pacer.heads import ActionHead, act, head_for
from pacer.model import make_model


@dataclass
class Agent:
    model: nn.Module
    config: Config
    spec: EnvSpec
    """What the env is (spaces, dtype of observations, registration): pacer/envs.py."""
    checkpoint: Path | None = None
    """Where the parameters came from (None: a model still training)."""

    def __post_init__(self) -> None:
        self.head: ActionHead = head_for(self.spec.action_space)
        """What the model's policy output means for actions (pacer/heads.py)."""

    @property
    def action_space(self) -> Any:
        return self.spec.action_space

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self.spec.obs_shape

    @property
    def obs_dtype(self) -> type[np.generic]:
        """What observations are cast to before the model: uint8 for pixels (the model scales them), else float32."""
        return self.spec.obs_dtype

    @torch.no_grad()
    def act(self, obs: Any, greedy: bool = True) -> NDArray[Any]:
        """Action(s) for one observation or a batch of them (the batch dimension is kept if given)."""
        x = torch.as_tensor(np.asarray(obs, dtype=self.obs_dtype))
        single = x.dim() == len(self.obs_shape)
        pi, _ = self.model(x.unsqueeze(0) if single else x)
        actions = act(self.head, self.model, pi, greedy)
        return actions[0] if single else actions


def load(source: str | Path, env: Any = None, model: Any = None) -> Agent:
    """Load the agent of a run directory (its final, else latest, checkpoint), of one checkpoint file, of a packaged
    agent's folder (`pacer package`) or of one on the Hugging Face Hub ('hf://owner/name'). A run whose
    env factory or model class was passed by value (defined in a notebook) needs it again: `env=`, `model=`."""
    if hub.is_hub(source):  # hf://owner/name: a packaged agent on the Hugging Face Hub
        source = hub.download(str(source))
    path = checkpoint.find(source)
    data = checkpoint.load(path)
    try:
        cfg = from_saved(data["config"])
        if env is not None or model is not None:
            cfg = cfg.replace({**({"env.id": env} if env is not None else {}),
                               **({"model.factory": model} if model is not None else {})})
    except (KeyError, PacerError) as exc:
        raise PacerError(f"checkpoint {str(path)!r} has no usable config: {exc}") from None
    spec = probe(cfg.env)
    model = make_model(cfg.model, spec.observation_space, spec.action_space)
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        # the first line only names the model's class; the next one says which parameter does not fit
        raise PacerError(f"checkpoint {str(path)!r} does not fit its model ({lines[min(1, len(lines) - 1)]})"
                         ) from None
    model.eval()
    return Agent(model=model, config=cfg, spec=spec, checkpoint=path)


@dataclass(frozen=True)
class EvalResult:
    returns: NDArray[np.float64]
    checkpoint: Path | None
    cut: int = 0
    """Episodes that `max_seconds` cut short (scored with their return so far)."""

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())


def evaluate(source: str | Path | Agent, episodes: int = 100, greedy: bool = True, workers: int = 2,
             seed: int = 12345, start_method: str = "auto", hang_timeout: float = HANG_TIMEOUT_S, env: Any = None,
             model: Any = None, max_seconds: float | None = None) -> EvalResult:
    """Run `episodes` evaluation episodes spread over `workers` processes (1: in this process). A process that
    dies, raises, or makes no env step for `hang_timeout` seconds ends the evaluation with WorkerFailed. With
    `max_seconds`, episodes still running then are cut and scored with their return so far (`EvalResult.cut`)."""
    if episodes < 1:
        raise PacerError(f"episodes must be >= 1, got {episodes}")
    if hang_timeout <= 0:
        raise PacerError(f"hang_timeout must be > 0 seconds, got {hang_timeout}")
    agent = source if isinstance(source, Agent) else load(source, env=env, model=model)
    played = run_episodes_parallel(agent.model, agent.config.env, episodes, seed, greedy, workers, start_method,
                                   hang_timeout, agent.spec, max_seconds)
    return EvalResult(returns=played.returns, checkpoint=agent.checkpoint, cut=played.cut)
