"""The distribution as a user gets it: a wheel built from this tree installs into a fresh virtualenv that already
has torch, leaves that torch in place, and its `pacer` command trains. Marker `wheel` (make test-wheel, in CI):
it downloads the build backend and the dependencies from the package index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path, cwd: Path | None = None) -> str:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=600,
                         env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    assert out.returncode == 0, f"{' '.join(map(str, args))}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def torch_record(python: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json; d = m.distribution('torch'); "
            "print(json.dumps({'version': d.version, 'at': str(d.locate_file(''))}))")
    return json.loads(run(python, "-c", code))


def test_the_wheel_installs_beside_an_existing_torch_and_trains(tmp_path: Path) -> None:
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", tmp_path / "dist", ROOT)
    [wheel] = (tmp_path / "dist").glob("pacer_rl-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python, pip = venv / "bin" / "python", [venv / "bin" / "python", "-m", "pip", "-q", "--disable-pip-version-check"]
    run(*pip, "install", "-c", ROOT / "constraints.txt", "torch")  # the user's own torch, installed first
    before = torch_record(python)
    run(*pip, "install", f"{wheel}[box2d]")  # no constraints: the wheel's own requirements decide
    assert torch_record(python) == before
    assert run(venv / "bin" / "pacer", "--version").startswith(f"pacer {wheel.name.split('-')[1]} ")
    typed = run(python, "-c", "import pacer, pathlib; print((pathlib.Path(pacer.__file__).parent / 'py.typed')"
                              ".is_file())")
    assert typed.strip() == "True"
    out = run(venv / "bin" / "pacer", "train", "--env", "LunarLander-v3", "--total-steps", "4000", "--no-progress",
              "--set", "runtime.eval_every=0", "--set", "runtime.final_eval_episodes=1", "--run-dir", "run",
              cwd=tmp_path)
    assert "done (total_steps)" in out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["env_steps"] >= 4000


def readme_install_block() -> list[str]:
    """The commands of the README's Install section (its first bash block), comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Install"):]
    section = section[:section.index("\n## ", 1)]
    block = section[section.index("```bash\n") + len("```bash\n"):]
    block = block[:block.index("```")]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_install_section_works_word_for_word(tmp_path: Path) -> None:
    """In a clone of this tree, a fresh virtualenv, the README's commands one after another. One substitution: this
    machine reaches no PyTorch index, so the torch line installs the same CPU torch from the local wheel."""
    commands = readme_install_block()
    torch_line = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
    assert torch_line in commands and commands[-1].startswith("pacer train")
    local = commands[:]
    local[local.index(torch_line)] = f"pip install -c {ROOT / 'constraints.txt'} torch"
    run("git", "clone", "-q", ROOT, tmp_path / "clone")
    script = "set -euo pipefail\n" + "\n".join(local) + "\n"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path / "clone", timeout=800,
                         env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    assert out.returncode == 0, f"{script}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert "done (" in out.stdout and "greedy evaluation" in out.stdout
