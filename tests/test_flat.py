"""Flat buffers (runtime/flat.py) and the parameter store's one-tensor step against torch's per-parameter step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pacer.runtime import flat, optim
from pacer.runtime.store import ParamStore


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def test_flatten_keeps_values_and_shapes_and_makes_views_of_one_buffer() -> None:
    model = net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    buffer = flat.flatten_(params)
    assert buffer is not None and buffer.numel() == sum(p.numel() for p in params)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert flat.view_of(params) is not None and flat.view_of(params).data_ptr() == buffer.data_ptr()
    with torch.no_grad():
        buffer.fill_(2.0)  # writes through to every parameter
    assert all(bool((p == 2.0).all()) for p in params)
    assert isinstance(params[0], nn.Parameter) and next(iter(model.parameters())) is params[0]


def test_view_of_refuses_what_is_not_one_buffer_in_order() -> None:
    params = list(net().parameters())
    assert flat.view_of(params) is None  # separate tensors
    flat.flatten_(params)
    assert flat.view_of(params[::-1]) is None  # out of order
    assert flat.view_of([params[0], params[2]]) is None  # a gap
    assert flat.view_of([params[0].t()]) is None  # not contiguous


def test_clip_norm_matches_torch() -> None:
    grads = [torch.randn(4, 3) * 3, torch.randn(5)]
    reference = [g.clone() for g in grads]
    params = [nn.Parameter(torch.zeros_like(g)) for g in reference]
    for p, g in zip(params, reference, strict=True):
        p.grad = g
    expected = float(torch.nn.utils.clip_grad_norm_(params, 0.5))
    joined = torch.cat([g.reshape(-1) for g in grads])
    assert flat.clip_norm_(joined, 0.5) == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(joined, torch.cat([p.grad.reshape(-1) for p in params]))
    small = torch.full((4,), 0.01)
    flat.clip_norm_(small, 0.5)
    assert torch.equal(small, torch.full((4,), 0.01))  # below the bound: unchanged


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
def test_the_flat_step_is_torchs_per_parameter_step(kind: str) -> None:
    """Ten updates through a store over flat parameters and moments land where torch's own optimizer over the
    separate parameters does (float tolerance: fused and foreach kernels round differently)."""
    flat_model, plain_model = net(), net()
    flat_params, plain_params = list(flat_model.parameters()), list(plain_model.parameters())
    flat.flatten_(flat_params)
    store = ParamStore(flat_params, optim.new_state(kind, flat_params), kind, 1e-2)
    assert store.flat is not None  # the one-tensor path
    reference = (torch.optim.Adam(plain_params, lr=1e-2) if kind == "adam" else
                 torch.optim.RMSprop(plain_params, lr=1e-2, alpha=optim.RMSPROP_ALPHA, eps=optim.RMSPROP_EPS))
    x = torch.randn(16, 5)
    for _ in range(10):
        for model in (flat_model, plain_model):
            model.zero_grad(set_to_none=True)
            model(x).pow(2).mean().backward()
        store.apply(flat.gather([p.grad for p in flat_params], flat_params), 1e-2)
        reference.step()
    for mine, theirs in zip(flat_params, plain_params, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    assert all(float(entry["step"]) == 10 for entry in store.state)


def test_parameters_of_mixed_dtypes_step_each_with_its_slice() -> None:
    params = [nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3, dtype=torch.float64))]
    assert flat.flatten_(params) is None
    store = ParamStore(params, optim.new_state("adam", params), "adam", 0.1)
    assert store.flat is None  # no one buffer: the per-parameter path, each with its own step count
    for _ in range(2):
        store.apply(torch.tensor([1.0, 1.0, -1.0, -1.0, -1.0]), 0.1)
    # Adam on a constant gradient moves by lr x its sign each step
    torch.testing.assert_close(params[0].detach(), torch.full((2,), 0.8))
    torch.testing.assert_close(params[1].detach(), torch.full((3,), 1.2, dtype=torch.float64))
    assert [float(entry["step"]) for entry in store.state] == [2.0, 2.0]


def test_a_flat_state_refuses_parameters_that_are_not_one_buffer() -> None:
    params = list(net().parameters())
    with pytest.raises(ValueError, match="views of one buffer"):
        ParamStore(params, optim.new_state("adam", params), "adam", 0.1)
