"""Observation spaces as pacer keeps them: a layout of leaves, each stored as an array of one dtype.

A Box is one leaf (uint8 where the space is, float32 otherwise), and its observations travel as one array, as they
always have. A uint8 Box of 2 or 3 dimensions at least 36 pixels a side is 'pixels' (the Nature CNN reads it); any
other Box is a 'vector' (its values, flattened: a small grid such as MiniGrid's 7x7 view holds codes, not pixels).
Any other space is structured: Dict and Tuple nest (as dicts and tuples of arrays), Discrete and MultiDiscrete
leaves are int64 indices (one-hot in the model), MultiBinary float32; what no network can read (a Text mission, a
Sequence or a Graph) is left out, and a run says which keys in one line. `env.observation_keys` keeps only the Dict
keys it names. Rollouts, batches, pipes, checkpoints, `Agent.act`, evaluation and exported graphs all carry such
trees; `tree_map` walks them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from pacer.errors import PacerError

Tree = Any
"""An array (NumPy or torch), or a dict or tuple of trees."""


def tree_map(fn: Callable[..., Any], tree: Tree, *others: Tree) -> Tree:
    """`fn` applied leaf by leaf to trees of one shape (dicts by key, tuples and lists by position)."""
    if isinstance(tree, dict):
        return {key: tree_map(fn, value, *(other[key] for other in others)) for key, value in tree.items()}
    if isinstance(tree, (tuple, list)):
        return tuple(tree_map(fn, value, *(other[i] for other in others)) for i, value in enumerate(tree))
    return fn(tree, *others)


def tree_leaves(tree: Tree) -> list[Any]:
    if isinstance(tree, dict):
        return [leaf for value in tree.values() for leaf in tree_leaves(value)]
    if isinstance(tree, (tuple, list)):
        return [leaf for value in tree for leaf in tree_leaves(value)]
    return [tree]


@dataclass(frozen=True)
class Leaf:
    """One array of an observation: where it is, what it holds, and how it is stored."""

    path: str
    """Its keys from the root, joined by '.' ('' for a Box): an exported graph's input is named obs.<path>."""
    space: gym.Space[Any]
    kind: str
    """'pixels' (a uint8 Box of 2 or 3 dimensions, 36+ pixels a side), 'vector' (any other Box), 'discrete',
    'multidiscrete', 'binary'."""
    shape: tuple[int, ...]
    dtype: type[np.generic]

    @property
    def size(self) -> int:
        """Floats it becomes in the model: its values, or one-hot codes of its indices."""
        if self.kind == "discrete":
            return int(self.space.n)  # type: ignore[attr-defined]
        if self.kind == "multidiscrete":
            return int(np.sum(self.space.nvec))  # type: ignore[attr-defined]
        return int(np.prod(self.shape))


KINDS = ("pixels", "vector", "discrete", "multidiscrete", "binary")
"""Every kind of leaf: what the model does with each is in model.Features."""

CNN_MIN_SIDE = 36  # the Nature CNN's smallest input (8x8/4, 4x4/2, 3x3/1 convolutions)


def image_side(shape: tuple[int, ...]) -> int:
    """The shorter side of an image of this shape (HxW, HxWxC with few channels last, or CxHxW)."""
    if len(shape) == 2:
        return min(shape)
    if shape[-1] <= 4 < shape[0]:
        return min(shape[0], shape[1])
    return min(shape[1], shape[2])


def _leaf(path: str, space: gym.Space[Any]) -> Leaf | None:
    if isinstance(space, gym.spaces.Box):
        uint8 = space.dtype == np.uint8
        pixels = uint8 and len(space.shape) in (2, 3) and image_side(tuple(space.shape)) >= CNN_MIN_SIDE
        return Leaf(path, space, "pixels" if pixels else "vector", tuple(space.shape),
                    np.uint8 if uint8 else np.float32)
    if isinstance(space, gym.spaces.Discrete):
        return Leaf(path, space, "discrete", (), np.int64)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return Leaf(path, space, "multidiscrete", tuple(space.shape), np.int64)
    if isinstance(space, gym.spaces.MultiBinary):
        return Leaf(path, space, "binary", tuple(space.shape), np.float32)
    return None  # Text, Sequence, Graph, ...: no network reads these


