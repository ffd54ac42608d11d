"""Preflight: problems found before any worker starts, each with its fix."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from pacer.backends import local
from pacer.config import Config
from pacer.errors import PacerError
from pacer.model import make_model


def setup(**runtime: object) -> tuple[Config, object, list[str]]:
    import gymnasium as gym

    cfg = Config.from_dict({"runtime": {"backend": "local", "start_method": "forkserver", **runtime}})
    env = gym.make("CartPole-v1")
    return cfg, make_model(cfg.model, env.observation_space, env.action_space), []


def test_reports_start_method_and_oversubscription(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    cfg, model, lines = setup(workers=7)
    local.preflight(cfg, model, lines.append)
    assert lines[0] == "pacer: 7 workers on local processes (start method forkserver), 1 torch thread each, 2 cores"
    assert lines[1].startswith("pacer: note: 7 workers x 1 threads > 2 cores")


def test_dev_shm_too_small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_bavail=1024, f_frsize=4096))  # 4 MiB
    cfg, model, lines = setup()
    with pytest.raises(PacerError, match=r"^/dev/shm has 4 MiB free .* --shm-size=1g"):
        local.preflight(cfg, model, lines.append)


def test_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    cfg, model, lines = setup()
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (64, 64))
    with pytest.raises(PacerError, match=r"open-file limit \(64, hard 64\) is below .*\(ulimit -n"):
        local.preflight(cfg, model, lines.append)
    raised: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (64, 1_000_000))
    monkeypatch.setattr(resource, "setrlimit", lambda kind, limits: raised.append(limits))
    local.preflight(cfg, model, lines.append)  # raised up to the hard limit instead
    assert raised and raised[0][0] > 64
