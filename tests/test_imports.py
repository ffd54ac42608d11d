"""Import-time promises the `pacer` command depends on."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_imports_no_torch() -> None:
    """The command starts its fork server (which imports torch) before it imports torch itself, so that the two
    ~2 s imports overlap: importing pacer.cli and parsing a train command must not pull torch in."""
    code = ("import sys, pacer.cli\n"
            "pacer.cli.build_parser().parse_args(['train'])\n"
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not loaded, loaded[:5]\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
