"""The reference docs cannot drift from the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pacer.config import SECTIONS
from pacer.presets import PRESETS

ROOT = Path(__file__).parent.parent


def test_every_config_key_and_preset_is_documented() -> None:
    text = (ROOT / "docs" / "config.md").read_text()
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f"`{section}.{f.name}`" in text, f"docs/config.md misses {section}.{f.name}"
    for name in PRESETS:
        assert f"### `{name}`" in text


def test_config_reference_is_generated_from_the_code() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "config_doc.py"), "--check"])
    assert out.returncode == 0, "docs/config.md is stale: run python scripts/config_doc.py"


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make train" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_relative_link_in_the_docs_resolves() -> None:
    """README.md keeps the tours and links to docs/: a moved or renamed page must not leave a dead link."""
    import re

    pages = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"
    assert len((ROOT / "README.md").read_text().splitlines()) <= 130  # the tours; the rest lives in docs/
