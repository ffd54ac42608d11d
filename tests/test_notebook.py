"""The example notebook, executed as Jupyter would (nbclient): its env and model classes, defined in cells, train
on 2 worker processes under spawn; it plots and evaluates; a frame env from a cell trains the CNN; nothing is left
behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leftovers import OwnFiles

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

EXAMPLE = Path(__file__).parent.parent / "examples" / "notebook.ipynb"


def descendants(pid: int) -> list[int]:
    """Live (non-zombie) processes below `pid`."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@pytest.mark.notebook
@pytest.mark.timeout(300)
def test_the_example_notebook_trains_on_spawned_workers_and_leaves_nothing(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    own = OwnFiles(monkeypatch)  # the kernel and its workers get a TMPDIR of their own
    before = set(descendants(os.getpid()))
    notebook = nbformat.read(EXAMPLE, as_version=4)
    nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", []))
    assert "2 workers on local processes (start method spawn)" in text
    assert "greedy return over 20 episodes" in text and "id: by-value:__main__:Corridor" in text
    assert "CNNActorCritic: greedy return" in text  # pixels: an image env from a cell gets the CNN on workers
    assert any("image/png" in out.get("data", {}) for cell in notebook.cells for out in cell.get("outputs", []))
    assert set(descendants(os.getpid())) - before == set()  # kernel, workers, fork server: all gone
    assert own.files() == set()