class ObsLayout:
    """What a run keeps of an observation space. `tree` is the space's nesting with a `Leaf` at each kept leaf."""

    def __init__(self, space: gym.Space[Any], keys: Sequence[str] = (), mask_key: str | None = None) -> None:
        self.space = space
        self.structured = not isinstance(space, gym.spaces.Box)
        self.dropped: list[str] = []
        self.mask_key = mask_key
        """A Dict key that holds the action mask (pacer/masks.py): not an input of the model."""
        if keys and not isinstance(space, gym.spaces.Dict):
            raise PacerError(f"env.observation_keys {list(keys)} needs a Dict observation space, not {space}")
        if keys:
            unknown = [k for k in keys if k not in space.spaces]  # type: ignore[attr-defined]
            if unknown:
                raise PacerError(f"env.observation_keys {unknown} are not keys of the observation: "
                                 f"{', '.join(space.spaces)}")  # type: ignore[attr-defined]
        self.tree = self._walk(space, "", set(keys))
        self.leaves: list[Leaf] = [] if self.tree is None else tree_leaves(self.tree)
        if not self.leaves:
            raise PacerError(f"nothing in observation space {space} can be learned from: pacer reads Box, Discrete, "
                             "MultiDiscrete and MultiBinary observations, nested in Dict and Tuple")
        self.dtype = self.leaves[0].dtype  # of a Box's one array

    def _walk(self, space: gym.Space[Any], path: str, keys: set[str]) -> Tree:
        if isinstance(space, gym.spaces.Dict):
            out = {}
            for key, sub in space.spaces.items():
                if not path and key == self.mask_key:
                    continue
                if keys and not path and key not in keys:
                    self.dropped.append(key)
                    continue
                node = self._walk(sub, f"{path}.{key}" if path else str(key), set())
                if node is not None:
                    out[key] = node
            return out or None
        if isinstance(space, gym.spaces.Tuple):
            nodes = [self._walk(sub, f"{path}.{i}" if path else str(i), set()) for i, sub in enumerate(space.spaces)]
            if any(node is None for node in nodes):  # a tuple keeps its positions: a leaf nobody reads is refused
                raise PacerError(f"observation {path or 'space'} is a Tuple with a part pacer cannot read "
                                 f"({space}): wrap the env to leave it out")
            return tuple(nodes)
        leaf = _leaf(path, space)
        if leaf is None:
            self.dropped.append(path or str(space))
        return leaf

    @property
    def kept_space(self) -> gym.Space[Any]:
        """The observation space of the kept leaves only (what a model is built for)."""
        return self._kept(self.tree)

    def _kept(self, node: Tree) -> gym.Space[Any]:
        if isinstance(node, Leaf):
            return node.space
        if isinstance(node, dict):
            return gym.spaces.Dict({key: self._kept(sub) for key, sub in node.items()})
        return gym.spaces.Tuple(tuple(self._kept(sub) for sub in node))

    @property
    def image(self) -> bool:
        """A plain image the Nature CNN reads (a uint8 Box, 36+ pixels a side)."""
        return not self.structured and self.leaves[0].kind == "pixels"

    def cast(self, obs: Tree) -> Tree:
        """Observations (one, or a batch: any leading dimensions) as stored: each kept leaf as an array of its
        dtype, the keys left out dropped."""
        if not self.structured:
            return np.asarray(obs, dtype=self.dtype)
        return self._cast(self.tree, obs)

    def _cast(self, node: Tree, obs: Tree) -> Tree:
        if isinstance(node, Leaf):
            return np.asarray(obs, dtype=node.dtype)
        if isinstance(node, dict):
            return {key: self._cast(sub, obs[key]) for key, sub in node.items()}
        return tuple(self._cast(sub, obs[i]) for i, sub in enumerate(node))

    def zeros(self, lead: tuple[int, ...]) -> Tree:
        """Arrays for `lead` observations (a rollout's [T, N])."""
        return tree_map(lambda leaf: np.zeros((*lead, *leaf.shape), leaf.dtype), self.tree)

    def single(self, obs: Tree) -> bool:
        """Whether `obs` (as stored) is one observation, not a batch."""
        first = tree_leaves(obs)[0]
        return len(np.shape(first)) == len(self.leaves[0].shape)

    @property
    def nbytes(self) -> int:
        """Bytes one observation takes as stored."""
        return sum(int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize for leaf in self.leaves)

    @property
    def vector_size(self) -> int:
        """Floats of the vector leaves together: what running observation statistics are kept over."""
        return sum(int(np.prod(leaf.shape)) for leaf in self.leaves if leaf.kind == "vector")

    def vectors(self, obs: Tree) -> NDArray[Any]:
        """The vector leaves of a batch [n, ...] as one array [n, vector_size] (a Box: the observation flattened)."""
        if not self.structured:
            return np.asarray(obs).reshape(len(obs), -1)
        parts = [(leaf, value) for leaf, value in zip(self.leaves, tree_leaves(obs), strict=True)
                 if leaf.kind == "vector"]
        n = len(tree_leaves(obs)[0])
        if not parts:
            return np.zeros((n, 0), np.float32)
        return np.concatenate([np.asarray(value, np.float32).reshape(n, -1) for _, value in parts], axis=1)

    def describe(self) -> str:
        return ", ".join(f"{leaf.path or 'obs'} {leaf.kind}{list(leaf.shape)}" for leaf in self.leaves)
