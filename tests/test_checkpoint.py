"""Checkpoints: round trip, atomic writes, and refusal of missing, corrupt, foreign or unsafe files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from pacer import checkpoint
from pacer.errors import PacerError

PAYLOAD = {"model": {"w": torch.arange(4.0)}, "counters": {"env_steps": 7}, "config": {"env": {"id": "x"}}}


def test_round_trip_with_rng_state(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    checkpoint.save(path, {**PAYLOAD, "rng": checkpoint.rng_state()})
    expected = torch.rand(3)  # the draw that follows the saved state
    data = checkpoint.load(path)
    torch.testing.assert_close(data["model"]["w"], torch.arange(4.0))
    assert data["counters"] == {"env_steps": 7}
    checkpoint.set_rng_state(data["rng"])
    torch.testing.assert_close(torch.rand(3), expected)


def test_a_failed_write_keeps_the_old_checkpoint_and_no_temp_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.pt"
    checkpoint.save(path, PAYLOAD)
    before = path.read_bytes()

    def crash(obj: object, f: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        checkpoint.save(path, {**PAYLOAD, "counters": {"env_steps": 8}})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.pt"]


def test_missing(tmp_path: Path) -> None:
    with pytest.raises(PacerError, match=r"^no checkpoint at"):
        checkpoint.load(tmp_path / "nope.pt")


def test_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    checkpoint.save(path, PAYLOAD)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(PacerError, match=r"is corrupt or truncated"):
        checkpoint.load(path)


def test_foreign(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(PacerError, match="is not a pacer checkpoint"):
        checkpoint.load(path)


class Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch PWNED",))


def test_a_checkpoint_that_runs_code_is_refused_and_the_code_never_runs(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "version": 1, "x": Exploit()}, path)
    with pytest.raises(PacerError, match="refusing to load"):
        checkpoint.load(path)
    assert not (tmp_path / "PWNED").exists()
    # a bare pickle (not a torch zip) is refused too
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(PacerError):
        checkpoint.load(path)
    assert not (tmp_path / "PWNED").exists()


def test_find_and_rotate(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    for step in (10, 30, 200):
        checkpoint.save(folder / f"step_{step}.pt", PAYLOAD)
    assert checkpoint.find(tmp_path).name == "step_200.pt"
    checkpoint.rotate(folder, keep=2)
    assert sorted(p.name for p in folder.iterdir()) == ["step_200.pt", "step_30.pt"]
    checkpoint.save(folder / "final.pt", PAYLOAD)
    assert checkpoint.find(tmp_path).name == "final.pt"
    with pytest.raises(PacerError, match="no run directory or checkpoint"):
        checkpoint.find(tmp_path / "missing")


def test_find_prefers_the_newest_write_over_an_old_final(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    checkpoint.save(folder / "final.pt", PAYLOAD)
    os.utime(folder / "final.pt", (1, 1))  # an older session's final checkpoint
    checkpoint.save(folder / "step_500.pt", PAYLOAD)  # a resumed session that was killed before its final save
    assert checkpoint.find(tmp_path).name == "step_500.pt"
