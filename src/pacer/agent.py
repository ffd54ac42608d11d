"""A trained agent, loaded from a run directory or checkpoint, and evaluation of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector.utils import concatenate, create_empty_array
from numpy.typing import NDArray
from torch import nn

from pacer import checkpoint, hub
from pacer.config import Config, from_saved
from pacer.envs import EnvSpec, probe
from pacer.errors import PacerError
from pacer.evaluation import HANG_TIMEOUT_S, run_episodes_parallel
from pacer.heads import ActionHead, act, head_for, masked
from pacer.model import make_model
from pacer.multiagent import add_agent_id
from pacer.recurrence import initial_state, is_recurrent, step
from pacer.spaces import ObsLayout, tree_leaves, tree_map


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
    def layout(self) -> ObsLayout:
        """What observations are cast to before the model (pacer/spaces.py): uint8 pixels (the model scales them),
        float32 vectors, int64 indices; a tree for a structured observation."""
        return self.spec.layout

    @property
    def masked(self) -> bool:
        """Whether it was trained with action masks (then `act` takes them, and an exported file has an input)."""
        return self.spec.action_mask is not None

    @property
    def recurrent(self) -> bool:
        """Whether the agent has a memory: then `act` takes and returns its state (or use `player()`)."""
        return is_recurrent(self.model)

    @torch.no_grad()
    def act(self, obs: Any, greedy: bool = True, state: Any = None, start: Any = None, mask: Any = None) -> Any:
        """Action(s) for one observation or a batch of them (the batch dimension is kept if given). A recurrent agent
        also takes its state and returns `(actions, state)`: `state=None` begins a new episode (for every env of a
        batch); `start` (a bool, or one per env) resets the state where an episode begins. `mask`: the legal actions
        (booleans, one per logit: pacer/masks.py), for an env that gives them in `info` or `action_masks()`; an
        `action_mask` key of a Dict observation is read by itself. Without one, every action is legal."""
        kept = self.layout.cast(obs)
        single = self.layout.single(kept)
        batch = tree_map(lambda x: torch.as_tensor(x).unsqueeze(0) if single else torch.as_tensor(x), kept)
        if mask is None and self.layout.mask_key is not None:
            mask = obs[self.layout.mask_key]
        legal = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool)).reshape(
            tree_leaves(batch)[0].shape[0], self.head.size)
        if not self.recurrent:
            actions = act(self.head, self.model, masked(self.model(batch)[0], legal), greedy)
            return actions[0] if single else actions
        n = tree_leaves(batch)[0].shape[0]
        if state is None:  # a new episode
            memory, starts = initial_state(self.model, n), torch.ones(n, dtype=torch.bool)
        else:
            memory = torch.as_tensor(np.asarray(state, np.float32)).reshape(n, -1)
            flags = np.broadcast_to(np.asarray(False if start is None else start, dtype=bool), (n,))
            starts = torch.from_numpy(flags.copy())
        pi, _, memory = step(self.model, batch, memory, starts)
        actions = act(self.head, self.model, masked(pi, legal), greedy)
        assert memory is not None
        out_state = memory.numpy()
        return (actions[0], out_state[0]) if single else (actions, out_state)

    def act_agents(self, obs: Mapping[str, Any], greedy: bool = True, infos: Mapping[str, Any] | None = None,
                   state: Mapping[str, Any] | None = None) -> Any:
        """Many agents (PettingZoo): actions `{agent: action}` for a ParallelEnv's observations `{agent: obs}`, all
        in one forward pass; `infos` (the env's, by agent) give action masks where the env puts them there. A
        recurrent agent takes and returns the agents' states too, `(actions, states)`: `state=None` begins an episode,
        and an agent missing from `state` begins afresh."""
        names = list(obs)
        unknown = [name for name in names if name not in self.spec.agents]
        if unknown:
            raise PacerError(f"act_agents: {unknown} are not agents of this env (its agents: {list(self.spec.agents)})")
        rows = [obs[name] for name in names]
        if self.config.env.agent_id:
            rows = [add_agent_id(row, self.spec.agents.index(name)) for row, name in zip(rows, names, strict=True)]
        empty: Any = create_empty_array(self.spec.observation_space, len(rows))
        batch = concatenate(self.spec.observation_space, rows, empty)
        mask = None
        if self.spec.action_mask == "info" and infos is not None:
            mask = np.stack([np.asarray(infos[name]["action_mask"], dtype=bool) for name in names])
        if not self.recurrent:
            return dict(zip(names, self.act(batch, greedy, mask=mask), strict=True))
        states = dict(state or {})
        initial = initial_state(self.model, 1)
        assert initial is not None  # a recurrent model has a state
        zero = initial[0].numpy()
        memory = np.stack([states.get(name, zero) for name in names])
        starts = np.array([name not in states for name in names])
        actions, memory = self.act(batch, greedy, state=memory, start=starts, mask=mask)
        return dict(zip(names, actions, strict=True)), dict(zip(names, memory, strict=True))

    def player(self, greedy: bool = True) -> Player:
        """Acts for one env, episode after episode, keeping a recurrent agent's state between its steps (for a
        feedforward agent: `act`)."""
        return Player(self, greedy)


class Player:
    """One env's play: `act(obs)` step by step; `reset()` where a new episode begins (a recurrent agent's state is
    kept between the steps of an episode and dropped at its end)."""

    def __init__(self, agent: Agent, greedy: bool = True) -> None:
        self.agent, self.greedy = agent, greedy
        self.state: Any = None

    def reset(self) -> None:
        self.state = None

    def act(self, obs: Any, mask: Any = None) -> Any:
        if not self.agent.recurrent:
            return self.agent.act(obs, greedy=self.greedy, mask=mask)
        action, self.state = self.agent.act(obs, greedy=self.greedy, state=self.state, mask=mask)
        return action


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
    model = make_model(cfg.model, spec.kept_space, spec.action_space)
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
    agent_returns: dict[str, NDArray[np.float64]] | None = None
    """Many agents (PettingZoo): each agent's returns, by name, beside `returns`, the team's (their sum)."""

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())


def evaluate(source: str | Path | Agent, episodes: int = 100, greedy: bool = True, workers: int = 2,
             seed: int = 12345, start_method: str = "auto", hang_timeout: float = HANG_TIMEOUT_S, env: Any = None,
             model: Any = None, max_seconds: float | None = None, opponent: str | Path | Agent | None = None
             ) -> EvalResult:
    """Run `episodes` evaluation episodes spread over `workers` processes (1: in this process). A process that
    dies, raises, or makes no env step for `hang_timeout` seconds ends the evaluation with WorkerFailed. With
    `max_seconds`, episodes still running then are cut and scored with their return so far (`EvalResult.cut`).
    A game trained by self-play is played against a random player, or against `opponent` (another agent of the
    same game, e.g. an earlier checkpoint of the run, sampling its moves)."""
    if episodes < 1:
        raise PacerError(f"episodes must be >= 1, got {episodes}")
    if hang_timeout <= 0:
        raise PacerError(f"hang_timeout must be > 0 seconds, got {hang_timeout}")
    agent = source if isinstance(source, Agent) else load(source, env=env, model=model)
    rival = None
    if opponent is not None:
        if not agent.config.env.self_play:
            raise PacerError("an opponent plays a game trained by self-play (env.self_play); this agent's is not one")
        other = opponent if isinstance(opponent, Agent) else load(opponent)
        if other.config.env.id != agent.config.env.id or other.spec.action_space != agent.spec.action_space:
            raise PacerError(f"the opponent plays {other.config.env.id}, not {agent.config.env.id}")
        rival = other.model
    played = run_episodes_parallel(agent.model, agent.config.env, episodes, seed, greedy, workers, start_method,
                                   hang_timeout, agent.spec, max_seconds, rival)
    agents = None if played.agent_returns is None else \
        {name: played.agent_returns[:, i] for i, name in enumerate(agent.spec.agents)}
    return EvalResult(returns=played.returns, checkpoint=agent.checkpoint, cut=played.cut, agent_returns=agents)
