"""Under CI=true a skipped test fails the run (tests/conftest.py's session hook); elsewhere it only reports."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO


def _run(tmp_path, ci: str) -> subprocess.CompletedProcess:
    test = tmp_path / "test_skips.py"
    test.write_text("import pytest\n\ndef test_needs_an_asset():\n    pytest.skip('asset not installed')\n\ndef test_ok():\n    pass\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(REPO / "tests")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-c", os.devnull, "--rootdir", str(tmp_path), str(test)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_a_skip_fails_under_ci(tmp_path) -> None:
    done = _run(tmp_path, "true")
    assert done.returncode == 1, done.stdout[-2000:]
    assert "CI: 1 test(s) skipped" in done.stdout and "failing the run" in done.stdout


def test_a_skip_is_reported_but_passes_outside_ci(tmp_path) -> None:
    done = _run(tmp_path, "")
    assert done.returncode == 0, done.stdout[-2000:]
