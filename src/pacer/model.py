"""Actor-critic models, built three ways (the action distributions are in heads.py).

The actor-critic interface (docs/models.md): a `torch.nn.Module` whose `forward(obs)` takes a float batch
[B, *obs_shape] and returns `(pi, value)`: `pi` holds logits [B, n] for a Discrete action space or means [B, d]
for a Box one, `value` is [B]. For Box actions the module also has a parameter `log_std` of shape [d].
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pacer.config import ModelConfig
from pacer.errors import PacerError
from pacer.heads import head_for
from pacer.normalize import RunningNorm
from pacer.recurrence import is_recurrent
from pacer.spaces import CNN_MIN_SIDE, ObsLayout, image_side, tree_leaves, tree_map
from pacer.usercode import check_signature, resolve_import

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


class Features(nn.Module):
    """A structured observation (pacer/spaces.py) as one float vector per row, each leaf by its kind: the vector
    leaves flattened side by side (standardized together by the run's statistics, `normalize_input: running`), then
    in leaf order pixels (the Nature CNN's 512 features), Discrete and MultiDiscrete leaves one-hot, MultiBinary as
    they are. It has parameters only for pixels."""

    def __init__(self, layout: ObsLayout, normalize: bool) -> None:
        super().__init__()
        self.leaves = layout.leaves
        self.obs_norm = RunningNorm((layout.vector_size,)) if normalize and layout.vector_size else None
        self.cnns = nn.ModuleDict()
        size = layout.vector_size
        for i, leaf in enumerate(self.leaves):
            if leaf.kind == "pixels":
                convs, fc = _nature_cnn(leaf.shape)
                self.cnns[str(i)] = nn.Sequential(convs, fc)
                size += 512
            elif leaf.kind != "vector":
                size += leaf.size
        _orthogonal(self.cnns, None, None)
        self.size = size

    def forward(self, obs: Any) -> Tensor:
        values = tree_leaves(obs)
        n = values[0].shape[0]
        vectors = [v.reshape(n, -1).float() for leaf, v in zip(self.leaves, values, strict=True)
                   if leaf.kind == "vector"]
        parts = []
        if vectors:
            x = vectors[0] if len(vectors) == 1 else torch.cat(vectors, dim=1)
            parts.append(x if self.obs_norm is None else self.obs_norm(x))
        for i, (leaf, v) in enumerate(zip(self.leaves, values, strict=True)):
            if leaf.kind == "pixels":
                parts.append(self.cnns[str(i)](_pixels(v, leaf.shape)))
            elif leaf.kind == "discrete":
                start = int(leaf.space.start)  # type: ignore[attr-defined]
                parts.append(F.one_hot(v.long().reshape(n) - start, leaf.size).float())
            elif leaf.kind == "multidiscrete":
                nvec = np.asarray(leaf.space.nvec).reshape(-1)  # type: ignore[attr-defined]
                starts = np.asarray(leaf.space.start).reshape(-1)  # type: ignore[attr-defined]
                flat = v.long().reshape(n, -1)
                parts += [F.one_hot(flat[:, j] - int(starts[j]), int(k)).float() for j, k in enumerate(nvec)]
            elif leaf.kind == "binary":
                parts.append(v.reshape(n, -1).float())
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class MLPActorCritic(nn.Module):
    """Actor-critic from a layer spec: a shared trunk with an optional critic branch, or two separate networks; a
    structured observation read through `Features` first."""

    def __init__(self, cfg: ModelConfig, obs_dim: int, pi_dim: int, gaussian: bool,
                 features: Features | None = None) -> None:
        super().__init__()
        self.features = features
        if features is not None:
            obs_dim = features.size
        self.l2_input = cfg.normalize_input == "l2"
        self.obs_norm = RunningNorm((obs_dim,)) if cfg.normalize_input == "running" and features is None else None
        self.tanh_value = cfg.critic_output == "tanh"
        self.detach_critic = cfg.detach_critic and cfg.shared_trunk
        sizes = [obs_dim, *cfg.hidden]
        if cfg.shared_trunk:
            self.trunk: nn.Module = _mlp(sizes, cfg.activation)
            self.actor_body: nn.Module = nn.Identity()
            critic_sizes = [sizes[-1], *cfg.critic_hidden]
        else:
            self.trunk = nn.Identity()
            self.actor_body = _mlp(sizes, cfg.activation)
            critic_sizes = [*sizes, *cfg.critic_hidden]
        self.critic_body = _mlp(critic_sizes, cfg.activation)
        self.pi_head = nn.Linear(sizes[-1], pi_dim)
        self.value_head = nn.Linear(critic_sizes[-1], 1)
        if gaussian:
            self.log_std = nn.Parameter(torch.full((pi_dim,), float(cfg.log_std_init)))
        if cfg.init == "orthogonal":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    gain = 0.01 if module is self.pi_head else 1.0 if module is self.value_head else math.sqrt(2)
                    nn.init.orthogonal_(module.weight, gain)
                    nn.init.zeros_(module.bias)

    def inputs(self, obs: Tensor) -> Tensor:
        """What the first layer reads: the observation as one vector per row (a stack of frames, a grid: flattened),
        standardized by the run's statistics or scaled to unit length. No parameter acts before this point."""
        x = obs.flatten(1).float() if self.features is None else self.features(obs)
        if self.obs_norm is not None:
            x = self.obs_norm(x)
        if self.l2_input:
            x = F.normalize(x, dim=-1)
        return x

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        features = self.trunk(self.inputs(obs))
        pi = self.pi_head(self.actor_body(features))
        critic_in = features.detach() if self.detach_critic else features
        value = self.value_head(self.critic_body(critic_in)).squeeze(-1)
        if self.tanh_value:
            value = torch.tanh(value)
        return pi, value


def _channels_last(shape: tuple[int, ...]) -> bool:
    """HxWxC (Gymnasium's RGB frames) rather than CxHxW (stacked frames): few channels last, many rows first."""
    return len(shape) == 3 and shape[-1] <= 4 < shape[0]


def chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Channels, height and width of an image observation's shape (HxW has one channel)."""
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    if _channels_last(shape):
        return shape[2], shape[0], shape[1]
    return shape[0], shape[1], shape[2]


def _nature_cnn(obs_shape: tuple[int, ...]) -> tuple[nn.Sequential, nn.Sequential]:
    """The Nature CNN's convolutions (32 8x8/4, 64 4x4/2, 64 3x3/1) and its 512-unit layer, for this image shape."""
    c, h, w = chw(obs_shape)
    convs = nn.Sequential(nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                          nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())
    with torch.no_grad():
        flat = convs(torch.zeros(1, c, h, w)).shape[1]
    return convs, nn.Sequential(nn.Linear(flat, 512), nn.ReLU())


def _pixels(obs: Tensor, shape: tuple[int, ...]) -> Tensor:
    """uint8 frames as the convolutions take them: [0, 1] floats, channels first, in NHWC memory (oneDNN's
    convolutions run 1.3-1.4x faster on it on CPU: a PPO minibatch of 256 Atari frames, one thread, 125-133 ms
    against 168-181; the weights keep their layout, flat shared buffers)."""
    x = obs.float() / 255.0
    if len(shape) == 2:
        x = x.unsqueeze(1)
    elif _channels_last(shape):
        x = x.permute(0, 3, 1, 2)
    return x.contiguous(memory_format=torch.channels_last)


def _orthogonal(module: nn.Module, pi_head: nn.Module | None, value_head: nn.Module | None) -> None:
    """Orthogonal weights and zero biases (gain 0.01 for the policy head, 1 for the value head and the recurrent
    core, sqrt 2 elsewhere), as Baselines, SB3 and CleanRL initialize their actor-critics."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
            gain = 0.01 if m is pi_head else 1.0 if m is value_head else math.sqrt(2)
            nn.init.orthogonal_(m.weight, gain)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LSTM, nn.GRU)):
            for name, p in m.named_parameters():
                if name.startswith("weight"):
                    nn.init.orthogonal_(p, 1.0)
                else:
                    nn.init.zeros_(p)


class CNNActorCritic(nn.Module):
    """The Nature CNN (Mnih et al. 2015; A3C and PPO's Atari networks): 32 8x8/4, 64 4x4/2 and 64 3x3/1
    convolutions, 512 units, both heads on the shared features; uint8 pixels scaled to [0, 1] here, channels last
    (HxWxC) moved first. Orthogonal initialization as in Baselines, SB3 and CleanRL."""

    def __init__(self, obs_shape: tuple[int, ...], pi_dim: int, gaussian: bool, log_std_init: float) -> None:
        super().__init__()
        self.obs_shape = obs_shape
        self.convs, self.fc = _nature_cnn(obs_shape)
        self.pi_head = nn.Linear(512, pi_dim)
        self.value_head = nn.Linear(512, 1)
        if gaussian:
            self.log_std = nn.Parameter(torch.full((pi_dim,), float(log_std_init)))
        _orthogonal(self, self.pi_head, self.value_head)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        features = self.fc(self.convs(_pixels(obs, self.obs_shape)))
        return self.pi_head(features), self.value_head(features).squeeze(-1)


class RecurrentCore(nn.Module):
    """An LSTM or GRU over sequences whose state is reset where an episode starts. Its state travels as one flat
    tensor [B, state_size] (an LSTM's h and c side by side), which is what rollouts store, checkpoints hold and
    exported graphs take. A sequence is run in as few calls of the torch module as its resets allow: one call per
    stretch of steps in which no env starts an episode."""

    def __init__(self, kind: str, input_size: int, size: int) -> None:
        super().__init__()
        self.lstm = kind == "lstm"
        self.size = size
        self.rnn: nn.Module = (nn.LSTM if self.lstm else nn.GRU)(input_size, size)
        self.state_size = 2 * size if self.lstm else size

    def forward(self, x: Tensor, state: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        """x [T, B, F], state [B, state_size], starts [T, B] (bool: reset before this step) -> ([T, B, size], state)."""
        steps = x.shape[0]
        h: Any = (state[:, :self.size].unsqueeze(0).contiguous(), state[:, self.size:].unsqueeze(0).contiguous()) \
            if self.lstm else state.unsqueeze(0).contiguous()
        # one step (a rollout's, an exported graph's): no search for resets inside the sequence
        cuts = [0, 1] if steps == 1 else [0, *(starts[1:].any(1).nonzero().flatten() + 1).tolist(), steps]
        outs = []
        for a, b in itertools.pairwise(cuts):
            keep = (~starts[a]).to(x.dtype).view(1, -1, 1)
            h = (h[0] * keep, h[1] * keep) if self.lstm else h * keep
            out, h = self.rnn(x[a:b], h)
            outs.append(out)
        state = torch.cat([h[0][0], h[1][0]], dim=1) if self.lstm else h[0]
        return (outs[0] if len(outs) == 1 else torch.cat(outs)), state


class RecurrentActorCritic(nn.Module):
    """The recurrent interface (docs/models.md): `state_size`, `initial_state(batch)`, and `forward(obs [T, B, ...],
    state [B, state_size], starts [T, B]) -> (pi [T, B, ...], value [T, B], state)`. Built from the layer spec: an
    encoder (the `hidden` MLP, or the Nature CNN for images), an LSTM or GRU of `memory_size`, then the heads; with
    `memory_shared` false the critic has an encoder and a core of its own (their states side by side)."""

    def __init__(self, cfg: ModelConfig, obs_shape: tuple[int, ...], pi_dim: int, gaussian: bool, cnn: bool,
                 features: Features | None = None) -> None:
        super().__init__()
        self.obs_shape, self.cnn, self.features = obs_shape, cnn, features
        obs_dim = int(np.prod(obs_shape)) if features is None else features.size
        plain = not cnn and features is None
        self.obs_norm = RunningNorm((obs_dim,)) if cfg.normalize_input == "running" and plain else None
        self.l2_input = cfg.normalize_input == "l2" and not cnn

        def encoder() -> tuple[nn.Module, int]:
            if cnn:
                convs, fc = _nature_cnn(obs_shape)
                return nn.Sequential(convs, fc), 512
            return _mlp([obs_dim, *cfg.hidden], cfg.activation), ([obs_dim, *cfg.hidden])[-1]

        self.actor_encoder, width = encoder()
        self.actor_core = RecurrentCore(cfg.memory, width, cfg.memory_size)
        self.critic_encoder: nn.Module | None = None
        self.critic_core: RecurrentCore | None = None
        if not cfg.memory_shared:
            self.critic_encoder, _ = encoder()
            self.critic_core = RecurrentCore(cfg.memory, width, cfg.memory_size)
        self.state_size = self.actor_core.state_size + (self.critic_core.state_size if self.critic_core else 0)
        self.pi_head = nn.Linear(cfg.memory_size, pi_dim)
        self.value_head = nn.Linear(cfg.memory_size, 1)
        if gaussian:
            self.log_std = nn.Parameter(torch.full((pi_dim,), float(cfg.log_std_init)))
        if cnn or cfg.init == "orthogonal":
            _orthogonal(self, self.pi_head, self.value_head)

    def initial_state(self, batch: int) -> Tensor:
        return torch.zeros(batch, self.state_size)

    def _encode(self, encoder: nn.Module, obs: Any) -> Tensor:
        """[T, B, ...] observations -> [T, B, features]."""
        steps, batch = tree_leaves(obs)[0].shape[:2]
        if self.features is not None:  # a structured observation: shared by the actor's and the critic's encoder
            x = self.features(tree_map(lambda v: v.reshape(steps * batch, *v.shape[2:]), obs))
            if self.l2_input:
                x = F.normalize(x, dim=-1)
            return encoder(x).view(steps, batch, -1)
        x = obs.reshape(steps * batch, *obs.shape[2:])
        if self.cnn:
            x = _pixels(x, self.obs_shape)
        else:
            x = x.flatten(1).float()
            if self.obs_norm is not None:
                x = self.obs_norm(x)
            if self.l2_input:
                x = F.normalize(x, dim=-1)
        return encoder(x).view(steps, batch, -1)

    def forward(self, obs: Any, state: Tensor, starts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        split = self.actor_core.state_size
        actor, actor_state = self.actor_core(self._encode(self.actor_encoder, obs), state[:, :split], starts)
        critic, states = actor, [actor_state]
        if self.critic_core is not None and self.critic_encoder is not None:
            critic, critic_state = self.critic_core(self._encode(self.critic_encoder, obs), state[:, split:], starts)
            states.append(critic_state)
        return (self.pi_head(actor), self.value_head(critic).squeeze(-1),
                states[0] if len(states) == 1 else torch.cat(states, dim=1))


def cnn_fits(shape: tuple[int, ...]) -> bool:
    """Whether the Nature CNN takes images of this shape (HxW, HxWxC or CxHxW, at least 36 pixels a side; smaller
    grids, MiniGrid's 7x7 views, go to the MLP)."""
    return len(shape) in (2, 3) and image_side(shape) >= CNN_MIN_SIDE


def make_model(cfg: ModelConfig, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> nn.Module:
    """Build the model from the factory if one is set, else from the layer spec; check the interface. The
    observation space is the kept one (`EnvSpec.kept_space`): a structured one is read through `Features`."""
    head = head_for(action_space)
    layout = ObsLayout(observation_space)
    shape = tuple(observation_space.shape or ()) if not layout.structured else ()
    cnn = not layout.structured and (cfg.encoder == "cnn" or (cfg.encoder == "auto" and layout.image
                                                             and cnn_fits(shape)))
    if cfg.factory is not None:
        if cfg.normalize_input != "none" or cfg.init != "default" or cfg.memory != "none":
            raise PacerError("model.normalize_input, model.init and model.memory apply to the built-in model; with "
                             "model.factory, normalize, initialize and remember inside your module (docs/models.md)")
        factory = resolve_import(cfg.factory, "model factory")
        check_signature(factory, (observation_space, action_space), "model factory",
                        "factory(observation_space, action_space)")
        model = factory(observation_space, action_space)
        if not isinstance(model, nn.Module):
            raise PacerError(f"model factory {cfg.factory!r} returned {type(model).__name__}, not a torch.nn.Module")
        if head.has_log_std and not isinstance(getattr(model, "log_std", None), nn.Parameter):
            raise PacerError("a model for Box actions must have a parameter 'log_std' (see docs/models.md)")
        if is_recurrent(model) and not isinstance(getattr(model, "state_size", None), int):
            raise PacerError(f"model factory {cfg.factory!r} made a recurrent model (it has initial_state) without "
                             "an integer state_size (see docs/models.md)")
        return model
    if layout.structured:
        if cfg.encoder == "cnn":
            raise PacerError("model.encoder cnn reads a plain image observation; in a structured one each image "
                             "of 36x36 pixels or more gets the CNN by itself (model.encoder auto or mlp)")
        features = Features(layout, cfg.normalize_input == "running")
        if cfg.memory != "none":
            return RecurrentActorCritic(cfg, (), head.size, head.has_log_std, False, features)
        return MLPActorCritic(cfg, features.size, head.size, head.has_log_std, features)
    if cnn:
        if not cnn_fits(shape):
            raise PacerError(f"model.encoder cnn needs image observations of at least 36x36 pixels (HxW, HxWxC or "
                             f"CxHxW), got shape {shape}")
        if cfg.normalize_input != "none":
            raise PacerError("model.normalize_input applies to the MLP; the CNN scales pixels to [0, 1] itself")
    if cfg.memory != "none":
        return RecurrentActorCritic(cfg, shape, head.size, head.has_log_std, cnn)
    if cnn:
        return CNNActorCritic(shape, head.size, head.has_log_std, cfg.log_std_init)
    return MLPActorCritic(cfg, int(np.prod(shape)), head.size, head.has_log_std)
