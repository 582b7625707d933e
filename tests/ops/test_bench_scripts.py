"""Every benchmark script starts: `python bench/<name>.py --help` imports what it needs.

`python bench/x.py` puts bench/ first on the import path, where bench/requests.py would shadow
the `requests` package (which DRF imports): each script replaces that entry with the project.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path.name for path in (ROOT / "bench").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_script_starts(script):
    done = subprocess.run(
        [sys.executable, f"bench/{script}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
