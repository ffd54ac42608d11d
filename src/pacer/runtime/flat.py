"""One contiguous buffer behind a list of tensors: the model's parameters, an optimizer moment, a gradient.

Per-tensor work costs a dispatch per tensor; a small actor-critic has ten or more of them, and its arithmetic is
tiny, so the learner's time went to that overhead (issue 21). With the parameters as views of one flat tensor, a
pull is one copy, a gradient norm one reduction, and the optimizer steps one tensor. The views keep the module's
shapes, so models, checkpoints and `state_dict` are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def flatten_(params: Sequence[nn.Parameter]) -> Tensor | None:
    """Move `params` into one new flat tensor, each parameter becoming a view of its slice (values kept); returns
    the flat tensor, or None when they cannot share one (mixed dtypes, no parameters)."""
    if not params or len({p.dtype for p in params}) != 1:
        return None
    buffer = torch.empty(sum(p.numel() for p in params), dtype=params[0].dtype)
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            buffer[offset:offset + n].copy_(p.reshape(-1))
            p.data = buffer[offset:offset + n].view_as(p)
            offset += n
    return buffer


def zeros_like_all(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Zeros shaped like each of `tensors`, as consecutive views of one new flat tensor."""
    buffer = torch.zeros(sum(t.numel() for t in tensors), dtype=tensors[0].dtype)
    views, offset = [], 0
    for t in tensors:
        views.append(buffer[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return views


def view_of(tensors: Sequence[Tensor]) -> Tensor | None:
    """The flat tensor that `tensors` are consecutive views of (one storage, in order, contiguous), or None.
    Works on tensors that came through a process boundary, as long as their storage did (shared memory)."""
    if not tensors or len({t.dtype for t in tensors}) != 1 or not all(t.is_contiguous() for t in tensors):
        return None
    storage = tensors[0].untyped_storage()
    offset = tensors[0].storage_offset()
    expected = offset
    for t in tensors:
        if t.untyped_storage().data_ptr() != storage.data_ptr() or t.storage_offset() != expected:
            return None
        expected += t.numel()
    flat = torch.empty(0, dtype=tensors[0].dtype)
    flat.set_(storage, offset, (expected - offset,), (1,))
    return flat


def gather(tensors: Sequence[Tensor | None], like: Sequence[Tensor]) -> Tensor:
    """One flat tensor of `tensors` (zeros in place of a None), shaped after `like`."""
    return torch.cat([(t if t is not None else torch.zeros_like(ref)).reshape(-1) for t, ref in zip(tensors, like,
                                                                                                   strict=True)])


def clip_norm_(flat: Tensor, max_norm: float) -> float:
    """Scale `flat` in place so that its 2-norm is at most `max_norm` (as torch.nn.utils.clip_grad_norm_ does over
    many tensors); returns the norm before scaling."""
    norm = torch.linalg.vector_norm(flat)
    flat.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return float(norm)
